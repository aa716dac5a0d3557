package group

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/gregor-dev/gregor/internal/statelog"
)

// errGroupGone is returned by do when the group's actor has stopped (the
// group was deleted or expired, or the coordinator closed).
var errGroupGone = errors.New("group: group actor stopped")

// maxDrainBeforeTick bounds the queued events run before a timer tick.
const maxDrainBeforeTick = 64

// group is one group's actor: a goroutine that owns st and offsets and runs
// every event against them in turn.
type group struct {
	id        string
	partition int32
	// log is the partition's Log for the leader epoch the group was
	// loaded (or made) under; it fails once leadership moves.
	log statelog.Log
	c   *Coordinator

	inbox chan func(now time.Time)
	stopc chan struct{}
	donec chan struct{}

	// Owned by the actor goroutine (and by the loader before it starts).
	st      *groupState
	offsets map[TopicPartition]Offset
	// pending: transactional offsets by producer id, committed or dropped
	// by the transaction's marker (txn.go).
	pending map[int64]map[TopicPartition]Offset
	// written is the offset after the group's last write to its
	// partition (at a load, the log end): a read of its offsets is
	// answered once that is committed.
	written int64
	// cgWritten is the consumer group's records as last written (or
	// replayed), by key: a change writes only what differs from it.
	cgWritten map[string][]byte
}

func newGroup(c *Coordinator, id string, partition int32, l statelog.Log, now time.Time) *group {
	return &group{id: id, partition: partition, log: l, c: c, inbox: make(chan func(time.Time)),
		stopc: make(chan struct{}), donec: make(chan struct{}),
		st: newGroupState(id, c.cfg.Limits, now), offsets: map[TopicPartition]Offset{},
		pending: map[int64]map[TopicPartition]Offset{}}
}

func (g *group) run() {
	defer close(g.donec)
	pprof.Do(context.Background(), pprof.Labels("group", g.id), func(context.Context) {
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for {
			if d := g.st.deadline(); !d.IsZero() {
				timer.Reset(max(d.Sub(g.c.now()), 0))
			} else {
				timer.Stop()
			}
			state, gen := g.st.state, g.st.generation
			select {
			case fn := <-g.inbox:
				fn(g.c.now())
			case <-timer.C:
				// Events that queued while the actor was busy (a slow
				// persist) run first: a heartbeat that waited on us
				// must not lose to a session deadline it met. Bounded,
				// so a steady stream cannot starve the timer.
				for range maxDrainBeforeTick {
					select {
					case fn := <-g.inbox:
						fn(g.c.now())
						continue
					default:
					}
					break
				}
				before := g.memberIDs()
				g.exec(g.st.tick(g.c.now()))
				if _, err := g.persistConsumer(); err != nil {
					g.c.logger.Warn("persist consumer group failed", "group", g.id, "err", err)
				}
				if len(before) > len(g.st.members) && g.c.logger.Enabled(context.Background(), slog.LevelDebug) {
					var gone []string
					for _, id := range before {
						if g.st.members[id] == nil {
							gone = append(gone, id)
						}
					}
					g.c.logger.Debug("group members expired", "group", g.id, "expired", gone,
						"state", g.st.state.String())
				}
			case <-g.stopc:
				g.failParked()
				return
			}
			if (state != g.st.state || gen != g.st.generation) && g.c.logger.Enabled(context.Background(), slog.LevelDebug) {
				g.c.logger.Debug("group state changed", "group", g.id, "from", state.String(), "state", g.st.state.String(),
					"generation", g.st.generation, "members", len(g.st.members), "leader", g.st.leader)
			}
			if g.st.state == Dead {
				g.c.forget(g)
				g.failParked()
				return
			}
		}
	})
}

