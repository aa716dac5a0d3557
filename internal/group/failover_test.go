package group

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/statelog"
	"github.com/gregor-dev/gregor/internal/testkit"
)

// leadership is the leadership a coordinator sees for partition 0 of a
// one-partition __consumer_offsets: a Log, or nil when another node leads.
type leadership struct {
	mu sync.Mutex
	l  statelog.Log
}

func (ld *leadership) set(l statelog.Log) {
	ld.mu.Lock()
	ld.l = l
	ld.mu.Unlock()
}

func (ld *leadership) log(p int32) statelog.Log {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	if p != 0 || ld.l == nil {
		return nil
	}
	return ld.l
}

func newMemCoordinator(t *testing.T, ld *leadership) *Coordinator {
	t.Helper()
	lim := DefaultLimits()
	lim.InitialRebalanceDelay = time.Hour // a first join parks until the unload
	c := New(Config{NumPartitions: 1, Limits: lim, Log: ld.log, PartitionCount: func(string) int32 { return 8 }})
	t.Cleanup(c.Close)
	c.Start()
	return c
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestGroupCoordinatorMovesWithLeadership: the coordinator of a partition
// loads it when it becomes leader and drops it when leadership moves: its
// parked join and its later requests get NOT_COORDINATOR, and the next
// leader, loading the same log, has every committed offset.
func TestGroupCoordinatorMovesWithLeadership(t *testing.T) {
	mem := statelog.NewMemory(1)
	ld1 := &leadership{l: mem}
	c1 := newMemCoordinator(t, ld1)
	tp := TopicPartition{Topic: "t", Partition: 3}
	res, err := c1.Commit(testCtx(t), "g", "", "", -1, 9, map[TopicPartition]Offset{tp: {Offset: 42, LeaderEpoch: -1}})
	if err != nil || res[tp] != nil {
		t.Fatalf("commit: %v %v", err, res)
	}

	joined := make(chan JoinResult, 1)
	go func() {
		joined <- c1.Join(testCtx(t), "g", JoinRequest{ProtocolType: "consumer",
			Protocols: []Protocol{{Name: "range"}}, SessionTimeout: 10 * time.Second, RebalanceTimeout: time.Minute})
	}()
	// The join parks for the initial rebalance delay; wait until the
	// group has it, then move leadership away.
	waitFor(t, func() bool {
		d, err := c1.Describe(testCtx(t), "g")
		return err == nil && d.State == PreparingRebalance.String()
	})
	mem.Depose()
	ld1.set(nil)
	c1.LeadershipChanged()
	if r := <-joined; !errors.Is(r.Err, ErrNotCoordinator) {
		t.Fatalf("parked join after the move: %v, want ErrNotCoordinator", r.Err)
	}
	waitFor(t, func() bool {
		_, err := c1.Fetch(testCtx(t), "g", nil)
		return errors.Is(err, ErrNotCoordinator)
	})

	// The new leader loads the log: the offset is there.
	c2 := newMemCoordinator(t, &leadership{l: mem.Reopen(2)})
	offs, err := c2.Fetch(testCtx(t), "g", []TopicPartition{tp})
	if err != nil || offs[tp].Offset != 42 {
		t.Fatalf("offsets on the new coordinator: %v %v", offs, err)
	}
}

// TestGroupCommitAnsweredOnlyWhenCommitted: a commit is answered once the
// state log committed it; when leadership moves first, the answer is
// NOT_COORDINATOR, never a success the next leader may not have. Too few
// in-sync replicas is COORDINATOR_NOT_AVAILABLE (Kafka's mapping).
func TestGroupCommitAnsweredOnlyWhenCommitted(t *testing.T) {
	mem := statelog.NewMemory(1)
	c := newMemCoordinator(t, &leadership{l: mem})
	tp := TopicPartition{Topic: "t", Partition: 0}
	commit := func() (map[TopicPartition]error, error) {
		return c.Commit(testCtx(t), "g", "", "", -1, 9, map[TopicPartition]Offset{tp: {Offset: 7, LeaderEpoch: -1}})
	}

	mem.Fail(statelog.ErrNotEnoughReplicas)
	res, err := commit()
	if err != nil || !errors.Is(res[tp], ErrCoordinatorNotAvailable) {
		t.Fatalf("commit below min ISR: %v %v, want ErrCoordinatorNotAvailable", res, err)
	}
	mem.Fail(nil)

	mem.Hold(true)
	done := make(chan error, 1)
	go func() {
		_, err := commit()
		done <- err
	}()
	waitFor(t, func() bool { return mem.Len() == 1 }) // appended, not committed
	// A reader does not see the offset before it is committed either.
	fetched := make(chan error, 1)
	go func() {
		offs, err := c.Fetch(testCtx(t), "g", []TopicPartition{tp})
		if err == nil {
			err = fmt.Errorf("fetch answered %v before the commit was committed", offs)
		}
		fetched <- err
	}()
	mem.Depose()
	if err := <-done; !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("commit when leadership moved before it committed: %v, want ErrNotCoordinator", err)
	}
	if err := <-fetched; !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("fetch of an uncommitted offset when leadership moved: %v, want ErrNotCoordinator", err)
	}
}

