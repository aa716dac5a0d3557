package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/group"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/txn"
)

// coordLoads counts a node's coordinator partition loads and unloads, by
// the owner's log lines (the one place they show from outside).
type coordLoads struct {
	mu     sync.Mutex
	events map[string]int // "load group 1", "unload group 1"
}

func (c *coordLoads) count(ev string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events[ev]
}

// loadsHandler is a slog.Handler feeding coordLoads.
type loadsHandler struct {
	c     *coordLoads
	attrs []slog.Attr
}

func (h loadsHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h loadsHandler) Handle(_ context.Context, r slog.Record) error {
	var ev string
	switch r.Message {
	case "loaded coordinator partition":
		ev = "load"
	case "unloading coordinator partition":
		ev = "unload"
	default:
		return nil
	}
	var coord, part string
	visit := func(a slog.Attr) bool {
		switch a.Key {
		case "coordinator":
			coord = a.Value.String()
		case "partition":
			part = a.Value.String()
		}
		return true
	}
	for _, a := range h.attrs {
		visit(a)
	}
	r.Attrs(visit)
	h.c.mu.Lock()
	h.c.events[fmt.Sprintf("%s %s %s", ev, coord, part)]++
	h.c.mu.Unlock()
	return nil
}

func (h loadsHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return loadsHandler{c: h.c, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h loadsHandler) WithGroup(string) slog.Handler { return h }

// startClusterCounting is startCluster with each node's coordinator loads
// counted.
func startClusterCounting(t *testing.T, props map[string]string) (cluster, map[int32]*coordLoads) {
	t.Helper()
	c := cluster{nodes: make([]*node.Node, 3), ctrlPorts: freePorts(t, 3)}
	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", c.ctrlPorts[0], c.ctrlPorts[1], c.ctrlPorts[2])
	loads := map[int32]*coordLoads{}
	errs := make([]error, 3)
	for i := range 3 {
		c.dirs = append(c.dirs, t.TempDir())
		loads[int32(i+1)] = &coordLoads{events: map[string]int{}}
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			logger := slog.New(loadsHandler{c: loads[int32(i+1)]})
			c.nodes[i], errs[i] = node.Start(ctx, clusterNodeConfig(c.dirs[i], int32(i+1), c.ctrlPorts[i], voters, props), logger)
		})
	}
	wg.Wait()
	for i, n := range c.nodes {
		if n != nil {
			t.Cleanup(func() { n.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i+1, errs[i])
		}
	}
	return c, loads
}

// TestClusterGroupCoordinatorKeptAcrossEpochBump: a group commits offsets
// straight to its coordinator while its __consumer_offsets partition is
// reassigned to drop a follower, which bumps the partition's leader epoch
// while the coordinator's node keeps leading it. As in Kafka, the
// coordinator stays loaded: every commit is answered without error (none
// NOT_COORDINATOR, none COORDINATOR_LOAD_IN_PROGRESS, none failed in
// flight), the partition is loaded once, and the last commit is what the
// group reads back.
func TestClusterGroupCoordinatorKeptAcrossEpochBump(t *testing.T) {
	c, loads := startClusterCounting(t, coordFailoverProps)
	const topic, groupID = "bumped", "bump-group"
	createReplicated(t, c, topic, 1, nil)

	coord := coordinatorOf(t, c.nodes[0], groupID, 0)
	p := group.PartitionFor(groupID, 3)
	var lead *node.Node
	for _, n := range c.nodes {
		if n.NodeID() == coord {
			lead = n
		}
	}
	cl := newClient(t, lead)
	var next int64
	commit := func() error {
		next++
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation = groupID, -1
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, next
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl.Broker(int(coord)))
		if err != nil {
			return err
		}
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			return fmt.Errorf("commit of %d: %w", next, kerr.ErrorForCode(code))
		}
		return nil
	}
	checkFor(t, "a first commit", func() bool { return commit() == nil })
	loadEv := fmt.Sprintf("load group %d", p)
	if n := loads[coord].count(loadEv); n != 1 {
		t.Fatalf("node %d loaded %s-%d %d times before the reassignment", coord, group.Topic, p, n)
	}
	// The follower kept must be in sync, or the ISR left falls below
	// min.insync.replicas (2) and commits fail for that reason.
	checkFor(t, group.Topic+" fully in sync", func() bool { return len(isrOf(t, lead, group.Topic, p)) == 3 })
	before, _ := lead.Replica(group.Topic, p)
	replicas := replicasOf(t, lead, group.Topic, p)
	if len(replicas) != 3 {
		t.Fatalf("%s-%d replicas %v, want 3", group.Topic, p, replicas)
	}
	keep := []int32{coord}
	for _, r := range replicas {
		if r != coord && len(keep) < 2 {
			keep = append(keep, r)
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var commitErr error
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := commit(); err != nil {
				commitErr = err
				return
			}
		}
	})
	adm, _ := newAdmin(t, lead)
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign(group.Topic, p, keep)
	res, err := adm.AlterPartitionAssignments(testCtx(t, 15*time.Second), req)
	if err == nil {
		err = res[group.Topic][p].Err
	}
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("reassign %s-%d to %v: %v", group.Topic, p, keep, err)
	}
	checkFor(t, "the leader epoch bumped with the leader kept", func() bool {
		st, _ := lead.Replica(group.Topic, p)
		return st.Leader && st.LeaderEpoch > before.LeaderEpoch
	})
	close(stop)
	wg.Wait()
	if commitErr != nil {
		t.Fatalf("a commit during the reassignment failed: %v", commitErr)
	}
	// After the bump is applied, a commit needs the coordinator loaded:
	// kept (right), or reloaded, which the count below refuses.
	if err := commit(); err != nil {
		t.Fatalf("commit after the bump: %v", err)
	}
	if n, u := loads[coord].count(loadEv), loads[coord].count(fmt.Sprintf("unload group %d", p)); n != 1 || u != 0 {
		t.Fatalf("node %d loaded %s-%d %d times and unloaded it %d times, want once and never", coord, group.Topic, p, n, u)
	}
	if got := replicasOf(t, lead, group.Topic, p); !slices.Equal(got, keep) {
		t.Fatalf("%s-%d replicas %v after the reassignment, want %v", group.Topic, p, got, keep)
	}
	offs, err := adm.FetchOffsets(testCtx(t, 10*time.Second), groupID)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(topic, 0); !ok || o.At != next {
		t.Fatalf("committed offset %+v, want %d", o, next)
	}
	t.Logf("%d commits across the epoch bump %d -> reassignment to %v", next, before.LeaderEpoch, keep)
}

