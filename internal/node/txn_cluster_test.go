package node_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/chaintest"
	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/testkit"
)

// txnClusterProps replicate the internal topics over the three nodes, so
// transaction and group coordinators land on different brokers.
var txnClusterProps = map[string]string{
	"transaction.state.log.replication.factor": "3",
	"transaction.state.log.num.partitions":     "3",
	"offsets.topic.replication.factor":         "3",
	"offsets.topic.num.partitions":             "3",
	"min.insync.replicas":                      "2",
	"group.initial.rebalance.delay.ms":         "0",
	"group.min.session.timeout.ms":             "500",
}

// clusterClient is a franz-go client seeded with every node of c.
func clusterClient(t *testing.T, c cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	var seeds []string
	for _, n := range c.nodes {
		if n != nil {
			seeds = append(seeds, n.KafkaAddr().String())
		}
	}
	opts = append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.RetryTimeout(20 * time.Second),
		kgo.RequestTimeoutOverhead(5 * time.Second)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// spreadLeaders creates an RF=3 topic with one partition led by each node.
func spreadLeaders(t *testing.T, c cluster, topic string) {
	t.Helper()
	createReplicated(t, c, topic, 3, nil)
	var leaders []int32
	for p := range int32(3) {
		leaders = append(leaders, leaderOf(c, topic, p).NodeID())
	}
	slices.Sort(leaders)
	if !slices.Equal(leaders, []int32{1, 2, 3}) {
		t.Fatalf("%s leaders %v: want one partition led by each broker", topic, leaders)
	}
}

// produceTxn produces one record per value, value i to partition i%3, in
// one transaction of cl, and ends it.
func produceTxn(t *testing.T, cl *kgo.Client, topic string, commit bool, values ...string) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	var recs []*kgo.Record
	for i, v := range values {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction (commit=%v): %v", commit, err)
	}
}

// readAll reads want records from every partition of topic at the
// isolation level, through a live node, and returns their values sorted.
func readAll(t *testing.T, c cluster, topic string, isolation kgo.IsolationLevel, want int) []string {
	t.Helper()
	var live *node.Node
	for _, n := range c.nodes {
		if n != nil {
			live = n
			break
		}
	}
	recs := consumePartitions(t, live, topic, []int32{0, 1, 2}, want, kgo.FetchIsolationLevel(isolation))
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	slices.Sort(out)
	return out
}

// checkStable waits until every partition's last stable offset is its high
// watermark on its leader (no transaction left open, so every marker
// arrived) and every replica holds the same log end.
func checkStable(t *testing.T, c cluster, topic string) {
	t.Helper()
	adm := kadm.NewClient(clusterClient(t, c))
	checkFor(t, topic+": last stable offsets at the high watermarks", func() bool {
		lso, err1 := adm.ListCommittedOffsets(testCtx(t, 5*time.Second), topic)
		hw, err2 := adm.ListEndOffsets(testCtx(t, 5*time.Second), topic)
		if err1 != nil || err2 != nil || lso.Error() != nil || hw.Error() != nil {
			return false
		}
		same := true
		hw.Each(func(o kadm.ListedOffset) {
			l, ok := lso.Lookup(topic, o.Partition)
			same = same && ok && l.Offset == o.Offset
		})
		return same
	})
	for p := range int32(3) {
		checkFor(t, fmt.Sprintf("%s[%d]: every replica at the leader's log end", topic, p), func() bool {
			var leo []int64
			for _, n := range c.nodes {
				if n == nil {
					continue
				}
				if st, ok := n.Replica(topic, p); ok {
					leo = append(leo, st.LogEndOffset)
				}
			}
			return len(leo) > 1 && slices.Min(leo) == slices.Max(leo)
		})
	}
}

