package e2e

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestE2EClusterTxnCoordinatorKilled: three processes, the internal topics
// and a three-partition topic replicated on all of them. A transactional
// producer has added every partition to a transaction and produced to them
// (both written to __transaction_state and acknowledged) when the node
// coordinating its transactional id is killed with SIGKILL, before EndTxn.
//
// What is correct: the transaction's Ongoing state, with its partitions,
// was committed to __transaction_state (on every ISR member's disk) before
// AddPartitionsToTxn and the produces were answered, so the node that now
// leads the id's partition loads it, and franz-go's EndTransaction(commit),
// which retries NOT_COORDINATOR, connection errors and
// COORDINATOR_LOAD_IN_PROGRESS with a new FindCoordinator, commits it there
// (Kafka's Java producer does the same). The producer then goes on with the
// next transaction, and read_committed consumers see exactly the committed
// records, none of an aborted transaction, with no transaction left open.
//
// franz-go (v1.22) can give up on the commit with "unable to dial" before
// it reaches the new coordinator, whatever the cluster answers, Kafka's
// included: the killed node stays among the client's brokers (in its seeds,
// and in its metadata until it is fenced), and when FindCoordinator, sent
// to "any broker" without retries (client.go, doLoadCoordinators:
// noShardRetryCtx), is refused by the dead node twice in a row, the retry
// loop (retryable.Request) sees no broker both times, and its "retry on
// another broker" branch, which requires next != br, stops with the dial
// error (a refused dial to a named coordinator is retried: failDial). The
// outcome of that commit is unconfirmed, and EndTransaction's documentation
// says what an application does then, which the test does: end with
// TryAbort (a TryCommit retry is refused, txn.go), which reloads the
// producer id, so the new coordinator bumps the epoch and aborts the
// loaded transaction, and produce the same records again in a new
// transaction. Then the loaded transaction must be aborted, not committed
// or left open (the records read exactly once, the last stable offsets at
// the high watermarks). Any other error fails the test.
func TestE2EClusterTxnCoordinatorKilled(t *testing.T) {
	const topic, id = "txk", "txk-producer"
	c := startTxnCluster(t, topic)
	p := newClient(t, c.procs[1], c.seeds, clientLog(t), kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(60*time.Second),
		// The coordinator moves once the killed node's session expires
		// (plus a controller election if it was the active controller),
		// while the client's backoff between tries grows to 5 s: the
		// harness's 10 s RetryTimeout can end the tries just before.
		kgo.RetryTimeout(60*time.Second))
	produce := func(values ...string) {
		t.Helper()
		var recs []*kgo.Record
		for i, v := range values {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(v)})
		}
		if err := p.ProduceSync(testCtx(t, 60*time.Second), recs...).FirstErr(); err != nil {
			t.Fatalf("produce %v: %v", values, err)
		}
	}
	txn := func(commit bool, values ...string) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		produce(values...)
		if err := p.EndTransaction(testCtx(t, 90*time.Second), kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end (commit=%v): %v", commit, err)
		}
	}
	coordinator := func(via *proc) int32 {
		t.Helper()
		cl := newClient(t, via)
		var coord int32
		eventually(t, 30*time.Second, "a coordinator for "+id, func() error {
			fc := kmsg.NewPtrFindCoordinatorRequest()
			fc.CoordinatorType, fc.CoordinatorKeys = 1, []string{id}
			fr, err := fc.RequestWith(testCtx(t, 5*time.Second), cl)
			if err != nil {
				return err
			}
			if len(fr.Coordinators) != 1 || fr.Coordinators[0].ErrorCode != 0 {
				return fmt.Errorf("FindCoordinator: %+v", fr.Coordinators)
			}
			coord = fr.Coordinators[0].NodeID
			return nil
		})
		return coord
	}
	txn(true, "c1", "c2", "c3")
	txn(false, "a1", "a2", "a3")

	// Mid-transaction: every partition added and written to.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce("d1", "d2", "d3")
	coord := coordinator(c.procs[1])
	c.procs[int(coord)].kill()
	killed := time.Now()
	err := p.EndTransaction(testCtx(t, 90*time.Second), kgo.TryCommit)
	for attempt := 1; err != nil; attempt++ {
		// The client gave up on a refused dial (see above): abort and
		// produce again, as franz-go documents. Anything else is a
		// failure, and so are five give-ups in a row.
		if op := (*net.OpError)(nil); !errors.As(err, &op) || op.Op != "dial" || attempt > 5 {
			t.Fatalf("commit after the coordinator (broker %d) was killed (attempt %d): %v", coord, attempt, err)
		}
		t.Logf("commit after the coordinator (broker %d) was killed: the client gave up (%v); aborting and producing again", coord, err)
		if err := p.EndTransaction(testCtx(t, 90*time.Second), kgo.TryAbort); err != nil {
			t.Fatalf("abort after the client gave up on the commit: %v", err)
		}
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		produce("d1", "d2", "d3")
		err = p.EndTransaction(testCtx(t, 90*time.Second), kgo.TryCommit)
	}
	t.Logf("coordinator %d killed mid-transaction: commit answered after %v", coord, time.Since(killed).Round(time.Millisecond))
	var alive *proc
	for pid, pr := range c.procs {
		if int32(pid) != coord {
			alive = pr
			break
		}
	}
	if now := coordinator(alive); now == coord {
		t.Fatalf("broker %d still named coordinator after it was killed", coord)
	}
	// The producer goes on through the new coordinator, and with the
	// killed broker back.
	txn(true, "e1", "e2", "e3")
	txn(false, "b1", "b2", "b3")
	restarted := c.start(int(coord))
	restarted.awaitStarted(t)
	waitReady(t, restarted)
	txn(true, "f1", "f2", "f3")

	want := []string{"c1", "c2", "c3", "d1", "d2", "d3", "e1", "e2", "e3", "f1", "f2", "f3"}
	offs := map[int32]kgo.Offset{0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart()}
	cons := newClient(t, alive, c.seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	rctx := testCtx(t, 30*time.Second)
	var got []string
	for len(got) < len(want) {
		fs := cons.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("read_committed: %v before the deadline", got)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed read %v, want %v", got, want)
	}
	// Nothing more: the end offsets are reached, every transaction closed.
	lso, err := c.adm.ListCommittedOffsets(testCtx(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	hw, err := c.adm.ListEndOffsets(testCtx(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	hw.Each(func(o kadm.ListedOffset) {
		if l, ok := lso.Lookup(topic, o.Partition); !ok || l.Offset != o.Offset {
			t.Errorf("%s[%d]: last stable offset %+v, high watermark %d: a transaction left open", topic, o.Partition, l, o.Offset)
		}
	})
	fs := cons.PollFetches(testCtx(t, time.Second))
	fs.EachRecord(func(r *kgo.Record) { t.Errorf("read_committed read %s past the committed records", r.Value) })
}
