package node_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/testkit"
)

// seedLeader is metadataLeader asking n itself (its client's seed), so it
// needs no metadata of the client's first.
func seedLeader(t *testing.T, n *node.Node, topic string, partition int32) (leader, epoch int32) {
	t.Helper()
	cl := newClient(t, n)
	defer cl.Close()
	md := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	md.Topics = append(md.Topics, mt)
	resp, err := md.RequestWith(testCtx(t, 5*time.Second), cl.SeedBrokers()[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rt.Topic != nil && *rt.Topic == topic && rp.Partition == partition {
				return rp.Leader, rp.LeaderEpoch
			}
		}
	}
	return -1, -1
}

// leaderFirst is every node of c as a partition's replicas with leader
// first (the others in id order), and the nodes other than leader.
func leaderFirst(c *faultCluster, leader int32) (replicas []int32, others []*node.Node) {
	replicas = []int32{leader}
	for _, n := range c.nodes {
		if id := n.NodeID(); id != leader {
			replicas = append(replicas, id)
			others = append(others, n)
		}
	}
	return replicas, others
}

// createAssigned creates a one-partition topic whose replicas are replicas
// in order (the first leads) and waits until that replica leads it.
func createAssigned(t *testing.T, c *faultCluster, topic string, replicas []int32, configs map[string]string) {
	t.Helper()
	cl := newClient(t, c.nodes[0])
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 15000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, replicas
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	for k, v := range configs {
		cf := kmsg.NewCreateTopicsRequestTopicConfig()
		cf.Name, cf.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, cf)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t, 20*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	checkFor(t, fmt.Sprintf("%s led by %d on every replica", topic, replicas[0]), func() bool {
		for _, id := range replicas {
			st, ok := c.nodes[id-1].Replica(topic, 0)
			if !ok || st.Leader != (id == replicas[0]) {
				return false
			}
		}
		return true
	})
}

