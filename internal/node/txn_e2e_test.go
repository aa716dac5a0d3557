package node_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/node"
)

func txnProducer(t *testing.T, n *node.Node, id string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return newClient(t, n, append([]kgo.Opt{kgo.TransactionalID(id),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(30 * time.Second)}, opts...)...)
}

// runTxn produces values to partitions 0 and 1 of topic in one transaction
// and ends it.
func runTxn(t *testing.T, cl *kgo.Client, topic string, commit bool, values ...string) {
	t.Helper()
	ctx := testCtx(t, 20*time.Second)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	var recs []*kgo.Record
	for i, v := range values {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction (commit=%v): %v", commit, err)
	}
}

func values(recs []*kgo.Record) map[string]bool {
	out := map[string]bool{}
	for _, r := range recs {
		out[string(r.Value)] = true
	}
	return out
}

func TestE2ETxnCommitAbort(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "tx", 2, nil)
	p := txnProducer(t, n, "t1")
	runTxn(t, p, "tx", true, "c1", "c2", "c3", "c4")
	runTxn(t, p, "tx", false, "a1", "a2")
	runTxn(t, p, "tx", true, "c5", "c6")

	committed := consumePartitions(t, n, "tx", []int32{0, 1}, 6, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	got := values(committed)
	for _, v := range []string{"c1", "c2", "c3", "c4", "c5", "c6"} {
		if !got[v] {
			t.Errorf("read_committed: missing %s (got %v)", v, got)
		}
	}
	if got["a1"] || got["a2"] {
		t.Errorf("read_committed sees aborted records: %v", got)
	}
	all := values(consumePartitions(t, n, "tx", []int32{0, 1}, 8))
	if !all["a1"] || !all["a2"] {
		t.Errorf("read_uncommitted misses aborted records: %v", all)
	}

	// DescribeTransactions and ListTransactions see the id.
	_, cl := newAdmin(t, n)
	dreq := kmsg.NewPtrDescribeTransactionsRequest()
	dreq.TransactionalIDs = []string{"t1", "nope"}
	dresp := rawRequest[*kmsg.DescribeTransactionsResponse](t, cl, dreq)
	if len(dresp.TransactionStates) != 2 || dresp.TransactionStates[0].State != "CompleteCommit" ||
		dresp.TransactionStates[1].ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Errorf("describe transactions: %+v", dresp.TransactionStates)
	}
	lreq := kmsg.NewPtrListTransactionsRequest()
	lresp := rawRequest[*kmsg.ListTransactionsResponse](t, cl, lreq)
	if len(lresp.TransactionStates) != 1 || lresp.TransactionStates[0].TransactionalID != "t1" {
		t.Errorf("list transactions: %+v", lresp.TransactionStates)
	}
	// v1's duration filter (KIP-994): t1's last transaction started
	// less than a minute ago, more than 0 ms ago.
	for filter, want := range map[int64]int{60_000: 0, 0: 1, -1: 1} {
		lreq := kmsg.NewPtrListTransactionsRequest()
		lreq.DurationFilterMillis = filter
		if lresp := rawRequest[*kmsg.ListTransactionsResponse](t, cl, lreq); len(lresp.TransactionStates) != want || lresp.Version < 1 {
			t.Errorf("list transactions v%d, started more than %d ms ago: %+v, want %d", lresp.Version, filter, lresp.TransactionStates, want)
		}
	}
}

func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.InvalidProducerIDMapping)
}

