package broker

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/server"
)

// fakeClock is a settable clock for the session cache.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestCache(slots int) (*fetchSessionCache, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	c := newFetchSessionCache(slots, time.Minute)
	c.now = clk.now
	return c, clk
}

func fp(topic string, partition int32, offset int64) fetchPartition {
	return fetchPartition{fetchKey: fetchKey{topic, partition}, fetchOffset: offset, maxBytes: 1 << 20, logStartOffset: -1, leaderEpoch: -1}
}

// sentOK is a clean response for a partition with high watermark hw.
func sentOK(key fetchKey, hw int64) sentPartition {
	return sentPartition{key: key, highWatermark: hw, lastStableOffset: hw, logStartOffset: 0}
}

func sentFor(parts []fetchPartition, hw int64) []sentPartition {
	out := make([]sentPartition, len(parts))
	for i, p := range parts {
		out[i] = sentOK(p.fetchKey, hw)
	}
	return out
}

func TestFetchSessionCreateAndEpochs(t *testing.T) {
	c, _ := newTestCache(10)
	parts := []fetchPartition{fp("a", 0, 0), fp("a", 1, 0)}
	id := c.create(parts, sentFor(parts, 5))
	if id <= 0 {
		t.Fatalf("create: session id %d, want > 0", id)
	}
	cases := []struct {
		name  string
		id    int32
		epoch int32
		want  sessionError
	}{
		{"unknown id", id + 1, 1, sessionNotFound},
		{"id 0", 0, 1, sessionNotFound},
		{"epoch too high", id, 2, sessionBadEpoch},
		{"negative epoch", id, -2, sessionBadEpoch},
		{"expected epoch", id, 1, sessionOK},
		{"same epoch again", id, 1, sessionBadEpoch},
		{"next epoch", id, 2, sessionOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, snap, err := c.update(tc.id, tc.epoch, nil, nil)
			if err != tc.want {
				t.Fatalf("update(%d, %d): error %d, want %d", tc.id, tc.epoch, err, tc.want)
			}
			if err == sessionOK && (s == nil || len(snap) != 2) {
				t.Fatalf("update: session %v with %d partitions, want 2", s, len(snap))
			}
		})
	}
	c.remove(id)
	if _, _, err := c.update(id, 3, nil, nil); err != sessionNotFound {
		t.Fatalf("update after remove: error %d, want not found", err)
	}
}

func TestFetchSessionDisabled(t *testing.T) {
	c, _ := newTestCache(0)
	parts := []fetchPartition{fp("a", 0, 0)}
	if id := c.create(parts, sentFor(parts, 0)); id != 0 {
		t.Fatalf("create with 0 slots: id %d, want 0", id)
	}
	if n := c.len(); n != 0 {
		t.Fatalf("%d sessions, want 0", n)
	}
}

func TestFetchSessionUpdateAndForget(t *testing.T) {
	c, _ := newTestCache(10)
	parts := []fetchPartition{fp("a", 0, 0), fp("a", 1, 0), fp("b", 0, 0)}
	id := c.create(parts, sentFor(parts, 3))
	// Update a/1's offset, add c/0, forget b/0.
	s, snap, err := c.update(id, 1, []fetchPartition{fp("a", 1, 7), fp("c", 0, 2)}, []fetchKey{{"b", 0}})
	if err != sessionOK || s == nil {
		t.Fatalf("update: error %d session %v", err, s)
	}
	got := map[fetchKey]int64{}
	for _, p := range snap {
		got[p.fetchKey] = p.fetchOffset
	}
	want := map[fetchKey]int64{{"a", 0}: 0, {"a", 1}: 7, {"c", 0}: 2}
	if len(got) != len(want) {
		t.Fatalf("session partitions %v, want %v", got, want)
	}
	for k, v := range want {
		if o, ok := got[k]; !ok || o != v {
			t.Fatalf("session partitions %v, want %v", got, want)
		}
	}
	// The new partition has sent nothing yet, so it must be in the next
	// response even without records; the others are unchanged.
	include := c.respond(s, sentFor(snap, 3))
	for i, p := range snap {
		if wantIn := p.fetchKey == (fetchKey{"c", 0}); include[i] != wantIn {
			t.Fatalf("%v included %v, want %v", p.fetchKey, include[i], wantIn)
		}
	}
	// Forgetting everything closes the session.
	s, _, err = c.update(id, 2, nil, []fetchKey{{"a", 0}, {"a", 1}, {"c", 0}})
	if err != sessionOK || s != nil {
		t.Fatalf("forget all: error %d session %v, want closed", err, s)
	}
	if n := c.len(); n != 0 {
		t.Fatalf("%d sessions after forgetting all, want 0", n)
	}
}

