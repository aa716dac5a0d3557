package group

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/statelog"
)

// txnHarness is a coordinator over a real __consumer_offsets partition on
// disk (one partition, so every group lives on it).
type txnHarness struct {
	t    *testing.T
	part *replica.Partition
	c    *Coordinator
}

func newTxnHarness(t *testing.T) *txnHarness {
	t.Helper()
	m := replica.NewManager(replica.ManagerConfig{DataDir: t.TempDir(), NodeID: 1})
	t.Cleanup(func() { m.Close() })
	cfg := config.Layers{}.ResolveTopic()
	cfg.Compact, cfg.Delete = true, false
	want := map[replica.TopicPartition]replica.PartitionState{
		{Topic: Topic, Partition: 0}: {TopicID: [16]byte{1}, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}, Config: cfg},
	}
	if err := m.Reconcile(want); err != nil {
		t.Fatal(err)
	}
	h := &txnHarness{t: t, part: m.Get(Topic, 0)}
	h.c = h.newCoordinator()
	return h
}

// newCoordinator is a coordinator that loads the partition afresh, as a
// restarted node's does.
func (h *txnHarness) newCoordinator() *Coordinator {
	c := New(Config{NumPartitions: 1,
		Log: func(p int32) statelog.Log {
			if p == 0 {
				return statelog.NewReplica(h.part)
			}
			return nil
		},
		PartitionCount: func(string) int32 { return 8 },
	})
	h.t.Cleanup(c.Close)
	c.Start()
	waitLoaded(h.t, c, 0)
	return c
}