// TestClusterTxnMarkersAcrossBrokers: a transaction writing to partitions
// led by all three brokers commits and aborts correctly: its coordinator
// sends WriteTxnMarkers to the two other leaders, so read_committed
// consumers see exactly the committed records, every partition's last
// stable offset reaches its high watermark, and the markers are
// replicated.
func TestClusterTxnMarkersAcrossBrokers(t *testing.T) {
	c := startCluster(t, txnClusterProps)
	spreadLeaders(t, c, "txc")
	p := clusterClient(t, c, kgo.TransactionalID("txc-producer"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(30*time.Second))
	produceTxn(t, p, "txc", true, "c1", "c2", "c3", "c4", "c5", "c6")
	produceTxn(t, p, "txc", false, "a1", "a2", "a3")
	produceTxn(t, p, "txc", true, "d1", "d2", "d3")
	// A transactions v1 producer (AddPartitionsToTxn from the client,
	// Produce v11: the leaders verify with verify_only), as librdkafka.
	p1 := clusterClient(t, c, kgo.TransactionalID("txc-producer-v1"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(30*time.Second), txnV1)
	produceTxn(t, p1, "txc", false, "a4", "a5", "a6")
	produceTxn(t, p1, "txc", true, "e1", "e2", "e3")
	checkStable(t, c, "txc")

	want := []string{"c1", "c2", "c3", "c4", "c5", "c6", "d1", "d2", "d3", "e1", "e2", "e3"}
	if got := readAll(t, c, "txc", kgo.ReadCommitted(), len(want)); !slices.Equal(got, want) {
		t.Fatalf("read_committed read %v, want %v", got, want)
	}
	all := append(slices.Clone(want), "a1", "a2", "a3", "a4", "a5", "a6")
	slices.Sort(all)
	if got := readAll(t, c, "txc", kgo.ReadUncommitted(), len(all)); !slices.Equal(got, all) {
		t.Fatalf("read_uncommitted read %v, want %v", got, all)
	}
	d, err := kadm.NewClient(p).DescribeTransactions(testCtx(t, 10*time.Second), "txc-producer")
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := d["txc-producer"]; !ok || s.State != "CompleteCommit" || len(s.Topics) != 0 {
		t.Fatalf("transaction state %+v, want CompleteCommit with no partitions", d)
	}
}

// TestClusterTxnMarkersFollowLeaderChange: the leader of one of a
// transaction's partitions (not the transaction's coordinator) stops while
// the transaction is open; the commit's marker reaches the partition's new
// leader (the coordinator retries on NOT_LEADER_OR_FOLLOWER and the new
// metadata), and the committed records are read back.
func TestClusterTxnMarkersFollowLeaderChange(t *testing.T) {
	c := startCluster(t, txnClusterProps)
	spreadLeaders(t, c, "txl")
	const id = "txl-producer"
	p := clusterClient(t, c, kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(60*time.Second), kgo.RetryTimeout(60*time.Second))
	produceTxn(t, p, "txl", true, "c1", "c2", "c3")

	ctx := testCtx(t, 90*time.Second)
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i, v := range []string{"d1", "d2", "d3"} {
		recs = append(recs, &kgo.Record{Topic: "txl", Partition: int32(i), Value: []byte(v)})
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	coord := txnCoordinatorOf(t, p, id)
	var stopped *node.Node
	for i, n := range c.nodes {
		if n.NodeID() != coord {
			stopped = n
			c.nodes[i] = nil
			break
		}
	}
	if err := stopped.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit after broker %d stopped: %v", stopped.NodeID(), err)
	}
	checkStable(t, c, "txl")
	want := []string{"c1", "c2", "c3", "d1", "d2", "d3"}
	if got := readAll(t, c, "txl", kgo.ReadCommitted(), len(want)); !slices.Equal(got, want) {
		t.Fatalf("read_committed read %v, want %v", got, want)
	}
}

// txnCoordinatorOf is the broker coordinating transactional id.
func txnCoordinatorOf(t *testing.T, cl *kgo.Client, id string) int32 {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType, req.CoordinatorKeys = 1, []string{id}
	resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl)
	if err != nil || len(resp.Coordinators) != 1 || resp.Coordinators[0].ErrorCode != 0 {
		t.Fatalf("FindCoordinator(%s): %+v %v", id, resp, err)
	}
	return resp.Coordinators[0].NodeID
}

// writeMarker sends one WriteTxnMarkers for topic[partition] to broker and
// returns the partition's error code.
func writeMarker(t *testing.T, cl *kgo.Client, broker int32, topic string, partition int32, pid int64, epoch int16, coordEpoch int32) int16 {
	t.Helper()
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.Version = 1
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch = pid, epoch, false, coordEpoch
	m.Topics = []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: topic, Partitions: []int32{partition}}}
	req.Markers = []kmsg.WriteTxnMarkersRequestMarker{m}
	resp, err := req.RequestWith(testCtx(t, 15*time.Second), cl.Broker(int(broker)))
	if err != nil {
		t.Fatalf("WriteTxnMarkers to %d: %v", broker, err)
	}
	if len(resp.Markers) != 1 || resp.Markers[0].ProducerID != pid || len(resp.Markers[0].Topics) != 1 ||
		len(resp.Markers[0].Topics[0].Partitions) != 1 {
		t.Fatalf("WriteTxnMarkers answer %+v", resp)
	}
	return resp.Markers[0].Topics[0].Partitions[0].ErrorCode
}

