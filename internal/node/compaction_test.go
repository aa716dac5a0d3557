package node_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregor-dev/gregor/internal/record"
)

// TestE2ECompaction: 1000 records over 20 keys to a compacted topic; once the
// cleaner has run, a consumer from the start sees, below the active segment,
// exactly the last value of each key, every record at its original offset.
func TestE2ECompaction(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, map[string]string{"log.cleaner.backoff.ms": "100"})
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "compacted", 1, map[string]*string{"cleanup.policy": strp("compact"), "segment.bytes": strp("4096")})
	cl := newClient(t, n, kgo.DefaultProduceTopic("compacted"), kgo.ProducerLinger(0))
	byOffset := map[int64]string{}
	lastOf := map[string]int64{}
	for batch := range 50 {
		recs := make([]*kgo.Record, 20)
		for i := range recs {
			k := fmt.Sprintf("key-%02d", i)
			recs[i] = &kgo.Record{Key: []byte(k), Value: []byte(fmt.Sprintf("%s=%d", k, batch))}
		}
		res := cl.ProduceSync(testCtx(t, 10*time.Second), recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			byOffset[r.Record.Offset] = string(r.Record.Value)
			lastOf[string(r.Record.Key)] = r.Record.Offset
		}
	}
	if len(byOffset) != 1000 {
		t.Fatalf("%d offsets", len(byOffset))
	}
	// Wait for the cleaner: the clean point file moves past offset 0.
	point := int64(0)
	deadline := time.Now().Add(20 * time.Second)
	for point == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the cleaner did not run")
		}
		b, _ := os.ReadFile(filepath.Join(dir, "compacted-0", "cleaner-offset-checkpoint"))
		point, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		time.Sleep(50 * time.Millisecond) // poll the file the node writes, with a deadline
	}
	// Read everything up to the last offset.
	c := newClient(t, n, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"compacted": {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(200*time.Millisecond))
	ctx := testCtx(t, 15*time.Second)
	var got []*kgo.Record
	for len(got) == 0 || got[len(got)-1].Offset < 999 {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records before the deadline", len(got))
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
		got = append(got, fs.Records()...)
	}
	perKey := map[string]int{}
	for i, r := range got {
		if byOffset[r.Offset] != string(r.Value) {
			t.Fatalf("offset %d: %q, produced %q", r.Offset, r.Value, byOffset[r.Offset])
		}
		if i > 0 && r.Offset <= got[i-1].Offset {
			t.Fatalf("offsets out of order")
		}
		if r.Offset < point {
			perKey[string(r.Key)]++
			if lastOf[string(r.Key)] >= point {
				continue // a newer value sits past the clean point
			}
			if lastOf[string(r.Key)] != r.Offset {
				t.Fatalf("superseded record at %d kept", r.Offset)
			}
		}
	}
	for k, last := range lastOf {
		found := false
		for _, r := range got {
			found = found || r.Offset == last
		}
		if !found {
			t.Fatalf("latest value of %s (offset %d) missing", k, last)
		}
	}
	for k, c := range perKey {
		if c > 1 {
			t.Fatalf("key %s appears %d times below the clean point %d", k, c, point)
		}
	}
	if len(got) >= 1000 {
		t.Fatalf("nothing compacted: %d records", len(got))
	}
}

// TestE2ECompactionConsumerOffsetsReload: many commits to a group, the
// cleaner compacts __consumer_offsets, and after a restart the group still
// has its last committed offsets.
func TestE2ECompactionConsumerOffsetsReload(t *testing.T) {
	dir := t.TempDir()
	props := map[string]string{"log.cleaner.backoff.ms": "100", "log.segment.bytes": "2048",
		"offsets.topic.num.partitions": "1", "group.initial.rebalance.delay.ms": "0"}
	n := startNode(t, dir, props)
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "src", 2, nil)
	for i := range 200 {
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: "src", Partition: 0, At: int64(i), LeaderEpoch: -1})
		offs.Add(kadm.Offset{Topic: "src", Partition: 1, At: int64(1000 + i), LeaderEpoch: -1})
		resp, err := adm.CommitOffsets(testCtx(t, 10*time.Second), "g-compact", offs)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "__consumer_offsets-0", "cleaner-offset-checkpoint"))
		if p, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); p > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("__consumer_offsets was not compacted")
		}
		time.Sleep(50 * time.Millisecond) // poll the file the node writes, with a deadline
	}
	n.Close()
	n2 := startNode(t, dir, props)
	adm2, _ := newAdmin(t, n2)
	got, err := adm2.FetchOffsets(testCtx(t, 10*time.Second), "g-compact")
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[int32]int64{0: 199, 1: 1199} {
		if o, ok := got.Lookup("src", p); !ok || o.At != want {
			t.Fatalf("partition %d after restart: %+v (found %v), want %d", p, o, ok, want)
		}
	}
}

// TestE2ECompactionRefusesKeylessRecords: as Kafka, a compacted topic
// refuses records without a key with INVALID_RECORD, and the Produce
// response (v8+, KIP-467) names each keyless record of the batch by its
// index, so that a client fails those and not the whole batch as invalid
// (librdkafka's 0011_produce_batch counts 10 of 100).
func TestE2ECompactionRefusesKeylessRecords(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "keyed", 1, map[string]*string{"cleanup.policy": strp("compact")})
	cl := newClient(t, n, kgo.DefaultProduceTopic("keyed"), kgo.RecordRetries(0))
	err := cl.ProduceSync(testCtx(t, 10*time.Second), &kgo.Record{Value: []byte("no key")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless record: %v, want INVALID_RECORD", err)
	}
	if err := cl.ProduceSync(testCtx(t, 10*time.Second), &kgo.Record{Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("keyed record: %v", err)
	}

	// One batch of 10 records, of which 2, 5 and 9 have no key.
	var recs []record.Record
	for i := range 10 {
		r := record.Record{Key: []byte(fmt.Sprint(i)), Value: []byte("v")}
		if i == 2 || i == 5 || i == 9 {
			r.Key = nil
		}
		recs = append(recs, r)
	}
	batch, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: time.Now().UnixMilli(),
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, PartitionLeaderEpoch: -1, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	raw := newClient(t, n)
	rp := rawProduce(t, raw, "keyed", batch)
	var idx []int32
	for _, e := range rp.ErrorRecords {
		idx = append(idx, e.RelativeOffset)
		if e.ErrorMessage == nil || !strings.Contains(*e.ErrorMessage, "without key") {
			t.Fatalf("record %d's error message %v", e.RelativeOffset, e.ErrorMessage)
		}
	}
	if rp.ErrorCode != kerr.InvalidRecord.Code || !slices.Equal(idx, []int32{2, 5, 9}) {
		t.Fatalf("batch with keyless records 2, 5, 9: %v, record errors at %v", kerr.ErrorForCode(rp.ErrorCode), idx)
	}
	if got := endOffset(t, adm, "keyed", 0); got != 1 {
		t.Fatalf("end offset %d after the refused batch, want 1", got)
	}
}