// TestClusterTxnCoordinatorKeptAcrossEpochBump: a transaction is open (its
// partition added, a record produced) when its __transaction_state
// partition is reassigned to drop a follower, bumping the leader epoch
// while the coordinator's node keeps leading. The coordinator stays loaded
// (one load, no unload) and the commit completes; read_committed sees the
// record.
func TestClusterTxnCoordinatorKeptAcrossEpochBump(t *testing.T) {
	c, loads := startClusterCounting(t, coordFailoverProps)
	const topic, id = "bumped-txn", "bump-txn"
	createReplicated(t, c, topic, 1, map[string]*string{"min.insync.replicas": strp("2")})
	coord := coordinatorOf(t, c.nodes[0], id, 1)
	p := metadata.PartitionFor(id, 3)
	var lead *node.Node
	for _, n := range c.nodes {
		if n.NodeID() == coord {
			lead = n
		}
	}
	checkFor(t, txn.Topic+" fully in sync", func() bool { return len(isrOf(t, lead, txn.Topic, p)) == 3 })
	loadEv := fmt.Sprintf("load txn %d", p)
	if n := loads[coord].count(loadEv); n != 1 {
		t.Fatalf("node %d loaded %s-%d %d times before the reassignment", coord, txn.Topic, p, n)
	}
	prod := clusterClient(t, c, kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic))
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(testCtx(t, 30*time.Second), &kgo.Record{Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	before, _ := lead.Replica(txn.Topic, p)
	keep := []int32{coord}
	for _, r := range replicasOf(t, lead, txn.Topic, p) {
		if r != coord && len(keep) < 2 {
			keep = append(keep, r)
		}
	}
	adm, _ := newAdmin(t, lead)
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign(txn.Topic, p, keep)
	res, err := adm.AlterPartitionAssignments(testCtx(t, 15*time.Second), req)
	if err == nil {
		err = res[txn.Topic][p].Err
	}
	if err != nil {
		t.Fatalf("reassign %s-%d to %v: %v", txn.Topic, p, keep, err)
	}
	checkFor(t, "the leader epoch bumped with the leader kept", func() bool {
		st, _ := lead.Replica(txn.Topic, p)
		return st.Leader && st.LeaderEpoch > before.LeaderEpoch
	})
	if err := prod.EndTransaction(testCtx(t, 30*time.Second), kgo.TryCommit); err != nil {
		t.Fatalf("commit after the bump: %v", err)
	}
	if n, u := loads[coord].count(loadEv), loads[coord].count(fmt.Sprintf("unload txn %d", p)); n != 1 || u != 0 {
		t.Fatalf("node %d loaded %s-%d %d times and unloaded it %d times, want once and never", coord, txn.Topic, p, n, u)
	}
	cons := clusterClient(t, c, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ctx := testCtx(t, 20*time.Second)
	var got []string
	for len(got) == 0 && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("read_committed read %q, want [kept]", got)
	}
}