// waitFor polls cond (the group actors run on their own goroutines).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "the condition", func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}

// slowLog is a Log whose Scan (a load) waits for release.
type slowLog struct {
	*statelog.Memory
	release chan struct{}
}

func (s slowLog) Scan(fn func(statelog.Record) error) (int64, error) {
	<-s.release
	return s.Memory.Scan(fn)
}

// TestGroupCoordinatorLoadInProgress: while the partition this node now
// leads is loading, requests get COORDINATOR_LOAD_IN_PROGRESS; once it is
// loaded they are served from what it replayed.
func TestGroupCoordinatorLoadInProgress(t *testing.T) {
	mem := statelog.NewMemory(1)
	c0 := newMemCoordinator(t, &leadership{l: mem})
	tp := TopicPartition{Topic: "t", Partition: 1}
	if _, err := c0.Commit(testCtx(t), "g", "", "", -1, 9, map[TopicPartition]Offset{tp: {Offset: 9, LeaderEpoch: -1}}); err != nil {
		t.Fatal(err)
	}
	mem.Depose()

	ld := &leadership{}
	c := newMemCoordinator(t, ld) // leads nothing yet
	if _, err := c.Fetch(testCtx(t), "g", nil); !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("before leading: %v, want ErrNotCoordinator", err)
	}
	slow := slowLog{Memory: mem.Reopen(2), release: make(chan struct{})}
	ld.set(slow)
	c.LeadershipChanged()
	if _, err := c.Fetch(testCtx(t), "g", nil); !errors.Is(err, ErrCoordinatorLoading) {
		t.Fatalf("while loading: %v, want ErrCoordinatorLoading", err)
	}
	close(slow.release)
	waitFor(t, func() bool {
		offs, err := c.Fetch(testCtx(t), "g", []TopicPartition{tp})
		return err == nil && offs[tp].Offset == 9
	})
}

// TestGroupSyncFailsWhenAssignmentNotCommitted: the leader's SyncGroup
// whose assignment the log did not commit (too few in-sync replicas) gets
// COORDINATOR_NOT_AVAILABLE, and the group rebalances again (Kafka's
// storeGroup callback), so no member holds an assignment a new coordinator
// would not know.
func TestGroupSyncFailsWhenAssignmentNotCommitted(t *testing.T) {
	mem := statelog.NewMemory(1)
	lim := DefaultLimits()
	lim.InitialRebalanceDelay = 0
	c := New(Config{NumPartitions: 1, Limits: lim, Log: (&leadership{l: mem}).log})
	t.Cleanup(c.Close)
	c.Start()
	j := c.Join(testCtx(t), "g", JoinRequest{ProtocolType: "consumer", Protocols: []Protocol{{Name: "range"}},
		SessionTimeout: 10 * time.Second, RebalanceTimeout: time.Minute})
	if j.Err != nil || j.LeaderID != j.MemberID {
		t.Fatalf("join: %+v", j)
	}
	mem.Fail(statelog.ErrNotEnoughReplicas)
	s := c.Sync(testCtx(t), "g", SyncRequest{MemberID: j.MemberID, Generation: j.Generation,
		Assignments: map[string][]byte{j.MemberID: []byte("a")}})
	if !errors.Is(s.Err, ErrCoordinatorNotAvailable) {
		t.Fatalf("sync whose assignment was not committed: %+v, want ErrCoordinatorNotAvailable", s)
	}
	d, err := c.Describe(testCtx(t), "g")
	if err != nil || d.State != PreparingRebalance.String() {
		t.Fatalf("group after the failed sync: %+v %v, want PreparingRebalance", d, err)
	}
}
