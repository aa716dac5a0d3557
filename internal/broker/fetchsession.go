package broker

// Incremental fetch sessions (KIP-227), as Kafka's FetchSession and
// FetchSessionCache behave.
//
// A session remembers, per partition, what the client asked for (fetch
// offset, partition max bytes, log start offset, current leader epoch) and
// what the broker last told it (high watermark, last stable offset, log start
// offset). An incremental request lists only the partitions whose request
// changed, and the response lists only the partitions with something new:
// records, an error, or a changed high watermark, last stable offset or log
// start offset.
//
// The cache holds at most slots sessions (max.incremental.fetch.session.cache.slots;
// 0 disables sessions). Sessions idle for longer than the eviction time
// (Kafka's 120 s min.incremental.fetch.session.eviction.ms) are dropped
// whenever the cache is touched. When a new session finds the cache full it
// evicts, as Kafka does for unprivileged sessions, the session with the fewest
// partitions (the least recently used of those) if it has fewer partitions
// than the new one; otherwise the new session is not created and the client
// gets session id 0 with a full response. Gregor has no followers, so Kafka's
// privileged (replica) sessions do not arise. Memory is bounded by the slots
// times the partitions each session holds (one small struct per partition).
//
// Locking: one mutex guards the cache and every session's state. It is held
// only for map and list updates, never across a log read, a response write
// or a long-poll wait: a fetch works on a snapshot of the session's
// partitions and writes back what it sent when it is done. Clients use a
// session from one fetch at a time (the epoch makes a second concurrent use
// fail), so the write-back never races a later request of the same session.

import (
	"container/list"
	"math/rand/v2"
	"sync"
	"time"
)

// defaultFetchSessionEviction is Kafka's min.incremental.fetch.session.eviction.ms.
const defaultFetchSessionEviction = 120 * time.Second

// fetchKey names a partition of a session.
type fetchKey struct {
	topic     string
	partition int32
}

// fetchPartition is one partition to read, with the request's parameters
// for it (from the request itself, or from the session).
type fetchPartition struct {
	fetchKey
	topicID        [16]byte
	fetchOffset    int64
	maxBytes       int32
	logStartOffset int64 // the client's (followers only; kept as Kafka does)
	leaderEpoch    int32
	// lastFetchedEpoch is a follower's latest log epoch (v12+; -1: none),
	// checked against the leader's epochs for divergence.
	lastFetchedEpoch int32
}

// cachedPartition is a session's state for one partition: the client's last
// request and the offsets the broker last sent.
type cachedPartition struct {
	fetchPartition
	highWatermark    int64
	lastStableOffset int64
	logStartOffset   int64 // the broker's, as last sent
}

// fetchSession is one client's session. All fields are guarded by the
// cache's mutex.
type fetchSession struct {
	id int32
	// epoch is the epoch the next incremental request must carry.
	epoch int32
	// parts is the fetch order: partitions that returned records move to the
	// back, so a response limit does not starve the others (Kafka's rule).
	parts    []*cachedPartition
	index    map[fetchKey]*cachedPartition
	lastUsed time.Time
	elem     *list.Element // in the cache's LRU list, front = least recently used
}

// sentPartition is what a response said about one partition, for deciding
// whether an incremental response must include it and for updating the
// session.
type sentPartition struct {
	key              fetchKey
	errorCode        int16
	highWatermark    int64
	lastStableOffset int64
	logStartOffset   int64
	recordBytes      int
}

// fetchSessionCache holds the sessions of one broker.
type fetchSessionCache struct {
	slots      int
	evictAfter time.Duration
	now        func() time.Time
	mu         struct {
		sync.Mutex
		sessions map[int32]*fetchSession
		lru      *list.List
	}
}

func newFetchSessionCache(slots int, evictAfter time.Duration) *fetchSessionCache {
	if evictAfter <= 0 {
		evictAfter = defaultFetchSessionEviction
	}
	c := &fetchSessionCache{slots: max(slots, 0), evictAfter: evictAfter, now: time.Now}
	c.mu.sessions = make(map[int32]*fetchSession)
	c.mu.lru = list.New()
	return c
}

// len returns the number of live sessions.
func (c *fetchSessionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(c.now())
	return len(c.mu.sessions)
}

// remove closes a session; unknown ids are ignored.
func (c *fetchSessionCache) remove(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.mu.sessions[id]; s != nil {
		c.removeLocked(s)
	}
}

func (c *fetchSessionCache) removeLocked(s *fetchSession) {
	delete(c.mu.sessions, s.id)
	c.mu.lru.Remove(s.elem)
}

// expireLocked drops the sessions idle for longer than evictAfter.
func (c *fetchSessionCache) expireLocked(now time.Time) {
	for e := c.mu.lru.Front(); e != nil; e = c.mu.lru.Front() {
		s := e.Value.(*fetchSession)
		if now.Sub(s.lastUsed) <= c.evictAfter {
			return
		}
		c.removeLocked(s)
	}
}

// create makes a session of the partitions a full fetch read, recording what
// its response sent, and returns the new session id; 0 when there is no
// room (or nothing to track).
func (c *fetchSessionCache) create(parts []fetchPartition, sent []sentPartition) int32 {
	if c.slots == 0 || len(parts) == 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.expireLocked(now)
	if len(c.mu.sessions) >= c.slots && !c.evictForLocked(len(parts)) {
		return 0
	}
	s := &fetchSession{epoch: 1, index: make(map[fetchKey]*cachedPartition, len(parts)), lastUsed: now}
	for i := range parts {
		if s.index[parts[i].fetchKey] != nil {
			continue // a partition listed twice: the first wins
		}
		cp := &cachedPartition{fetchPartition: parts[i]}
		cp.record(sent[i])
		s.parts = append(s.parts, cp)
		s.index[cp.fetchKey] = cp
	}
	for {
		id := rand.Int32() // [0, 2^31): positive once 0 is excluded
		if id != 0 && c.mu.sessions[id] == nil {
			s.id = id
			break
		}
	}
	c.mu.sessions[s.id] = s
	s.elem = c.mu.lru.PushBack(s)
	return s.id
}