// TestClusterIsolatedLeaderDeposed: the leader of an RF=3,
// min.insync.replicas=2 partition is cut from both other nodes (data and
// metadata links, both ways) while clients still reach it. It takes
// acks=all produces but acknowledges none: its followers no longer fetch,
// so its high watermark stays. The controller fences it when its session
// ends and elects another ISR member, which takes the producer's writes;
// the isolated node, not knowing, still takes a produce and acknowledges
// nothing. Healed, it learns the new epoch, truncates the tail it wrote
// alone and rejoins the ISR: every acknowledged record is read exactly once
// at its offset, none of the unacknowledged ones is anywhere, and the three
// logs are byte-identical.
func TestClusterIsolatedLeaderDeposed(t *testing.T) {
	props := map[string]string{"broker.session.timeout.ms": "1500", "broker.heartbeat.interval.ms": "300",
		"replica.lag.time.max.ms": "3000"}
	c := startFaultCluster(t, props)
	ids := []int32{1, 2, 3}
	ctrl := activeController(t, c.nodes[0])
	// The isolated leader is not the active controller: its isolation
	// moves the partition, not the quorum too.
	var leaderID int32
	for _, id := range ids {
		if id != ctrl {
			leaderID = id
			break
		}
	}
	replicas, survivors := leaderFirst(c, leaderID)
	old := c.nodes[leaderID-1]
	const topic = "isolated"
	createAssigned(t, c, topic, replicas, map[string]string{"min.insync.replicas": "2"})
	_, oldEpoch := seedLeader(t, old, topic, 0)

	var acked []string
	produce := func(cl *kgo.Client, from, to int) {
		t.Helper()
		for i := from; i < to; i += 10 {
			var recs []*kgo.Record
			for k := i; k < min(i+10, to); k++ {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprintf("acked-%d", k))})
			}
			if err := cl.ProduceSync(testCtx(t, 30*time.Second), recs...).FirstErr(); err != nil {
				t.Fatalf("produce %d-%d: %v", i, min(i+10, to), err)
			}
			for _, r := range recs {
				acked = append(acked, string(r.Value))
			}
		}
	}
	seeds := func(ns ...*node.Node) kgo.Opt {
		var s []string
		for _, n := range ns {
			s = append(s, n.KafkaAddr().String())
		}
		return kgo.SeedBrokers(s...)
	}
	const n = 40
	produce(newClient(t, old, seeds(c.nodes...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner())), 0, n)
	checkFor(t, "every replica at the high watermark", func() bool {
		for _, nd := range c.nodes {
			if st, _ := nd.Replica(topic, 0); st.HighWatermark != n || st.LogEndOffset != n {
				return false
			}
		}
		return true
	})

	c.net.isolate(leaderID, ids...)
	// A produce straight to the isolated leader is appended and waits.
	raw := newClient(t, old)
	rawProduce := func(tag string) kmsg.ProduceResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 2000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = rawBatch(t, -1, -1, -1, 3, tag)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := raw.Broker(int(leaderID)).Request(testCtx(t, 20*time.Second), req)
		if err != nil {
			t.Fatalf("produce to the isolated leader: %v", err)
		}
		return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	}
	if r := rawProduce("isolated-before"); r.ErrorCode == 0 {
		t.Fatalf("the isolated leader acknowledged an acks=all produce at offset %d", r.BaseOffset)
	}

	var newID, newEpoch int32
	checkFor(t, "a new leader elected by the controller", func() bool {
		newID, newEpoch = seedLeader(t, survivors[0], topic, 0)
		return newID >= 0 && newID != leaderID
	})
	if newEpoch <= oldEpoch {
		t.Fatalf("leader epoch %d after the election, was %d", newEpoch, oldEpoch)
	}
	if st, _ := old.Replica(topic, 0); !st.Leader || st.LogEndOffset <= n {
		t.Fatalf("isolated node: leader %v, log end %d; want it still leading with a tail past %d", st.Leader, st.LogEndOffset, n)
	}
	// Deposed but unaware, it still takes a produce and acknowledges nothing.
	if r := rawProduce("isolated-after"); r.ErrorCode == 0 {
		t.Fatalf("the deposed leader acknowledged an acks=all produce at offset %d", r.BaseOffset)
	}
	produce(newClient(t, survivors[0], seeds(survivors...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner())), n, 2*n)

	c.net.heal()
	leader := c.nodes[newID-1]
	checkFor(t, "the old leader to rejoin the ISR", func() bool {
		isr := isrOf(t, leader, topic, 0)
		return len(isr) == 3 && slices.Contains(isr, leaderID)
	})
	lst, _ := leader.Replica(topic, 0)
	want := segmentBytes(t, lst.Dir)
	for _, nd := range c.nodes {
		checkFor(t, fmt.Sprintf("node %d's replica to match the leader's", nd.NodeID()), func() bool {
			st, _ := nd.Replica(topic, 0)
			return !st.Leader || nd == leader
		})
		checkFor(t, fmt.Sprintf("node %d's replica to catch up", nd.NodeID()), func() bool {
			st, _ := nd.Replica(topic, 0)
			return st.LogEndOffset == lst.LogEndOffset && st.HighWatermark == lst.HighWatermark
		})
		st, _ := nd.Replica(topic, 0)
		if got := segmentBytes(t, st.Dir); !bytes.Equal(got, want) {
			t.Fatalf("node %d's log differs from the leader's (isolated tail kept: %v)", nd.NodeID(),
				bytes.Contains(got, []byte("isolated-")))
		}
	}
	recs := consumePartitions(t, leader, topic, []int32{0}, len(acked))
	for i, r := range recs {
		if string(r.Value) != acked[i] || r.Offset != int64(i) {
			t.Fatalf("record %d: %q at offset %d, want %q", i, r.Value, r.Offset, acked[i])
		}
		if strings.HasPrefix(string(r.Value), "isolated-") {
			t.Fatalf("an unacknowledged record at offset %d", r.Offset)
		}
	}
	if lst.HighWatermark != int64(len(acked)) {
		t.Fatalf("high watermark %d, want %d (the acknowledged records only)", lst.HighWatermark, len(acked))
	}
}