func TestFetchSessionRespondRules(t *testing.T) {
	key := fetchKey{"a", 0}
	base := sentOK(key, 10)
	cases := []struct {
		name string
		edit func(*sentPartition)
		want bool
	}{
		{"nothing changed", func(*sentPartition) {}, false},
		{"records", func(s *sentPartition) { s.recordBytes = 100 }, true},
		{"high watermark", func(s *sentPartition) { s.highWatermark = 11 }, true},
		{"last stable offset", func(s *sentPartition) { s.lastStableOffset = 9 }, true},
		{"log start offset", func(s *sentPartition) { s.logStartOffset = 4 }, true},
		{"error", func(s *sentPartition) { s.errorCode = 1 }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newTestCache(10)
			parts := []fetchPartition{fp("a", 0, 0)}
			id := c.create(parts, []sentPartition{base})
			s, _, _ := c.update(id, 1, nil, nil)
			sp := base
			tc.edit(&sp)
			if got := c.respond(s, []sentPartition{sp})[0]; got != tc.want {
				t.Fatalf("included %v, want %v", got, tc.want)
			}
			// The same response again has nothing new, except after an
			// error, whose partition is resent until it clears.
			s, _, _ = c.update(id, 2, nil, nil)
			again := sp
			again.recordBytes = 0
			want := sp.errorCode != 0
			if got := c.respond(s, []sentPartition{again})[0]; got != want {
				t.Fatalf("repeat included %v, want %v", got, want)
			}
			if sp.errorCode != 0 {
				// The error clears: the partition is sent once more.
				s, _, _ = c.update(id, 3, nil, nil)
				if got := c.respond(s, []sentPartition{base})[0]; !got {
					t.Fatalf("cleared error not sent")
				}
			}
		})
	}
}

func TestFetchSessionRecordsMoveToBack(t *testing.T) {
	c, _ := newTestCache(10)
	parts := []fetchPartition{fp("a", 0, 0), fp("a", 1, 0), fp("a", 2, 0)}
	id := c.create(parts, sentFor(parts, 0))
	s, snap, _ := c.update(id, 1, nil, nil)
	sent := sentFor(snap, 0)
	sent[0].recordBytes = 10 // a/0 returned records
	c.respond(s, sent)
	_, snap, _ = c.update(id, 2, nil, nil)
	var order []int32
	for _, p := range snap {
		order = append(order, p.partition)
	}
	if len(order) != 3 || order[0] != 1 || order[1] != 2 || order[2] != 0 {
		t.Fatalf("fetch order %v, want [1 2 0]", order)
	}
}

