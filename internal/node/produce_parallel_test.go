package node_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/commitlog"

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

// TestPreallocateTopicConfig: preallocate=true on a topic reserves its
// segment file ahead of the batches; consumers still read exactly what was
// produced, also after a restart.
func TestPreallocateTopicConfig(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "pre", 1, map[string]*string{"preallocate": strp("true")})
	cl := newClient(t, n, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("pre"))
	for i := range 10 {
		if err := cl.ProduceSync(testCtx(t, 10*time.Second), &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var logFile string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".log") && strings.Contains(p, "pre-0") {
			logFile = p
		}
		return nil
	})
	fi, err := os.Stat(logFile)
	if err != nil {
		t.Fatalf("segment file of pre-0: %v", err)
	}
	if fi.Size() < commitlog.PreallocateStep {
		t.Skipf("segment file %d bytes: the filesystem does not preallocate", fi.Size())
	}
	recs := consumePartitions(t, n, "pre", []int32{0}, 10)
	for i, r := range recs {
		if string(r.Value) != fmt.Sprintf("v%d", i) {
			t.Fatalf("offset %d holds %q", i, r.Value)
		}
	}
	if got := endOffset(t, adm, "pre", 0); got != 10 {
		t.Fatalf("end offset %d, want 10", got)
	}
}
