package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// Broker membership on the active controller, as in Kafka's KRaft
// controller: a broker registers (BrokerRegistration) and is fenced until its
// first heartbeat asks to be unfenced; the controller fences a registered
// broker whose heartbeats (BrokerHeartbeat) stop for SessionTimeout. When a
// node becomes the active controller it knows no heartbeat times, so every
// broker gets one full session from that moment (Kafka's
// BrokerHeartbeatManager does the same); the times live only in memory.

// DefaultSessionTimeout is Kafka's broker.session.timeout.ms.
const DefaultSessionTimeout = 9 * time.Second

// Registration is a broker's BrokerRegistration request, domain side.
type Registration struct {
	NodeID    int32
	ClusterID string
	Host      string
	Port      int32
	Rack      string
	// Listeners are its client listeners by name, when it has more than
	// one or its one is not PLAINTEXT (metadata.Broker.Listeners).
	Listeners []metadata.Endpoint
}

func (c *Controller) sessionTimeout() time.Duration {
	if c.cfg.SessionTimeout > 0 {
		return c.cfg.SessionTimeout
	}
	return DefaultSessionTimeout
}

// touch records a heartbeat from broker id, first forgetting the times of an
// earlier term: they were measured by another leader (or by this one before
// it lost leadership) and mean nothing now.
func (c *Controller) touch(id int32) {
	now := time.Now()
	term := c.raft.CurrentTerm()
	c.members.Lock()
	defer c.members.Unlock()
	c.resetIfNewTermLocked(term, now)
	if id >= 0 {
		c.members.seen[id] = now
	}
}

func (c *Controller) resetIfNewTermLocked(term uint64, now time.Time) {
	if c.members.term != term {
		c.members.term = term
		c.members.since = now
		clear(c.members.seen)
		// A catch-up target set in an earlier term may predate
		// fencings another controller made since.
		clear(c.members.catchUp)
	}
}

// Register registers (or re-registers) a broker, fenced, and returns its new
// broker epoch. A registration naming another cluster fails with
// ErrInconsistentClusterID.
func (c *Controller) Register(ctx context.Context, r Registration) (int64, error) {
	var epoch int64
	err := c.exec(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		if r.ClusterID != img.ClusterID {
			return nil, fmt.Errorf("%w: broker %d is of cluster %q, this is %q", ErrInconsistentClusterID, r.NodeID, r.ClusterID, img.ClusterID)
		}
		epoch = 1
		var recs []metadata.Record
		if old, ok := img.Brokers[r.NodeID]; ok {
			epoch = old.Epoch + 1
			// A broker registering again restarted, possibly without a
			// clean shutdown (Kafka's handleBrokerUncleanShutdown): it
			// leaves its leaderships and ISRs as on fencing, and catches
			// up as a follower before it rejoins.
			recs = leaveRecords(img, r.NodeID, c.uncleanFor(img))
			c.forgetCatchUp(r.NodeID)
		}
		return append(recs, metadata.RegisterBrokerRecord{
			NodeID: r.NodeID, Host: r.Host, Port: r.Port, Rack: r.Rack, Epoch: epoch, Fenced: true, Listeners: r.Listeners,
		}), nil
	})
	if err != nil {
		return 0, err
	}
	c.touch(r.NodeID)
	return epoch, nil
}