func TestFetchSessionEviction(t *testing.T) {
	c, clk := newTestCache(2)
	mk := func(n int) []fetchPartition {
		var ps []fetchPartition
		for i := range n {
			ps = append(ps, fp("t", int32(i), 0))
		}
		return ps
	}
	create := func(n int) int32 {
		ps := mk(n)
		return c.create(ps, sentFor(ps, 0))
	}
	a := create(2)
	b := create(1)
	if a == 0 || b == 0 || a == b {
		t.Fatalf("ids %d %d", a, b)
	}
	// Full: a bigger session evicts the smallest.
	cid := create(3)
	if cid == 0 {
		t.Fatalf("3-partition session not created in a full cache of sizes 2 and 1")
	}
	if _, _, err := c.update(b, 1, nil, nil); err != sessionNotFound {
		t.Fatalf("smallest session not evicted: error %d", err)
	}
	// Full of sessions at least as big: no room.
	if id := create(2); id != 0 {
		t.Fatalf("2-partition session created (%d) in a full cache of sizes 2 and 3", id)
	}
	if n := c.len(); n != 2 {
		t.Fatalf("%d sessions, want 2", n)
	}
	// Idle sessions expire.
	clk.t = clk.t.Add(30 * time.Second)
	if _, _, err := c.update(a, 1, nil, nil); err != sessionOK {
		t.Fatalf("use a: error %d", err)
	}
	clk.t = clk.t.Add(45 * time.Second) // c idle 75 s, a idle 45 s
	if n := c.len(); n != 1 {
		t.Fatalf("%d sessions after c went idle, want 1", n)
	}
	if id := create(1); id == 0 {
		t.Fatalf("no session created after expiry freed a slot")
	}
	clk.t = clk.t.Add(2 * time.Minute)
	if n := c.len(); n != 0 {
		t.Fatalf("%d sessions after all went idle, want 0", n)
	}
}

func TestFetchSessionConcurrent(t *testing.T) {
	c, _ := newTestCache(8)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				ps := []fetchPartition{fp("t", int32(g), int64(i))}
				id := c.create(ps, sentFor(ps, 0))
				if id == 0 {
					continue
				}
				for e := int32(1); e <= 3; e++ {
					s, snap, err := c.update(id, e, nil, nil)
					if err != sessionOK {
						break // evicted by another goroutine
					}
					c.respond(s, sentFor(snap, int64(e)))
				}
				c.remove(id)
			}
		})
	}
	wg.Wait()
	if n := c.len(); n > 8 {
		t.Fatalf("%d sessions, more than the 8 slots", n)
	}
}

// TestFetchResponseAssembly checks that a filtered response groups partitions
// by topic and lists splices in encoding order.
func TestFetchResponseAssembly(t *testing.T) {
	parts := []fetchPartition{fp("a", 0, 0), fp("b", 0, 0), fp("a", 1, 0), fp("b", 1, 0)}
	res := &fetchResult{
		parts:   make([]kmsg.FetchResponseTopicPartition, len(parts)),
		splices: make([]*server.Splice, len(parts)),
		bytes:   make([]int, len(parts)),
	}
	for i, p := range parts {
		res.parts[i] = kmsg.NewFetchResponseTopicPartition()
		res.parts[i].Partition = p.partition
		res.parts[i].RecordBatches = []byte{}
		if i != 3 {
			sp := &server.Splice{Marker: server.NewMarker()}
			res.parts[i].RecordBatches = sp.Marker
			res.splices[i] = sp
			res.bytes[i] = 1
		}
	}
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	out := res.response(req, parts, []bool{true, true, true, false})
	resp := out.Response.(*kmsg.FetchResponse)
	if len(resp.Topics) != 2 || resp.Topics[0].Topic != "a" || len(resp.Topics[0].Partitions) != 2 ||
		resp.Topics[1].Topic != "b" || len(resp.Topics[1].Partitions) != 1 {
		t.Fatalf("topics %+v, want a[0 1] b[0]", resp.Topics)
	}
	var inOrder [][]byte
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			inOrder = append(inOrder, rp.RecordBatches)
		}
	}
	if len(out.Splices) != 3 {
		t.Fatalf("%d splices, want 3", len(out.Splices))
	}
	for i, sp := range out.Splices {
		if !bytes.Equal(sp.Marker, inOrder[i]) {
			t.Fatalf("splice %d out of encoding order", i)
		}
	}
	out.Release()
}