// TestClusterLeaderCutFromControllerDeposed: a one-way partition. The
// partition's leader can no longer reach any controller listener (its
// heartbeats and its Raft requests fail), while the controller still
// reaches it (Raft keeps its metadata current), the followers still fetch
// from it and it can fetch from them. The controller fences it when its
// session ends and elects a follower; the old leader learns it at once
// from the metadata log, stops acknowledging, follows the new leader and
// truncates nothing it should keep. Healed, it is unfenced by its next
// heartbeat and rejoins the ISR; every acknowledged record is read once at
// its offset and the logs are byte-identical.
//
// The leader is cut from every voter, not from the active controller
// alone. Cut from one only, it still reached the third voter, so a Raft
// election under load could make the old leader itself the active
// controller, which never fences its own broker: the likeliest reading of
// a CI run in which no new leader came within 20 s.
func TestClusterLeaderCutFromControllerDeposed(t *testing.T) {
	props := map[string]string{"broker.session.timeout.ms": "1500", "broker.heartbeat.interval.ms": "300",
		"replica.lag.time.max.ms": "3000"}
	c := startFaultCluster(t, props)
	ctrl := activeController(t, c.nodes[0])
	// Replicas: the leader, then the node elected next, neither the
	// controller, then the controller.
	var replicas []int32
	for id := int32(1); id <= 3; id++ {
		if id != ctrl {
			replicas = append(replicas, id)
		}
	}
	replicas = append(replicas, ctrl)
	leaderID := replicas[0]
	const topic = "oneway"
	createAssigned(t, c, topic, replicas, map[string]string{"min.insync.replicas": "2"})
	old := c.nodes[leaderID-1]
	_, oldEpoch := seedLeader(t, old, topic, 0)

	var all []string
	for _, nd := range c.nodes {
		all = append(all, nd.KafkaAddr().String())
	}
	cl := newClient(t, old, kgo.SeedBrokers(all...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	var acked []*kgo.Record
	produce := func(from, to int) {
		t.Helper()
		var recs []*kgo.Record
		for k := from; k < to; k++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprintf("acked-%d", k))})
		}
		if err := cl.ProduceSync(testCtx(t, 30*time.Second), recs...).FirstErr(); err != nil {
			t.Fatalf("produce %d-%d: %v", from, to, err)
		}
		acked = append(acked, recs...)
	}
	produce(0, 30)

	for i, port := range c.ctrlPorts {
		if int32(i+1) != leaderID {
			c.net.cutPort(leaderID, port) // one way: the leader reaches no controller
		}
	}
	var newID, newEpoch int32
	testkit.Eventually(t, 20*time.Second, "a new leader, known to the old one", func() error {
		newID, newEpoch = seedLeader(t, old, topic, 0)
		st, _ := old.Replica(topic, 0)
		if newID >= 0 && newID != leaderID && !st.Leader {
			return nil
		}
		_, active, err := describe(t, c.nodes[ctrl-1])
		return fmt.Errorf("the old leader names leader %d (epoch %d) and leads: %v; node %d names controller %d (%v)",
			newID, newEpoch, st.Leader, ctrl, active, err)
	})
	if newEpoch <= oldEpoch {
		t.Fatalf("leader epoch %d after the election, was %d", newEpoch, oldEpoch)
	}
	produce(30, 60)
	leader := c.nodes[newID-1]
	checkFor(t, "the old leader to catch up as a follower", func() bool {
		st, _ := old.Replica(topic, 0)
		lst, _ := leader.Replica(topic, 0)
		return st.LogEndOffset == lst.LogEndOffset
	})
	if isr := isrOf(t, leader, topic, 0); slices.Contains(isr, leaderID) {
		t.Fatalf("ISR %v holds the fenced broker %d", isr, leaderID)
	}

	c.net.heal()
	checkFor(t, "the old leader to rejoin the ISR", func() bool {
		return len(isrOf(t, leader, topic, 0)) == 3
	})
	lst, _ := leader.Replica(topic, 0)
	want := segmentBytes(t, lst.Dir)
	for _, nd := range c.nodes {
		checkFor(t, fmt.Sprintf("node %d's replica to catch up", nd.NodeID()), func() bool {
			st, _ := nd.Replica(topic, 0)
			return st.LogEndOffset == lst.LogEndOffset && st.HighWatermark == lst.HighWatermark
		})
		st, _ := nd.Replica(topic, 0)
		if !bytes.Equal(segmentBytes(t, st.Dir), want) {
			t.Fatalf("node %d's log differs from the leader's", nd.NodeID())
		}
	}
	recs := consumePartitions(t, leader, topic, []int32{0}, len(acked))
	for i, r := range recs {
		if string(r.Value) != string(acked[i].Value) || r.Offset != acked[i].Offset {
			t.Fatalf("record %d: %q at offset %d, acknowledged %q at %d", i, r.Value, r.Offset, acked[i].Value, acked[i].Offset)
		}
	}
}
