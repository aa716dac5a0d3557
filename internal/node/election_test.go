package node_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/node"
)

// restartNode starts node idx of c again on its data directory and
// controller port; it is closed when the test ends.
func restartNode(t *testing.T, c cluster, idx int, props map[string]string) *node.Node {
	t.Helper()
	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", c.ctrlPorts[0], c.ctrlPorts[1], c.ctrlPorts[2])
	p := map[string]string{"broker.rack": fmt.Sprintf("rack-%d", idx+1)}
	for k, v := range props {
		p[k] = v
	}
	n, err := node.Start(testCtx(t, 60*time.Second), clusterNodeConfig(c.dirs[idx], int32(idx+1), c.ctrlPorts[idx], voters, p), nil)
	if err != nil {
		t.Fatalf("restart node %d: %v", idx+1, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// moveLeadershipAway stops the preferred leader of topic's partition 0
// (a clean shutdown moves leadership to another ISR member), restarts it
// and waits until it is back in the ISR. It returns a node that stayed up
// and the preferred leader's id.
func moveLeadershipAway(t *testing.T, c cluster, topic string, props map[string]string) (survivor *node.Node, preferred int32) {
	t.Helper()
	old := leaderOf(c, topic, 0)
	preferred = old.NodeID()
	idx := int(preferred - 1)
	survivor = c.nodes[(idx+1)%3]
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	checkFor(t, "another leader", func() bool {
		l, _ := metadataLeader(t, survivor, topic, 0)
		return l >= 0 && l != preferred
	})
	c.nodes[idx] = restartNode(t, c, idx, props)
	checkFor(t, "the preferred leader back in the ISR", func() bool {
		return len(isrOf(t, survivor, topic, 0)) == 3
	})
	return survivor, preferred
}

// TestClusterElectLeadersPreferred: with auto.leader.rebalance.enable=false
// leadership stays where failover moved it after the preferred replica
// returns; kadm.ElectLeaders (preferred) moves it back, a second call
// answers ELECTION_NOT_NEEDED, and the every-partition form leaves out the
// partitions that need nothing.
func TestClusterElectLeadersPreferred(t *testing.T) {
	props := map[string]string{"broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "500",
		"auto.leader.rebalance.enable": "false"}
	c := startCluster(t, props)
	const topic = "preferred"
	createReplicated(t, c, topic, 1, nil)
	survivor, preferred := moveLeadershipAway(t, c, topic, props)
	if l, _ := metadataLeader(t, survivor, topic, 0); l == preferred {
		t.Fatalf("leadership went back to %d with the automatic rebalance off", preferred)
	}

	// kadm sends ElectLeaders to the active controller; a request to
	// another broker is forwarded to it (KIP-590).
	var ctrl int32
	checkFor(t, "a known controller", func() bool {
		_, id, err := describe(t, survivor)
		ctrl = id
		return err == nil && id > 0
	})
	other := c.nodes[ctrl%3]
	ocl := newClient(t, other)
	req := kmsg.NewPtrElectLeadersRequest()
	req.ElectionType, req.TimeoutMillis = 0, 10000
	rt := kmsg.NewElectLeadersRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{0}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t, 15*time.Second), ocl.Broker(int(other.NodeID())))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("preferred election through broker %d (controller %d): %+v", other.NodeID(), ctrl, resp)
	}
	adm, _ := newAdmin(t, survivor)
	checkFor(t, "the preferred replica leading", func() bool {
		l, _ := metadataLeader(t, survivor, topic, 0)
		return l == preferred
	})
	rs, err := adm.ElectLeaders(testCtx(t, 15*time.Second), kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := rs[topic][0]; !errors.Is(r.Err, kerr.ElectionNotNeeded) {
		t.Fatalf("second preferred election: %v, want ELECTION_NOT_NEEDED", r.Err)
	}
	rs, err = adm.ElectLeaders(testCtx(t, 15*time.Second), kadm.ElectPreferredReplica, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs[topic]) != 0 {
		t.Fatalf("every-partition election lists %v", rs[topic])
	}
	rs, err = adm.ElectLeaders(testCtx(t, 15*time.Second), kadm.ElectLiveReplica, kadm.TopicsSet{topic: {0: {}}, "missing": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rs[topic][0].Err, kerr.ElectionNotNeeded) || !errors.Is(rs["missing"][0].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("unclean election of a led partition and a missing topic: %+v", rs)
	}
}

// TestClusterAutoLeaderRebalance: with auto.leader.rebalance.enable (the
// default) and leader.imbalance.check.interval.seconds=1, the preferred
// replica gets its leadership back on its own once it has rejoined the ISR.
func TestClusterAutoLeaderRebalance(t *testing.T) {
	props := map[string]string{"broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "500",
		"leader.imbalance.check.interval.seconds": "1"}
	c := startCluster(t, props)
	const topic = "rebalanced"
	createReplicated(t, c, topic, 1, nil)
	survivor, preferred := moveLeadershipAway(t, c, topic, props)
	checkFor(t, "the preferred replica leading again", func() bool {
		l, _ := metadataLeader(t, survivor, topic, 0)
		return l == preferred
	})
}

// TestClusterUncleanLeaderElection: partition replicas [1, 2], ISR shrunk
// to [1] while broker 2 was down and records 10-19 were written to 1 alone;
// then 1 stops too. Broker 2 returns: with unclean.leader.election.enable
// false (the default) the partition stays offline; set to true on the
// topic, broker 2 leads with ISR [2] (records 10-19 are lost, as the option
// accepts), takes writes, and broker 1, restarted, truncates its divergent
// tail, follows and rejoins the ISR with a log identical to the leader's.
func TestClusterUncleanLeaderElection(t *testing.T) {
	props := map[string]string{"broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "500"}
	c := startCluster(t, props)
	const topic = "unclean"
	third := c.nodes[2]
	cl := newClient(t, third, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))

	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{1, 2}
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	ct.Topics = append(ct.Topics, rt)
	resp, err := ct.RequestWith(testCtx(t, 15*time.Second), cl)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic: %v %+v", err, resp)
	}
	checkFor(t, "broker 1 leading, broker 2 following", func() bool {
		l, ok1 := c.nodes[0].Replica(topic, 0)
		_, ok2 := c.nodes[1].Replica(topic, 0)
		return ok1 && ok2 && l.Leader
	})
	produce := func(from, to int) {
		t.Helper()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Partition: 0, Value: []byte(fmt.Sprintf("v-%d", i))})
		}
		if err := cl.ProduceSync(testCtx(t, 30*time.Second), recs...).FirstErr(); err != nil {
			t.Fatalf("produce %d-%d: %v", from, to, err)
		}
	}
	produce(0, 10) // acks=all: on both replicas
	if err := c.nodes[1].Close(); err != nil {
		t.Fatal(err)
	}
	checkFor(t, "ISR [1]", func() bool { return slices.Equal(isrOf(t, third, topic, 0), []int32{1}) })
	produce(10, 20) // on broker 1 only
	metric := func(n *node.Node, series string) float64 {
		t.Helper()
		v, _ := scrapeMetric(t, n, series)
		return v
	}
	checkFor(t, "broker 1's replication metrics", func() bool {
		return metric(c.nodes[0], "gregor_partitions_under_replicated") == 1 &&
			metric(c.nodes[0], "gregor_isr_shrinks_total") >= 1 &&
			metric(c.nodes[0], "gregor_partitions_leader") == 1 &&
			metric(c.nodes[0], `gregor_partition_max_follower_lag{partition="0",topic="unclean"}`) >= 10
	})
	if err := c.nodes[0].Close(); err != nil {
		t.Fatal(err)
	}

	// Broker 2 returns (with 3 it restores the quorum); unclean election
	// is off: the partition stays offline although 2 is unfenced.
	c.nodes[1] = restartNode(t, c, 1, props)
	checkFor(t, "broker 2 unfenced", func() bool {
		brokers, _, err := describe(t, third)
		return err == nil && slices.Equal(brokers, []int32{2, 3})
	})
	if l, _ := metadataLeader(t, third, topic, 0); l != -1 {
		t.Fatalf("partition led by %d without unclean election", l)
	}
	// The active controller (2 or 3) counts the offline partition and the
	// fenced broker 1; the other node reports 0.
	checkFor(t, "the controller's offline and fenced counts", func() bool {
		sum := func(series string) float64 { return metric(c.nodes[1], series) + metric(third, series) }
		return sum("gregor_controller_offline_partitions") == 1 && sum("gregor_controller_fenced_brokers") == 1 &&
			sum("gregor_controller_active_brokers") == 2 && sum("gregor_controller_active") == 1
	})

	adm, _ := newAdmin(t, third)
	ar, err := adm.AlterTopicConfigs(testCtx(t, 15*time.Second),
		[]kadm.AlterConfig{{Name: "unclean.leader.election.enable", Value: kmsg.StringPtr("true")}}, topic)
	if err == nil {
		_, err = ar.On(topic, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, "broker 2 elected uncleanly", func() bool {
		l, _ := metadataLeader(t, third, topic, 0)
		return l == 2 && slices.Equal(isrOf(t, third, topic, 0), []int32{2})
	})
	checkFor(t, "broker 2 leading", func() bool {
		st, ok := c.nodes[1].Replica(topic, 0)
		return ok && st.Leader
	})
	produce(20, 25)

	recs := consumePartitions(t, c.nodes[1], topic, []int32{0}, 15)
	for i, r := range recs {
		want := fmt.Sprintf("v-%d", i)
		if i >= 10 {
			want = fmt.Sprintf("v-%d", i+10)
		}
		if string(r.Value) != want || r.Offset != int64(i) {
			t.Fatalf("record %d: %q at %d, want %q", i, r.Value, r.Offset, want)
		}
	}

	c.nodes[0] = restartNode(t, c, 0, props)
	checkFor(t, "broker 1 back in the ISR", func() bool {
		return slices.Equal(isrOf(t, third, topic, 0), []int32{1, 2})
	})
	checkFor(t, "broker 2's ISR expansion", func() bool {
		return metric(c.nodes[1], "gregor_isr_expands_total") >= 1 && metric(c.nodes[1], "gregor_partitions_under_replicated") == 0
	})
	for _, n := range c.nodes {
		resp, err := http.Get("http://" + n.HTTPAddr().String() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || metric(n, "gregor_metadata_applied_offset") <= 0 {
			t.Fatalf("node %d: /readyz %d, applied offset %v", n.NodeID(), resp.StatusCode, metric(n, "gregor_metadata_applied_offset"))
		}
	}
	lst, _ := c.nodes[1].Replica(topic, 0)
	checkFor(t, "broker 1 caught up", func() bool {
		st, _ := c.nodes[0].Replica(topic, 0)
		return st.LogEndOffset == lst.LogEndOffset && st.HighWatermark == lst.HighWatermark
	})
	st, _ := c.nodes[0].Replica(topic, 0)
	if st.Leader || !bytes.Equal(segmentBytes(t, st.Dir), segmentBytes(t, lst.Dir)) {
		t.Fatalf("broker 1 after truncation: leader %v, log identical %v", st.Leader, bytes.Equal(segmentBytes(t, st.Dir), segmentBytes(t, lst.Dir)))
	}
}
