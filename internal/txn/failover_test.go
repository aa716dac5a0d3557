package txn

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/statelog"
	"github.com/gregor-dev/gregor/internal/testkit"
)

// memLeadership is the leadership a coordinator sees for partition 0 of a
// one-partition __transaction_state.
type memLeadership struct {
	mu sync.Mutex
	l  statelog.Log
}

func (ld *memLeadership) log(p int32) statelog.Log {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	if p != 0 || ld.l == nil {
		return nil
	}
	return ld.l
}

func (ld *memLeadership) set(l statelog.Log) {
	ld.mu.Lock()
	ld.l = l
	ld.mu.Unlock()
}

// newMemCoordinator is a coordinator over ld; data partitions are not
// hosted (markers are skipped: not this test's subject).
func newMemCoordinator(t *testing.T, ld *memLeadership) *Coordinator {
	t.Helper()
	c := New(Config{NumPartitions: 1, Log: ld.log,
		ProducerIDs: NewProducerIDs(func(context.Context) (int64, int64, error) { return 1000, 10, nil }),
		Partition:   func(string, int32) *replica.Partition { return nil }})
	t.Cleanup(c.Close)
	c.Start()
	return c
}

func tctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestTxnCoordinatorMovesWithLeadership: an open transaction survives a
// coordinator move (the next leader loads it Ongoing and commits it); an
// end whose PrepareCommit was not committed when leadership moved answers
// NOT_COORDINATOR, and the next leader, finding it prepared, completes it
// before answering anything on the id.
func TestTxnCoordinatorMovesWithLeadership(t *testing.T) {
	mem := statelog.NewMemory(1)
	ld1 := &memLeadership{l: mem}
	c1 := newMemCoordinator(t, ld1)
	const id = "tx"
	tp := TopicPartition{Topic: "t", Partition: 0}
	pid, epoch, err := c1.InitProducerID(tctx(t), id, time.Minute, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.AddPartitions(tctx(t), id, pid, epoch, []TopicPartition{tp}, false); err != nil {
		t.Fatal(err)
	}

	mem.Depose()
	ld1.set(nil)
	c1.LeadershipChanged()
	testkit.Eventually(t, 10*time.Second, "the old coordinator to unload", func() error {
		if _, err := c1.Describe(id); !errors.Is(err, ErrNotCoordinator) {
			return errors.New("still loaded")
		}
		return nil
	})

	m2 := mem.Reopen(2)
	c2 := newMemCoordinator(t, &memLeadership{l: m2})
	md, err := c2.Describe(id)
	if _, ok := md.Partitions[tp]; err != nil || md.State != Ongoing || !ok {
		t.Fatalf("on the next coordinator: %+v %v, want Ongoing with %v", md, err, tp)
	}
	if _, _, err := c2.EndTxn(tctx(t), id, pid, epoch, true, false); err != nil {
		t.Fatalf("commit on the next coordinator: %v", err)
	}
	if md, _ := c2.Describe(id); md.State != CompleteCommit {
		t.Fatalf("state %v after the commit, want CompleteCommit", md.State)
	}

	// A second transaction whose end is cut by a move after PrepareCommit.
	if err := c2.AddPartitions(tctx(t), id, pid, epoch, []TopicPartition{tp}, false); err != nil {
		t.Fatal(err)
	}
	mem.Hold(true)
	before := mem.Len()
	ended := make(chan error, 1)
	go func() {
		_, _, err := c2.EndTxn(tctx(t), id, pid, epoch, true, false)
		ended <- err
	}()
	testkit.Eventually(t, 10*time.Second, "PrepareCommit appended", func() error {
		if mem.Len() == before {
			return errors.New("not yet")
		}
		return nil
	})
	m2.Depose()
	if err := <-ended; !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("end cut by the move: %v, want ErrNotCoordinator", err)
	}
	c3 := newMemCoordinator(t, &memLeadership{l: mem.Reopen(3)})
	mem.Hold(false)
	if md, err := c3.Describe(id); err != nil || md.State != CompleteCommit {
		t.Fatalf("prepared transaction after the load: %+v %v, want CompleteCommit", md, err)
	}
}
