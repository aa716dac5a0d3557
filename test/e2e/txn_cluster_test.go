package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestE2EClusterTxnLeaderKilled: three processes, the internal topics and
// a three-partition topic replicated on all of them. A transactional
// producer commits and aborts transactions writing to every partition, so
// their coordinator sends markers to the other brokers (WriteTxnMarkers).
// While a transaction is open, the leader of one of its partitions (not
// the coordinator) is killed with SIGKILL: the commit completes once a new
// leader is elected (the coordinator resends the marker there), the killed
// broker restarts, and read_committed consumers see exactly the committed
// records.
func TestE2EClusterTxnLeaderKilled(t *testing.T) {
	const topic, id = "txe", "txe-producer"
	c := startTxnCluster(t, topic)
	leaders := func() map[int32]int32 {
		t.Helper()
		out := map[int32]int32{}
		eventually(t, 30*time.Second, topic+"'s leaders", func() error {
			md, err := c.adm.Metadata(testCtx(t, 5*time.Second), topic)
			if err != nil {
				return err
			}
			for p := range int32(3) {
				pm, ok := md.Topics[topic].Partitions[p]
				if !ok || pm.Err != nil || pm.Leader < 1 {
					return fmt.Errorf("partition %d: %+v", p, pm)
				}
				out[p] = pm.Leader
			}
			return nil
		})
		return out
	}
	p := newClient(t, c.procs[1], c.seeds, kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(60*time.Second), kgo.RetryTimeout(60*time.Second))
	txn := func(commit bool, values ...string) {
		t.Helper()
		ctx := testCtx(t, 90*time.Second)
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for i, v := range values {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(v)})
		}
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end (commit=%v): %v", commit, err)
		}
	}
	txn(true, "c1", "c2", "c3")
	txn(false, "a1", "a2", "a3")

	ctx := testCtx(t, 90*time.Second)
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i, v := range []string{"d1", "d2", "d3"} {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i), Value: []byte(v)})
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorType, fc.CoordinatorKeys = 1, []string{id}
	fr, err := fc.RequestWith(ctx, p)
	if err != nil || len(fr.Coordinators) != 1 || fr.Coordinators[0].ErrorCode != 0 {
		t.Fatalf("FindCoordinator: %+v %v", fr, err)
	}
	coord := fr.Coordinators[0].NodeID
	victim := int32(-1)
	for _, l := range leaders() {
		if l != coord {
			victim = l
			break
		}
	}
	if victim < 0 {
		t.Fatalf("the coordinator %d leads every partition of %s", coord, topic)
	}
	c.procs[int(victim)].kill()
	killed := time.Now()
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit after broker %d was killed: %v", victim, err)
	}
	t.Logf("broker %d killed mid-transaction (coordinator %d): commit answered after %v", victim, coord,
		time.Since(killed).Round(time.Millisecond))
	restarted := c.start(int(victim))
	restarted.awaitStarted(t)
	waitReady(t, restarted)
	txn(true, "e1", "e2", "e3")

	want := []string{"c1", "c2", "c3", "d1", "d2", "d3", "e1", "e2", "e3"}
	offs := map[int32]kgo.Offset{0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart()}
	cons := newClient(t, c.procs[int(coord)], c.seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
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
}

// startTxnCluster starts three processes whose internal topics are
// replicated on all of them, with a 2 s broker session so a killed node is
// fenced quickly, and creates topic: three partitions on all three nodes,
// min.insync.replicas=2.
func startTxnCluster(t *testing.T, topic string) *replicatedCluster {
	t.Helper()
	c := startReplicatedCluster(t, "broker.session.timeout.ms=2000", "broker.heartbeat.interval.ms=500",
		"transaction.state.log.replication.factor=3", "transaction.state.log.num.partitions=3",
		"offsets.topic.replication.factor=3", "offsets.topic.num.partitions=3")
	resp, err := c.adm.CreateTopic(testCtx(t, 15*time.Second), 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	return c
}
