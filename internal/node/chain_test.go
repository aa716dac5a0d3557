package node_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/chaintest"
)

// TestE2EChainExactlyOnce (issue 8): three chained consume-transform-produce
// stages (GroupTransactSession, read_committed) over 20,000 keyed records,
// groups of eager (range), cooperative-sticky and static members, members
// leaving after a few transactions and new ones joining while the others
// have transactions open. Every stage's committed output is the input
// exactly, per key in order, and no aborted record is ever served to a
// read_committed consumer (see internal/chaintest).
func TestE2EChainExactlyOnce(t *testing.T) {
	n := startNode(t, t.TempDir(), groupProps)
	c := chaintest.Setup(t, chaintest.Config{Addr: n.KafkaAddr().String(), Stages: 3, Keys: 200, PerKey: 100, Partitions: 6})
	c.Start()
	c.WaitDone(t, 90*time.Second)
	c.Stop()
	c.Check(t)
}

// TestE2EOffsetFetchRequireStable (KIP-447): while a transaction holds
// offsets of a partition, an OffsetFetch with require_stable answers
// UNSTABLE_OFFSET_COMMIT for it (the other partitions and a fetch without
// require_stable answer the committed offsets); once the transaction
// commits, its offsets are the committed ones. Without it a member taking a
// partition over in a rebalance resumed before the previous owner's
// transaction and duplicated its output.
func TestE2EOffsetFetchRequireStable(t *testing.T) {
	n := startNode(t, t.TempDir(), groupProps)
	adm, raw := newAdmin(t, n)
	createTopic(t, adm, "stable", 2, nil)
	const group = "g-stable"
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "stable", Partition: 0, At: 5, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "stable", Partition: 1, At: 7, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(testCtx(t, 10*time.Second), group, offs); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}

	cl := txnProducer(t, n, "stable-txn")
	runTxn(t, cl, "stable", true, "warm-up") // the producer id is initialized
	pid, epoch, err := cl.ProducerID(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	// A produced record makes the client end the transaction with EndTxn.
	if err := cl.ProduceSync(testCtx(t, 10*time.Second), &kgo.Record{Topic: "stable", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = "stable-txn", pid, epoch, group
	if r := rawRequest[*kmsg.AddOffsetsToTxnResponse](t, raw, add); r.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = "stable-txn", group, pid, epoch
	commit.Generation = -1
	ct := kmsg.NewTxnOffsetCommitRequestTopic()
	ct.Topic = "stable"
	cp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset, cp.LeaderEpoch = 0, 9, -1
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	if r := rawRequest[*kmsg.TxnOffsetCommitResponse](t, raw, commit); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
	}

	// fetch answers partitions 0 and 1 (offset, error code); the client
	// sends the highest version both sides support (v8+: groups).
	fetch := func(requireStable bool) [2][2]int64 {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		rg := kmsg.NewOffsetFetchRequestGroup()
		gt := kmsg.NewOffsetFetchRequestGroupTopic()
		gt.Topic, gt.Partitions = "stable", []int32{0, 1}
		rg.Group, rg.Topics = group, append(rg.Topics, gt)
		req.Groups, req.RequireStable = append(req.Groups, rg), requireStable
		r := rawRequest[*kmsg.OffsetFetchResponse](t, raw, req)
		var out [2][2]int64
		if len(r.Groups) != 1 || len(r.Groups[0].Topics) != 1 || r.Groups[0].ErrorCode != 0 {
			t.Fatalf("OffsetFetch v%d: %+v", req.Version, r)
		}
		for _, p := range r.Groups[0].Topics[0].Partitions {
			out[p.Partition] = [2]int64{p.Offset, int64(p.ErrorCode)}
		}
		return out
	}
	unstable := int64(kerr.UnstableOffsetCommit.Code)
	if got, want := fetch(true), [2][2]int64{{-1, unstable}, {7, 0}}; got != want {
		t.Errorf("require_stable during the transaction: %v, want %v", got, want)
	}
	if got, want := fetch(false), [2][2]int64{{5, 0}, {7, 0}}; got != want {
		t.Errorf("during the transaction: %v, want %v", got, want)
	}
	if err := cl.EndTransaction(testCtx(t, 10*time.Second), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if got, want := fetch(true), [2][2]int64{{9, 0}, {7, 0}}; got != want {
		t.Errorf("require_stable after the commit: %v, want %v", got, want)
	}
}

// TestE2EReadCommittedNeverServedAborted: a read_committed consumer polling
// while transactions abort is never handed an aborted record. The LSO moved
// past an aborted transaction before its entry was in the aborted index
// (the marker's fsync in between), and a fetch in that window returned the
// aborted records with nothing telling the consumer to drop them.
func TestE2EReadCommittedNeverServedAborted(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "rc-abort", 2, nil)
	cons := newClient(t, n, kgo.ConsumeTopics("rc-abort"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(10*time.Millisecond))
	const txns = 60
	done := make(chan []string)
	go func() {
		var got []string
		ctx := testCtx(t, 60*time.Second)
		for committed := 0; committed < txns/2*4 && ctx.Err() == nil; {
			cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				got = append(got, string(r.Value))
				if r.Value[0] == 'c' {
					committed++
				}
			})
		}
		done <- got
	}()
	cl := txnProducer(t, n, "rc-abort")
	for i := 0; i < txns; i++ {
		commit := i%2 == 1
		v := fmt.Sprintf("a%03d", i)
		if commit {
			v = fmt.Sprintf("c%03d", i)
		}
		runTxn(t, cl, "rc-abort", commit, v, v, v, v)
	}
	got := <-done
	committed := 0
	for _, v := range got {
		if v[0] == 'a' {
			t.Errorf("read_committed consumer was served %s, from an aborted transaction", v)
		} else {
			committed++
		}
	}
	if committed != txns/2*4 {
		t.Errorf("read %d committed records, want %d", committed, txns/2*4)
	}
}

