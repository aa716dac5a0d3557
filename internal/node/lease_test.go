package node_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/node"
)

// TestClusterLeaseStopsIsolatedLeader: the leader of a partition is cut
// from the controller and the other nodes while a client stays connected
// to it. Its metadata is frozen, so it still believes it leads; once its
// lease (session minus margin, counted from its last answered heartbeat)
// has run out, it answers Fetch, ListOffsets and Produce with
// NOT_LEADER_OR_FOLLOWER rather than serve a high watermark that may be
// stale, and reports the expiry in gregor_broker_lease_expired. The
// partition has one replica, so the controller, which fences the node at
// the end of its session, can elect no other leader: the refusal comes
// from the lease, never from a metadata change. Healed, the node is
// unfenced, leads again and serves its records.
//
// The node is also the coordinator of a group (it leads the group's
// __consumer_offsets partition, of one replica too): once the lease has
// run out it answers OffsetFetch NOT_COORDINATOR rather than serve offsets
// a successor may have overtaken (the chaos suite, seed 349440, read an
// older committed offset from an isolated coordinator after its successor
// had answered a newer commit).
func TestClusterLeaseStopsIsolatedLeader(t *testing.T) {
	props := map[string]string{"broker.session.timeout.ms": "1500", "broker.heartbeat.interval.ms": "300",
		"offsets.topic.num.partitions": "3", "offsets.topic.replication.factor": "1"}
	c := startFaultCluster(t, props)
	ids := []int32{1, 2, 3}
	ctrl := activeController(t, c.nodes[0])
	// The isolated node coordinates a group and leads the topic; it is
	// not the controller, so its isolation moves no quorum.
	var group string
	var leaderID int32
	finder := newClient(t, c.nodes[0])
	for i := 0; group == ""; i++ {
		if i == 100 {
			t.Fatalf("none of 100 groups is coordinated by a node other than the controller %d", ctrl)
		}
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey = fmt.Sprintf("leased-group-%d", i)
		var resp *kmsg.FindCoordinatorResponse
		checkFor(t, "a coordinator for "+req.CoordinatorKey, func() bool {
			r, err := req.RequestWith(testCtx(t, 10*time.Second), finder)
			resp = r
			return err == nil && r.ErrorCode == 0
		})
		if resp.NodeID != ctrl {
			group, leaderID = req.CoordinatorKey, resp.NodeID
		}
	}
	old := c.nodes[leaderID-1]
	const topic = "leased"
	createAssigned(t, c, topic, []int32{leaderID}, nil)
	const n = 5
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprintf("r-%d", i))})
	}
	if err := newClient(t, old, kgo.RecordPartitioner(kgo.ManualPartitioner())).ProduceSync(testCtx(t, 20*time.Second), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cl := newClient(t, old)
	broker := cl.Broker(int(leaderID))
	fetch := func() kmsg.FetchResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.Version = 12
		req.ReplicaID, req.MaxBytes, req.MaxWaitMillis = -1, 1<<20, 0
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 0, 1<<20
		fp.CurrentLeaderEpoch, fp.LogStartOffset = -1, -1
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		resp, err := broker.Request(testCtx(t, 10*time.Second), req)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		return resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
	}
	listOffsets := func() int16 {
		t.Helper()
		_, code, err := listLatest(testCtx(t, 10*time.Second), broker, topic, 0)
		if err != nil {
			t.Fatalf("list offsets: %v", err)
		}
		return code
	}
	produce := func() int16 {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 1000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = rawBatch(t, -1, -1, -1, 1, "isolated")
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := broker.Request(testCtx(t, 10*time.Second), req)
		if err != nil {
			t.Fatalf("produce: %v", err)
		}
		return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = group, -1
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.Topic = topic
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset = 0, 3
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	checkFor(t, "the offset commit to "+group, func() bool {
		r, err := broker.Request(testCtx(t, 10*time.Second), commit)
		return err == nil && r.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode == 0
	})
	// committed answers OffsetFetch for the group: the error, or the offset.
	committed := func() (int16, int64) {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = 8
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = group
		rt := kmsg.NewOffsetFetchRequestGroupTopic()
		rt.Topic, rt.Partitions = topic, []int32{0}
		rg.Topics = append(rg.Topics, rt)
		req.Groups = append(req.Groups, rg)
		resp, err := broker.Request(testCtx(t, 10*time.Second), req)
		if err != nil {
			t.Fatalf("offset fetch: %v", err)
		}
		g := resp.(*kmsg.OffsetFetchResponse).Groups[0]
		if g.ErrorCode != 0 {
			return g.ErrorCode, -1
		}
		return g.Topics[0].Partitions[0].ErrorCode, g.Topics[0].Partitions[0].Offset
	}
	if code, off := committed(); code != 0 || off != 3 {
		t.Fatalf("before the cut: offset fetch %v, offset %d, want 3", kerr.ErrorForCode(code), off)
	}
	if r := fetch(); r.ErrorCode != 0 || r.HighWatermark != n {
		t.Fatalf("before the cut: fetch %v, high watermark %d", kerr.ErrorForCode(r.ErrorCode), r.HighWatermark)
	}
	if v, ok := scrapeMetric(t, old, "gregor_broker_lease_expired"); !ok || v != 0 {
		t.Fatalf("gregor_broker_lease_expired = %v (present %v) while heartbeats are answered", v, ok)
	}

	c.net.isolate(leaderID, ids...)
	checkFor(t, "the isolated leader to refuse fetches", func() bool {
		return fetch().ErrorCode == kerr.NotLeaderForPartition.Code
	})
	if st, _ := old.Replica(topic, 0); !st.Leader {
		t.Fatal("the isolated node no longer believes it leads: the refusal is not the lease's")
	}
	if code := listOffsets(); code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("list offsets after the lease: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(code))
	}
	if code := produce(); code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce after the lease: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(code))
	}
	if code, _ := committed(); code != kerr.NotCoordinator.Code {
		t.Fatalf("offset fetch after the lease: %v, want NOT_COORDINATOR", kerr.ErrorForCode(code))
	}
	if v, _ := scrapeMetric(t, old, "gregor_broker_lease_expired"); v != 1 {
		t.Fatalf("gregor_broker_lease_expired = %v after the lease ended", v)
	}

	c.net.heal()
	checkFor(t, "the healed leader to serve again", func() bool {
		r := fetch()
		return r.ErrorCode == 0 && r.HighWatermark == n && len(r.RecordBatches) > 0
	})
	if v, _ := scrapeMetric(t, old, "gregor_broker_lease_expired"); v != 0 {
		t.Fatalf("gregor_broker_lease_expired = %v after heal", v)
	}
	checkFor(t, "the healed coordinator to serve the committed offset", func() bool {
		code, off := committed()
		return code == 0 && off == 3
	})
	if got := consumePartitions(t, old, topic, []int32{0}, n); len(got) != n {
		t.Fatalf("%d records after heal, want %d", len(got), n)
	}
}

