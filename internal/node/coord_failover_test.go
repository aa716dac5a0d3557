package node_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/group"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/txn"
)

// Coordinators move with the leadership of their state partitions: the
// node that becomes leader of a __consumer_offsets or __transaction_state
// partition loads it, and clients that lose their coordinator find the new
// one and carry on with the state the old one committed.

// coordFailoverProps: fast fencing, few internal partitions (quick loads),
// a group's first rebalance at once.
var coordFailoverProps = map[string]string{
	"broker.session.timeout.ms":            "2000",
	"broker.heartbeat.interval.ms":         "500",
	"group.initial.rebalance.delay.ms":     "0",
	"offsets.topic.num.partitions":         "3",
	"transaction.state.log.num.partitions": "3",
}

// coordinatorOf asks n which node coordinates key (typ 0: a group, 1: a
// transactional id), until one is named.
func coordinatorOf(t *testing.T, n *node.Node, key string, typ int8) int32 {
	t.Helper()
	cl := newClient(t, n)
	defer cl.Close()
	id := int32(-1)
	checkFor(t, "a coordinator for "+key, func() bool {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey, req.CoordinatorKeys, req.CoordinatorType = key, []string{key}, typ
		resp, err := req.RequestWith(testCtx(t, 5*time.Second), cl.Broker(int(n.NodeID())))
		if err != nil {
			return false
		}
		code, node := resp.ErrorCode, resp.NodeID
		if len(resp.Coordinators) == 1 {
			code, node = resp.Coordinators[0].ErrorCode, resp.Coordinators[0].NodeID
		}
		id = node
		return code == 0 && node >= 0
	})
	return id
}

// replicasOf is a partition's replica list in n's Metadata answer.
func replicasOf(t *testing.T, n *node.Node, topic string, partition int32) []int32 {
	t.Helper()
	cl := newClient(t, n)
	defer cl.Close()
	md := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	md.Topics = append(md.Topics, mt)
	resp, err := md.RequestWith(testCtx(t, 5*time.Second), cl.Broker(int(n.NodeID())))
	if err != nil || len(resp.Topics) != 1 || int(partition) >= len(resp.Topics[0].Partitions) {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	return resp.Topics[0].Partitions[partition].Replicas
}

// movedCoordinator waits until every node of rest names one coordinator
// for key other than old, and returns it. One node is not enough: the
// stopped node, when it was the Raft leader, commits its controlled-shutdown
// fencing (which moves its leaderships) on a majority and stops, and the
// other follower applies it only once a new leader commits, hundreds of
// milliseconds later under load. Until then that follower names the
// stopped node, as a lagging Kafka broker does, while the others no longer
// list it; franz-go fails a sharded OffsetFetch on such an answer
// ("did not reply with that broker in the broker list") without retrying.
func movedCoordinator(t *testing.T, rest []*node.Node, key string, typ int8, old int32) int32 {
	t.Helper()
	now := int32(-1)
	checkFor(t, "every remaining node naming one coordinator other than "+fmt.Sprint(old), func() bool {
		now = coordinatorOf(t, rest[0], key, typ)
		for _, nd := range rest[1:] {
			if coordinatorOf(t, nd, key, typ) != now {
				return false
			}
		}
		return now != old
	})
	return now
}

func seeds(nodes []*node.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.KafkaAddr().String())
	}
	return out
}

