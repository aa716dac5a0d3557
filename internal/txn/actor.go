package txn

import (
	"context"
	"errors"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/gregor-dev/gregor/internal/statelog"
)

// errEntryGone: the id's actor stopped (its partition was unloaded, or the
// id expired) before it ran the request; the request looks the id up again.
var errEntryGone = errors.New("txn: transactional id actor stopped")

// entry is one transactional id's actor: a goroutine that owns m and runs
// the id's requests one at a time, each to its end (the durable writes and
// the markers of a transaction's end included), as the group coordinator's
// actor does for a group. An unload or the id's removal stops it.
type entry struct {
	partition int32
	// log is the partition's Log for the leader epoch the entry was
	// loaded (or made) under; its writes fail once leadership moves.
	log statelog.Log

	inbox    chan func()
	stopc    chan struct{}
	donec    chan struct{}
	stopOnce sync.Once

	// m is owned by the actor goroutine (and by the loader before it
	// starts).
	m Metadata
}

func newEntry(p int32, l statelog.Log, m Metadata) *entry {
	return &entry{partition: p, log: l, m: m, inbox: make(chan func()), stopc: make(chan struct{}),
		donec: make(chan struct{})}
}

// run is the actor: first (a transaction a load found prepared: its
// completion) runs before any request.
func (e *entry) run(first func()) {
	defer close(e.donec)
	pprof.Do(context.Background(), pprof.Labels("txn_id", e.m.ID), func(context.Context) {
		if first != nil {
			first()
		}
		for {
			select {
			case fn := <-e.inbox:
				fn()
			case <-e.stopc:
				return
			}
		}
	})
}

// stop makes the actor stop after what it is running; it does not wait
// (an unload must not wait for a transaction's markers). Idempotent.
func (e *entry) stop() { e.stopOnce.Do(func() { close(e.stopc) }) }

func (e *entry) stopped() bool {
	select {
	case <-e.stopc:
		return true
	default:
		return false
	}
}

// do runs fn on the actor and waits for it to end; errEntryGone when the
// actor stopped first. ctx bounds the wait for the actor to take fn, not fn
// (which gets its own context from the request).
func (e *entry) do(ctx context.Context, fn func()) error {
	wrapped, ran := e.guarded(fn)
	select {
	case e.inbox <- wrapped:
	case <-e.stopc:
		return errEntryGone
	case <-ctx.Done():
		return ctx.Err()
	}
	if !<-ran {
		return errEntryGone
	}
	return nil
}

// guarded wraps fn to run only while the actor has not stopped; ran says
// whether it did.
func (e *entry) guarded(fn func()) (wrapped func(), ran <-chan bool) {
	ch := make(chan bool, 1)
	return func() {
		if e.stopped() {
			ch <- false
			return
		}
		fn()
		ch <- true
	}, ch
}

// tryDo runs fn on the actor only when it is idle (a sweep skips a busy id
// until its next round), and waits for it; false when it did not run.
func (e *entry) tryDo(fn func()) bool {
	wrapped, ran := e.guarded(fn)
	select {
	case e.inbox <- wrapped:
		return <-ran
	default:
		return false
	}
}

// loadWait bounds how long a request waits for its partition's load
// before it is answered COORDINATOR_LOAD_IN_PROGRESS.
const loadWait = 2 * time.Second

// with runs fn on id's actor (making the id when create) and returns fn's
// error; an id whose actor stopped in between is looked up again.
//
// A request that may make the id (InitProducerId, the first request of a
// transactional producer) and finds its partition loading waits for the
// load, up to loadWait, where Kafka answers COORDINATOR_LOAD_IN_PROGRESS at
// once; the others (whose id exists, so was loaded) answer at once. The
// partition of a new __transaction_state loads in milliseconds, but a
// client that found this node through another broker's FindCoordinator can
// arrive before it starts: on a new cluster, one in three of kafkajs's
// first InitProducerId requests was refused so, and kafkajs's own
// TxnOffsetCommit test does not retry it.
func (c *Coordinator) with(ctx context.Context, id string, create bool, fn func(e *entry) error) error {
	for range 3 {
		e, err := c.lookup(id, create)
		if create && errors.Is(err, ErrCoordinatorLoading) {
			wctx, cancel := context.WithTimeout(ctx, loadWait)
			_, _ = c.owner.WaitLoaded(wctx, c.PartitionFor(id)) // the lookup below tells what it found
			cancel()
			e, err = c.lookup(id, create)
		}
		if err != nil {
			return err
		}
		var res error
		err = e.do(ctx, func() { res = fn(e) })
		if !errors.Is(err, errEntryGone) {
			if err != nil {
				return err
			}
			return res
		}
	}
	return ErrCoordinatorNotAvailable
}
