package node_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/node"
)

// createReplicated creates a topic with replication factor 3 through n and
// waits until every node hosts its partitions with one leader each.
func createReplicated(t *testing.T, c cluster, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	adm, _ := newAdmin(t, c.nodes[0])
	resp, err := adm.CreateTopic(testCtx(t, 15*time.Second), partitions, 3, configs, topic)
	if err == nil {
		err = resp.Err
	}
	// A create the controller committed just before losing leadership is
	// answered NOT_CONTROLLER; the retry (forwarded to the next
	// controller) then finds the topic, as it would in Kafka.
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("create topic %q: %v", topic, err)
	}
	for p := range partitions {
		checkFor(t, fmt.Sprintf("%s[%d] on every node", topic, p), func() bool {
			return leaderOf(c, topic, p) != nil
		})
	}
}

// leaderOf is the node leading a partition, when every node hosts it and
// exactly one leads it.
func leaderOf(c cluster, topic string, p int32) *node.Node {
	var leader *node.Node
	for _, n := range c.nodes {
		st, ok := n.Replica(topic, p)
		if !ok {
			return nil
		}
		if st.Leader {
			if leader != nil {
				return nil
			}
			leader = n
		}
	}
	return leader
}

// segmentBytes concatenates a replica's segment files in offset order.
func segmentBytes(t *testing.T, dir string) []byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, e := range ents { // ReadDir sorts by name: 20-digit base offsets
		if strings.HasSuffix(e.Name(), ".log") {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
	}
	return out
}