// TestClusterFencedLeaderServesNothingUntilCaughtUp is the regression test
// of bug 16 (docs/reliability.md): a leader cut off long enough to be
// fenced, and deposed, comes back able to reach the controller but with
// its metadata behind (here its Raft links stay cut; in the chaos runs a
// SIGSTOP or a healed partition left it behind while the quorum's log
// caught up). Its heartbeats used to be answered unfenced at once, which
// renewed its lease while it still believed it led, and it answered
// ListOffsets with the high watermark from before the cut, older than
// records the new leader had acknowledged. Now it stays fenced, its lease
// lapsed, until it reports the metadata of its fencing applied.
func TestClusterFencedLeaderServesNothingUntilCaughtUp(t *testing.T) {
	props := map[string]string{"broker.session.timeout.ms": "1500", "broker.heartbeat.interval.ms": "300"}
	c := startFaultCluster(t, props)
	ids := []int32{1, 2, 3}
	ctrl := activeController(t, c.nodes[0])
	// The deposed leader is not the active controller, so that its
	// isolation moves the partition and not the quorum.
	leaderID := ids[0]
	if leaderID == ctrl {
		leaderID = ids[1]
	}
	replicas, others := leaderFirst(c, leaderID)
	old := c.nodes[leaderID-1]
	const topic = "fenced-leader"
	createAssigned(t, c, topic, replicas, nil)
	produce := func(n *node.Node, values ...string) {
		t.Helper()
		cl := newClient(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		defer cl.Close()
		var recs []*kgo.Record
		for _, v := range values {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)})
		}
		if err := cl.ProduceSync(testCtx(t, 30*time.Second), recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	produce(old, "a", "b", "c")

	// latest asks old itself for the partition's end: the offset, or -1
	// with the error it answered.
	oldClient := newClient(t, old)
	latest := func() (int64, int16) {
		t.Helper()
		off, code, err := listLatest(testCtx(t, 10*time.Second), oldClient.Broker(int(leaderID)), topic, 0)
		if err != nil {
			return -1, -1
		}
		return off, code
	}
	if off, code := latest(); code != 0 || off != 3 {
		t.Fatalf("before the cut: latest offset %d (%v), want 3", off, kerr.ErrorForCode(code))
	}

	// Cut: fenced at the end of its session, the partition moves to
	// another replica, which acknowledges more records.
	c.net.isolate(leaderID, ids...)
	checkFor(t, "another leader elected", func() bool {
		l, _ := seedLeader(t, others[0], topic, 0)
		return l >= 0 && l != leaderID
	})
	produce(others[0], "d", "e")
	if st, _ := old.Replica(topic, 0); !st.Leader {
		t.Fatal("the cut-off node already knows it was deposed: the test proves nothing")
	}

	// Back, but for its Raft links: its heartbeats reach the controller
	// while its metadata cannot move.
	for _, o := range ids {
		if o != leaderID {
			c.net.cutRaft(leaderID, o)
		}
	}
	c.net.healExceptRaft()
	// Many heartbeats, several leases long: it must never answer the old
	// end, and it stays fenced. (That its heartbeats do reach the active
	// controller is checked below: else this would prove nothing.)
	ctrlPort := c.ctrlPorts[ctrl-1]
	sentBefore := c.net.kafkaWritesTo(leaderID, ctrlPort)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if off, code := latest(); code == 0 && off < 5 {
			t.Fatalf("the deposed leader, fenced and behind, answered latest offset %d; 5 were acknowledged", off)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if sent := c.net.kafkaWritesTo(leaderID, ctrlPort) - sentBefore; sent < 3 {
		t.Fatalf("node %d sent %d requests to the active controller in 3 s: its heartbeats did not get through", leaderID, sent)
	}
	if brokers, _, err := describe(t, others[0]); err != nil || slices.Contains(brokers, leaderID) {
		t.Fatalf("brokers %v (%v): node %d was unfenced before catching up", brokers, err, leaderID)
	}
	if st, _ := old.Replica(topic, 0); !st.Leader {
		t.Fatal("the node learned of its deposition with its Raft links cut: the test proves nothing")
	}

	// Raft back too: it catches up, follows, and is unfenced.
	c.net.heal()
	checkFor(t, fmt.Sprintf("node %d unfenced again", leaderID), func() bool {
		brokers, _, err := describe(t, others[0])
		return err == nil && slices.Contains(brokers, leaderID)
	})
	if st, _ := old.Replica(topic, 0); st.Leader {
		t.Fatal("unfenced while still believing it leads")
	}
	checkFor(t, "the new leader's end from the other nodes", func() bool {
		l, _ := seedLeader(t, others[0], topic, 0)
		st, ok := c.nodes[l-1].Replica(topic, 0)
		return l > 0 && ok && st.HighWatermark == 5
	})
}
