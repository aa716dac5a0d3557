package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// parkedFetch sends a raw fetch of partitions 0..parts-1 at offset 0 with a
// long max wait on its own client and returns once the request is on the
// wire; the response and its arrival time come on the returned channel.
func parkedFetch(t *testing.T, addr string, topic string, parts int32, maxWait time.Duration) <-chan fetchResult {
	t.Helper()
	sent := make(chan struct{}, 4)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.WithHooks(fetchHook(sent)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	// Connect first, so the only fetch written is ours.
	if _, err := cl.Broker(1).Request(testCtx(t, 10*time.Second), kmsg.NewPtrApiVersionsRequest()); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxBytes, req.SessionEpoch = -1, 1<<20, -1
	req.MaxWaitMillis, req.MinBytes = int32(maxWait/time.Millisecond), 1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	for p := range parts {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch, fp.LogStartOffset = p, 1<<20, -1, -1
		ft.Partitions = append(ft.Partitions, fp)
	}
	req.Topics = append(req.Topics, ft)
	out := make(chan fetchResult, 1)
	ctx, cancel := context.WithTimeout(context.Background(), maxWait+10*time.Second)
	t.Cleanup(cancel)
	go func() {
		resp, err := cl.Broker(1).Request(ctx, req)
		fr := fetchResult{at: time.Now(), err: err}
		if err == nil {
			fr.resp = resp.(*kmsg.FetchResponse)
		}
		out <- fr
	}()
	select {
	case <-sent:
	case <-ctx.Done():
		t.Fatal("fetch never written")
	}
	return out
}

type fetchResult struct {
	resp *kmsg.FetchResponse
	at   time.Time
	err  error
}

// TestE2ELongPollPartitions checks a fetch parked on several partitions
// wakes when any one of them gets data, and when its topic is deleted.
func TestE2ELongPollPartitions(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	const topic = "multi-wait"
	createTopic(t, adm, topic, 3, nil)
	const maxWait = 15 * time.Second

	t.Run("append to the last partition", func(t *testing.T) {
		res := parkedFetch(t, n.KafkaAddr().String(), topic, 3, maxWait)
		p := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		produced := time.Now()
		if err := p.ProduceSync(testCtx(t, 10*time.Second), &kgo.Record{Value: []byte("x"), Partition: 2}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		r := <-res
		if r.err != nil {
			t.Fatal(r.err)
		}
		if d := r.at.Sub(produced); d > 3*time.Second {
			t.Fatalf("fetch answered %v after the append (max wait %v)", d, maxWait)
		}
		var got int
		for _, part := range r.resp.Topics[0].Partitions {
			if part.Partition == 2 && len(part.RecordBatches) > 0 {
				got++
			}
		}
		if got != 1 {
			t.Fatalf("partition 2 data missing from the woken fetch")
		}
	})
	t.Run("topic deleted", func(t *testing.T) {
		createTopic(t, adm, "doomed", 1, nil)
		res := parkedFetch(t, n.KafkaAddr().String(), "doomed", 1, maxWait)
		deleted := time.Now()
		if dr, err := adm.DeleteTopic(testCtx(t, 10*time.Second), "doomed"); err != nil || dr.Err != nil {
			t.Fatalf("delete: %v %v", err, dr.Err)
		}
		r := <-res
		if r.err != nil {
			t.Fatal(r.err)
		}
		if d := r.at.Sub(deleted); d > 5*time.Second {
			t.Errorf("fetch parked on a deleted topic answered only after %v (max wait %v)", d, maxWait)
		}
		if code := r.resp.Topics[0].Partitions[0].ErrorCode; code == 0 {
			t.Logf("fetch of the deleted topic answered with no error")
		} else {
			t.Logf("fetch of the deleted topic: %v", kerr.ErrorForCode(code))
		}
	})
}
