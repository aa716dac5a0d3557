package node_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/node"
)

// incompressible returns n random bytes, so that small segments roll
// whatever codec the client picks.
func incompressible(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return b
}

// cleanPoint reads where the last compaction pass of topic-0 stopped.
func cleanPoint(dir, topic string) int64 {
	b, _ := os.ReadFile(filepath.Join(dir, topic+"-0", "cleaner-offset-checkpoint"))
	p, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return p
}

// fetchRaw fetches partition 0 of topic from offset 0 with the isolation
// level and returns its batches and aborted transactions.
func fetchRaw(t *testing.T, cl *kgo.Client, topic string, isolation int8) ([]kmsg.RecordBatch, []kmsg.FetchResponseTopicPartitionAbortedTransaction) {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.ReplicaID = -1
	req.MaxBytes = 1 << 20
	req.IsolationLevel = isolation
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := rawRequest[*kmsg.FetchResponse](t, cl, req)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("fetch: %+v", resp)
	}
	p := resp.Topics[0].Partitions[0]
	var out []kmsg.RecordBatch
	for b := p.RecordBatches; len(b) >= 12; {
		n := 12 + int(int32(uint32(b[8])<<24|uint32(b[9])<<16|uint32(b[10])<<8|uint32(b[11])))
		if n > len(b) {
			break // a partial batch at the end of the response
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b[:n]); err != nil {
			t.Fatalf("batch: %v", err)
		}
		out = append(out, rb)
		b = b[n:]
	}
	return out, p.AbortedTransactions
}

