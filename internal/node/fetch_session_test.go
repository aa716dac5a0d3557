package node_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/node"
)

// sessFetch is one raw fetch of a session test.
type sessFetch struct {
	id, epoch int32
	parts     map[int32]int64 // partition -> fetch offset, listed in the request
	forget    []int32
	minBytes  int32
	maxWait   time.Duration
}

func (f sessFetch) send(t *testing.T, cl *kgo.Client, topic string) *kmsg.FetchResponse {
	t.Helper()
	return rawRequest[*kmsg.FetchResponse](t, cl, f.request(topic))
}

func (f sessFetch) request(topic string) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.ReplicaID, req.MaxBytes = -1, 1<<20
	req.SessionID, req.SessionEpoch = f.id, f.epoch
	req.MinBytes, req.MaxWaitMillis = f.minBytes, int32(f.maxWait/time.Millisecond)
	if len(f.parts) > 0 {
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		for p, off := range f.parts {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p, off, 1<<20
			fp.CurrentLeaderEpoch, fp.LogStartOffset = -1, -1
			ft.Partitions = append(ft.Partitions, fp)
		}
		req.Topics = append(req.Topics, ft)
	}
	if len(f.forget) > 0 {
		ft := kmsg.NewFetchRequestForgottenTopic()
		ft.Topic, ft.Partitions = topic, f.forget
		req.ForgottenTopics = append(req.ForgottenTopics, ft)
	}
	return req
}

// sessParts maps the partitions of a fetch response to their record counts,
// failing on any error.
func sessParts(t *testing.T, resp *kmsg.FetchResponse) map[int32]int {
	t.Helper()
	if resp.ErrorCode != 0 {
		t.Fatalf("fetch: top-level error %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	out := map[int32]int{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				t.Fatalf("fetch %s[%d]: %v", rt.Topic, rp.Partition, kerr.ErrorForCode(rp.ErrorCode))
			}
			fr, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: rt.Topic, Partition: rp.Partition}, &rp, kgo.DefaultDecompressor(), nil)
			if fr.Err != nil {
				t.Fatalf("decode %s[%d]: %v", rt.Topic, rp.Partition, fr.Err)
			}
			out[rp.Partition] = len(fr.Records)
		}
	}
	return out
}

func sameParts(got map[int32]int, want map[int32]int) bool {
	if len(got) != len(want) {
		return false
	}
	for p, n := range want {
		if g, ok := got[p]; !ok || g != n {
			return false
		}
	}
	return true
}

// fetchSessionsMetric reads gregor_fetch_sessions from the node's /metrics.
func fetchSessionsMetric(t *testing.T, n *node.Node) int {
	t.Helper()
	v, ok := scrapeMetric(t, n, "gregor_fetch_sessions")
	if !ok {
		t.Fatalf("metrics: no gregor_fetch_sessions")
	}
	return int(v)
}