// TestClusterWriteTxnMarkersErrors: WriteTxnMarkers on a broker answers
// as Kafka's: a marker from an older transaction coordinator epoch than the
// producer's last marker on the partition is TRANSACTION_COORDINATOR_FENCED
// (a deposed coordinator), one of an older producer epoch
// INVALID_PRODUCER_EPOCH; a follower answers NOT_LEADER_OR_FOLLOWER, a
// partition the broker does not host UNKNOWN_TOPIC_OR_PARTITION, and a
// partition whose ISR is below min.insync.replicas NOT_ENOUGH_REPLICAS.
func TestClusterWriteTxnMarkersErrors(t *testing.T) {
	c := startCluster(t, txnClusterProps)
	spreadLeaders(t, c, "wm")
	createReplicated(t, c, "wm-minisr", 1, map[string]*string{"min.insync.replicas": strp("4")})
	cl := clusterClient(t, c)
	if _, err := kadm.NewClient(cl).BrokerMetadata(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	leader := leaderOf(c, "wm", 0).NodeID()
	follower := leader%3 + 1
	const pid = 4242
	steps := []struct {
		name       string
		broker     int32
		topic      string
		epoch      int16
		coordEpoch int32
		want       int16
	}{
		{"first marker", leader, "wm", 1, 5, 0},
		{"same coordinator epoch", leader, "wm", 1, 5, 0},
		{"older coordinator epoch", leader, "wm", 1, 4, kerr.TransactionCoordinatorFenced.Code},
		{"newer coordinator epoch", leader, "wm", 1, 6, 0},
		{"the deposed epoch again", leader, "wm", 1, 5, kerr.TransactionCoordinatorFenced.Code},
		{"older producer epoch", leader, "wm", 0, 6, kerr.InvalidProducerEpoch.Code},
		{"follower", follower, "wm", 1, 6, kerr.NotLeaderForPartition.Code},
		{"unknown topic", leader, "wm-nope", 1, 6, kerr.UnknownTopicOrPartition.Code},
		{"below min.insync.replicas", leaderOf(c, "wm-minisr", 0).NodeID(), "wm-minisr", 1, 6, kerr.NotEnoughReplicas.Code},
	}
	for _, s := range steps {
		if got := writeMarker(t, cl, s.broker, s.topic, 0, pid, s.epoch, s.coordEpoch); got != s.want {
			t.Errorf("%s: %v, want %v", s.name, kerr.ErrorForCode(got), kerr.ErrorForCode(s.want))
		}
	}
	// The accepted markers are on every replica (acks=all) and the fencing
	// survives a leader change: the new leader rebuilt the coordinator
	// epoch from the replicated markers.
	checkStable(t, c, "wm")
	for i, n := range c.nodes {
		if n.NodeID() == leader {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			c.nodes[i] = nil
		}
	}
	var next int32
	checkFor(t, "a new leader of wm[0]", func() bool {
		for _, n := range c.nodes {
			if n != nil {
				if st, ok := n.Replica("wm", 0); ok && st.Leader {
					next = n.NodeID()
					return true
				}
			}
		}
		return false
	})
	cl2 := clusterClient(t, c)
	if _, err := kadm.NewClient(cl2).BrokerMetadata(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := writeMarker(t, cl2, next, "wm", 0, pid, 1, 5); got != kerr.TransactionCoordinatorFenced.Code {
		t.Errorf("deposed coordinator epoch on the new leader: %v, want TRANSACTION_COORDINATOR_FENCED", kerr.ErrorForCode(got))
	}
	if got := writeMarker(t, cl2, next, "wm", 0, pid, 1, 6); got != 0 {
		t.Errorf("current coordinator epoch on the new leader: %v", kerr.ErrorForCode(got))
	}
}

// TestClusterTxnChainExactlyOnce runs the chained exactly-once pipeline
// (internal/chaintest) on three brokers: its members' transactional ids and
// groups are coordinated by different brokers, so markers and
// TxnOffsetCommits cross brokers, and every stage's committed output is its
// input exactly.
func TestClusterTxnChainExactlyOnce(t *testing.T) {
	props := maps.Clone(txnClusterProps)
	delete(props, "min.insync.replicas") // the chain's topics have one replica
	c := startCluster(t, props)
	ch := chaintest.Setup(t, chaintest.Config{Addr: c.nodes[0].KafkaAddr().String(), Stages: 2, Keys: 60, PerKey: 30, Partitions: 6})
	ch.Start()
	ch.WaitDone(t, 120*time.Second)
	ch.Stop()
	ch.Check(t)
}

// groupCoordinatorOf is the broker coordinating group.
func groupCoordinatorOf(t *testing.T, cl *kgo.Client, group string) int32 {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType, req.CoordinatorKeys = 0, []string{group}
	var node int32
	testkit.Eventually(t, 20*time.Second, "the coordinator of "+group, func() error {
		resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl)
		if err != nil {
			return err
		}
		if len(resp.Coordinators) != 1 || resp.Coordinators[0].ErrorCode != 0 {
			return fmt.Errorf("FindCoordinator(%s): %+v", group, resp.Coordinators)
		}
		node = resp.Coordinators[0].NodeID
		return nil
	})
	return node
}

// TestClusterTxnOffsetCommitRemoteCoordinators: a TxnOffsetCommit reaches
// the group's coordinator, which is not the transaction's: the group
// coordinator verifies the transaction with the transaction coordinator
// (AddPartitionsToTxn verify_only before v5, an add for v5), writes the
// offsets, and the commit's marker, sent by the transaction coordinator,
// makes them the group's committed offsets; an abort's drops them. A
// group not in the transaction, or a stale producer epoch, is refused.
func TestClusterTxnOffsetCommitRemoteCoordinators(t *testing.T) {
	c := startCluster(t, txnClusterProps)
	spreadLeaders(t, c, "tco")
	for _, version := range []int16{3, 5} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			id := fmt.Sprintf("tco-p%d", version)
			p := clusterClient(t, c, kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.TransactionTimeout(30*time.Second))
			oc := clusterClient(t, c, versionsUpTo(map[int16]int16{28: version}))
			ctx := testCtx(t, 60*time.Second)
			if err := p.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := p.ProduceSync(ctx, &kgo.Record{Topic: "tco", Partition: 0, Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			coord := txnCoordinatorOf(t, p, id)
			var group string
			for i := 0; group == ""; i++ {
				if g := fmt.Sprintf("tco-g%d-%d", version, i); groupCoordinatorOf(t, p, g) != coord {
					group = g
				}
			}
			// Every broker knows __consumer_offsets (created by the lookup)
			// before the transaction coordinator is asked about it.
			for part := range int32(3) {
				checkFor(t, fmt.Sprintf("__consumer_offsets[%d] on every node", part), func() bool {
					return leaderOf(c, "__consumer_offsets", part) != nil
				})
			}
			commit := func(epoch int16, offset int64) int16 {
				pid, _, err := p.ProducerID(ctx)
				if err != nil {
					t.Fatal(err)
				}
				req := kmsg.NewPtrTxnOffsetCommitRequest()
				req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch, req.Generation = id, group, pid, epoch, -1
				req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "tco",
					Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: offset, LeaderEpoch: -1}}}}
				resp, err := req.RequestWith(ctx, oc)
				if err != nil {
					t.Fatal(err)
				}
				if resp.Version != version {
					t.Fatalf("TxnOffsetCommit went as v%d, want v%d", resp.Version, version)
				}
				return resp.Topics[0].Partitions[0].ErrorCode
			}
			addOffsets := func() {
				pid, epoch, _ := p.ProducerID(ctx)
				req := kmsg.NewPtrAddOffsetsToTxnRequest()
				req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = id, pid, epoch, group
				resp, err := req.RequestWith(ctx, p)
				if err != nil || resp.ErrorCode != 0 {
					t.Fatalf("AddOffsetsToTxn: %v %v", err, resp)
				}
			}
			committedAt := func() int64 {
				offs, err := kadm.NewClient(p).FetchOffsets(ctx, group)
				if err != nil {
					t.Fatal(err)
				}
				o, ok := offs.Lookup("tco", 0)
				if !ok {
					return -1
				}
				return o.At
			}
			_, epoch, _ := p.ProducerID(ctx)
			if version < 5 {
				if code := commit(epoch, 7); code != kerr.InvalidTxnState.Code {
					t.Fatalf("TxnOffsetCommit of a group outside the transaction: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
				}
				addOffsets()
			}
			if code := commit(epoch-1, 7); code != kerr.ProducerFenced.Code && code != kerr.InvalidProducerEpoch.Code {
				t.Fatalf("TxnOffsetCommit of an older epoch: %v, want PRODUCER_FENCED", kerr.ErrorForCode(code))
			}
			if code := commit(epoch, 7); code != 0 {
				t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
			}
			if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
			if got := committedAt(); got != 7 {
				t.Fatalf("committed offset %d after the commit, want 7", got)
			}

			// An aborted transaction's offsets are dropped.
			if err := p.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := p.ProduceSync(ctx, &kgo.Record{Topic: "tco", Partition: 1, Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			_, epoch, _ = p.ProducerID(ctx)
			if version < 5 {
				addOffsets()
			}
			if code := commit(epoch, 9); code != 0 {
				t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
			}
			if err := p.EndTransaction(ctx, kgo.TryAbort); err != nil {
				t.Fatal(err)
			}
			if got := committedAt(); got != 7 {
				t.Fatalf("committed offset %d after the abort, want 7", got)
			}
		})
	}
}