// Heartbeat records a heartbeat of broker id at epoch and unfences it (or,
// with wantFence, fences it). It returns whether the broker is fenced after
// the heartbeat, and whether it has caught up with the metadata log. An
// unregistered broker or a wrong epoch fails with ErrStaleBrokerEpoch: the
// broker must register again.
//
// metadataOffset is the last metadata offset the broker has applied to its
// partitions (-1: unknown). A fenced broker is unfenced only once it
// reaches its catch-up target, as Kafka's BrokerHeartbeatManager waits for
// a broker to reach its registration record: the target is this
// controller's applied offset when the broker first asks to be unfenced,
// which is past its fencing and the leader elections that came with it.
// Unfenced, a broker renews its lease (node/lease.go) and serves what it
// believes it leads, so until it has applied those elections it must stay
// fenced: a deposed leader that came back (a pause, a healed partition) with
// its metadata behind would answer a stale high watermark. The target is
// fixed once set, so a busy metadata log cannot keep a broker fenced.
func (c *Controller) Heartbeat(ctx context.Context, id int32, epoch int64, metadataOffset int64, wantFence bool) (fenced, caughtUp bool, err error) {
	// The session is renewed on receipt, as Kafka does, not once the
	// command lock is free: a burst of slow commands must not fence a
	// broker that is heartbeating.
	if b, ok := c.Image().Brokers[id]; ok && b.Epoch == epoch && c.IsActive() {
		c.touch(id)
	}
	err = c.exec(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		b, ok := img.Brokers[id]
		switch {
		case !ok:
			// As Kafka: a heartbeat without a registration is a stale epoch.
			return nil, fmt.Errorf("%w: broker %d is not registered", ErrStaleBrokerEpoch, id)
		case b.Epoch != epoch:
			return nil, fmt.Errorf("%w: broker %d sent epoch %d, registered with %d", ErrStaleBrokerEpoch, id, epoch, b.Epoch)
		}
		c.touch(id)
		fenced, caughtUp = wantFence, true
		switch {
		case b.Fenced && !wantFence:
			if target := c.catchUpTarget(id, epoch, img.LastOffset); metadataOffset < 0 || uint64(metadataOffset) < target {
				fenced, caughtUp = true, false
				return nil, nil
			}
			return unfenceRecords(img, b, c.uncleanFor(img)), nil
		case !b.Fenced:
			// Unfenced, even if the answer to the unfencing was lost
			// (an error after the commit): its target is spent.
			c.forgetCatchUp(id)
			if wantFence {
				// A controlled shutdown: the broker's partitions move
				// now, not a session later.
				return fenceRecords(img, b, c.uncleanFor(img)), nil
			}
		}
		return nil, nil
	})
	return fenced, caughtUp, err
}

// forgetCatchUp drops broker id's catch-up target: it was unfenced, or is
// being fenced or registered anew, and the next request to be unfenced
// sets a target past that.
func (c *Controller) forgetCatchUp(id int32) {
	c.members.Lock()
	defer c.members.Unlock()
	delete(c.members.catchUp, id)
}

// catchUpTarget is the metadata offset that broker id, registered at
// epoch and fenced, must have applied before it is unfenced: set to applied
// (this controller's offset) the first time it is asked for, and kept until
// the broker is seen unfenced, is fenced, registers or is unregistered
// (forgetCatchUp), or this node's term changes.
func (c *Controller) catchUpTarget(id int32, epoch int64, applied uint64) uint64 {
	c.members.Lock()
	defer c.members.Unlock()
	if t, ok := c.members.catchUp[id]; ok && t.epoch == epoch {
		return t.offset
	}
	c.members.catchUp[id] = catchUp{epoch: epoch, offset: applied}
	c.log.Info("fenced broker asks to be unfenced: it stays fenced until it has applied the metadata log this far",
		"broker", id, "broker_epoch", epoch, "metadata_offset", applied)
	return applied
}

// catchUp is a fenced broker's catch-up target (Heartbeat).
type catchUp struct {
	epoch  int64
	offset uint64
}

// fenceRetry is the pause before fencing a broker again after the command
// failed (a Raft error other than lost leadership).
const fenceRetry = 100 * time.Millisecond

// fenceLoop fences, on the active controller, every unfenced broker whose
// session expired, at the moment it expires: its timer is set to the
// earliest session end (a heartbeat only moves a session's end later, so
// waking at the earliest end and looking again misses none). Off the
// active controller it sleeps a session timeout at a time, and wakes when
// this node takes over (startSessions).
func (c *Controller) fenceLoop() {
	t := time.NewTimer(c.sessionTimeout())
	defer t.Stop()
	for {
		select {
		case <-c.stopc:
			return
		case <-t.C:
		case <-c.fenceWake:
		}
		if !c.IsActive() {
			t.Reset(c.sessionTimeout())
			continue
		}
		c.maybeElectUnclean()
		expired, _ := c.sessions(time.Now())
		failed := false
		for _, id := range expired {
			err := c.exec(c.baseCtx, func(img *metadata.Image) ([]metadata.Record, error) {
				b, ok := img.Brokers[id]
				if !ok || b.Fenced {
					return nil, nil
				}
				if exp, _ := c.sessions(time.Now()); !slices.Contains(exp, id) {
					return nil, nil // a heartbeat arrived meanwhile
				}
				c.forgetCatchUp(id)
				return fenceRecords(img, b, c.uncleanFor(img)), nil
			})
			switch {
			case err == nil:
				c.log.Info("fenced broker: session expired", "broker", id, "session_timeout", c.sessionTimeout())
			case errors.Is(err, ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, ErrNotController):
			default:
				failed = true
				c.log.Warn("fence broker failed", "broker", id, "err", err)
			}
		}
		_, next := c.sessions(time.Now())
		if failed {
			next = max(next, fenceRetry)
		}
		t.Reset(next)
	}
}

