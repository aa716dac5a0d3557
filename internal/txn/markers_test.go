package txn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/testkit"
)

// fakeMarkers is a MarkerWriter whose answer per partition the test sets.
type fakeMarkers struct {
	mu     sync.Mutex
	fail   map[TopicPartition]error // nil: written
	sent   map[TopicPartition]int
	marker Marker // the last one
}

func (f *fakeMarkers) write(_ context.Context, m Marker) map[TopicPartition]error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.marker = m
	out := map[TopicPartition]error{}
	for _, tp := range m.Partitions {
		f.sent[tp]++
		out[tp] = f.fail[tp]
	}
	return out
}

func (f *fakeMarkers) set(tp TopicPartition, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[tp] = err
}

func (f *fakeMarkers) count(tp TopicPartition) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent[tp]
}

// TestTxnMarkersRetriedUntilWritten follows Kafka's
// TransactionMarkerRequestCompletionHandler: a partition whose marker
// failed with a retriable error is sent again (alone) until it is written,
// and only then is the transaction complete; a deleted partition is
// skipped; a fenced marker stops the end without completing it. An end
// whose request deadline passes stays prepared (CONCURRENT_TRANSACTIONS for
// the producer's retry) and completes in the background once the markers
// go through.
func TestTxnMarkersRetriedUntilWritten(t *testing.T) {
	m := replica.NewManager(replica.ManagerConfig{DataDir: t.TempDir(), NodeID: 1})
	t.Cleanup(func() { m.Close() })
	if err := m.Reconcile(map[replica.TopicPartition]replica.PartitionState{
		{Topic: Topic, Partition: 0}: {TopicID: [16]byte{1}, Leader: 1, LeaderEpoch: 3, Replicas: []int32{1}, ISR: []int32{1},
			Config: config.Layers{}.ResolveTopic()},
	}); err != nil {
		t.Fatal(err)
	}
	a, b, gone := TopicPartition{"a", 0}, TopicPartition{"b", 0}, TopicPartition{"gone", 0}
	f := &fakeMarkers{fail: map[TopicPartition]error{}, sent: map[TopicPartition]int{}}
	c := New(Config{NumPartitions: 1,
		ProducerIDs:  NewProducerIDs(func(context.Context) (int64, int64, error) { return 1000, 10, nil }),
		Partition:    func(topic string, p int32) *replica.Partition { return m.Get(topic, p) },
		WriteMarkers: f.write,
	})
	t.Cleanup(c.Close)
	c.markers.retryTimeout = 3 * markerRetryBackoff
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Start()
	if _, err := c.owner.WaitLoaded(ctx, 0); err != nil {
		t.Fatal(err)
	}
	pid, epoch, err := c.InitProducerID(ctx, "id", time.Minute, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	open := func() {
		t.Helper()
		if err := c.AddPartitions(ctx, "id", pid, epoch, []TopicPartition{a, b, gone}, false); err != nil {
			t.Fatal(err)
		}
	}
	state := func() State {
		t.Helper()
		md, err := c.Describe("id")
		if err != nil {
			t.Fatal(err)
		}
		return md.State
	}

	// Retriable failures: a is sent until it is written, b once.
	open()
	f.set(a, errors.New("not the leader"))
	f.set(gone, ErrPartitionGone)
	ended := make(chan error, 1)
	go func() { _, _, err := c.EndTxn(ctx, "id", pid, epoch, true, false); ended <- err }()
	for f.count(a) < 3 {
		select {
		case err := <-ended:
			t.Fatalf("EndTxn returned (%v) before a's marker was written", err)
		case <-time.After(markerRetryBackoff):
		}
	}
	f.set(a, nil)
	if err := <-ended; err != nil {
		t.Fatalf("EndTxn: %v", err)
	}
	if s := state(); s != CompleteCommit {
		t.Fatalf("state %s after the markers, want CompleteCommit", s)
	}
	if n := f.count(b); n != 1 {
		t.Fatalf("b's marker sent %d times, want once", n)
	}
	if mk := f.marker; mk.ProducerID != pid || mk.ProducerEpoch != epoch || !mk.Commit || mk.CoordinatorEpoch != 3 {
		t.Fatalf("marker %+v, want producer %d/%d, commit, coordinator epoch 3", mk, pid, epoch)
	}

	// A deadline passes first: the transaction stays prepared until the
	// background completion gets the markers through.
	open()
	f.set(a, errors.New("no leader"))
	short, cancelShort := context.WithTimeout(ctx, 3*markerRetryBackoff)
	_, _, err = c.EndTxn(short, "id", pid, epoch, false, false)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("EndTxn past its deadline: %v, want DeadlineExceeded", err)
	}
	if s := state(); s != PrepareAbort {
		t.Fatalf("state %s after the deadline, want PrepareAbort", s)
	}
	if _, _, err := c.EndTxn(ctx, "id", pid, epoch, false, false); !errors.Is(err, ErrConcurrentTransactions) {
		t.Fatalf("retried EndTxn while prepared: %v, want ErrConcurrentTransactions", err)
	}
	c.completeStuck()
	if s := state(); s != PrepareAbort {
		t.Fatalf("state %s while a's marker still fails, want PrepareAbort", s)
	}
	f.set(a, nil)
	// The coordinator's own sweep (every markerRetryInterval) may hold the
	// transaction's actor at this moment, finishing the same transaction;
	// completeStuck skips a busy actor until its next round. So sweep until
	// one of them completed it.
	testkit.Eventually(t, 10*time.Second, "the background completion", func() error {
		c.completeStuck()
		if s := state(); s != CompleteAbort {
			return fmt.Errorf("state %s, want CompleteAbort", s)
		}
		return nil
	})
	if _, _, err := c.EndTxn(ctx, "id", pid, epoch, false, false); err != nil {
		t.Fatalf("retried EndTxn after the completion: %v", err)
	}

	// Fenced: a newer coordinator or producer owns the partition; this
	// coordinator stops at once and does not complete the transaction.
	open()
	f.set(b, ErrMarkerFenced)
	if _, _, err := c.EndTxn(ctx, "id", pid, epoch, true, false); !errors.Is(err, ErrMarkerFenced) {
		t.Fatalf("EndTxn with a fenced marker: %v, want ErrMarkerFenced", err)
	}
	if s := state(); s != PrepareCommit {
		t.Fatalf("state %s after a fenced marker, want PrepareCommit", s)
	}
	c.markers.mu.Lock()
	stuck := len(c.markers.stuck)
	c.markers.mu.Unlock()
	if stuck != 0 {
		t.Fatalf("%d transactions left for the background completion after a fence, want 0", stuck)
	}
}