// stopNode stops the node with id and returns the others.
func stopNode(t *testing.T, c cluster, id int32) []*node.Node {
	t.Helper()
	var rest []*node.Node
	for _, n := range c.nodes {
		if n.NodeID() == id {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		rest = append(rest, n)
	}
	return rest
}

// TestClusterGroupCoordinatorFailover: a consumer group commits offsets on
// a 3-node cluster; the node coordinating it stops. Another node, leading
// the group's __consumer_offsets partition now, loads it: the committed
// offsets and the group (its member) are there, the member carries on with
// it, and new commits land on it.
func TestClusterGroupCoordinatorFailover(t *testing.T) {
	c := startCluster(t, coordFailoverProps)
	const topic, groupID, n = "orders", "billing", 30
	createReplicated(t, c, topic, 3, map[string]*string{"min.insync.replicas": strp("2")})
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds(c.nodes)...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	produce := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			r := &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}
			if err := prod.ProduceSync(testCtx(t, 30*time.Second), r).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}
	produce(0, n)

	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds(c.nodes)...), kgo.ConsumerGroup(groupID), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.SessionTimeout(10*time.Second), kgo.HeartbeatInterval(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	consume := func(want int) {
		t.Helper()
		got := 0
		ctx := testCtx(t, 30*time.Second)
		for got < want && ctx.Err() == nil {
			got += len(cons.PollFetches(ctx).Records())
		}
		if got != want {
			t.Fatalf("consumed %d of %d records", got, want)
		}
		if err := cons.CommitUncommittedOffsets(testCtx(t, 30*time.Second)); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	consume(n)

	old := coordinatorOf(t, c.nodes[0], groupID, 0)
	p := group.PartitionFor(groupID, 3)
	for _, nd := range c.nodes {
		if _, ok := nd.Replica(group.Topic, p); !ok {
			t.Fatalf("node %d holds no replica of %s-%d: the internal topic is not replicated", nd.NodeID(), group.Topic, p)
		}
	}
	adm0 := kadm.NewClient(newClient(t, c.nodes[0]))
	rcs, err := adm0.DescribeTopicConfigs(testCtx(t, 10*time.Second), group.Topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(group.Topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	// As Kafka, __consumer_offsets sets no min.insync.replicas of its own
	// (__transaction_state does): the broker default, 1, applies.
	minISR, src := "absent", kmsg.ConfigSource(0)
	for _, cfg := range rc.Configs {
		if cfg.Key == "min.insync.replicas" {
			minISR, src = cfg.MaybeValue(), cfg.Source
		}
	}
	if minISR != "1" || src != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("%s min.insync.replicas %s (%v), want the broker default 1", group.Topic, minISR, src)
	}
	rest := stopNode(t, c, old)

	movedCoordinator(t, rest, groupID, 0, old)
	adm := kadm.NewClient(newClient(t, rest[0]))
	sum := func() int64 {
		offs, err := adm.FetchOffsets(testCtx(t, 10*time.Second), groupID)
		if err != nil {
			t.Fatalf("fetch offsets: %v", err)
		}
		var s int64
		offs.Each(func(o kadm.OffsetResponse) { s += o.At })
		return s
	}
	if got := sum(); got != n {
		t.Fatalf("committed offsets on the new coordinator add up to %d, want %d", got, n)
	}
	checkFor(t, "the group stable with its member on the new coordinator", func() bool {
		gs, err := adm.DescribeGroups(testCtx(t, 5*time.Second), groupID)
		if err != nil {
			return false
		}
		g := gs[groupID]
		return g.Err == nil && g.State == "Stable" && len(g.Members) == 1
	})

	produce(n, 2*n)
	consume(n)
	if got := sum(); got != 2*n {
		t.Fatalf("committed offsets after the failover add up to %d, want %d", got, 2*n)
	}
}

// TestClusterTxnCoordinatorFailover: a transaction is open (records
// produced) when the node coordinating it stops. The next leader of its
// __transaction_state partition loads it as Ongoing; the producer's commit
// reaches it and completes: the records become visible to read_committed.
//
// The producer speaks transactions v1 without the partition leaders'
// verification, and the data partition is led by the next coordinator:
// a partition leader asking a coordinator on another node (KIP-890) and
// markers to partitions led elsewhere (WriteTxnMarkers) are not this
// test's subject.
func TestClusterTxnCoordinatorFailover(t *testing.T) {
	props := map[string]string{"transaction.partition.verification.enable": "false"}
	for k, v := range coordFailoverProps {
		props[k] = v
	}
	c := startCluster(t, props)
	const id, topic, n = "tx-failover", "payments", 10
	old := coordinatorOf(t, c.nodes[0], id, 1)
	p := metadata.PartitionFor(id, 3)
	// The controller elects the first ISR member in replica order.
	next := int32(-1)
	for _, r := range replicasOf(t, c.nodes[0], txn.Topic, p) {
		if r != old && next < 0 {
			next = r
		}
	}
	// The data partition is led by the next coordinator, so that its
	// markers are local (markers to partitions led elsewhere are
	// WriteTxnMarkers).
	assign := []int32{next}
	for _, nd := range c.nodes {
		if nd.NodeID() != next {
			assign = append(assign, nd.NodeID())
		}
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, assign
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	cfg := kmsg.NewCreateTopicsRequestTopicConfig()
	cfg.Name, cfg.Value = "min.insync.replicas", strp("2")
	rt.Configs = append(rt.Configs, cfg)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 15000
	admCl := newClient(t, c.nodes[0])
	resp, err := req.RequestWith(testCtx(t, 15*time.Second), admCl)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create %s: %v %+v", topic, err, resp)
	}
	checkFor(t, topic+" led by node "+fmt.Sprint(next), func() bool {
		l := leaderOf(c, topic, 0)
		return l != nil && l.NodeID() == next
	})

	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds(c.nodes)...), kgo.TransactionalID(id),
		kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.TransactionTimeout(time.Minute),
		kgo.RetryTimeout(30*time.Second), txnV1)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := prod.ProduceSync(testCtx(t, 20*time.Second), &kgo.Record{Partition: 0, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}

	rest := stopNode(t, c, old)
	if now := movedCoordinator(t, rest, id, 1, old); now != next {
		t.Fatalf("coordinator after the move: node %d, want %d", now, next)
	}
	if err := prod.EndTransaction(testCtx(t, 45*time.Second), kgo.TryCommit); err != nil {
		t.Fatalf("commit through the new coordinator: %v", err)
	}
	var nextNode *node.Node
	for _, nd := range rest {
		if nd.NodeID() == next {
			nextNode = nd
		}
	}
	dcl := newClient(t, nextNode)
	dreq := kmsg.NewPtrDescribeTransactionsRequest()
	dreq.TransactionalIDs = []string{id}
	dresp, err := dreq.RequestWith(testCtx(t, 10*time.Second), dcl.Broker(int(next)))
	if err != nil || len(dresp.TransactionStates) != 1 || dresp.TransactionStates[0].State != "CompleteCommit" {
		t.Fatalf("DescribeTransactions on the new coordinator: %v %+v", err, dresp)
	}
	recs := consumePartitions(t, nextNode, topic, []int32{0}, n, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if len(recs) != n {
		t.Fatalf("read_committed read %d records, want %d", len(recs), n)
	}
}

// TestClusterOffsetFetchWithTooFewInSyncReplicas: a group's
// __consumer_offsets partition with fewer in-sync replicas than its
// min.insync.replicas refuses new commits, but OffsetFetch still answers
// the committed offsets, as in Kafka, where the minimum guards writes only.
// It answered COORDINATOR_NOT_AVAILABLE (found by sarama's functional
// TestFuncAdminListConsumerGroupOffsets, with a broker of the group's
// partition stopped).
func TestClusterOffsetFetchWithTooFewInSyncReplicas(t *testing.T) {
	props := map[string]string{"replica.lag.time.max.ms": "1500"}
	for k, v := range coordFailoverProps {
		props[k] = v
	}
	c := startCluster(t, props)
	const topic, groupID = "orders", "reader"
	createReplicated(t, c, topic, 1, nil)
	adm := kadm.NewClient(newClient(t, c.nodes[0]))
	ctx := testCtx(t, 60*time.Second)
	commit := func(at int64) error {
		os := kadm.Offsets{}
		os.Add(kadm.Offset{Topic: topic, Partition: 0, At: at, LeaderEpoch: -1})
		resp, err := adm.CommitOffsets(ctx, groupID, os)
		if err == nil {
			err = resp.Error()
		}
		return err
	}
	if err := commit(5); err != nil {
		t.Fatalf("commit: %v", err)
	}

	// The group's partition needs all three replicas; stop one that is
	// not its leader and wait for the ISR to shrink.
	p := group.PartitionFor(groupID, 3)
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "min.insync.replicas", Value: strp("3")}}, group.Topic)
	if err == nil {
		err = ar[0].Err
	}
	if err != nil {
		t.Fatalf("min.insync.replicas=3 on %s: %v", group.Topic, err)
	}
	coord := coordinatorOf(t, c.nodes[0], groupID, 0)
	victim := int32(1)
	for victim == coord {
		victim++
	}
	rest := stopNode(t, c, victim)
	adm = kadm.NewClient(newClient(t, rest[0]))
	checkFor(t, fmt.Sprintf("%s-%d's ISR without node %d", group.Topic, p, victim), func() bool {
		td, err := adm.ListTopics(ctx, group.Topic)
		if err != nil {
			return false
		}
		pd, ok := td[group.Topic].Partitions[p]
		return ok && len(pd.ISR) == 2 && !slices.Contains(pd.ISR, victim)
	})
	// And until the group's coordinator, the partition's leader, applied
	// the shrink: before, it appends the commit and fails it only after
	// (NOT_ENOUGH_REPLICAS_AFTER_APPEND), and the offset, committed by the
	// smaller ISR, is what OffsetFetch answers, as in Kafka.
	for _, nd := range rest {
		if nd.NodeID() != coord {
			continue
		}
		checkFor(t, fmt.Sprintf("node %d applying the ISR shrink", coord), func() bool {
			st, ok := nd.Replica(group.Topic, p)
			return ok && st.Leader && st.ISRSize == 2
		})
	}

	if err := commit(6); err == nil {
		t.Fatalf("a commit with 2 in-sync replicas of 3 required succeeded")
	}
	fetched, err := adm.FetchOffsets(ctx, groupID)
	if err == nil {
		err = fetched.Error()
	}
	if err != nil {
		t.Fatalf("fetch offsets with too few in-sync replicas: %v, want the committed offsets", err)
	}
	if o, ok := fetched.Lookup(topic, 0); !ok || o.At != 5 {
		t.Fatalf("fetched offset %+v (found %v), want 5", o, ok)
	}
}