// TestClusterTxnCoordinatorMovesFencesOldEpoch: the transaction
// coordinator's broker stops while a transaction is open; the leader of
// the id's __transaction_state partition that follows (a higher leader
// epoch: the coordinator epoch) takes the transaction over and the
// producer's commit completes there. The partitions then refuse a marker
// carrying the old coordinator's epoch (TRANSACTION_COORDINATOR_FENCED), as
// a deposed coordinator's late marker would be.
func TestClusterTxnCoordinatorMovesFencesOldEpoch(t *testing.T) {
	c := startCluster(t, txnClusterProps)
	spreadLeaders(t, c, "txm")
	const id = "txm-producer"
	p := clusterClient(t, c, kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(60*time.Second), kgo.RetryTimeout(60*time.Second))
	produceTxn(t, p, "txm", true, "c1", "c2", "c3")
	coord := txnCoordinatorOf(t, p, id)
	var tsp int32 = -1 // the id's __transaction_state partition
	for part := range int32(3) {
		if l := leaderOf(c, "__transaction_state", part); l != nil && l.NodeID() == coord {
			if st, _ := l.Replica("__transaction_state", part); st.HighWatermark > 0 {
				tsp = part
			}
		}
	}
	if tsp < 0 {
		t.Fatalf("no __transaction_state partition with records led by the coordinator %d", coord)
	}
	old, _ := c.nodes[coord-1].Replica("__transaction_state", tsp)

	ctx := testCtx(t, 90*time.Second)
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i, v := range []string{"d1", "d2", "d3"} {
		recs = append(recs, &kgo.Record{Topic: "txm", Partition: int32(i), Value: []byte(v)})
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[coord-1].Close(); err != nil {
		t.Fatal(err)
	}
	c.nodes[coord-1] = nil
	stopped := time.Now()
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit after the coordinator %d stopped: %v", coord, err)
	}
	t.Logf("coordinator %d stopped: commit answered by its successor after %v", coord, time.Since(stopped).Round(time.Millisecond))
	if now := txnCoordinatorOf(t, p, id); now == coord {
		t.Fatalf("coordinator still %d after it stopped", coord)
	}
	checkStable(t, c, "txm")
	want := []string{"c1", "c2", "c3", "d1", "d2", "d3"}
	if got := readAll(t, c, "txm", kgo.ReadCommitted(), len(want)); !slices.Equal(got, want) {
		t.Fatalf("read_committed read %v, want %v", got, want)
	}

	pid, epoch, err := p.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl := clusterClient(t, c)
	if _, err := kadm.NewClient(cl).BrokerMetadata(ctx); err != nil {
		t.Fatal(err)
	}
	for part := range int32(3) {
		l := liveLeaderOf(c, "txm", part)
		if l == nil {
			t.Fatalf("txm[%d] has no leader", part)
		}
		if got := writeMarker(t, cl, l.NodeID(), "txm", part, pid, epoch, old.LeaderEpoch); got != kerr.TransactionCoordinatorFenced.Code {
			t.Errorf("txm[%d]: marker of the old coordinator epoch %d: %v, want TRANSACTION_COORDINATOR_FENCED",
				part, old.LeaderEpoch, kerr.ErrorForCode(got))
		}
	}
}

