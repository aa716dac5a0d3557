package quota

import (
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/metadata"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func named(s string) metadata.QuotaName { return metadata.QuotaName{Present: true, Name: s} }

var def = metadata.QuotaName{Present: true, Default: true}

func TestRecordThrottlesOverTheRate(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	quotas := map[metadata.QuotaEntity]map[string]float64{
		{ClientID: named("bulk")}: {metadata.QuotaProducerByteRate: 1000},
	}
	m := New(func() map[metadata.QuotaEntity]map[string]float64 { return quotas }, 11, time.Second, c.now)
	// 5000 bytes at once: over the 10 s a first burst is judged over,
	// 500 B/s, within the quota.
	if d := m.Record(Produce, Anonymous, "bulk", 5000); d != 0 {
		t.Fatalf("within the quota: throttled %v", d)
	}
	// 15,000 bytes: 1500 B/s, half over: (1500-1000)/1000 of 10 s.
	if d := m.Record(Produce, Anonymous, "bulk", 10000); d != 5*time.Second {
		t.Fatalf("over the quota: throttled %v, want 5s", d)
	}
	// At most 1000 B/s over the 10 complete windows may go at once.
	if most, ok := m.MaxInWindow(Produce, Anonymous, "bulk"); !ok || most != 10000 {
		t.Fatalf("MaxInWindow: %v %v, want 10000", most, ok)
	}
	if _, ok := m.MaxInWindow(Fetch, Anonymous, "bulk"); ok {
		t.Fatal("MaxInWindow found a fetch quota")
	}
	// Fetches and other clients have no quota.
	if d := m.Record(Fetch, Anonymous, "bulk", 1<<30); d != 0 {
		t.Fatalf("fetch without a quota: throttled %v", d)
	}
	if d := m.Record(Produce, Anonymous, "other", 1<<30); d != 0 {
		t.Fatalf("another client: throttled %v", d)
	}
	// The rate is judged over at least 10 s, as Kafka's: 5 s later it
	// still is 1500 B/s.
	c.t = c.t.Add(5 * time.Second)
	if d := m.Throttle(Produce, Anonymous, "bulk"); d != 5*time.Second {
		t.Fatalf("5 s later: throttled %v, want 5s", d)
	}
	// Samples older than their span (11 s) no longer count.
	c.t = c.t.Add(6 * time.Second)
	if d := m.Record(Produce, Anonymous, "bulk", 9000); d != 0 {
		t.Fatalf("after the samples expired: throttled %v", d)
	}
	if len(m.rates) != 1 {
		t.Fatalf("%d rates kept, want 1 (only the client with a quota)", len(m.rates))
	}
	// Idle rates are swept.
	c.t = c.t.Add(time.Minute)
	m.Throttle(Produce, Anonymous, "bulk")
	if len(m.rates) != 1 || m.rates[rateKey{kind: Produce, clientID: "bulk"}].last != c.t {
		t.Fatalf("rates after the sweep: %v", m.rates)
	}
}

func TestResolveMostSpecificFirst(t *testing.T) {
	quotas := map[metadata.QuotaEntity]map[string]float64{
		{ClientID: def}:                              {metadata.QuotaConsumerByteRate: 1},
		{ClientID: named("app")}:                     {metadata.QuotaConsumerByteRate: 2},
		{User: def}:                                  {metadata.QuotaConsumerByteRate: 3},
		{User: named("alice")}:                       {metadata.QuotaConsumerByteRate: 4},
		{User: named("alice"), ClientID: def}:        {metadata.QuotaConsumerByteRate: 5},
		{User: def, ClientID: named("app")}:          {metadata.QuotaConsumerByteRate: 6},
		{User: named("bob"), ClientID: named("app")}: {metadata.QuotaConsumerByteRate: 7},
	}
	m := New(func() map[metadata.QuotaEntity]map[string]float64 { return quotas }, 0, 0, nil)
	for _, c := range []struct {
		user, client string
		bound        float64
		key          rateKey
	}{
		{"bob", "app", 7, rateKey{Fetch, "bob", "app"}},
		{"alice", "app", 5, rateKey{Fetch, "alice", "app"}},
		{"carol", "app", 6, rateKey{Fetch, "carol", "app"}},
		{"carol", "x", 3, rateKey{Fetch, "carol", ""}},
	} {
		bound, key, ok := m.resolve(Fetch, c.user, c.client)
		if !ok || bound != c.bound || key != c.key {
			t.Errorf("%s/%s: %v %+v %v, want %v %+v", c.user, c.client, bound, key, ok, c.bound, c.key)
		}
	}
	delete(quotas, metadata.QuotaEntity{User: def})
	delete(quotas, metadata.QuotaEntity{User: def, ClientID: named("app")})
	for _, c := range []struct {
		client string
		bound  float64
	}{{"app", 2}, {"y", 1}} {
		if bound, key, ok := m.resolve(Fetch, "carol", c.client); !ok || bound != c.bound || key != (rateKey{Fetch, "", c.client}) {
			t.Errorf("carol/%s: %v %+v, want %v and a rate of the client id alone", c.client, bound, key, c.bound)
		}
	}
	if _, _, ok := m.resolve(Produce, "carol", "app"); ok {
		t.Errorf("a produce quota found where only fetch quotas are set")
	}
}

// TestReplicationThrottle: the throttled bytes' rate is Kafka's sampled
// rate, judged over at least all windows but one at first, so a first
// fetch of the rate times ten windows is allowed and anything more is over;
// the windows age out.
func TestReplicationThrottle(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	q := NewReplication(11, time.Second, func() time.Time { return now })
	if q.Exceeded(100) {
		t.Fatal("exceeded before anything moved")
	}
	q.Record(1000) // 1000 B over 10 s: 100 B/s
	if q.Exceeded(100) {
		t.Fatal("exceeded at exactly the rate")
	}
	q.Record(1)
	if !q.Exceeded(100) {
		t.Fatal("not exceeded over the rate")
	}
	if q.Exceeded(1 << 62) {
		t.Fatal("exceeded under the default (unlimited) rate")
	}
	now = now.Add(12 * time.Second) // every sample expired
	if q.Exceeded(100) {
		t.Fatal("still exceeded once the windows aged out")
	}
}