// startSessions starts every broker's session now, when this node has just
// become the active controller: it knows no heartbeat times of the
// previous controller's, and fencing on them would fence every broker
// (Kafka's BrokerHeartbeatManager starts them at activation too). A
// heartbeat that reached this term first already started them.
func (c *Controller) startSessions() {
	term := c.raft.CurrentTerm()
	c.members.Lock()
	c.resetIfNewTermLocked(term, time.Now())
	c.members.Unlock()
	select {
	case c.fenceWake <- struct{}{}:
	default:
	}
}

// sessions lists the unfenced brokers whose session has ended at now and
// how long until the next session ends (the session timeout when none is
// running).
func (c *Controller) sessions(now time.Time) (expired []int32, next time.Duration) {
	img := c.Image()
	term := c.raft.CurrentTerm()
	c.members.Lock()
	defer c.members.Unlock()
	c.resetIfNewTermLocked(term, now)
	return sessionExpiry(img.Brokers, c.members.seen, c.members.since, c.sessionTimeout(), now)
}

// sessionExpiry decides, for the unfenced brokers, whose session has ended
// at now (the last heartbeat, or since when none was seen in this term,
// is at least timeout old) and how long until the next end among the
// others (timeout when no session runs).
func sessionExpiry(brokers map[int32]metadata.Broker, seen map[int32]time.Time, since time.Time, timeout time.Duration,
	now time.Time) (expired []int32, next time.Duration) {
	next = timeout
	for id, b := range brokers {
		if b.Fenced {
			continue
		}
		last, ok := seen[id]
		if !ok {
			last = since
		}
		left := last.Add(timeout).Sub(now)
		if left <= 0 {
			expired = append(expired, id)
			continue
		}
		next = min(next, left)
	}
	slices.Sort(expired)
	return expired, next
}

// maybeElectUnclean elects leaders for the offline partitions of topics
// with unclean leader election enabled, when an unfenced replica can lead
// (Kafka's maybeElectUncleanLeaders). The image is checked first without
// the command lock, so a cluster without such partitions pays a scan.
func (c *Controller) maybeElectUnclean() {
	if len(uncleanSweepRecords(c.Image(), c.uncleanFor(c.Image()))) == 0 {
		return
	}
	var n int
	err := c.exec(c.baseCtx, func(img *metadata.Image) ([]metadata.Record, error) {
		recs := uncleanSweepRecords(img, c.uncleanFor(img))
		n = len(recs)
		return recs, nil
	})
	switch {
	case err == nil && n > 0:
		c.log.Warn("unclean leader election: offline partitions got leaders outside their ISR", "partitions", n)
	case err == nil, errors.Is(err, ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, ErrNotController):
	default:
		c.log.Warn("unclean leader election failed", "err", err)
	}
}

// uncleanFor resolves unclean.leader.election.enable for a topic as Kafka's
// controller does: the topic's config, else this controller's dynamic
// broker config or the cluster default, else its static property.
func (c *Controller) uncleanFor(img *metadata.Image) uncleanFunc {
	return func(t *metadata.Topic) bool {
		const key = "unclean.leader.election.enable"
		if v, ok := t.Configs[key]; ok {
			return strings.EqualFold(v, "true")
		}
		if v, ok := img.BrokerConfig(c.cfg.NodeID, key); ok {
			return strings.EqualFold(v, "true")
		}
		return strings.EqualFold(c.cfg.Props[key], "true")
	}
}
