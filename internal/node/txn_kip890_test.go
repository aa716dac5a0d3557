package node_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// versionsUpTo caps the client's versions of some keys (key -> max).
func versionsUpTo(caps map[int16]int16) kgo.Opt {
	v := kversion.Stable()
	for k, max := range caps {
		v.SetMaxKeyVersion(k, max)
	}
	return kgo.MaxVersions(v)
}

// txnV1 makes a franz-go producer speak transactions v1 (AddPartitionsToTxn,
// Produce v11, EndTxn v4), as librdkafka, sarama and kafkajs do.
var txnV1 = versionsUpTo(map[int16]int16{0: 11, 26: 4})

// findTxnCoordinator asks for id's coordinator until __transaction_state
// exists and answers.
func findTxnCoordinator(t *testing.T, cl *kgo.Client, id string) {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType, req.CoordinatorKeys = 1, []string{id}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := rawRequest[*kmsg.FindCoordinatorResponse](t, cl, req)
		if len(resp.Coordinators) == 1 && resp.Coordinators[0].ErrorCode == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("FindCoordinator(%s): %+v", id, resp)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func initTxnRaw(t *testing.T, cl *kgo.Client, id string) (int64, int16) {
	t.Helper()
	findTxnCoordinator(t, cl, id)
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID, req.TransactionTimeoutMillis = &id, 60000
	resp := rawRequest[*kmsg.InitProducerIDResponse](t, cl, req)
	if resp.ErrorCode != 0 {
		t.Fatalf("InitProducerId(%s): %v", id, kerr.ErrorForCode(resp.ErrorCode))
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// txnProduceTo sends one transactional batch of id to a partition.
func txnProduceTo(t *testing.T, cl *kgo.Client, id, topic string, partition int32, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.TransactionID, req.Acks, req.TimeoutMillis = &id, -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := rawRequest[*kmsg.ProduceResponse](t, cl, req)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("produce: malformed response %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

func endTxnRaw(t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16, commit bool) *kmsg.EndTxnResponse {
	t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, commit
	return rawRequest[*kmsg.EndTxnResponse](t, cl, req)
}

func describeTxn(t *testing.T, cl *kgo.Client, id string) kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{id}
	resp := rawRequest[*kmsg.DescribeTransactionsResponse](t, cl, req)
	if len(resp.TransactionStates) != 1 {
		t.Fatalf("DescribeTransactions: %+v", resp)
	}
	return resp.TransactionStates[0]
}

// checkNoHang fails when partition 0 of topic has an open transaction: the
// last stable offset must be the high watermark.
func checkNoHang(t *testing.T, cl *kgo.Client, topic string) {
	t.Helper()
	if p := fetchIsolated(t, cl, topic, 0, 1); p.LastStableOffset != p.HighWatermark {
		t.Fatalf("LSO %d behind HW %d: a transaction hangs", p.LastStableOffset, p.HighWatermark)
	}
}

// TestE2ETxnFeatures checks the ApiVersions v3+ feature flags that make
// clients run transactions v2 and the versions that go with them.
func TestE2ETxnFeatures(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	_, cl := newAdmin(t, n)
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName, req.ClientSoftwareVersion = "gregor-test", "1.0"
	resp := rawRequest[*kmsg.ApiVersionsResponse](t, cl, req)
	if resp.Version < 3 {
		t.Fatalf("ApiVersions answered v%d", resp.Version)
	}
	var supported, finalized bool
	for _, f := range resp.SupportedFeatures {
		supported = supported || (f.Name == "transaction.version" && f.MinVersion == 0 && f.MaxVersion == 2)
	}
	for _, f := range resp.FinalizedFeatures {
		finalized = finalized || (f.Name == "transaction.version" && f.MinVersionLevel == 2 && f.MaxVersionLevel == 2)
	}
	if !supported || !finalized || resp.FinalizedFeaturesEpoch < 0 {
		t.Fatalf("features: supported %+v finalized %+v epoch %d", resp.SupportedFeatures, resp.FinalizedFeatures,
			resp.FinalizedFeaturesEpoch)
	}
	want := map[int16]int16{0: 12, 22: 5, 24: 5, 25: 4, 26: 5}
	for _, k := range resp.ApiKeys {
		if max, ok := want[k.ApiKey]; ok {
			if k.MaxVersion != max {
				t.Errorf("key %d: max version %d, want %d", k.ApiKey, k.MaxVersion, max)
			}
			delete(want, k.ApiKey)
		}
	}
	if len(want) != 0 {
		t.Errorf("keys not advertised: %v", want)
	}
}

// TestE2ETxnV2 runs a franz-go producer that negotiates transactions v2:
// each end bumps the epoch, partitions are added by the produces, and
// read_committed consumers see exactly the committed records. A producer
// capped to transactions v1 runs alongside on the same topic.
func TestE2ETxnV2(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	createTopic(t, adm, "tv2", 2, nil)
	ctx := testCtx(t, 40*time.Second)

	p := txnProducer(t, n, "v2-id")
	v1 := txnProducer(t, n, "v1-id", txnV1)
	epochs := func(cl *kgo.Client) int16 {
		t.Helper()
		_, e, err := cl.ProducerID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	runTxn(t, p, "tv2", true, "c1", "c2")
	e1 := epochs(p)
	runTxn(t, v1, "tv2", true, "v1c1", "v1c2")
	v1e := epochs(v1)
	runTxn(t, p, "tv2", false, "a1", "a2", "a3")
	e2 := epochs(p)
	runTxn(t, v1, "tv2", false, "v1a1")
	runTxn(t, p, "tv2", true, "c3")
	e3 := epochs(p)
	runTxn(t, v1, "tv2", true, "v1c3")
	if e2 != e1+1 || e3 != e2+1 {
		t.Errorf("transactions v2 epochs %d %d %d: want one bump per end", e1, e2, e3)
	}
	if got := epochs(v1); got != v1e {
		t.Errorf("transactions v1 epoch moved from %d to %d", v1e, got)
	}
	for id, wantState := range map[string]string{"v2-id": "CompleteCommit", "v1-id": "CompleteCommit"} {
		if d := describeTxn(t, cl, id); d.ErrorCode != 0 || d.State != wantState {
			t.Errorf("%s: %+v, want %s", id, d, wantState)
		}
	}

	committed := []string{"c1", "c2", "c3", "v1c1", "v1c2", "v1c3"}
	got := values(consumePartitions(t, n, "tv2", []int32{0, 1}, len(committed), kgo.FetchIsolationLevel(kgo.ReadCommitted())))
	for _, v := range committed {
		if !got[v] {
			t.Errorf("read_committed misses %s: %v", v, got)
		}
	}
	if len(got) != len(committed) {
		t.Errorf("read_committed saw %d values, want %d: %v", len(got), len(committed), got)
	}
	all := values(consumePartitions(t, n, "tv2", []int32{0, 1}, 10))
	for _, v := range []string{"a1", "a2", "a3", "v1a1"} {
		if !all[v] {
			t.Errorf("read_uncommitted misses aborted %s", v)
		}
	}

	// Aborting with nothing produced is legal under v2 and bumps the epoch.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	pid, epoch, _ := p.ProducerID(ctx)
	if r := endTxnRaw(t, cl, "v2-id", pid, epoch, false); r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != epoch+1 {
		t.Fatalf("empty abort: %v pid %d epoch %d, want %d/%d", kerr.ErrorForCode(r.ErrorCode), r.ProducerID,
			r.ProducerEpoch, pid, epoch+1)
	}
	// Its retry (same epoch) is answered with the same outcome.
	if r := endTxnRaw(t, cl, "v2-id", pid, epoch, false); r.ErrorCode != 0 || r.ProducerEpoch != epoch+1 {
		t.Fatalf("empty abort retry: %v epoch %d", kerr.ErrorForCode(r.ErrorCode), r.ProducerEpoch)
	}
	checkNoHang(t, cl, "tv2")
}

// TestE2ETxnVerification sends a transaction's requests by hand to check
// KIP-890's verification: a produce to a partition not in the transaction
// is refused, a produce arriving after its transaction ended cannot start
// a hanging one, and verify_only answers per partition.
func TestE2ETxnVerification(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "ver", 2, nil)
	v10 := newClient(t, n, versionsUpTo(map[int16]int16{0: 10, 26: 4}))
	v11 := newClient(t, n, versionsUpTo(map[int16]int16{0: 11, 26: 4}))
	v12 := newClient(t, n)
	clientAdd := newClient(t, n, versionsUpTo(map[int16]int16{24: 3})) // AddPartitionsToTxn as clients send it

	addPartitions := func(id string, pid int64, epoch int16, partitions ...int32) {
		t.Helper()
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, pid, epoch
		req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "ver", Partitions: partitions}}
		resp := rawRequest[*kmsg.AddPartitionsToTxnResponse](t, clientAdd, req)
		if resp.Version != 3 || len(resp.Topics) != 1 {
			t.Fatalf("AddPartitionsToTxn v%d: %+v", resp.Version, resp)
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != 0 {
					t.Fatalf("AddPartitionsToTxn: %v", kerr.ErrorForCode(rp.ErrorCode))
				}
			}
		}
	}

	t.Run("v1 partition not added", func(t *testing.T) {
		for _, c := range []struct {
			cl   *kgo.Client
			id   string
			want int16
		}{
			{v10, "ver-v10", kerr.InvalidTxnState.Code},
			{v11, "ver-v11", kerr.TransactionAbortable.Code},
		} {
			pid, epoch := initTxnRaw(t, c.cl, c.id)
			addPartitions(c.id, pid, epoch, 0)
			if r := txnProduceTo(t, c.cl, c.id, "ver", 0, txnRawBatch(t, pid, epoch, 0, 1, "in")); r.ErrorCode != 0 {
				t.Fatalf("%s: produce to an added partition: %v", c.id, kerr.ErrorForCode(r.ErrorCode))
			}
			r := txnProduceTo(t, c.cl, c.id, "ver", 1, txnRawBatch(t, pid, epoch, 0, 1, "out"))
			if r.ErrorCode != c.want {
				t.Fatalf("%s: produce to a partition not added: %v, want %v", c.id, kerr.ErrorForCode(r.ErrorCode),
					kerr.ErrorForCode(c.want))
			}
			if r := endTxnRaw(t, c.cl, c.id, pid, epoch, true); r.ErrorCode != 0 {
				t.Fatalf("%s: commit: %v", c.id, kerr.ErrorForCode(r.ErrorCode))
			}
			// The late produce: its transaction has ended, so it must not
			// open a new one (the partition is no longer in a transaction).
			if r := txnProduceTo(t, c.cl, c.id, "ver", 0, txnRawBatch(t, pid, epoch, 1, 1, "late")); r.ErrorCode != c.want {
				t.Fatalf("%s: late produce: %v, want %v", c.id, kerr.ErrorForCode(r.ErrorCode), kerr.ErrorForCode(c.want))
			}
			checkNoHang(t, c.cl, "ver")
		}
	})

	t.Run("v2 implicit add and late produce", func(t *testing.T) {
		const id = "ver-v12"
		pid, epoch := initTxnRaw(t, v12, id)
		if r := txnProduceTo(t, v12, id, "ver", 0, txnRawBatch(t, pid, epoch, 0, 2, "v2")); r.ErrorCode != 0 {
			t.Fatalf("produce v12 without AddPartitionsToTxn: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		if d := describeTxn(t, v12, id); d.State != "Ongoing" || len(d.Topics) != 1 || len(d.Topics[0].Partitions) != 1 {
			t.Fatalf("after the implicit add: %+v", d)
		}
		r := endTxnRaw(t, v12, id, pid, epoch, true)
		if r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != epoch+1 {
			t.Fatalf("EndTxn v5: %v pid %d epoch %d, want %d/%d", kerr.ErrorForCode(r.ErrorCode), r.ProducerID,
				r.ProducerEpoch, pid, epoch+1)
		}
		// The commit marker carries the new epoch: a late produce of the
		// ended transaction is fenced and opens nothing.
		if r := txnProduceTo(t, v12, id, "ver", 0, txnRawBatch(t, pid, epoch, 2, 1, "late")); r.ErrorCode != kerr.InvalidProducerEpoch.Code {
			t.Fatalf("late produce: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(r.ErrorCode))
		}
		if r := txnProduceTo(t, v12, id, "ver", 1, txnRawBatch(t, pid, epoch, 0, 1, "late")); r.ErrorCode != kerr.InvalidProducerEpoch.Code {
			t.Fatalf("late produce to a new partition: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(r.ErrorCode))
		}
		checkNoHang(t, v12, "ver")
		if d := describeTxn(t, v12, id); d.State != "CompleteCommit" || d.ProducerEpoch != epoch+1 || len(d.Topics) != 0 {
			t.Fatalf("after the late produce: %+v", d)
		}
		// The next transaction runs under the new epoch.
		if r := txnProduceTo(t, v12, id, "ver", 1, txnRawBatch(t, pid, epoch+1, 0, 1, "next")); r.ErrorCode != 0 {
			t.Fatalf("next transaction: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		if r := endTxnRaw(t, v12, id, pid, epoch+1, false); r.ErrorCode != 0 || r.ProducerEpoch != epoch+2 {
			t.Fatalf("abort: %v epoch %d", kerr.ErrorForCode(r.ErrorCode), r.ProducerEpoch)
		}
		checkNoHang(t, v12, "ver")
	})

	t.Run("two producers in one produce", func(t *testing.T) {
		const id = "ver-mixed"
		pid, epoch := initTxnRaw(t, v12, id)
		req := kmsg.NewPtrProduceRequest()
		req.TransactionID, req.Acks, req.TimeoutMillis = strp(id), -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "ver"
		for i, b := range [][]byte{txnRawBatch(t, pid, epoch, 0, 1, "m0"), txnRawBatch(t, pid+100, 0, 0, 1, "m1")} {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition, rp.Records = int32(i), b
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp := rawRequest[*kmsg.ProduceResponse](t, v12, req)
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != kerr.InvalidProducerIDMapping.Code {
				t.Errorf("partition %d: %v, want INVALID_PRODUCER_ID_MAPPING", p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
		}
		if d := describeTxn(t, v12, id); d.State != "Empty" {
			t.Fatalf("the refused produce changed the transaction: %+v", d)
		}
	})

	t.Run("verify_only", func(t *testing.T) {
		const id = "ver-verify"
		pid, epoch := initTxnRaw(t, v12, id)
		addPartitions(id, pid, epoch, 0)
		// The unknown id's __transaction_state partition must be open here
		// too, or its answer is NOT_COORDINATOR.
		findTxnCoordinator(t, v12, "ver-unknown")
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		tr := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tr.TransactionalID, tr.ProducerID, tr.ProducerEpoch, tr.VerifyOnly = id, pid, epoch, true
		tr.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "ver", Partitions: []int32{0, 1}}}
		fenced := tr
		fenced.ProducerEpoch = epoch + 1
		unknown := tr
		unknown.TransactionalID = "ver-unknown"
		req.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{tr, fenced, unknown}
		resp := rawRequest[*kmsg.AddPartitionsToTxnResponse](t, v12, req)
		if resp.Version < 4 || resp.ErrorCode != 0 || len(resp.Transactions) != 3 {
			t.Fatalf("verify_only: %+v", resp)
		}
		want := []map[int32]int16{
			{0: 0, 1: kerr.TransactionAbortable.Code},
			{0: kerr.ProducerFenced.Code, 1: kerr.ProducerFenced.Code},
			{0: kerr.InvalidProducerIDMapping.Code, 1: kerr.InvalidProducerIDMapping.Code},
		}
		for i, rt := range resp.Transactions {
			got := map[int32]int16{}
			for _, t := range rt.Topics {
				for _, p := range t.Partitions {
					got[p.Partition] = p.ErrorCode
				}
			}
			for p, code := range want[i] {
				if got[p] != code {
					t.Errorf("%s partition %d: %v, want %v", rt.TransactionalID, p, kerr.ErrorForCode(got[p]),
						kerr.ErrorForCode(code))
				}
			}
		}
		// verify_only wrote nothing: partition 1 is still not in the transaction.
		if d := describeTxn(t, v12, id); len(d.Topics) != 1 || len(d.Topics[0].Partitions) != 1 {
			t.Fatalf("verify_only changed the transaction: %+v", d)
		}
	})
}

// TestE2ETxnIDExpiration checks transactional.id.expiration.ms: an idle id
// is removed (it leaves ListTransactions and DescribeTransactions, and stays
// gone after a restart), and a later InitProducerId for it gets a new
// producer id.
func TestE2ETxnIDExpiration(t *testing.T) {
	dir := t.TempDir()
	props := map[string]string{
		"transactional.id.expiration.ms":                             "300",
		"transaction.remove.expired.transaction.cleanup.interval.ms": "50",
	}
	n := startNode(t, dir, props)
	adm, cl := newAdmin(t, n)
	createTopic(t, adm, "exp", 2, nil)
	p := txnProducer(t, n, "exp-id")
	runTxn(t, p, "exp", true, "e1")
	ctx := testCtx(t, 30*time.Second)
	pid, _, err := p.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()

	listed := func(cl *kgo.Client) bool {
		resp := rawRequest[*kmsg.ListTransactionsResponse](t, cl, kmsg.NewPtrListTransactionsRequest())
		for _, s := range resp.TransactionStates {
			if s.TransactionalID == "exp-id" {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	for listed(cl) {
		if time.Now().After(deadline) {
			t.Fatal("transactional id not expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := describeTxn(t, cl, "exp-id"); d.ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("DescribeTransactions of an expired id: %+v", d)
	}

	// The tombstone is durable: a restart does not bring the id back.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, dir, nil)
	_, cl2 := newAdmin(t, n2)
	findTxnCoordinator(t, cl2, "exp-id")
	if d := describeTxn(t, cl2, "exp-id"); d.ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("after restart: %+v", d)
	}
	p2 := txnProducer(t, n2, "exp-id")
	runTxn(t, p2, "exp", true, "e2")
	pid2, epoch2, err := p2.ProducerID(ctx)
	if err != nil || pid2 == pid {
		t.Fatalf("producer after expiry: %d/%d (%v), want a producer id other than %d", pid2, epoch2, err, pid)
	}
	got := values(consumePartitions(t, n2, "exp", []int32{0, 1}, 2, kgo.FetchIsolationLevel(kgo.ReadCommitted())))
	if !got["e1"] || !got["e2"] {
		t.Fatalf("read_committed: %v", got)
	}
}

// TestE2ETxnVersionsConsumeTransformProduce runs exactly-once
// consume-transform-produce with a transactions v1 client (AddOffsetsToTxn,
// TxnOffsetCommit v3) and a v2 one (TxnOffsetCommit v5 adds the group): the
// group's offset moves only with committed transactions.
func TestE2ETxnVersionsConsumeTransformProduce(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "ctp-in", 1, nil)
	createTopic(t, adm, "ctp-out", 1, nil)
	produceN(t, n, "ctp-in", 0, 4)
	for i, c := range []struct {
		name string
		opts []kgo.Opt
	}{
		{"v1", []kgo.Opt{versionsUpTo(map[int16]int16{0: 11, 26: 4, 28: 3})}},
		{"v2", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			group := "ctp-" + c.name
			sess, err := kgo.NewGroupTransactSession(append([]kgo.Opt{
				kgo.SeedBrokers(n.KafkaAddr().String()), kgo.TransactionalID("ctp-" + c.name),
				kgo.ConsumerGroup(group), kgo.ConsumeTopics("ctp-in"),
				kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.TransactionTimeout(30 * time.Second),
				kgo.RetryTimeout(10 * time.Second), kgo.FetchMaxWait(200 * time.Millisecond)}, c.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			ctx := testCtx(t, 40*time.Second)
			round := func(want int, commit bool) {
				t.Helper()
				if err := sess.Begin(); err != nil {
					t.Fatalf("begin: %v", err)
				}
				for got := 0; got < want; {
					fs := sess.PollFetches(ctx)
					if ctx.Err() != nil {
						t.Fatalf("poll: got %d of %d", got, want)
					}
					fs.EachRecord(func(r *kgo.Record) {
						got++
						sess.Produce(ctx, &kgo.Record{Topic: "ctp-out", Value: r.Value}, nil)
					})
				}
				if committed, err := sess.End(ctx, kgo.TransactionEndTry(commit)); err != nil || committed != commit {
					t.Fatalf("end(commit=%v): committed=%v err=%v", commit, committed, err)
				}
			}
			offset := func() int64 {
				t.Helper()
				resp, err := adm.FetchOffsets(ctx, group)
				if err != nil {
					t.Fatal(err)
				}
				o, _ := resp.Lookup("ctp-in", 0)
				return o.At
			}
			round(4+i, true) // the first subtest's abort left its record for the second
			if got := offset(); got != int64(4+i) {
				t.Fatalf("committed offset %d, want %d", got, 4+i)
			}
			produceN(t, n, "ctp-in", 4+i, 1)
			round(1, false)
			if got := offset(); got != int64(4+i) {
				t.Fatalf("offset %d after an abort, want %d", got, 4+i)
			}
		})
	}
}

// TestE2ETxnVerificationDisabled: with transaction.partition.verification.enable
// off, a v1 produce to a partition missing from the transaction is taken
// (and hangs, which is what verification prevents), while Produce v12
// still adds its partition.
func TestE2ETxnVerificationDisabled(t *testing.T) {
	n := startNode(t, t.TempDir(), map[string]string{"transaction.partition.verification.enable": "false"})
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "nover", 1, nil)
	v11 := newClient(t, n, versionsUpTo(map[int16]int16{0: 11, 26: 4}))
	pid, epoch := initTxnRaw(t, v11, "nover-v11")
	if r := txnProduceTo(t, v11, "nover-v11", "nover", 0, txnRawBatch(t, pid, epoch, 0, 1, "unchecked")); r.ErrorCode != 0 {
		t.Fatalf("unverified produce: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if p := fetchIsolated(t, v11, "nover", 0, 1); p.LastStableOffset != 0 {
		t.Fatalf("LSO %d: the unverified transaction does not hang", p.LastStableOffset)
	}

	v12 := newClient(t, n)
	pid2, epoch2 := initTxnRaw(t, v12, "nover-v12")
	if r := txnProduceTo(t, v12, "nover-v12", "nover", 0, txnRawBatch(t, pid2, epoch2, 0, 1, "added")); r.ErrorCode != 0 {
		t.Fatalf("produce v12: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if d := describeTxn(t, v12, "nover-v12"); d.State != "Ongoing" || len(d.Topics) != 1 {
		t.Fatalf("produce v12 did not add its partition: %+v", d)
	}
}
