package node_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/node"
)

// metadataLeader reads a partition's leader and leader epoch from n's
// Metadata answer.
func metadataLeader(t *testing.T, n *node.Node, topic string, partition int32) (leader, epoch int32) {
	t.Helper()
	cl := newClient(t, n)
	defer cl.Close()
	md := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	md.Topics = append(md.Topics, mt)
	resp, err := md.RequestWith(testCtx(t, 5*time.Second), cl.Broker(int(n.NodeID())))
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

// TestClusterFailoverElectsNewLeader: RF=3, min.insync.replicas=2, an
// idempotent acks=all producer. Stopping the partition's leader (a clean
// shutdown: it asks to be fenced) makes the controller elect another ISR
// member, bump the leader epoch and drop the stopped broker from the ISR;
// the producer carries on through the new leader, whose epoch cache ends
// the old epoch at its log end; restarted, the old leader follows, catches
// up and rejoins the ISR. Every acknowledged record is read exactly once in
// order and all three logs are byte-identical.
func TestClusterFailoverElectsNewLeader(t *testing.T) {
	props := map[string]string{"broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "500"}
	c := startCluster(t, props)
	const topic, n, m = "failover", 200, 200
	createReplicated(t, c, topic, 1, map[string]*string{"min.insync.replicas": strp("2")})
	old := leaderOf(c, topic, 0)
	oldID := old.NodeID()
	var idx int
	var survivors []*node.Node
	for i, nd := range c.nodes {
		if nd == old {
			idx = i
		} else {
			survivors = append(survivors, nd)
		}
	}
	_, oldEpoch := metadataLeader(t, survivors[0], topic, 0)

	// Seeded with a survivor, so the producer finds the new leader.
	cl := newClient(t, survivors[0], kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0))
	produce := func(from, to int) {
		t.Helper()
		ctx := testCtx(t, 30*time.Second)
		for i := from; i < to; i += 20 {
			var recs []*kgo.Record
			for k := i; k < min(i+20, to); k++ {
				recs = append(recs, &kgo.Record{Partition: 0, Value: []byte(fmt.Sprintf("v-%d", k))})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce %d-%d: %v", i, min(i+20, to), err)
			}
		}
	}
	produce(0, n)

	stopAt := time.Now()
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	var newID, newEpoch int32
	checkFor(t, "a new leader in Metadata", func() bool {
		newID, newEpoch = metadataLeader(t, survivors[0], topic, 0)
		return newID >= 0 && newID != oldID
	})
	t.Logf("failover: broker %d stopped, broker %d leads at epoch %d after %v", oldID, newID, newEpoch, time.Since(stopAt))
	if newEpoch <= oldEpoch {
		t.Fatalf("leader epoch %d after the election, was %d", newEpoch, oldEpoch)
	}
	var leader *node.Node
	for _, nd := range survivors {
		if nd.NodeID() == newID {
			leader = nd
		}
	}
	if isr := isrOf(t, leader, topic, 0); len(isr) != 2 || slices.Contains(isr, oldID) {
		t.Fatalf("ISR %v after broker %d was fenced", isr, oldID)
	}

	// The new leader's epoch cache starts the new epoch at its log end on
	// election, before any append: the old epoch ends there, and the new
	// one is known (not UNDEFINED) already.
	checkFor(t, "the new leader to apply its election", func() bool {
		st, ok := leader.Replica(topic, 0)
		return ok && st.Leader && st.LeaderEpoch == newEpoch
	})
	lcl := newClient(t, leader)
	for _, ask := range []int32{oldEpoch, newEpoch} {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.ReplicaID = -1
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = 0, newEpoch, ask
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(testCtx(t, 5*time.Second), lcl.Broker(int(newID)))
		if err != nil {
			t.Fatal(err)
		}
		got := resp.Topics[0].Partitions[0]
		if got.ErrorCode != 0 || got.LeaderEpoch != ask || got.EndOffset != n {
			t.Fatalf("OffsetForLeaderEpoch(%d) on the new leader: %v, epoch %d, end %d; want epoch %d, end %d",
				ask, kerr.ErrorForCode(got.ErrorCode), got.LeaderEpoch, got.EndOffset, ask, n)
		}
	}

	produce(n, n+m)

	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", c.ctrlPorts[0], c.ctrlPorts[1], c.ctrlPorts[2])
	p := map[string]string{"broker.rack": fmt.Sprintf("rack-%d", idx+1)}
	for k, v := range props {
		p[k] = v
	}
	back, err := node.Start(testCtx(t, 30*time.Second), clusterNodeConfig(c.dirs[idx], oldID, c.ctrlPorts[idx], voters, p), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	checkFor(t, "the old leader to rejoin the ISR", func() bool {
		return len(isrOf(t, leader, topic, 0)) == 3
	})
	if st, _ := back.Replica(topic, 0); st.Leader {
		t.Fatalf("the restarted old leader leads again")
	}

	recs := consumePartitions(t, leader, topic, []int32{0}, n+m)
	if len(recs) != n+m {
		t.Fatalf("read %d records, want %d", len(recs), n+m)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("v-%d", i); string(r.Value) != want || r.Offset != int64(i) {
			t.Fatalf("record %d: %q at offset %d, want %q", i, r.Value, r.Offset, want)
		}
	}

	lst, _ := leader.Replica(topic, 0)
	if lst.HighWatermark != n+m {
		t.Fatalf("leader high watermark %d, want %d", lst.HighWatermark, n+m)
	}
	want := segmentBytes(t, lst.Dir)
	for _, nd := range []*node.Node{survivors[0], survivors[1], back} {
		checkFor(t, fmt.Sprintf("node %d's replica to catch up", nd.NodeID()), func() bool {
			st, _ := nd.Replica(topic, 0)
			return st.HighWatermark == lst.HighWatermark && st.LogEndOffset == lst.LogEndOffset
		})
		st, _ := nd.Replica(topic, 0)
		if !bytes.Equal(segmentBytes(t, st.Dir), want) {
			t.Fatalf("node %d's log differs from the leader's", nd.NodeID())
		}
	}
}