// TestClusterReplicationFollowersFetch: with RF=3 and min.insync.replicas=2
// an idempotent acks=all producer's records reach every replica unchanged:
// once the followers caught up, all three logs are byte-identical, every
// replica's high watermark is the log end, and a consumer reads every
// record exactly once.
func TestClusterReplicationFollowersFetch(t *testing.T) {
	c := startCluster(t, nil)
	const topic, partitions, n = "replicated", 3, 600
	createReplicated(t, c, topic, partitions, map[string]*string{"min.insync.replicas": strp("2")})

	cl := newClient(t, c.nodes[1], kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0))
	ctx := testCtx(t, 30*time.Second)
	for i := range n / 20 {
		var recs []*kgo.Record
		for j := range 20 {
			k := i*20 + j
			recs = append(recs, &kgo.Record{Partition: int32(k % partitions), Key: []byte(fmt.Sprint(k)), Value: []byte(fmt.Sprintf("v-%d", k))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}

	var total int64
	for p := range int32(partitions) {
		leader := leaderOf(c, topic, p)
		if leader == nil {
			t.Fatalf("%s[%d] lost its leader", topic, p)
		}
		lst, _ := leader.Replica(topic, p)
		if lst.HighWatermark != lst.LogEndOffset {
			t.Fatalf("%s[%d]: leader high watermark %d after acks=all, log end %d", topic, p, lst.HighWatermark, lst.LogEndOffset)
		}
		total += lst.HighWatermark
		want := segmentBytes(t, lst.Dir)
		for _, nd := range c.nodes {
			checkFor(t, fmt.Sprintf("node %d's replica of %s[%d] to catch up", nd.NodeID(), topic, p), func() bool {
				st, _ := nd.Replica(topic, p)
				return st.HighWatermark == lst.HighWatermark && st.LogEndOffset == lst.LogEndOffset
			})
			st, _ := nd.Replica(topic, p)
			if got := segmentBytes(t, st.Dir); !bytes.Equal(got, want) {
				t.Fatalf("node %d's log of %s[%d] (%d bytes) differs from the leader's (%d bytes)", nd.NodeID(), topic, p, len(got), len(want))
			}
		}
	}
	if total != n {
		t.Fatalf("high watermarks sum to %d, want %d", total, n)
	}

	recs := consumePartitions(t, c.nodes[2], topic, []int32{0, 1, 2}, n)
	seen := make(map[string]bool)
	for _, r := range recs {
		if seen[string(r.Value)] {
			t.Fatalf("record %s read twice", r.Value)
		}
		seen[string(r.Value)] = true
	}
	for k := range n {
		if !seen[fmt.Sprintf("v-%d", k)] {
			t.Fatalf("record v-%d missing", k)
		}
	}
}

// TestClusterReplicationAcksAllWaitsForFollowers: acks=all is answered
// once every ISR member has the batch; a follower stopped cleanly leaves the
// ISR at once (Kafka's controlled shutdown: the controller drops a fenced
// broker from every ISR), so acks=all then succeeds with the other two
// (min.insync.replicas=2), and acks=1 is answered after the leader's
// append; min.insync.replicas above the ISR size is NOT_ENOUGH_REPLICAS.
func TestClusterReplicationAcksAllWaitsForFollowers(t *testing.T) {
	c := startCluster(t, nil)
	createReplicated(t, c, "strict", 1, map[string]*string{"min.insync.replicas": strp("4")})
	createReplicated(t, c, "lenient", 1, map[string]*string{"min.insync.replicas": strp("2")})

	produce := func(n *node.Node, topic string, acks int16, timeout time.Duration) kmsg.ProduceResponseTopicPartition {
		t.Helper()
		// kgo sends a raw produce with its own configured acks.
		opts := []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}
		if acks == 1 {
			opts = []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}
		}
		cl := newClient(t, n, opts...)
		req := kmsg.NewPtrProduceRequest()
		req.Acks = acks
		req.TimeoutMillis = int32(timeout / time.Millisecond)
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = rawBatch(t, -1, -1, -1, 3, topic)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := cl.Broker(int(n.NodeID())).Request(testCtx(t, timeout+15*time.Second), req)
		if err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
		return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	}

	strictLeader := leaderOf(c, "strict", 0)
	if r := produce(strictLeader, "strict", -1, 5*time.Second); r.ErrorCode != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all with min.insync.replicas 4 > ISR 3: error %v, want NOT_ENOUGH_REPLICAS", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := produce(strictLeader, "strict", 1, 5*time.Second); r.ErrorCode != 0 {
		t.Fatalf("acks=1 ignores min.insync.replicas: %v", kerr.ErrorForCode(r.ErrorCode))
	}

	leader := leaderOf(c, "lenient", 0)
	if r := produce(leader, "lenient", -1, 5*time.Second); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("acks=all with every replica up: %v at %d", kerr.ErrorForCode(r.ErrorCode), r.BaseOffset)
	}
	var stopped *node.Node
	for _, n := range c.nodes {
		if n != leader {
			stopped = n
			break
		}
	}
	if err := stopped.Close(); err != nil {
		t.Fatal(err)
	}
	checkFor(t, "the stopped follower to leave the ISR", func() bool {
		isr := isrOf(t, leader, "lenient", 0)
		return len(isr) == 2 && !slices.Contains(isr, stopped.NodeID())
	})
	if r := produce(leader, "lenient", -1, 5*time.Second); r.ErrorCode != 0 || r.BaseOffset != 3 {
		t.Fatalf("acks=all with the stopped follower out of the ISR: %v at %d, want offset 3", kerr.ErrorForCode(r.ErrorCode), r.BaseOffset)
	}
	if r := produce(leader, "lenient", 1, 5*time.Second); r.ErrorCode != 0 || r.BaseOffset != 6 {
		t.Fatalf("acks=1 with an ISR member stopped: %v at %d, want offset 6", kerr.ErrorForCode(r.ErrorCode), r.BaseOffset)
	}
	adm := kadm.NewClient(newClient(t, leader))
	lo, err := adm.ListEndOffsets(testCtx(t, 10*time.Second), "lenient")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lo.Lookup("lenient", 0); o.Offset < 6 {
		t.Fatalf("high watermark %d, want at least 6 (the acks=all batch the ISR acknowledged)", o.Offset)
	}
}

