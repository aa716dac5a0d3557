package group

import (
	"context"
	"errors"
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
	res, err := c1.Commit(testCtx(t), "g", "", "", -1, map[TopicPartition]Offset{tp: {Offset: 42, LeaderEpoch: -1}})
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
		return c.Commit(testCtx(t), "g", "", "", -1, map[TopicPartition]Offset{tp: {Offset: 7, LeaderEpoch: -1}})
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
	mem.Depose()
	if err := <-done; !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("commit when leadership moved before it committed: %v, want ErrNotCoordinator", err)
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