func produceTo(t *testing.T, p *kgo.Client, partition int32, n int) {
	t.Helper()
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Value: []byte(fmt.Sprintf("p%d-%d", partition, i)), Partition: partition}
	}
	if err := p.ProduceSync(testCtx(t, 10*time.Second), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestE2EFetchSessionLifecycle drives one session through raw requests:
// creation, incremental fetches that return only what changed (also from a
// parked long poll listing no partitions), forgotten partitions, epoch and
// id errors, and closing with epoch -1.
func TestE2EFetchSessionLifecycle(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	const topic = "sessions"
	createTopic(t, adm, topic, 3, nil)
	p := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for part := range int32(3) {
		produceTo(t, p, part, 1)
	}

	resp := sessFetch{epoch: 0, parts: map[int32]int64{0: 0, 1: 0, 2: 0}}.send(t, cl, topic)
	id := resp.SessionID
	if id == 0 {
		t.Fatalf("epoch 0 fetch: session id 0, want a new session")
	}
	if got := sessParts(t, resp); !sameParts(got, map[int32]int{0: 1, 1: 1, 2: 1}) {
		t.Fatalf("initial fetch: %v, want one record from each of 3 partitions", got)
	}
	if m := fetchSessionsMetric(t, n); m != 1 {
		t.Fatalf("gregor_fetch_sessions %d, want 1", m)
	}

	steps := []struct {
		name   string
		before func(t *testing.T)
		fetch  sessFetch
		want   map[int32]int
	}{
		{"offsets advanced, nothing new", nil,
			sessFetch{epoch: 1, parts: map[int32]int64{0: 1, 1: 1, 2: 1}, minBytes: 1, maxWait: 50 * time.Millisecond},
			map[int32]int{}},
		{"no partitions listed, one got records", func(t *testing.T) { produceTo(t, p, 1, 2) },
			sessFetch{epoch: 2, minBytes: 1, maxWait: 5 * time.Second},
			map[int32]int{1: 2}},
		{"forgotten partition is not returned", func(t *testing.T) { produceTo(t, p, 2, 1); produceTo(t, p, 0, 3) },
			sessFetch{epoch: 3, parts: map[int32]int64{1: 3}, forget: []int32{2}, minBytes: 1, maxWait: 5 * time.Second},
			map[int32]int{0: 3}},
		{"fetch offset update alone, nothing new", nil,
			sessFetch{epoch: 4, parts: map[int32]int64{0: 4}},
			map[int32]int{}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.before != nil {
				s.before(t)
			}
			s.fetch.id = id
			resp := s.fetch.send(t, cl, topic)
			if resp.SessionID != id {
				t.Fatalf("session id %d, want %d", resp.SessionID, id)
			}
			if got := sessParts(t, resp); !sameParts(got, s.want) {
				t.Fatalf("partitions (records) %v, want %v", got, s.want)
			}
		})
	}

	t.Run("parked incremental fetch with no partitions wakes on append", func(t *testing.T) {
		// Nothing is new: the fetch parks on the session's partitions 0 and 1.
		type result struct {
			resp kmsg.Response
			err  error
		}
		done := make(chan result, 1)
		var wg sync.WaitGroup
		t.Cleanup(wg.Wait)
		start := time.Now()
		req := sessFetch{id: id, epoch: 5, minBytes: 1, maxWait: 20 * time.Second}.request(topic)
		ctx := testCtx(t, 15*time.Second)
		sent := make(chan struct{}, 1)
		fcl := newClient(t, n, kgo.WithHooks(fetchHook(sent)))
		wg.Go(func() {
			resp, err := fcl.Broker(1).Request(ctx, req)
			done <- result{resp, err}
		})
		select {
		case <-sent:
		case <-ctx.Done():
			t.Fatalf("parked fetch never written")
		}
		produceTo(t, p, 1, 1)
		var resp *kmsg.FetchResponse
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("parked fetch: %v", r.err)
			}
			resp = r.resp.(*kmsg.FetchResponse)
		case <-ctx.Done():
			t.Fatalf("parked fetch not woken by an append")
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("parked fetch answered after %v: woken by the time-out, not the append", took)
		}
		if got := sessParts(t, resp); !sameParts(got, map[int32]int{1: 1}) {
			t.Fatalf("partitions (records) %v, want only partition 1 with 1 record", got)
		}
	})

	errs := []struct {
		name  string
		id    int32
		epoch int32
		want  error
	}{
		{"wrong epoch", id, 9, kerr.InvalidFetchSessionEpoch},
		{"unknown id", id ^ 0x40000000, 6, kerr.FetchSessionIDNotFound},
	}
	for _, e := range errs {
		t.Run(e.name, func(t *testing.T) {
			resp := sessFetch{id: e.id, epoch: e.epoch}.send(t, cl, topic)
			if err := kerr.ErrorForCode(resp.ErrorCode); err != e.want || len(resp.Topics) != 0 || resp.SessionID != 0 {
				t.Fatalf("error %v with %d topics, session %d; want %v, no topics, session 0", err, len(resp.Topics), resp.SessionID, e.want)
			}
		})
	}

	t.Run("session survives errors, epoch -1 closes it", func(t *testing.T) {
		resp := sessFetch{id: id, epoch: 6, parts: map[int32]int64{1: 4}, minBytes: 0}.send(t, cl, topic)
		if resp.ErrorCode != 0 || resp.SessionID != id {
			t.Fatalf("epoch 6 after refused requests: error %v, session %d", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID)
		}
		resp = sessFetch{id: id, epoch: -1, parts: map[int32]int64{0: 0, 1: 0}}.send(t, cl, topic)
		if resp.SessionID != 0 {
			t.Fatalf("epoch -1: session id %d, want 0", resp.SessionID)
		}
		if got := sessParts(t, resp); !sameParts(got, map[int32]int{0: 4, 1: 4}) {
			t.Fatalf("epoch -1 full fetch: %v, want all records of partitions 0 and 1", got)
		}
		resp = sessFetch{id: id, epoch: 7}.send(t, cl, topic)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != kerr.FetchSessionIDNotFound {
			t.Fatalf("closed session: error %v, want FETCH_SESSION_ID_NOT_FOUND", err)
		}
		if m := fetchSessionsMetric(t, n); m != 0 {
			t.Fatalf("gregor_fetch_sessions %d after close, want 0", m)
		}
	})
}