func (h *txnHarness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

func tpOf(p int32) TopicPartition { return TopicPartition{Topic: "t", Partition: p} }

func (h *txnHarness) commit(group string, p int32, off int64) {
	h.t.Helper()
	res, err := h.c.Commit(h.ctx(), group, "", "", -1, 9, map[TopicPartition]Offset{tpOf(p): {Offset: off, LeaderEpoch: -1}})
	if err != nil || res[tpOf(p)] != nil {
		h.t.Fatalf("commit %s %d=%d: %v %v", group, p, off, err, res)
	}
}

func (h *txnHarness) txnCommit(group string, pid int64, offs map[int32]int64) {
	h.t.Helper()
	in := map[TopicPartition]Offset{}
	for p, o := range offs {
		in[tpOf(p)] = Offset{Offset: o, LeaderEpoch: -1}
	}
	res, err := h.c.CommitTxnOffsets(h.ctx(), group, "", "", -1, pid, 0, in)
	if err != nil {
		h.t.Fatalf("txn commit: %v", err)
	}
	for tp, e := range res {
		if e != nil {
			h.t.Fatalf("txn commit %v: %v", tp, e)
		}
	}
}

// marker writes pid's end-transaction marker to the partition and tells
// the coordinator, as the transaction coordinator does.
func (h *txnHarness) marker(pid int64, commit bool) {
	h.t.Helper()
	if _, err := h.part.AppendTxnMarker(pid, 0, commit, 0); err != nil {
		h.t.Fatal(err)
	}
	if err := h.c.CompleteTxn(h.ctx(), 0, pid, commit); err != nil {
		h.t.Fatal(err)
	}
}

// state is a group's committed offsets and the partitions a transaction
// holds, as OffsetFetch with require_stable sees them for partitions 0-7.
func state(t *testing.T, c *Coordinator, group string) (map[int32]int64, map[int32]bool) {
	t.Helper()
	var tps []TopicPartition
	for p := range int32(8) {
		tps = append(tps, tpOf(p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := c.Fetch(ctx, group, tps)
	if err != nil {
		t.Fatal(err)
	}
	_, unstable, err := c.FetchOffsets(ctx, group, tps, true)
	if err != nil {
		t.Fatal(err)
	}
	got, pend := map[int32]int64{}, map[int32]bool{}
	for tp, o := range offs {
		got[tp.Partition] = o.Offset
	}
	for tp := range unstable {
		pend[tp.Partition] = true
	}
	return got, pend
}

// TestGroupTxnOffsets scripts transactional and plain commits, markers and
// deletions, and checks after each step both the live coordinator and one
// that replays the partition from scratch: they must agree with the
// expected committed and pending offsets (Kafka's GroupMetadataManager
// replay and handleTxnCompletion).
func TestGroupTxnOffsets(t *testing.T) {
	h := newTxnHarness(t)
	type want struct {
		committed map[int32]int64
		pending   map[int32]bool
	}
	steps := []struct {
		name  string
		group string
		do    func()
		want  want
	}{
		{"plain commit", "g", func() { h.commit("g", 0, 5) },
			want{map[int32]int64{0: 5}, map[int32]bool{}}},
		{"transactional commit is pending", "g", func() { h.txnCommit("g", 100, map[int32]int64{0: 10, 1: 11}) },
			want{map[int32]int64{0: 5}, map[int32]bool{0: true, 1: true}}},
		{"plain commit written after the transactional one", "g", func() { h.commit("g", 1, 20) },
			want{map[int32]int64{0: 5, 1: 20}, map[int32]bool{0: true, 1: true}}},
		{"COMMIT marker: the later plain commit wins on its partition", "g", func() { h.marker(100, true) },
			want{map[int32]int64{0: 10, 1: 20}, map[int32]bool{}}},
		{"aborted transaction", "g", func() {
			h.txnCommit("g", 101, map[int32]int64{0: 99, 2: 30})
			h.marker(101, false)
		}, want{map[int32]int64{0: 10, 1: 20}, map[int32]bool{}}},
		{"two producers, two groups", "g", func() {
			h.txnCommit("g", 102, map[int32]int64{3: 40})
			h.txnCommit("other", 103, map[int32]int64{3: 41})
			h.marker(103, true)
		}, want{map[int32]int64{0: 10, 1: 20}, map[int32]bool{3: true}}},
		{"the other group", "other", func() {},
			want{map[int32]int64{3: 41}, map[int32]bool{}}},
		{"a marker of another producer leaves the pending offsets", "g", func() { h.marker(104, true) },
			want{map[int32]int64{0: 10, 1: 20}, map[int32]bool{3: true}}},
		{"deleting the group drops its pending offsets too", "g", func() {
			if err := h.c.Delete(h.ctx(), "g"); err != nil {
				t.Fatal(err)
			}
			h.marker(102, true)
		}, want{map[int32]int64{}, map[int32]bool{}}},
		{"pending across a reload", "g", func() { h.txnCommit("g", 105, map[int32]int64{6: 60}) },
			want{map[int32]int64{}, map[int32]bool{6: true}}},
	}
	for _, s := range steps {
		s.do()
		for _, view := range []string{"live", "replayed"} {
			c := h.c
			if view == "replayed" {
				c = h.newCoordinator()
			}
			got, pend := state(t, c, s.group)
			if !maps.Equal(got, s.want.committed) || !maps.Equal(pend, s.want.pending) {
				t.Fatalf("%s (%s): committed %v pending %v, want %v %v", s.name, view, got, pend,
					s.want.committed, s.want.pending)
			}
		}
	}
	// The marker reaches a coordinator that loaded the pending offsets
	// from the log.
	h.c = h.newCoordinator()
	h.marker(105, true)
	if got, pend := state(t, h.c, "g"); !maps.Equal(got, map[int32]int64{6: 60}) || len(pend) != 0 {
		t.Fatalf("after the marker on a reloaded coordinator: committed %v pending %v", got, pend)
	}
}

// TestGroupValidateTxnOffsetCommit is the table of Kafka's
// validateOffsetCommit for a transactional commit (KIP-447).
func TestGroupValidateTxnOffsetCommit(t *testing.T) {
	now := time.UnixMilli(0)
	stable := newGroupState("g", DefaultLimits(), now)
	stable.state, stable.generation = Stable, 3
	stable.members["m1"] = &member{id: "m1", instanceID: "i1"}
	stable.static["i1"] = "m1"
	stable.members["m2"] = &member{id: "m2"}
	rebalancing := newGroupState("g", DefaultLimits(), now)
	rebalancing.state, rebalancing.generation = CompletingRebalance, 3
	rebalancing.members["m2"] = &member{id: "m2"}
	empty := newGroupState("g", DefaultLimits(), now)
	empty.generation = 2
	cases := []struct {
		name             string
		st               *groupState
		member, instance string
		generation       int32
		want             error
	}{
		{"member of the generation", stable, "m1", "i1", 3, nil},
		{"dynamic member", stable, "m2", "", 3, nil},
		{"old generation", stable, "m1", "i1", 2, ErrIllegalGeneration},
		{"unknown member", stable, "m9", "", 3, ErrUnknownMemberID},
		{"instance of another member", stable, "m2", "i1", 3, ErrFencedInstanceID},
		{"unknown instance", stable, "m1", "i9", 3, ErrUnknownMemberID},
		{"member without generation", stable, "m1", "", -1, ErrIllegalGeneration},
		{"nothing (v0-v2)", stable, "", "", -1, nil},
		{"rebalance in progress is no refusal", rebalancing, "m2", "", 3, nil},
		{"empty group, no generation", empty, "x", "", -1, nil},
		{"empty group, a generation", empty, "x", "", 2, ErrUnknownMemberID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.st.validateTxnOffsetCommit(c.member, c.instance, c.generation); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

// waitLoaded waits until the coordinator has loaded partition p.
func waitLoaded(t *testing.T, c *Coordinator, p int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.owner.WaitLoaded(ctx, p); err != nil {
		t.Fatalf("load partition %d: %v", p, err)
	}
}