// TestE2ECompactionAbortedTxn: on a compacted topic, a committed value of a
// key, then an aborted newer value, then a later committed transaction of
// the same producer. After the cleaner ran, a read_committed consumer from
// the beginning sees the committed values, and the aborted record is gone
// from the log. Later passes remove the ABORT marker (delete.retention.ms
// is 0) and its aborted-index entry, and read_committed still sees the
// later transaction, also after a restart.
func TestE2ECompactionAbortedTxn(t *testing.T) {
	dir := t.TempDir()
	props := map[string]string{"log.cleaner.backoff.ms": "100"}
	n := startNode(t, dir, props)
	adm, raw := newAdmin(t, n)
	createTopic(t, adm, "ctxn", 1, map[string]*string{"cleanup.policy": strp("compact"), "segment.bytes": strp("1024"),
		"min.cleanable.dirty.ratio": strp("0.01"), "delete.retention.ms": strp("0")})
	tp := txnProducer(t, n, "compact-txn")
	txn := func(commit bool, key, value string) int64 {
		t.Helper()
		ctx := testCtx(t, 20*time.Second)
		if err := tp.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		res := tp.ProduceSync(ctx, &kgo.Record{Topic: "ctxn", Key: []byte(key), Value: []byte(value)})
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := tp.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
		return res[0].Record.Offset
	}
	txn(true, "k", "committed")
	abortedAt := txn(false, "k", "aborted")
	txn(true, "k2", "later")

	plain := newClient(t, n, kgo.DefaultProduceTopic("ctxn"), kgo.ProducerLinger(0))
	fillers := 0
	// roll writes fillers (one batch each, distinct keys) until the cleaner
	// has cleaned past them, which needs closed segments after them.
	roll := func() {
		t.Helper()
		before := cleanPoint(dir, "ctxn")
		var last int64
		for range 8 {
			res := plain.ProduceSync(testCtx(t, 10*time.Second),
				&kgo.Record{Key: []byte(fmt.Sprintf("filler-%03d", fillers)), Value: incompressible(300)})
			if err := res.FirstErr(); err != nil {
				t.Fatal(err)
			}
			fillers++
			last = res[0].Record.Offset
		}
		deadline := time.Now().Add(20 * time.Second)
		for p := cleanPoint(dir, "ctxn"); p <= before || p <= abortedAt+1; p = cleanPoint(dir, "ctxn") {
			if time.Now().After(deadline) {
				t.Fatalf("the cleaner did not pass offset %d (clean point %d, last filler %d)", before, p, last)
			}
			time.Sleep(50 * time.Millisecond) // poll the file the node writes, with a deadline
		}
	}
	check := func(n *node.Node) {
		t.Helper()
		got := consumePartitions(t, n, "ctxn", []int32{0}, 2+fillers, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		byKey := map[string]string{}
		for _, r := range got {
			byKey[string(r.Key)] = string(r.Value)
		}
		if byKey["k"] != "committed" || byKey["k2"] != "later" {
			t.Fatalf("read_committed after compaction: k=%q k2=%q", byKey["k"], byKey["k2"])
		}
		// read_uncommitted: the aborted record is gone from the log.
		for _, r := range consumePartitions(t, n, "ctxn", []int32{0}, 2+fillers) {
			if string(r.Value) == "aborted" {
				t.Fatalf("aborted record still in the log at %d", r.Offset)
			}
		}
	}
	roll()
	check(n)

	abortMarker := func(cl *kgo.Client) (present bool) {
		batches, _ := fetchRaw(t, cl, "ctxn", 0)
		for _, b := range batches {
			if b.FirstOffset == abortedAt+1 && b.Attributes&0x20 != 0 && b.NumRecords > 0 {
				return true
			}
		}
		return false
	}
	if !abortMarker(raw) {
		t.Fatalf("ABORT marker at %d removed while its transaction's record was in the log", abortedAt+1)
	}
	// More passes: the marker gets its delete horizon, leaves the aborted
	// index, then goes.
	for round := 0; abortMarker(raw); round++ {
		if round == 6 {
			t.Fatalf("ABORT marker at %d still there after %d cleaner passes", abortedAt+1, round)
		}
		roll()
	}
	if _, aborted := fetchRaw(t, raw, "ctxn", 1); len(aborted) != 0 {
		t.Fatalf("aborted transactions still listed after their marker went: %+v", aborted)
	}
	check(n)

	n.Close()
	n2 := startNode(t, dir, props)
	check(n2)
}

// TestE2ECompactionTxnOffsetsReload: a group's offset committed plainly, a
// newer one committed in a transaction, then a newer one in an aborted transaction; once the
// cleaner has compacted __consumer_offsets and the node restarted (the
// group's offsets are replayed from the log), the committed offset is
// still the group's.
func TestE2ECompactionTxnOffsetsReload(t *testing.T) {
	const (
		id    = "offsets-compact-txn"
		group = "offsets-compact-group"
	)
	dir := t.TempDir()
	props := map[string]string{"log.cleaner.backoff.ms": "100", "log.segment.bytes": "1024"}
	for k, v := range small {
		props[k] = v
	}
	n := startNode(t, dir, props)
	adm, cl := newAdmin(t, n)
	createTopic(t, adm, "in", 1, nil)
	commitPlain(t, adm, group, "in", 5) // creates __consumer_offsets
	p := txnProducer(t, n, id)
	txnCommit := func(offset int64, commit bool) {
		t.Helper()
		pid, epoch := openTxn(t, p, "in")
		addOffsetsToTxn(t, cl, id, pid, epoch, group)
		if code := txnOffsetCommit(t, cl, id, pid, epoch, group, noMember, "in", offset); code != 0 {
			t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
		}
		if err := p.EndTransaction(testCtx(t, 20*time.Second), kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction (commit=%v): %v", commit, err)
		}
	}
	txnCommit(10, true)
	txnCommit(20, false)
	if got := committed(t, cl, group, "in"); got != 10 {
		t.Fatalf("committed offset before compaction: %d", got)
	}
	// Another group's commits fill closed segments to clean.
	for i := range 100 {
		commitPlain(t, adm, "filler-group", "in", int64(i))
	}
	deadline := time.Now().Add(20 * time.Second)
	for cleanPoint(dir, "__consumer_offsets") < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("__consumer_offsets was not compacted (clean point %d)", cleanPoint(dir, "__consumer_offsets"))
		}
		time.Sleep(50 * time.Millisecond) // poll the file the node writes, with a deadline
	}
	n.Close()
	n2 := startNode(t, dir, props)
	_, cl2 := newAdmin(t, n2)
	if got := committed(t, cl2, group, "in"); got != 10 {
		t.Fatalf("committed offset after compaction and restart: %d, want 10", got)
	}
}