// liveLeaderOf is the running node leading a partition, or nil.
func liveLeaderOf(c cluster, topic string, p int32) *node.Node {
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		if st, ok := n.Replica(topic, p); ok && st.Leader {
			return n
		}
	}
	return nil
}

// TestClusterTxnMarkersRetriedAcrossCutLink: the link from the
// transaction's coordinator to one partition leader is cut while the
// transaction commits. The markers reach the two other leaders, the cut
// partition stays unstable (its last stable offset below its high
// watermark: nothing of the transaction visible to read_committed there),
// and the coordinator keeps resending its marker; once the link heals the
// marker lands and the commit answers.
func TestClusterTxnMarkersRetriedAcrossCutLink(t *testing.T) {
	fc := startFaultCluster(t, txnClusterProps)
	c := fc.cluster
	spreadLeaders(t, c, "txf")
	const id = "txf-producer"
	p := clusterClient(t, c, kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(60*time.Second), kgo.RetryTimeout(60*time.Second))
	produceTxn(t, p, "txf", true, "c1", "c2", "c3")
	checkStable(t, c, "txf")

	ctx := testCtx(t, 60*time.Second)
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i, v := range []string{"d1", "d2", "d3"} {
		recs = append(recs, &kgo.Record{Topic: "txf", Partition: int32(i), Value: []byte(v)})
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	coord := txnCoordinatorOf(t, p, id)
	var cutPart int32 = -1
	for part := range int32(3) {
		if l := leaderOf(c, "txf", part).NodeID(); l != coord {
			cutPart = part
			fc.net.cutLink(coord, l)
			break
		}
	}
	ended := make(chan error, 1)
	go func() { ended <- p.EndTransaction(ctx, kgo.TryCommit) }()

	adm := kadm.NewClient(clusterClient(t, c))
	stable := func(part int32) bool {
		lso, err1 := adm.ListCommittedOffsets(ctx, "txf")
		hw, err2 := adm.ListEndOffsets(ctx, "txf")
		if err1 != nil || err2 != nil {
			return false
		}
		l, ok1 := lso.Lookup("txf", part)
		h, ok2 := hw.Lookup("txf", part)
		return ok1 && ok2 && l.Err == nil && h.Err == nil && l.Offset == h.Offset
	}
	for part := range int32(3) {
		if part != cutPart {
			checkFor(t, fmt.Sprintf("txf[%d]'s marker while the link is cut", part), func() bool { return stable(part) })
		}
	}
	select {
	case err := <-ended:
		t.Fatalf("the commit answered (%v) while a partition's leader was unreachable", err)
	default:
	}
	if stable(cutPart) {
		t.Fatalf("txf[%d] is stable although its leader never got the marker", cutPart)
	}
	fc.net.heal()
	if err := <-ended; err != nil {
		t.Fatalf("commit after the link healed: %v", err)
	}
	checkStable(t, c, "txf")
	want := []string{"c1", "c2", "c3", "d1", "d2", "d3"}
	if got := readAll(t, c, "txf", kgo.ReadCommitted(), len(want)); !slices.Equal(got, want) {
		t.Fatalf("read_committed read %v, want %v", got, want)
	}
}

// TestClusterFirstInitProducerIDOnNewCluster: on a new cluster a client
// asks one broker for a transaction coordinator (which creates
// __transaction_state) until it names one, and sends InitProducerId to it
// at once, as kafkajs's TxnOffsetCommit test does without retrying. The
// named broker may not have started loading the new partition yet: it
// waits for the load instead of answering COORDINATOR_LOAD_IN_PROGRESS
// (which it did in 4 of 6 new clusters).
func TestClusterFirstInitProducerIDOnNewCluster(t *testing.T) {
	const tid = "first-txn"
	for round := range 3 {
		c := startCluster(t, nil)
		cl := clusterClient(t, c)
		var coord int32 = -1
		checkFor(t, "a transaction coordinator", func() bool {
			req := kmsg.NewPtrFindCoordinatorRequest()
			req.CoordinatorKeys, req.CoordinatorType = []string{tid}, 1
			resp, err := req.RequestWith(testCtx(t, 5*time.Second), cl.Broker(1))
			if err != nil || len(resp.Coordinators) != 1 || resp.Coordinators[0].ErrorCode != 0 {
				return false
			}
			coord = resp.Coordinators[0].NodeID
			return true
		})
		ip := kmsg.NewPtrInitProducerIDRequest()
		ip.TransactionalID, ip.TransactionTimeoutMillis = kmsg.StringPtr(tid), 30000
		resp, err := ip.RequestWith(testCtx(t, 10*time.Second), cl.Broker(int(coord)))
		if err != nil {
			t.Fatal(err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			t.Fatalf("round %d: InitProducerId to the coordinator just found (%d): %v", round, coord, err)
		}
		cl.Close()
		for _, n := range c.nodes {
			n.Close()
		}
	}
}