// TestClusterReplicationFetchErrors: a follower's fetch is checked as
// Kafka checks it: a leader epoch newer than the leader's is
// UNKNOWN_LEADER_EPOCH, a node that is no replica is NOT_LEADER_OR_FOLLOWER,
// a follower ahead of the leader in its last fetched epoch gets the
// diverging epoch and no records, and a consumer reading a follower gets
// NOT_LEADER_OR_FOLLOWER.
func TestClusterReplicationFetchErrors(t *testing.T) {
	c := startCluster(t, nil)
	const topic = "checked"
	createReplicated(t, c, topic, 1, nil)
	leader := leaderOf(c, topic, 0)
	cl := newClient(t, leader, kgo.DefaultProduceTopic(topic))
	for i := range 3 {
		if err := cl.ProduceSync(testCtx(t, 15*time.Second), &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := leader.Replica(topic, 0)
	var follower *node.Node
	for _, n := range c.nodes {
		if n != leader {
			follower = n
			break
		}
	}

	fetch := func(n *node.Node, replicaID, epoch, lastFetched int32, offset int64) kmsg.FetchResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.Version = 12
		req.ReplicaID = replicaID
		req.MaxBytes = 1 << 20
		req.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.CurrentLeaderEpoch, rp.LastFetchedEpoch, rp.FetchOffset = epoch, lastFetched, offset
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		cl := newClient(t, n)
		resp, err := cl.Broker(int(n.NodeID())).Request(testCtx(t, 10*time.Second), req)
		if err != nil {
			t.Fatal(err)
		}
		fr := resp.(*kmsg.FetchResponse)
		if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 1 {
			t.Fatalf("fetch response %+v", fr.Topics)
		}
		return fr.Topics[0].Partitions[0]
	}

	fid := follower.NodeID()
	if r := fetch(leader, fid, st.LeaderEpoch+1, -1, 0); r.ErrorCode != kerr.UnknownLeaderEpoch.Code {
		t.Fatalf("newer leader epoch: %v, want UNKNOWN_LEADER_EPOCH", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := fetch(leader, 99, st.LeaderEpoch, -1, 0); r.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("fetch from a node that is no replica: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(r.ErrorCode))
	}
	r := fetch(leader, fid, st.LeaderEpoch, st.LeaderEpoch, st.LogEndOffset+10)
	if r.ErrorCode != 0 || r.DivergingEpoch.Epoch != st.LeaderEpoch || r.DivergingEpoch.EndOffset != st.LogEndOffset || len(r.RecordBatches) != 0 {
		t.Fatalf("divergent follower: error %v diverging %+v with %d record bytes; want epoch %d end %d and no records",
			kerr.ErrorForCode(r.ErrorCode), r.DivergingEpoch, len(r.RecordBatches), st.LeaderEpoch, st.LogEndOffset)
	}
	if r := fetch(leader, fid, st.LeaderEpoch, -1, st.LogEndOffset+10); r.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("follower fetch past the log end: %v, want OFFSET_OUT_OF_RANGE", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := fetch(leader, fid, st.LeaderEpoch, st.LeaderEpoch, 0); r.ErrorCode != 0 || len(r.RecordBatches) == 0 || r.HighWatermark != 3 {
		t.Fatalf("follower fetch from 0: error %v, %d record bytes, high watermark %d", kerr.ErrorForCode(r.ErrorCode), len(r.RecordBatches), r.HighWatermark)
	}
	if r := fetch(follower, -1, st.LeaderEpoch, -1, 0); r.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("consumer fetch from a follower: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(r.ErrorCode))
	}
}

// isrOf reads a partition's ISR from n's Metadata answer.
func isrOf(t *testing.T, n *node.Node, topic string, partition int32) []int32 {
	t.Helper()
	cl := newClient(t, n)
	defer cl.Close()
	md := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	md.Topics = append(md.Topics, mt)
	resp, err := md.RequestWith(testCtx(t, 5*time.Second), cl.Broker(int(n.NodeID())))
	if err != nil || len(resp.Topics) != 1 || int(partition) >= len(resp.Topics[0].Partitions) {
		return nil
	}
	isr := slices.Clone(resp.Topics[0].Partitions[partition].ISR)
	slices.Sort(isr)
	return isr
}

// TestClusterReplicationISRShrinksAndExpands: a stopped follower leaves the
// ISR (the controller drops it when its clean shutdown fences it; were it
// to crash, replica.lag.time.max.ms at 1 s would through AlterPartition), after
// which acks=all succeeds with the two remaining members
// (min.insync.replicas=2); restarted, the follower catches up and joins
// the ISR again, and its log matches the leader's.
func TestClusterReplicationISRShrinksAndExpands(t *testing.T) {
	props := map[string]string{"replica.lag.time.max.ms": "1000"}
	c := startCluster(t, props)
	const topic = "shrinking"
	createReplicated(t, c, topic, 1, map[string]*string{"min.insync.replicas": strp("2")})
	leader := leaderOf(c, topic, 0)
	var idx int
	for i, n := range c.nodes {
		if n != leader {
			idx = i
			break
		}
	}
	stopped := c.nodes[idx]
	sid := stopped.NodeID()
	produce := func(from, to int) {
		t.Helper()
		cl := newClient(t, leader, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Value: []byte(fmt.Sprintf("v-%d", i))})
		}
		if err := cl.ProduceSync(testCtx(t, 20*time.Second), recs...).FirstErr(); err != nil {
			t.Fatalf("produce %d-%d: %v", from, to, err)
		}
		cl.Close()
	}
	produce(0, 50)
	if isr := isrOf(t, leader, topic, 0); len(isr) != 3 {
		t.Fatalf("ISR %v with every follower fetching, want all three", isr)
	}

	if err := stopped.Close(); err != nil {
		t.Fatal(err)
	}
	checkFor(t, "the stopped follower to leave the ISR", func() bool {
		isr := isrOf(t, leader, topic, 0)
		return len(isr) == 2 && !slices.Contains(isr, sid)
	})
	produce(50, 100)

	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", c.ctrlPorts[0], c.ctrlPorts[1], c.ctrlPorts[2])
	p := map[string]string{"broker.rack": fmt.Sprintf("rack-%d", idx+1)}
	for k, v := range props {
		p[k] = v
	}
	ctx := testCtx(t, 30*time.Second)
	back, err := node.Start(ctx, clusterNodeConfig(c.dirs[idx], sid, c.ctrlPorts[idx], voters, p), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	checkFor(t, "the restarted follower to rejoin the ISR", func() bool {
		return len(isrOf(t, leader, topic, 0)) == 3
	})
	lst, _ := leader.Replica(topic, 0)
	checkFor(t, "the restarted follower's log to match", func() bool {
		st, ok := back.Replica(topic, 0)
		return ok && st.LogEndOffset == lst.LogEndOffset && bytes.Equal(segmentBytes(t, st.Dir), segmentBytes(t, lst.Dir))
	})
	if lst.HighWatermark != 100 {
		t.Fatalf("leader high watermark %d, want 100", lst.HighWatermark)
	}
}

// TestClusterProduceNamesTheLeader: a produce (v10+) sent to a broker that
// does not lead the partition is answered NOT_LEADER_OR_FOLLOWER with the
// leader and its epoch, and the leader's endpoint (KIP-951), so that a
// client moves there without a metadata refresh.
func TestClusterProduceNamesTheLeader(t *testing.T) {
	c := startCluster(t, nil)
	const topic = "hinted"
	createReplicated(t, c, topic, 1, nil)
	leader := leaderOf(c, topic, 0)
	var other *node.Node
	for _, n := range c.nodes {
		if n != leader {
			other = n
			break
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(other.KafkaAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = rawBatch(t, -1, -1, -1, 1, "hint")
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl.SeedBrokers()[0])
	if err != nil {
		t.Fatal(err)
	}
	if resp.Version < 10 {
		t.Fatalf("produce v%d: the hint needs v10", resp.Version)
	}
	got := resp.Topics[0].Partitions[0]
	st, _ := leader.Replica(topic, 0)
	if got.ErrorCode != kerr.NotLeaderForPartition.Code || got.CurrentLeader.LeaderID != leader.NodeID() || got.CurrentLeader.LeaderEpoch != st.LeaderEpoch {
		t.Fatalf("answer %+v, want NOT_LEADER_OR_FOLLOWER naming node %d at epoch %d", got, leader.NodeID(), st.LeaderEpoch)
	}
	if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != leader.NodeID() ||
		fmt.Sprintf("%s:%d", resp.Brokers[0].Host, resp.Brokers[0].Port) != leader.KafkaAddr().String() {
		t.Fatalf("endpoints %+v, want node %d at %s", resp.Brokers, leader.NodeID(), leader.KafkaAddr())
	}
}