// evictForLocked makes room for a session of size partitions by evicting the
// session with the fewest partitions (least recently used among equals) when
// it has fewer than size. Stale sessions are gone already (expireLocked).
func (c *fetchSessionCache) evictForLocked(size int) bool {
	var victim *fetchSession
	for e := c.mu.lru.Front(); e != nil; e = e.Next() {
		s := e.Value.(*fetchSession)
		if victim == nil || len(s.parts) < len(victim.parts) {
			victim = s
		}
	}
	if victim == nil || len(victim.parts) >= size {
		return false
	}
	c.removeLocked(victim)
	return true
}

// sessionError is why an incremental request was refused.
type sessionError int8

const (
	sessionOK sessionError = iota
	sessionNotFound
	sessionBadEpoch
)

// update applies an incremental request to session id: it checks the epoch,
// adds or updates the listed partitions, removes the forgotten ones and
// advances the expected epoch. It returns the session and a snapshot of its
// partitions in fetch order. A session left empty is closed and returned
// nil (the request is then answered sessionless, as Kafka does).
func (c *fetchSessionCache) update(id, epoch int32, upserts []fetchPartition, forgotten []fetchKey) (*fetchSession, []fetchPartition, sessionError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.expireLocked(now)
	s := c.mu.sessions[id]
	switch {
	case s == nil:
		return nil, nil, sessionNotFound
	case s.epoch != epoch:
		return nil, nil, sessionBadEpoch
	}
	for _, p := range upserts {
		if cp := s.index[p.fetchKey]; cp != nil {
			cp.fetchPartition = p
			continue
		}
		// A new partition has sent nothing yet: -1 makes the next response
		// include it.
		cp := &cachedPartition{fetchPartition: p, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1}
		s.parts = append(s.parts, cp)
		s.index[p.fetchKey] = cp
	}
	if len(forgotten) > 0 {
		for _, k := range forgotten {
			delete(s.index, k)
		}
		kept := s.parts[:0]
		for _, cp := range s.parts {
			if s.index[cp.fetchKey] == cp {
				kept = append(kept, cp)
			}
		}
		clear(s.parts[len(kept):])
		s.parts = kept
	}
	if len(s.parts) == 0 {
		c.removeLocked(s)
		return nil, nil, sessionOK
	}
	s.lastUsed = now
	c.mu.lru.MoveToBack(s.elem)
	s.epoch = nextEpoch(s.epoch)
	snap := make([]fetchPartition, len(s.parts))
	for i, cp := range s.parts {
		snap[i] = cp.fetchPartition
	}
	return s, snap, sessionOK
}

// nextEpoch wraps from MaxInt32 to 1, as Kafka's FetchMetadata.nextEpoch.
func nextEpoch(e int32) int32 {
	if e == 1<<31-1 {
		return 1
	}
	return e + 1
}

// respond decides which partitions of an incremental response are sent and
// records what they said in the session. sent is in the snapshot's order;
// the result says, per entry, whether to include it. Partitions with records
// move to the back of the fetch order.
func (c *fetchSessionCache) respond(s *fetchSession, sent []sentPartition) []bool {
	include := make([]bool, len(sent))
	c.mu.Lock()
	defer c.mu.Unlock()
	var moved []*cachedPartition
	for i, sp := range sent {
		cp := s.index[sp.key]
		if cp == nil {
			// Forgotten by a concurrent (misbehaving) use of the session:
			// still report what was read.
			include[i] = true
			continue
		}
		include[i] = cp.mustRespond(sp)
		cp.record(sp)
		if sp.recordBytes > 0 {
			moved = append(moved, cp)
		}
	}
	if len(moved) > 0 && len(moved) < len(s.parts) {
		isMoved := make(map[*cachedPartition]bool, len(moved))
		for _, cp := range moved {
			isMoved[cp] = true
		}
		kept := make([]*cachedPartition, 0, len(s.parts))
		for _, cp := range s.parts {
			if !isMoved[cp] {
				kept = append(kept, cp)
			}
		}
		s.parts = append(kept, moved...)
	}
	return include
}

// mustRespond is Kafka's CachedPartition.maybeUpdateResponseData decision:
// records, an error, or a changed offset since the last response.
func (cp *cachedPartition) mustRespond(sp sentPartition) bool {
	return sp.recordBytes > 0 || sp.errorCode != 0 ||
		sp.highWatermark != cp.highWatermark ||
		sp.lastStableOffset != cp.lastStableOffset ||
		sp.logStartOffset != cp.logStartOffset
}

// record remembers what a response sent. After an error the high watermark
// is forgotten (-1), so the partition is sent again once the error clears.
func (cp *cachedPartition) record(sp sentPartition) {
	cp.highWatermark, cp.lastStableOffset, cp.logStartOffset = sp.highWatermark, sp.lastStableOffset, sp.logStartOffset
	if sp.errorCode != 0 {
		cp.highWatermark = -1
	}
}

// partitions lists the partitions of session id, nil if there is none: an
// incremental fetch reads them without naming them, so an authorizer must
// check them (access.go).
func (c *fetchSessionCache) partitions(id int32) []fetchKey {
	if c == nil || id == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.mu.sessions[id]
	if s == nil {
		return nil
	}
	out := make([]fetchKey, 0, len(s.parts))
	for _, p := range s.parts {
		out = append(out, fetchKey{topic: p.topic, partition: p.partition})
	}
	return out
}
