package broker_test

// Benchmarks of the produce handler and the fetch read path end to end in
// process: a real node (controller, server, broker, replica, commitlog) on
// 127.0.0.1:0 driven by franz-go over loopback TCP, the way clients reach it.
// They measure the broker plus the client and the loopback, so compare them
// with the same benchmark at an earlier commit, not with absolute targets.

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/node"
)

func benchNode(b *testing.B) *node.Node {
	b.Helper()
	cfg := config.DefaultNode()
	cfg.DataDir = b.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.ControllerAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, cfg, nil)
	if err != nil {
		b.Fatalf("node.Start: %v", err)
	}
	b.Cleanup(func() { n.Close() })
	return n
}

func benchClient(b *testing.B, n *node.Node, opts ...kgo.Opt) *kgo.Client {
	b.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.KafkaAddr().String())}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	return cl
}

func benchTopic(b *testing.B, n *node.Node, topic string, partitions int32) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	adm := kadm.NewClient(benchClient(b, n))
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		b.Fatalf("create topic: %v", err)
	}
}

// BenchmarkProduceAcksAll1Partition: one op is one 100-byte record produced
// with acks=all (non-idempotent, no linger) to a one-partition topic, with
// franz-go batching whatever queues up while a request is in flight.
func BenchmarkProduceAcksAll1Partition(b *testing.B) {
	n := benchNode(b)
	benchTopic(b, n, "bench-produce", 1)
	cl := benchClient(b, n, kgo.DefaultProduceTopic("bench-produce"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DisableIdempotentWrite(), kgo.ProducerLinger(0))
	ctx := context.Background()
	// Warm up: metadata, connection, first segment.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 100)}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	var failed atomic.Int64
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		cl.Produce(ctx, &kgo.Record{Value: value}, promise)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d records failed", f)
	}
}

// BenchmarkProduceSyncAcksAll1Partition: one op is one produce request of a
// single record waited for: the request round trip, latency bound.
func BenchmarkProduceSyncAcksAll1Partition(b *testing.B) {
	n := benchNode(b)
	benchTopic(b, n, "bench-sync", 1)
	cl := benchClient(b, n, kgo.DefaultProduceTopic("bench-sync"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DisableIdempotentWrite())
	ctx := context.Background()
	value := make([]byte, 100)
	b.ReportAllocs()
	for b.Loop() {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchCatchUp: one op is a fresh consumer reading a pre-filled
// topic (8 partitions, 1 KiB records) from the start to the end: the
// catch-up read path (segment reads and fetch response assembly).
func BenchmarkFetchCatchUp(b *testing.B) {
	const (
		partitions = 8
		records    = 20000
		size       = 1024
	)
	n := benchNode(b)
	benchTopic(b, n, "bench-fetch", partitions)
	p := benchClient(b, n, kgo.DefaultProduceTopic("bench-fetch"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	value := make([]byte, size)
	for range records {
		p.Produce(ctx, &kgo.Record{Value: value}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(records * size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr().String()),
			kgo.ConsumeTopics("bench-fetch"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.ClientID(fmt.Sprintf("bench-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for got < records {
			fs := c.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				b.Fatalf("after %d records: %v", got, err)
			}
			fs.EachError(func(_ string, _ int32, err error) { b.Fatalf("fetch: %v", err) })
			got += fs.NumRecords()
		}
		c.Close()
	}
}
