package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestProduceManyPartitionsOneRequest: the batches of one produce are
// appended side by side (one goroutine per core); each partition still gets
// its own offsets, a corrupt batch fails only its partition, and a partition
// named twice in one request is appended in request order.
func TestProduceManyPartitionsOneRequest(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	const topic, parts = "many", 8
	createTopic(t, adm, topic, parts, nil)

	send := func(round int, dup bool) *kmsg.ProduceResponse {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		for p := range int32(parts) {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = p
			rp.Records = rawBatch(t, -1, -1, -1, int(p)+1, fmt.Sprintf("r%d-p%d", round, p))
			if p == 3 {
				rp.Records[20] ^= 0xff // inside the CRC-covered bytes
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		if dup {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = 5
			rp.Records = rawBatch(t, -1, -1, -1, 2, fmt.Sprintf("r%d-p5-again", round))
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		return rawRequest[*kmsg.ProduceResponse](t, cl, req)
	}
	for round := range 3 {
		resp := send(round, round == 2)
		for i, rp := range resp.Topics[0].Partitions {
			p := rp.Partition
			switch {
			case i == parts:
				// the repeated partition, checked below
			case p == 3:
				if rp.ErrorCode != kerr.CorruptMessage.Code {
					t.Fatalf("round %d: corrupt batch on partition 3: code %d, want CORRUPT_MESSAGE", round, rp.ErrorCode)
				}
			case rp.ErrorCode != 0:
				t.Fatalf("round %d partition %d: %v", round, p, kerr.ErrorForCode(rp.ErrorCode))
			case rp.BaseOffset != int64(round)*int64(p+1):
				t.Fatalf("round %d partition %d: base offset %d, want %d", round, p, rp.BaseOffset, int64(round)*int64(p+1))
			}
		}
		if round == 2 {
			// The repeated partition 5 comes after its first batch (6 records).
			if last := resp.Topics[0].Partitions[parts]; last.ErrorCode != 0 || last.BaseOffset != 3*6 {
				t.Fatalf("repeated partition 5: code %d, base offset %d, want 18", last.ErrorCode, last.BaseOffset)
			}
		}
	}
	for p := range int32(parts) {
		want := int64(3 * (p + 1))
		if p == 3 {
			want = 0
		}
		if p == 5 {
			want += 2
		}
		if got := endOffset(t, adm, topic, p); got != want {
			t.Fatalf("partition %d: end offset %d, want %d", p, got, want)
		}
	}
	recs := consumePartitions(t, n, topic, []int32{5}, 20, kgo.FetchMaxWait(100*time.Millisecond))
	if v := string(recs[18].Value); v != "r2-p5-again-0" {
		t.Fatalf("offset 18 of partition 5 holds %q, want r2-p5-again-0", v)
	}
}
