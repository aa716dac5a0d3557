// Package quota enforces client quotas on a broker, as Kafka's
// ClientQuotaManager does for produce and fetch bandwidth: each quota is a
// byte rate per second that a user, a client id or both may use, set with
// AlterClientQuotas and kept in the metadata image (metadata.ClientQuotas).
// A request that takes its sender over the rate is answered at once with a
// throttle time, the time that brings the rate back to the quota if nothing
// more is sent, and the server reads nothing more from that connection
// until it has passed (KIP-219).
//
// The rate is Kafka's: a sum over quota.window.num samples of
// quota.window.size.seconds each, divided by the time they span (never less
// than all but one of the windows), so a burst is judged over about ten
// seconds. A quota that applies to many users or client ids (a default)
// gives each its own rate, as in Kafka.
//
// Locks: Manager.mu guards the rates; it is a leaf.
package quota

import (
	"math"
	"sync"
	"time"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// Kind is the quota a request counts against.
type Kind uint8

// The bandwidth quotas.
const (
	Produce Kind = iota // producer_byte_rate, the bytes of produce requests
	Fetch               // consumer_byte_rate, the bytes of fetch responses
)

func (k Kind) key() string {
	if k == Produce {
		return metadata.QuotaProducerByteRate
	}
	return metadata.QuotaConsumerByteRate
}

// Anonymous is the user of a connection that did not authenticate, as
// Kafka's KafkaPrincipal.ANONYMOUS: user quotas for it, or user defaults,
// apply to every client of a broker without SASL.
const Anonymous = "ANONYMOUS"

// Defaults of Kafka's quota.window.num and quota.window.size.seconds.
const (
	DefaultSamples = 11
	DefaultWindow  = time.Second
)

// Manager holds the rates of the users and client ids that have a quota.
type Manager struct {
	quotas  func() map[metadata.QuotaEntity]map[string]float64
	samples int
	window  time.Duration
	now     func() time.Time

	mu        sync.Mutex
	rates     map[rateKey]*rate
	lastSweep time.Time
}

// rateKey names one rate: the quota kind and the user and client id of the
// quota entity that applies (empty for a type the entity does not name),
// as Kafka's quota metric tags.
type rateKey struct {
	kind     Kind
	user     string
	clientID string
}

// New returns a Manager that reads the quotas from quotas (the current
// metadata image's) and measures time with now (nil: time.Now).
func New(quotas func() map[metadata.QuotaEntity]map[string]float64, samples int, window time.Duration, now func() time.Time) *Manager {
	samples, window, now = withDefaults(samples, window, now)
	return &Manager{quotas: quotas, samples: samples, window: window, now: now, rates: map[rateKey]*rate{}}
}

// withDefaults fills in the sampling that New and NewReplication were not
// given: Kafka's window count and size, and the wall clock.
func withDefaults(samples int, window time.Duration, now func() time.Time) (int, time.Duration, func() time.Time) {
	if samples < 2 {
		samples = DefaultSamples
	}
	if window <= 0 {
		window = DefaultWindow
	}
	if now == nil {
		now = time.Now
	}
	return samples, window, now
}

// Record counts bytes against the quota of kind for user and clientID and
// returns how long the client is to be throttled: zero while within the
// quota, and always zero when no quota applies.
func (m *Manager) Record(kind Kind, user, clientID string, bytes int) time.Duration {
	bound, key, ok := m.resolve(kind, user, clientID)
	if !ok {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	r := m.rate(key, now)
	r.record(float64(bytes), now, m.window, m.samples)
	return r.throttle(bound, now, m.window, m.samples)
}

// MaxInWindow is the most a client may take at once, from a quiet start,
// without being throttled: its quota over all windows but the current one
// (Kafka's getMaxValueInQuotaWindow, which caps a consumer's fetch size).
// ok is false when no quota applies.
func (m *Manager) MaxInWindow(kind Kind, user, clientID string) (bytes float64, ok bool) {
	bound, _, ok := m.resolve(kind, user, clientID)
	if !ok {
		return 0, false
	}
	return bound * float64(m.samples-1) * m.window.Seconds(), true
}

// Throttle is Record of nothing: whether the client is over its quota
// already (a fetch that would be answered empty).
func (m *Manager) Throttle(kind Kind, user, clientID string) time.Duration {
	return m.Record(kind, user, clientID, 0)
}

// rate returns key's rate, made on first use; rates idle for the whole
// span of the samples are swept (they measure zero).
func (m *Manager) rate(key rateKey, now time.Time) *rate {
	span := m.window * time.Duration(m.samples)
	if now.Sub(m.lastSweep) > span {
		for k, r := range m.rates {
			if now.Sub(r.last) > span {
				delete(m.rates, k)
			}
		}
		m.lastSweep = now
	}
	r := m.rates[key]
	if r == nil {
		r = &rate{samples: make([]sample, m.samples)}
		m.rates[key] = r
	}
	return r
}

// resolve finds the quota of kind for user and clientID, the most specific
// entity first, in Kafka's order: user and client id, user and default
// client id, user alone, default user and client id, default user and
// default client id, default user alone, client id alone, default client id
// alone.
func (m *Manager) resolve(kind Kind, user, clientID string) (bound float64, key rateKey, ok bool) {
	all := m.quotas()
	if len(all) == 0 {
		return 0, rateKey{}, false
	}
	named := func(s string) metadata.QuotaName { return metadata.QuotaName{Present: true, Name: s} }
	def := metadata.QuotaName{Present: true, Default: true}
	none := metadata.QuotaName{}
	order := []struct {
		e                  metadata.QuotaEntity
		keyUser, keyClient bool
	}{
		{metadata.QuotaEntity{User: named(user), ClientID: named(clientID)}, true, true},
		{metadata.QuotaEntity{User: named(user), ClientID: def}, true, true},
		{metadata.QuotaEntity{User: named(user), ClientID: none}, true, false},
		{metadata.QuotaEntity{User: def, ClientID: named(clientID)}, true, true},
		{metadata.QuotaEntity{User: def, ClientID: def}, true, true},
		{metadata.QuotaEntity{User: def, ClientID: none}, true, false},
		{metadata.QuotaEntity{User: none, ClientID: named(clientID)}, false, true},
		{metadata.QuotaEntity{User: none, ClientID: def}, false, true},
	}
	for _, o := range order {
		v, found := all[o.e][kind.key()]
		if !found {
			continue
		}
		key = rateKey{kind: kind}
		if o.keyUser {
			key.user = user
		}
		if o.keyClient {
			key.clientID = clientID
		}
		return v, key, true
	}
	return 0, rateKey{}, false
}

// sample is one window of a rate: the bytes counted since start.
type sample struct {
	start time.Time
	value float64
}

// rate is Kafka's Rate over a SampledStat of sums.
type rate struct {
	samples []sample
	current int
	last    time.Time // the last record, for the sweep
}

func (r *rate) record(v float64, now time.Time, window time.Duration, n int) {
	r.last = now
	cur := &r.samples[r.current]
	if cur.start.IsZero() {
		cur.start = now
	} else if now.Sub(cur.start) >= window {
		r.current = (r.current + 1) % n
		r.samples[r.current] = sample{start: now}
	}
	r.samples[r.current].value += v
}

// measure is the rate per second at now: the samples younger than their
// whole span, summed, over windowSize.
func (r *rate) measure(now time.Time, window time.Duration, n int) (perSecond float64, size time.Duration) {
	expire := window * time.Duration(n)
	var total float64
	var oldest time.Time
	for i := range r.samples {
		s := &r.samples[i]
		if s.start.IsZero() {
			continue
		}
		if now.Sub(s.start) >= expire {
			*s = sample{}
			continue
		}
		total += s.value
		if oldest.IsZero() || s.start.Before(oldest) {
			oldest = s.start
		}
	}
	if oldest.IsZero() {
		oldest = now
	}
	// Kafka's Rate.windowSize: the time the samples span, but at least
	// all windows but the current one, so a first burst is not judged
	// over a few milliseconds.
	size = now.Sub(oldest)
	if full := n - 1; size < time.Duration(full)*window {
		size += time.Duration(full-int(size/window)) * window
	}
	return total / size.Seconds(), size
}

// throttle is Kafka's QuotaUtils.throttleTime: with rate O over a window W
// above the bound T, the delay X that makes O*W/(W+X) = T, X = (O-T)/T*W.
func (r *rate) throttle(bound float64, now time.Time, window time.Duration, n int) time.Duration {
	o, w := r.measure(now, window, n)
	if o <= bound {
		return 0
	}
	ms := math.Round((o - bound) / bound * float64(w.Milliseconds()))
	return time.Duration(ms) * time.Millisecond
}

// Replication is one direction of replication throttling on a broker,
// Kafka's ReplicationQuotaManager: the bytes that throttled replicas moved
// (leader side: sent to followers out of the ISR; follower side: fetched
// while this node is out of the ISR) over the same sampled rate as the
// client quotas (replication.quota.window.num windows of
// replication.quota.window.size.seconds). A throttled replica fetches
// nothing while the rate is over the bound, so the rate is held to it
// give or take one fetch. Its lock is a leaf.
type Replication struct {
	mu      sync.Mutex
	r       rate
	samples int
	window  time.Duration
	now     func() time.Time
}

// NewReplication returns a throttle over samples windows of window; now
// nil is time.Now.
func NewReplication(samples int, window time.Duration, now func() time.Time) *Replication {
	samples, window, now = withDefaults(samples, window, now)
	return &Replication{r: rate{samples: make([]sample, samples)}, samples: samples, window: window, now: now}
}

// Record counts bytes a throttled replica moved.
func (q *Replication) Record(bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.r.record(float64(bytes), q.now(), q.window, q.samples)
}

// Exceeded reports whether the rate is above bound bytes per second
// (Kafka's isQuotaExceeded).
func (q *Replication) Exceeded(bound int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	perSecond, _ := q.r.measure(q.now(), q.window, q.samples)
	return perSecond > float64(bound)
}
