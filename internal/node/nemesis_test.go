package node_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestClusterNemesisLinks runs a seeded schedule of link faults on the
// in-process harness under an idempotent acks=all producer (RF=3,
// min.insync.replicas=2): a node isolated, two nodes cut from each other,
// one-way cuts, clean restarts, each held for a while and healed. Afterwards every
// acknowledged record is read exactly once at the offset its
// acknowledgement named, no value appears twice, and the three logs are
// byte-identical. GREGOR_NEMESIS_SEED replays a schedule.
func TestClusterNemesisLinks(t *testing.T) {
	if testing.Short() {
		t.Skip("a fault schedule of about 30 s")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GREGOR_NEMESIS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("nemesis seed %d (GREGOR_NEMESIS_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	props := map[string]string{"broker.session.timeout.ms": "1500", "broker.heartbeat.interval.ms": "300",
		"replica.lag.time.max.ms": "2000"}
	c := startFaultCluster(t, props)
	const topic = "nemesis"
	createAssigned(t, c, topic, []int32{1, 2, 3}, map[string]string{"min.insync.replicas": "2"})

	var seeds []string
	for _, nd := range c.nodes {
		seeds = append(seeds, nd.KafkaAddr().String())
	}
	cl := newClient(t, c.nodes[0], kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(20*time.Second),
		kgo.MetadataMinAge(100*time.Millisecond), kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	type ack struct {
		value  string
		offset int64
	}
	var (
		mu    sync.Mutex
		acks  []ack
		fails int
	)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 0; ; i += 5 {
			select {
			case <-stop:
				return
			default:
			}
			var recs []*kgo.Record
			for k := i; k < i+5; k++ {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprintf("v-%d", k))})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			res := cl.ProduceSync(ctx, recs...)
			cancel()
			mu.Lock()
			for _, r := range res {
				if r.Err != nil {
					fails++
					continue
				}
				acks = append(acks, ack{string(r.Record.Value), r.Record.Offset})
			}
			mu.Unlock()
		}
	}()
	acked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acks)
	}

	ids := []int32{1, 2, 3}
	pick := func() (int32, int32) {
		a := ids[rng.IntN(3)]
		b := ids[rng.IntN(3)]
		for b == a {
			b = ids[rng.IntN(3)]
		}
		return a, b
	}
	for step := range 8 {
		var what string
		var restart int32
		switch rng.IntN(4) {
		case 3:
			// A clean restart: the node asks to be fenced, closes and
			// comes back on its data (re-registration, catch-up).
			restart, _ = pick()
			if err := c.nodes[restart-1].Close(); err != nil {
				t.Fatalf("close node %d: %v", restart, err)
			}
			what = fmt.Sprintf("restart %d", restart)
		case 0:
			a, _ := pick()
			c.net.isolate(a, ids...)
			what = fmt.Sprintf("isolate %d", a)
		case 1:
			a, b := pick()
			c.net.cutLink(a, b)
			c.net.cutLink(b, a)
			what = fmt.Sprintf("cut %d<->%d", a, b)
		default:
			a, b := pick()
			c.net.cutLink(a, b)
			what = fmt.Sprintf("cut %d->%d", a, b)
		}
		hold := time.Duration(500+rng.IntN(2500)) * time.Millisecond
		before := acked()
		time.Sleep(hold) // the fault's duration, part of the schedule
		c.net.heal()
		if restart > 0 {
			n, err := c.start(int(restart - 1))
			if err != nil {
				t.Fatalf("restart node %d: %v", restart, err)
			}
			t.Cleanup(func() { n.Close() })
			c.nodes[restart-1] = n
		}
		// Writes resume once healed: a schedule of faults that never lets
		// anything through checks nothing.
		checkFor(t, fmt.Sprintf("step %d (%s, %v): writes after healing", step, what, hold), func() bool {
			return acked() > before
		})
		t.Logf("step %d: %s for %v; %d acknowledged", step, what, hold, acked())
	}
	close(stop)
	<-stopped

	var leader int32 = -1
	checkFor(t, "a leader with the full ISR", func() bool {
		l := leaderOf(c.cluster, topic, 0)
		if l == nil {
			return false
		}
		leader = l.NodeID()
		return len(isrOf(t, l, topic, 0)) == 3
	})
	ln := c.nodes[leader-1]
	lst, _ := ln.Replica(topic, 0)
	want := segmentBytes(t, lst.Dir)
	for _, nd := range c.nodes {
		checkFor(t, fmt.Sprintf("node %d's replica to catch up", nd.NodeID()), func() bool {
			st, _ := nd.Replica(topic, 0)
			return st.LogEndOffset == lst.LogEndOffset && st.HighWatermark == lst.HighWatermark
		})
		st, _ := nd.Replica(topic, 0)
		if !bytes.Equal(segmentBytes(t, st.Dir), want) {
			t.Fatalf("seed %d: node %d's log differs from the leader's", seed, nd.NodeID())
		}
	}
	recs := consumePartitions(t, ln, topic, []int32{0}, int(lst.HighWatermark))
	at := make(map[int64]string, len(recs))
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		if seen[string(r.Value)] {
			t.Fatalf("seed %d: %q read twice (offset %d)", seed, r.Value, r.Offset)
		}
		seen[string(r.Value)] = true
		at[r.Offset] = string(r.Value)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range acks {
		if got, ok := at[a.offset]; !ok || got != a.value {
			t.Fatalf("seed %d: acknowledged %q at offset %d, the log has %q there", seed, a.value, a.offset, got)
		}
	}
	t.Logf("seed %d: %d acknowledged, %d failed, %d in the log", seed, len(acks), fails, len(recs))
}
