package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBinaryCrashProducersSurvive kills the broker under idempotent acks=all
// producers that stay alive, restarts it on the same Kafka address, and lets
// the producers retry their unacknowledged batches into the recovered log:
// batches that survived the crash must be recognised from the recovered
// producer state and not written twice.
func TestBinaryCrashProducersSurvive(t *testing.T) {
	dir := t.TempDir()
	const topic = "survive"
	p := startBinary(t, dir, "log.segment.bytes=262144")
	addr := p.kafkaAddr
	createTopic(t, p, topic, crashPartitions, nil)

	var (
		mu     sync.Mutex
		acked  = map[string]bool{}
		failed int
		errs   = map[string]int{}
		wg     sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clients := make([]*kgo.Client, crashProducers)
	for i := range clients {
		clients[i] = newClient(t, p, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(time.Millisecond),
			kgo.RecordDeliveryTimeout(30*time.Second), kgo.RetryTimeout(30*time.Second),
			kgo.MaxBufferedRecords(1000))
	}
	for i, cl := range clients {
		wg.Go(func() {
			for seq := 0; ctx.Err() == nil; seq++ {
				r := &kgo.Record{Value: value(i, seq), Partition: int32(seq % crashPartitions)}
				cl.Produce(ctx, r, func(r *kgo.Record, err error) {
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						acked[string(r.Value)] = true
					} else {
						failed++
						errs[err.Error()]++
					}
				})
			}
		})
	}
	time.Sleep(time.Second) // let the producers run before the crash
	p.kill()
	mu.Lock()
	atKill := len(acked)
	mu.Unlock()
	p2 := startBinaryOn(t, dir, addr, "log.segment.bytes=262144")
	time.Sleep(time.Second) // let the producers retry and continue
	cancel()
	wg.Wait()
	for _, cl := range clients {
		fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := cl.Flush(fctx); err != nil {
			t.Errorf("flush: %v", err)
		}
		fcancel()
		cl.Close()
	}
	mu.Lock()
	t.Logf("%d acknowledged before the kill, %d in all, %d failed: %v", atKill, len(acked), failed, errs)
	if len(acked) <= atKill {
		t.Errorf("no record acknowledged after the restart")
	}
	mu.Unlock()
	recs := readAll(t, p2, topic)
	checkLog(t, recs, acked, crashPartitions)
}