func TestE2ETxnFencing(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "fence", 2, nil)
	ctx := testCtx(t, 30*time.Second)
	p1 := txnProducer(t, n, "shared")
	if err := p1.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p1.ProduceSync(ctx, &kgo.Record{Topic: "fence", Partition: 0, Value: []byte("old")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	// A second producer with the same id aborts p1's transaction and
	// bumps the epoch.
	p2 := txnProducer(t, n, "shared")
	runTxn(t, p2, "fence", true, "new1", "new2")

	err := p1.ProduceSync(ctx, &kgo.Record{Topic: "fence", Partition: 1, Value: []byte("zombie")}).FirstErr()
	if err == nil {
		err = p1.EndTransaction(ctx, kgo.TryCommit)
	}
	if !isFenced(err) {
		t.Fatalf("fenced producer: err %v, want a fencing error", err)
	}
	got := values(consumePartitions(t, n, "fence", []int32{0, 1}, 2, kgo.FetchIsolationLevel(kgo.ReadCommitted())))
	if !got["new1"] || !got["new2"] || got["old"] || got["zombie"] {
		t.Errorf("read_committed after fencing: %v", got)
	}
}

func TestE2ETxnConsumeTransformProduce(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "in", 1, nil)
	createTopic(t, adm, "out", 2, nil)
	produceN(t, n, "in", 0, 10)

	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(n.KafkaAddr().String()), kgo.TransactionalID("eos"),
		kgo.ConsumerGroup("eos-group"), kgo.ConsumeTopics("in"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(30*time.Second), kgo.RetryTimeout(10*time.Second),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ctx := testCtx(t, 45*time.Second)
	round := func(want int, commit bool) {
		t.Helper()
		if err := sess.Begin(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		got := 0
		for got < want {
			fs := sess.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("poll: got %d of %d", got, want)
			}
			fs.EachRecord(func(r *kgo.Record) {
				got++
				sess.Produce(ctx, &kgo.Record{Topic: "out", Partition: int32(got % 2), Value: append([]byte("x-"), r.Value...)}, nil)
			})
		}
		committed, err := sess.End(ctx, kgo.TransactionEndTry(commit))
		if err != nil || committed != commit {
			t.Fatalf("end(commit=%v): committed=%v err=%v", commit, committed, err)
		}
	}
	round(10, true)

	offsets := func() int64 {
		t.Helper()
		resp, err := adm.FetchOffsets(ctx, "eos-group")
		if err != nil {
			t.Fatalf("fetch offsets: %v", err)
		}
		o, ok := resp.Lookup("in", 0)
		if !ok {
			return -1
		}
		return o.At
	}
	if got := offsets(); got != 10 {
		t.Fatalf("committed offset %d after the committed transaction, want 10", got)
	}
	out := consumePartitions(t, n, "out", []int32{0, 1}, 10, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if len(out) != 10 {
		t.Fatalf("out: %d records", len(out))
	}

	produceN(t, n, "in", 10, 5)
	round(5, false)
	if got := offsets(); got != 10 {
		t.Fatalf("committed offset %d after an aborted transaction, want 10", got)
	}
}

func TestE2ETxnRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "txr", 2, nil)
	p := txnProducer(t, n, "restart-id")
	runTxn(t, p, "txr", true, "r1", "r2")
	ctx := testCtx(t, 40*time.Second)
	pid, epoch, err := p.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Leave a transaction open across the restart.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "txr", Partition: 0, Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n2 := startNode(t, dir, nil)
	_, cl := newAdmin(t, n2)
	dreq := kmsg.NewPtrDescribeTransactionsRequest()
	dreq.TransactionalIDs = []string{"restart-id"}
	var ds kmsg.DescribeTransactionsResponseTransactionState
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp := rawRequest[*kmsg.DescribeTransactionsResponse](t, cl, dreq)
		ds = resp.TransactionStates[0]
		if ds.ErrorCode == 0 || time.Now().After(deadline) {
			break
		}
	}
	if ds.ErrorCode != 0 || ds.ProducerID != pid || ds.ProducerEpoch != epoch || ds.State != "Ongoing" {
		t.Fatalf("after restart: %+v, want producer %d epoch %d Ongoing", ds, pid, epoch)
	}
	// A new producer with the id aborts the open transaction and keeps the
	// producer id under a later epoch.
	p2 := txnProducer(t, n2, "restart-id")
	runTxn(t, p2, "txr", true, "r3", "r4")
	pid2, epoch2, err := p2.ProducerID(ctx)
	if err != nil || pid2 != pid || epoch2 <= epoch {
		t.Fatalf("producer after restart: %d/%d (%v), want %d/>%d", pid2, epoch2, err, pid, epoch)
	}
	got := values(consumePartitions(t, n2, "txr", []int32{0, 1}, 4, kgo.FetchIsolationLevel(kgo.ReadCommitted())))
	for _, v := range []string{"r1", "r2", "r3", "r4"} {
		if !got[v] {
			t.Errorf("missing %s after restart: %v", v, got)
		}
	}
	if got["open"] {
		t.Errorf("read_committed sees the transaction aborted at restart: %v", got)
	}
}
