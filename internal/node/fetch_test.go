package node_test

import (
	"bytes"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/record"
)

// TestE2EFetchLimits checks KIP-74: the first batch is returned whole even
// above the byte limits, and limits stop later batches.
func TestE2EFetchLimits(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	const topic = "limits"
	createTopic(t, adm, topic, 1, nil)
	p := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx := testCtx(t, 20*time.Second)
	for i := range 3 {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: bytes.Repeat([]byte{byte('a' + i)}, 3000)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(partMax, max int32) []record.Header {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxBytes, req.SessionEpoch = -1, max, -1
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes, fp.CurrentLeaderEpoch, fp.LogStartOffset = partMax, -1, -1
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		resp := rawRequest[*kmsg.FetchResponse](t, cl, req)
		part := resp.Topics[0].Partitions[0]
		if part.ErrorCode != 0 {
			t.Fatalf("fetch: %v", kerr.ErrorForCode(part.ErrorCode))
		}
		var hs []record.Header
		sp := record.Split(part.RecordBatches)
		for {
			b, ok := sp.Next()
			if !ok {
				break
			}
			h, err := record.Validate(b)
			if err != nil {
				t.Fatalf("fetched batch: %v", err)
			}
			hs = append(hs, h)
		}
		return hs
	}
	cases := []struct {
		name         string
		partMax, max int32
		want         int
	}{
		{"partition limit below one batch", 100, 1 << 20, 1},
		{"request limit below one batch", 1 << 20, 100, 1},
		{"room for two", 6500, 1 << 20, 2},
		{"room for all", 1 << 20, 1 << 20, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if hs := fetch(c.partMax, c.max); len(hs) != c.want {
				t.Fatalf("%d whole batches, want %d", len(hs), c.want)
			}
		})
	}
}

// TestE2ERetention checks time retention deletes closed segments and moves
// the log start offset, never touching the active segment.
func TestE2ERetention(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, map[string]string{"log.retention.check.interval.ms": "100"})
	adm, _ := newAdmin(t, n)
	const topic = "retained"
	createTopic(t, adm, topic, 1, map[string]*string{"segment.bytes": strp("1024"), "retention.ms": strp("600000")})
	p := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx := testCtx(t, 30*time.Second)
	old := time.Now().Add(-time.Hour)
	for i := range 20 {
		// Old timestamps: every closed segment is past retention.
		if err := p.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 300), Timestamp: old.Add(time.Duration(i) * time.Millisecond)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Retention may run while the records are produced and delete the
	// closed segments in several passes; the end state is the active
	// segment alone, whose base offset is then the log start offset.
	pdir := filepath.Join(dir, topic+"-0")
	deadline := time.Now().Add(10 * time.Second)
	var segs []string
	for {
		segs, _ = filepath.Glob(filepath.Join(pdir, "*.log"))
		if len(segs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention.ms=600000 with hour-old records left %d segments after 10s (check interval 100ms)", len(segs))
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // poll interval
		}
	}
	base, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(segs[0]), ".log"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if base == 0 || base >= 20 {
		t.Fatalf("active segment base %d: retention deleted nothing or the active segment", base)
	}
	lo, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lo.Lookup(topic, 0); o.Offset != base {
		t.Fatalf("start offset %d, want the active segment's base %d", o.Offset, base)
	}
	if end := endOffset(t, adm, topic, 0); end != 20 {
		t.Fatalf("end offset %d after retention, want 20", end)
	}
	got := consumePartitions(t, n, topic, []int32{0}, int(20-base))
	if got[0].Offset != base {
		t.Fatalf("first readable offset %d, start offset %d", got[0].Offset, base)
	}
}

// TestE2ELogAppendTime checks message.timestamp.type=LogAppendTime stamps
// records with the broker's clock.
func TestE2ELogAppendTime(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	const topic = "appendtime"
	createTopic(t, adm, topic, 1, map[string]*string{"message.timestamp.type": strp("LogAppendTime")})
	p := newClient(t, n, kgo.DefaultProduceTopic(topic))
	ctx := testCtx(t, 20*time.Second)
	before := time.Now().Add(-time.Second)
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("x"), Timestamp: time.Unix(1000, 0)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := consumePartitions(t, n, topic, []int32{0}, 1)
	if ts := got[0].Timestamp; ts.Before(before) || ts.After(time.Now().Add(time.Second)) {
		t.Fatalf("record timestamp %v, want the broker's append time (~%v)", ts, before)
	}
	if got[0].Attrs.TimestampType() != 1 {
		t.Fatalf("timestamp type %d, want 1 (LogAppendTime)", got[0].Attrs.TimestampType())
	}
}

// TestE2EFetchLimitsAcrossPartitions checks KIP-74 across partitions: only
// the first partition that returns records may go over the limits with its
// first batch. librdkafka's 0082_fetch_max_bytes found a response of two
// 900 KiB batches to a fetch.max.bytes of 1,000,000, which the client
// refuses as larger than receive.message.max.bytes.
func TestE2EFetchLimitsAcrossPartitions(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	const topic = "limits-parts"
	createTopic(t, adm, topic, 3, nil)
	p := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx := testCtx(t, 20*time.Second)
	for i := range int32(3) {
		r := &kgo.Record{Partition: i, Value: bytes.Repeat([]byte{byte('a' + i)}, 3000)}
		if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(partMax, max int32) (batches []int, total int) {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxBytes, req.SessionEpoch = -1, max, -1
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		for i := range int32(3) {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch, fp.LogStartOffset = i, partMax, -1, -1
			ft.Partitions = append(ft.Partitions, fp)
		}
		req.Topics = append(req.Topics, ft)
		resp := rawRequest[*kmsg.FetchResponse](t, cl, req)
		batches = make([]int, 3)
		for _, part := range resp.Topics[0].Partitions {
			if part.ErrorCode != 0 {
				t.Fatalf("fetch partition %d: %v", part.Partition, kerr.ErrorForCode(part.ErrorCode))
			}
			sp := record.Split(part.RecordBatches)
			for {
				b, ok := sp.Next()
				if !ok {
					break
				}
				if _, err := record.Validate(b); err != nil {
					t.Fatalf("fetched batch: %v", err)
				}
				batches[part.Partition]++
				total += len(b)
			}
		}
		return batches, total
	}
	cases := []struct {
		name         string
		partMax, max int32
		want         []int
	}{
		{"request limit below one batch", 1 << 20, 100, []int{1, 0, 0}},
		{"request limit above one batch, below two", 1 << 20, 5000, []int{1, 0, 0}},
		{"partition limit below one batch", 100, 1 << 20, []int{1, 0, 0}},
		{"room for two", 1 << 20, 6500, []int{1, 1, 0}},
		{"room for all", 1 << 20, 1 << 20, []int{1, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, total := fetch(c.partMax, c.max)
			if !slices.Equal(got, c.want) {
				t.Fatalf("batches per partition %v (%d bytes), want %v", got, total, c.want)
			}
			if got[1]+got[2] > 0 && total > int(c.max) {
				t.Fatalf("%d bytes of records from several partitions, over the limit of %d", total, c.max)
			}
		})
	}
}