// TestE2EOffsetFetchRequireStableDuringEndTxn: while transactions commit
// their offsets, OffsetFetch with require_stable answers the new offset or
// UNSTABLE_OFFSET_COMMIT, never the offset from before the transaction. The
// pending offsets used to be dropped before the committed ones were
// written, and a fetch in between read the old offset as stable.
func TestE2EOffsetFetchRequireStableDuringEndTxn(t *testing.T) {
	n := startNode(t, t.TempDir(), groupProps)
	adm, raw := newAdmin(t, n)
	createTopic(t, adm, "stable-end", 1, nil)
	const group, id = "g-stable-end", "stable-end-txn"
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "stable-end", Partition: 0, At: 0, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(testCtx(t, 10*time.Second), group, offs); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	cl := txnProducer(t, n, id)
	runTxn(t, cl, "stable-end", true, "warm-up")
	fetchReq := func() *kmsg.OffsetFetchRequest {
		req := kmsg.NewPtrOffsetFetchRequest()
		rg := kmsg.NewOffsetFetchRequestGroup()
		gt := kmsg.NewOffsetFetchRequestGroupTopic()
		gt.Topic, gt.Partitions = "stable-end", []int32{0}
		rg.Group, rg.Topics = group, append(rg.Topics, gt)
		req.Groups, req.RequireStable = append(req.Groups, rg), true
		return req
	}
	for i := int64(1); i <= 20; i++ {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(testCtx(t, 10*time.Second), &kgo.Record{Topic: "stable-end", Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		// Transactions v2 bump the epoch at every end: ask each time.
		pid, epoch, err := cl.ProducerID(testCtx(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		add := kmsg.NewPtrAddOffsetsToTxnRequest()
		add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = id, pid, epoch, group
		if r := rawRequest[*kmsg.AddOffsetsToTxnResponse](t, raw, add); r.ErrorCode != 0 {
			t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		commit := kmsg.NewPtrTxnOffsetCommitRequest()
		commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch, commit.Generation = id, group, pid, epoch, -1
		ct := kmsg.NewTxnOffsetCommitRequestTopic()
		ct.Topic = "stable-end"
		cp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		cp.Partition, cp.Offset, cp.LeaderEpoch = 0, i, -1
		ct.Partitions = append(ct.Partitions, cp)
		commit.Topics = append(commit.Topics, ct)
		if r := rawRequest[*kmsg.TxnOffsetCommitResponse](t, raw, commit); r.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
		}
		// Several fetchers ask while EndTxn runs, and once more after it.
		ended := make(chan struct{})
		var endErr error
		go func() { endErr = cl.EndTransaction(context.Background(), kgo.TryCommit); close(ended) }()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var bad []string
		for f := 0; f < 4; f++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for last := false; !last; {
					select {
					case <-ended:
						last = true
					default:
					}
					resp, err := raw.Broker(1).Request(context.Background(), fetchReq())
					if err != nil {
						mu.Lock()
						bad = append(bad, err.Error())
						mu.Unlock()
						return
					}
					p := resp.(*kmsg.OffsetFetchResponse).Groups[0].Topics[0].Partitions[0]
					ok := p.ErrorCode == kerr.UnstableOffsetCommit.Code && !last || p.ErrorCode == 0 && p.Offset == i
					if !ok {
						mu.Lock()
						bad = append(bad, fmt.Sprintf("offset %d (%v), ended %v", p.Offset, kerr.ErrorForCode(p.ErrorCode), last))
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		if endErr != nil {
			t.Fatal(endErr)
		}
		if len(bad) > 0 {
			t.Fatalf("transaction %d: require_stable fetches answered %v, want offset %d or UNSTABLE_OFFSET_COMMIT before the end", i, bad, i)
		}
	}
}