// TestE2EFetchSessionCacheFull checks a full cache answers session id 0 with
// a full response and leaves the existing session working.
func TestE2EFetchSessionCacheFull(t *testing.T) {
	n := startNode(t, t.TempDir(), map[string]string{"max.incremental.fetch.session.cache.slots": "1"})
	adm, cl := newAdmin(t, n)
	const topic = "full-cache"
	createTopic(t, adm, topic, 2, nil)
	p := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceTo(t, p, 0, 2)
	produceTo(t, p, 1, 3)
	all := map[int32]int64{0: 0, 1: 0}

	first := sessFetch{epoch: 0, parts: all}.send(t, cl, topic)
	if first.SessionID == 0 {
		t.Fatalf("first session not created")
	}
	second := sessFetch{epoch: 0, parts: all}.send(t, cl, topic)
	if second.SessionID != 0 {
		t.Fatalf("second session %d created in a cache of 1 slot holding a session as big", second.SessionID)
	}
	if got := sessParts(t, second); !sameParts(got, map[int32]int{0: 2, 1: 3}) {
		t.Fatalf("full fetch without a session: %v, want every record", got)
	}
	resp := sessFetch{id: first.SessionID, epoch: 1, parts: map[int32]int64{0: 2, 1: 3}}.send(t, cl, topic)
	if resp.ErrorCode != 0 || resp.SessionID != first.SessionID {
		t.Fatalf("first session after the refused one: error %v, session %d", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID)
	}
	if m := fetchSessionsMetric(t, n); m != 1 {
		t.Fatalf("gregor_fetch_sessions %d, want 1", m)
	}
}

// TestE2EFetchSessionConsumer checks franz-go consumers, which use fetch
// sessions, read 8 partitions written concurrently over many small fetches
// and get every record exactly once, while the session count stays within
// the cache slots.
func TestE2EFetchSessionConsumer(t *testing.T) {
	const slots = 2
	n := startNode(t, t.TempDir(), map[string]string{"max.incremental.fetch.session.cache.slots": strconv.Itoa(slots)})
	adm, _ := newAdmin(t, n)
	const topic = "session-consumer"
	const parts, perPart = 8, 300
	pad := strings.Repeat("x", 100) // 300 KB in all: many fetches of at most 4 KB
	createTopic(t, adm, topic, parts, nil)
	p := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	prodErr := make(chan error, 1)
	wg.Go(func() {
		// Small batches, spread over time, so consumers see many fetches.
		for i := 0; i < perPart; i += 10 {
			var rs []*kgo.Record
			for part := range int32(parts) {
				for j := i; j < i+10; j++ {
					rs = append(rs, &kgo.Record{Value: []byte(fmt.Sprintf("%d-%d%s", part, j, pad)), Partition: part})
				}
			}
			if err := p.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				prodErr <- err
				return
			}
		}
		prodErr <- nil
	})

	maxSessions := 0 // the most sessions seen open while a consumer polls
	consume := func(t *testing.T) {
		offs := map[int32]kgo.Offset{}
		for part := range int32(parts) {
			offs[part] = kgo.NewOffset().AtStart()
		}
		c := newClient(t, n, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
			kgo.FetchMaxWait(200*time.Millisecond), kgo.FetchMaxPartitionBytes(2048), kgo.FetchMaxBytes(4096))
		defer c.Close()
		seen := map[string]int{}
		fetches, total := 0, 0
		for total < parts*perPart {
			fs := c.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("got %d of %d records before the deadline", total, parts*perPart)
			}
			fs.EachError(func(tp string, pa int32, err error) { t.Fatalf("consume %s[%d]: %v", tp, pa, err) })
			fetches++
			fs.EachRecord(func(r *kgo.Record) {
				want := fmt.Sprintf("%d-%d", r.Partition, r.Offset)
				if string(r.Value) != want+pad {
					t.Fatalf("record at %d/%d holds %q", r.Partition, r.Offset, r.Value)
				}
				seen[want]++
				total++
			})
			m := fetchSessionsMetric(t, n)
			if m > slots {
				t.Fatalf("gregor_fetch_sessions %d, above the %d slots", m, slots)
			}
			maxSessions = max(maxSessions, m)
		}
		if total != parts*perPart || len(seen) != parts*perPart {
			t.Fatalf("%d records, %d distinct, want %d once each", total, len(seen), parts*perPart)
		}
		for k, c := range seen {
			if c != 1 {
				t.Fatalf("record %s seen %d times", k, c)
			}
		}
		if fetches < 20 {
			t.Fatalf("only %d polls: the test did not exercise many fetches", fetches)
		}
	}
	t.Run("first consumer (a new session)", func(t *testing.T) {
		consume(t)
		if maxSessions < 1 {
			t.Fatalf("no fetch session open while a franz-go consumer polled")
		}
	})
	if err := <-prodErr; err != nil {
		t.Fatalf("produce: %v", err)
	}
	// More consumers than slots: later ones may find no room and read
	// sessionless, which must be just as exact.
	for i := range slots + 1 {
		t.Run(fmt.Sprintf("consumer %d", i+2), consume)
	}
	if m := fetchSessionsMetric(t, n); m > slots {
		t.Fatalf("gregor_fetch_sessions %d, above the %d slots", m, slots)
	}
}
