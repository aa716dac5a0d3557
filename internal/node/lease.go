package node

import (
	"log/slog"
	"sync"
	"time"
)

// brokerLease is the time during which this broker may still serve, as a
// partition leader, reads and writes without asking anyone: a leader
// isolated from the controller and its followers keeps a frozen high
// watermark, and must stop answering before a new leader can acknowledge
// newer writes (docs/reliability.md, bug 4).
//
// The lease starts when this broker sends a BrokerHeartbeat that the active
// controller answers unfenced, and lasts leaseDuration. Why that is safe:
// the controller fences a broker only once broker.session.timeout.ms has
// passed on its clock since it received the broker's last heartbeat (or
// since it became active, which is later than any heartbeat an earlier
// controller answered, up to Raft's leader lease), and receipt is after
// our send. A new partition leader exists only after that fence is
// committed. So the lease, measured from the send on our monotonic clock
// and shorter than the session by a margin, ends before any new leader
// exists, as long as the two clocks' rates differ by less than the margin
// and no scheduling pause between the check and the read exceeds it.
//
// A broker that was fenced (paused, cut off) and comes back must not renew
// its lease before it knows what it lost: the controller unfences it, and
// only an unfenced answer renews the lease, once its heartbeat reports the
// metadata offset of its fencing and of the elections that came with it
// applied to its partitions (controller.Heartbeat; bug 16).
//
// A node that is the lone voter of its quorum is its own controller and
// cannot be deposed: its lease never ends.
type brokerLease struct {
	duration time.Duration
	// lone reports whether this node is the only voter and the active
	// controller; asked only once the heartbeat lease has run out.
	lone   func() bool
	logger *slog.Logger
	now    func() time.Time

	mu struct {
		sync.Mutex
		until   time.Time // zero: never granted
		expired bool      // logged as expired, not renewed since
	}
}

// leaseDuration is the session timeout minus the margin for clock-rate
// drift, scheduling pauses between the check and the read, and the short
// overlap in which a deposed Raft leader still answers as the controller
// (up to about its leader lease, 150 ms, before the new one is active): a
// tenth of the session, at least minLeaseMargin (with Kafka's defaults,
// 9 s - 0.9 s = 8.1 s). The margin does not depend on the heartbeat
// interval: the lease counts from the send, so a long interval needs no
// extra room, and a margin of half an interval would leave a session of 3 s
// with 2 s heartbeats (valid in Kafka) a lease no longer than the interval,
// expiring between every two heartbeats. A very short session keeps at
// least half of itself.
func leaseDuration(session time.Duration) time.Duration {
	margin := max(session/10, minLeaseMargin)
	return max(session-margin, session/2)
}

// minLeaseMargin is the smallest margin between the lease and the session.
const minLeaseMargin = 500 * time.Millisecond

func newBrokerLease(session time.Duration, lone func() bool, logger *slog.Logger) *brokerLease {
	return &brokerLease{duration: leaseDuration(session), lone: lone, logger: logger, now: time.Now}
}

// renew extends the lease to sent+duration: sent is when the heartbeat
// that the controller answered unfenced was sent.
func (l *brokerLease) renew(sent time.Time) {
	if l == nil {
		return
	}
	until := sent.Add(l.duration)
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.mu.until) {
		l.mu.until = until
	}
	if l.mu.expired && l.now().Before(l.mu.until) {
		l.mu.expired = false
		l.logger.Info("broker lease renewed: serving partitions it leads again", "until", l.mu.until)
	}
}

// held reports whether the broker may serve as a partition leader now.
// nil holds always.
func (l *brokerLease) held() bool {
	if l == nil {
		return true
	}
	now := l.now()
	l.mu.Lock()
	ok := now.Before(l.mu.until)
	l.mu.Unlock()
	if ok || (l.lone != nil && l.lone()) {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.mu.expired && !now.Before(l.mu.until) {
		l.mu.expired = true
		if l.mu.until.IsZero() { // a start, not an expiry
			l.logger.Info("no broker lease yet: answering NOT_LEADER_OR_FOLLOWER for partitions this broker leads until an unfenced heartbeat answer",
				"lease", l.duration)
		} else {
			l.logger.Warn("broker lease expired: no unfenced heartbeat answer; answering NOT_LEADER_OR_FOLLOWER for partitions this broker leads",
				"lease", l.duration, "expired_at", l.mu.until)
		}
	}
	return false
}

// loneVoter reports whether this node is the active controller of a quorum
// of which it is the only voter: no other node can fence it.
func (n *Node) loneVoter() bool {
	if !n.ctrl.IsActive() {
		return false
	}
	servers, err := n.ctrl.Servers()
	if err != nil {
		return false
	}
	voters := 0
	for _, s := range servers {
		if s.Voter {
			if s.ID != n.cfg.NodeID {
				return false
			}
			voters++
		}
	}
	return voters == 1
}