// persistConsumer appends the records that bring the log to the consumer
// group's state (changed values, tombstones for what is gone) and returns
// the offset after them, 0 when nothing changed. The caller that answers a
// client waits for that offset to be committed first.
func (g *group) persistConsumer() (int64, error) {
	var want map[string][]byte // nil values: keys that must not exist
	if g.st.cg != nil {
		want = g.st.cg.changedRecords(g.id)
	} else {
		want = make(map[string][]byte, len(g.cgWritten))
		for k := range g.cgWritten {
			want[k] = nil
		}
	}
	var kvs []statelog.KeyValue
	for k, v := range want {
		old, ok := g.cgWritten[k]
		if (v == nil && ok) || (v != nil && (!ok || !bytes.Equal(old, v))) {
			kvs = append(kvs, statelog.KeyValue{Key: []byte(k), Value: v})
		}
	}
	if len(kvs) == 0 {
		return 0, nil
	}
	slices.SortFunc(kvs, func(a, b statelog.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
	next, err := g.c.appendRecords(g, kvs...)
	if err != nil {
		return 0, err
	}
	if g.cgWritten == nil {
		g.cgWritten = map[string][]byte{}
	}
	for _, kv := range kvs {
		if kv.Value == nil {
			delete(g.cgWritten, string(kv.Key))
		} else {
			g.cgWritten[string(kv.Key)] = kv.Value
		}
	}
	return next, nil
}

// memberIDs lists the group's members, for the log of who expired.
func (g *group) memberIDs() []string {
	ids := make([]string, 0, len(g.st.members))
	for id := range g.st.members {
		ids = append(ids, id)
	}
	return ids
}

// stop stops the actor (an unload) and waits for it: parked joins and
// syncs get ErrNotCoordinator. An actor that already stopped (its group
// died) is left as it is.
func (g *group) stop() {
	select {
	case <-g.donec:
	default:
		close(g.stopc)
		<-g.donec
	}
}

// failParked answers every parked join and sync on shutdown.
func (g *group) failParked() {
	for _, m := range g.st.members {
		if m.join != nil {
			m.join <- JoinResult{Err: ErrNotCoordinator, MemberID: m.id, Generation: -1}
			m.join = nil
		}
		if m.sync != nil {
			m.sync <- SyncResult{Err: ErrNotCoordinator}
			m.sync = nil
		}
	}
}

// do runs fn on the actor and waits for it.
func (g *group) do(ctx context.Context, fn func(now time.Time)) error {
	done := make(chan struct{})
	select {
	case g.inbox <- func(now time.Time) { fn(now); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-g.donec:
		return errGroupGone
	}
	select {
	case <-done:
		return nil
	case <-g.donec:
		select {
		case <-done:
			return nil
		default:
			return errGroupGone
		}
	}
}

// exec carries out the state machine's actions in order: a persist comes
// before the replies that follow it, and a persist that failed (not
// committed) turns them into its error. As Kafka's storeGroup callback
// does for an assignment, the group then rebalances again: the members
// were told their assignment failed and rejoin, so a coordinator that
// loads the partition later never misses an assignment a member was given.
func (g *group) exec(acts []action) {
	var failed error
	assignFailed := false
	for _, a := range acts {
		switch a := a.(type) {
		case replyJoin:
			if failed != nil && a.res.Err == nil {
				a.res = JoinResult{Err: failed, MemberID: a.res.MemberID, Generation: -1}
			}
			select {
			case a.ch <- a.res:
			default: // already answered: a bug, but never block the actor
			}
		case replySync:
			if failed != nil && a.res.Err == nil {
				a.res, assignFailed = SyncResult{Err: failed}, true
			}
			select {
			case a.ch <- a.res:
			default:
			}
		case restartSessions:
			g.st.restart(a.members, g.c.now())
		case persistGroup:
			start := time.Now()
			if err := g.c.writeGroup(g); err != nil {
				g.c.logger.Warn("persist group failed", "group", g.id, "err", err)
				failed = err
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				g.c.logger.Warn("slow group persist", "group", g.id, "duration", d)
			}
		}
	}
	if assignFailed && g.st.state == Stable {
		for _, m := range g.st.members {
			m.assignment = nil
		}
		g.st.prepareRebalance(g.c.now())
		g.exec(g.st.take())
	}
}
