package statelog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/testkit"
)

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestStateLogMemoryCommitAndDepose(t *testing.T) {
	m := NewMemory(1)
	m.Hold(true)
	next, err := m.Append(Batch{ProducerID: -1, Records: []KeyValue{{Key: []byte("k"), Value: []byte("v")}}})
	if err != nil || next != 1 {
		t.Fatalf("append: %d %v", next, err)
	}
	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := m.WaitCommitted(short, next); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("held append committed: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- m.WaitCommitted(ctx(t), next) }()
	m.Hold(false)
	if err := <-done; err != nil {
		t.Fatalf("wait after release: %v", err)
	}

	// Leadership moves: the old Log is fenced, a waiter is woken.
	m.Hold(true)
	next, _ = m.Append(Batch{ProducerID: -1, Records: []KeyValue{{Key: []byte("k2")}}})
	go func() { done <- m.WaitCommitted(ctx(t), next) }()
	m.Depose()
	if err := <-done; !errors.Is(err, ErrNotLeader) {
		t.Fatalf("waiter after depose: %v, want ErrNotLeader", err)
	}
	if _, err := m.Append(Batch{ProducerID: -1}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("append after depose: %v", err)
	}
	n := m.Reopen(2)
	if _, err := m.Append(Batch{ProducerID: -1}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("old epoch append after reopen: %v", err)
	}
	var keys []string
	if _, err := n.Scan(func(r Record) error { keys = append(keys, string(r.Key)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != "k" || keys[1] != "k2" {
		t.Fatalf("reopened log holds %q", keys)
	}
}

// fakeLeadership is the leadership an Owner sees: partition -> Log.
type fakeLeadership struct {
	mu   sync.Mutex
	logs map[int32]Log
}

func (f *fakeLeadership) set(p int32, l Log) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l == nil {
		delete(f.logs, p)
		return
	}
	f.logs[p] = l
}

func (f *fakeLeadership) get(p int32) Log {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logs[p]
}

// TestStateLogOwnerFollowsLeadership: a partition led here is loaded
// (requests meanwhile see ErrLoading), one no longer led is unloaded
// (ErrNotLeader), a new leader epoch reloads.
func TestStateLogOwnerFollowsLeadership(t *testing.T) {
	lead := &fakeLeadership{logs: map[int32]Log{}}
	release := make(chan struct{})
	var mu sync.Mutex
	var events []string
	o := NewOwner(OwnerConfig{Name: "test", Partitions: 2, Log: lead.get, Recheck: time.Hour,
		Load: func(ctx context.Context, p int32, l Log) error {
			if l.Epoch() == 2 {
				<-release
			}
			mu.Lock()
			events = append(events, "load")
			mu.Unlock()
			return nil
		},
		Unload: func(p int32) {
			mu.Lock()
			events = append(events, "unload")
			mu.Unlock()
		}})
	m := NewMemory(1)
	lead.set(0, m)
	o.Start()
	t.Cleanup(o.Close)
	if l, err := o.Log(0); err != nil || l != m {
		t.Fatalf("partition 0 after Start: %v %v", l, err)
	}
	if _, err := o.Log(1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("partition 1: %v, want ErrNotLeader", err)
	}

	// A new epoch: unloaded, then loading (held), then loaded.
	m2 := m.Reopen(2)
	lead.set(0, m2)
	o.Update()
	testkit.Eventually(t, 5*time.Second, "the reload to start", func() error {
		if _, err := o.Log(0); !errors.Is(err, ErrLoading) {
			return errors.New("not loading")
		}
		return nil
	})
	close(release)
	if l, err := o.WaitLoaded(ctx(t), 0); err != nil || l != m2 {
		t.Fatalf("after reload: %v %v", l, err)
	}

	lead.set(0, nil)
	o.Update()
	testkit.Eventually(t, 5*time.Second, "the unload", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(events) < 4 {
			return fmt.Errorf("events %v", events)
		}
		return nil
	})
	if _, err := o.Log(0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("after the unload: %v, want ErrNotLeader", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "[load unload load unload]"; fmt.Sprint(events) != want {
		t.Fatalf("events %v, want %v", events, want)
	}
}

// TestStateLogOwnerKeepsLoadedAcrossEpochBump: a leader epoch bumped while
// this node keeps leading (a reassignment dropping a follower) neither
// unloads the partition nor fails a write in flight; a break in leadership
// (deposed, elected again) reloads it and fences the old Log.
func TestStateLogOwnerKeepsLoadedAcrossEpochBump(t *testing.T) {
	lead := &fakeLeadership{logs: map[int32]Log{}}
	var mu sync.Mutex
	var events []string
	record := func(s string) {
		mu.Lock()
		events = append(events, s)
		mu.Unlock()
	}
	o := NewOwner(OwnerConfig{Name: "test", Partitions: 2, Log: lead.get, Recheck: time.Hour,
		Load: func(_ context.Context, p int32, l Log) error {
			record(fmt.Sprintf("load %d@%d", p, l.Epoch()))
			return nil
		},
		Unload: func(p int32) { record(fmt.Sprintf("unload %d", p)) }})
	m := NewMemory(3)
	lead.set(0, m)
	o.Start()
	t.Cleanup(o.Close)

	l, err := o.Log(0)
	if err != nil || l != m {
		t.Fatalf("partition 0 after Start: %v %v", l, err)
	}
	m.Hold(true)
	next, err := l.Append(Batch{ProducerID: -1, Records: []KeyValue{{Key: []byte("g"), Value: []byte("offsets")}}})
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- l.WaitCommitted(ctx(t), next) }()

	lead.set(0, m.Bump())
	// Partition 1 gains a leader in the same change: once it is loaded,
	// the owner has reconciled partition 0 after the bump too (one pass
	// goes through the partitions in order).
	lead.set(1, NewMemory(1))
	o.Update()
	if _, err := o.WaitLoaded(ctx(t), 1); err != nil {
		t.Fatalf("partition 1: %v", err)
	}
	if got, err := o.Log(0); err != nil || got != m {
		t.Fatalf("partition 0 after the bump: %v %v, want the Log loaded before it", got, err)
	}
	m.Hold(false)
	if err := <-waited; err != nil {
		t.Fatalf("write in flight across the bump: %v", err)
	}
	if _, err := l.Append(Batch{ProducerID: -1, Records: []KeyValue{{Key: []byte("g2")}}}); err != nil {
		t.Fatalf("append after the bump: %v", err)
	}

	// Deposed and elected again: the old Log is fenced, the owner reloads.
	m.Depose()
	m2 := m.Reopen(5)
	lead.set(0, m2)
	o.Update()
	testkit.Eventually(t, 5*time.Second, "the reload at epoch 5", func() error {
		if got, err := o.Log(0); err != nil || got != m2 {
			return fmt.Errorf("partition 0: %v %v", got, err)
		}
		return nil
	})
	if _, err := l.Append(Batch{ProducerID: -1}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("append on the deposed leadership's Log: %v, want ErrNotLeader", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "[load 0@3 load 1@1 unload 0 load 0@5]"; fmt.Sprint(events) != want {
		t.Fatalf("events %v, want %v", events, want)
	}
}

// TestStateLogOwnerReloadsAnotherPartitionAtTheSameEpoch: a partition made
// again (deleted and created: its epochs start over) is another
// leadership, even at the epoch the loaded one had.
func TestStateLogOwnerReloadsAnotherPartitionAtTheSameEpoch(t *testing.T) {
	lead := &fakeLeadership{logs: map[int32]Log{}}
	o := NewOwner(OwnerConfig{Name: "test", Partitions: 1, Log: lead.get, Recheck: time.Hour,
		Load: func(context.Context, int32, Log) error { return nil }, Unload: func(int32) {}})
	m := NewMemory(0)
	lead.set(0, m)
	o.Start()
	t.Cleanup(o.Close)
	again := NewMemory(0)
	lead.set(0, again)
	o.Update()
	testkit.Eventually(t, 5*time.Second, "the new partition loaded", func() error {
		if l, err := o.Log(0); err != nil || l != again {
			return fmt.Errorf("partition 0: %v %v", l, err)
		}
		return nil
	})
}
