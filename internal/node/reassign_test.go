package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/testkit"
)

// ackedRecord is where an acks=all produce said a record landed.
type ackedRecord struct {
	partition int32
	offset    int64
	value     string
}

// produceAcked runs an idempotent acks=all producer writing unique values
// to partitions 0..partitions-1 of topic until stop is closed, and returns
// what was acknowledged. Any produce error fails the test: with retries and
// idempotence, a leadership move must cost a retry, not a record.
func produceAcked(t *testing.T, n *node.Node, topic string, partitions int32, stop <-chan struct{}) func() []ackedRecord {
	t.Helper()
	cl := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(60*time.Second))
	var (
		mu    sync.Mutex
		acked []ackedRecord
		err   error
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		ctx := context.Background()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var recs []*kgo.Record
			for j := range 10 {
				k := i*10 + j
				recs = append(recs, &kgo.Record{Partition: int32(k) % partitions, Value: []byte(fmt.Sprintf("v-%08d", k))})
			}
			res := cl.ProduceSync(ctx, recs...)
			mu.Lock()
			for _, r := range res {
				if r.Err != nil {
					err = errors.Join(err, fmt.Errorf("%s: %w", r.Record.Value, r.Err))
					continue
				}
				acked = append(acked, ackedRecord{r.Record.Partition, r.Record.Offset, string(r.Record.Value)})
			}
			mu.Unlock()
		}
	})
	return func() []ackedRecord {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Fatalf("produce: %v", err)
		}
		return acked
	}
}

// checkAcked reads every partition back and checks that each acknowledged
// record is there exactly once, at its acknowledged offset.
func checkAcked(t *testing.T, n *node.Node, topic string, partitions []int32, acked []ackedRecord) {
	t.Helper()
	recs := consumePartitions(t, n, topic, partitions, len(acked))
	at := make(map[[2]int64]string, len(recs))
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		if seen[string(r.Value)] {
			t.Fatalf("%s read twice", r.Value)
		}
		seen[string(r.Value)] = true
		at[[2]int64{int64(r.Partition), r.Offset}] = string(r.Value)
	}
	for _, a := range acked {
		if got := at[[2]int64{int64(a.partition), a.offset}]; got != a.value {
			t.Fatalf("%s acknowledged at %d/%d, read %q there", a.value, a.partition, a.offset, got)
		}
	}
}

// TestClusterReassignOntoNewBroker grows a cluster: with an idempotent
// acks=all producer running, a fourth broker starts and two partitions
// are reassigned onto it, one away from its leader. Each reassignment is
// listed while the new replica catches up, completes once it joined the
// ISR, moves the leadership off the removed leader, and the removed broker
// deletes its copies. Every acknowledged record is read back once at its
// offset, and the replicas end byte-identical.
func TestClusterReassignOntoNewBroker(t *testing.T) {
	props := map[string]string{"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "200",
		"replica.lag.time.max.ms": "2000"}
	// Four voters, three running: a quorum; the fourth node joins later
	// as the new broker.
	ports := freePorts(t, 4)
	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d,4@127.0.0.1:%d", ports[0], ports[1], ports[2], ports[3])
	nodes := make([]*node.Node, 4)
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()}
	start := func(i int) (*node.Node, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n, err := node.Start(ctx, clusterNodeConfig(dirs[i], int32(i+1), ports[i], voters, props), nil)
		if n != nil {
			t.Cleanup(func() { n.Close() })
		}
		return n, err
	}
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { nodes[i], errs[i] = start(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	const topic = "moving"
	adm, admCl := newAdmin(t, nodes[1])
	ctx := testCtx(t, 90*time.Second)
	cr := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	for p, replicas := range [][]int32{{1, 2, 3}, {2, 3, 1}} {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = int32(p), replicas
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	c := kmsg.NewCreateTopicsRequestTopicConfig()
	c.Name, c.Value = "min.insync.replicas", strp("2")
	rt.Configs = append(rt.Configs, c)
	cr.Topics = append(cr.Topics, rt)
	if resp, err := cr.RequestWith(ctx, admCl); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create: %v %v", err, resp)
	}
	three := cluster{nodes: nodes[:3]}
	for p := range int32(2) {
		checkFor(t, fmt.Sprintf("%s[%d] on every node", topic, p), func() bool { return leaderOf(three, topic, p) != nil })
	}
	old0, _ := nodes[0].Replica(topic, 0)

	stop := make(chan struct{})
	wait := produceAcked(t, nodes[2], topic, 2, stop)
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			wait()
		}
	}()

	var err error
	if nodes[3], err = start(3); err != nil {
		t.Fatal(err)
	}
	checkFor(t, "four brokers", func() bool {
		brokers, _, err := describe(t, nodes[0])
		return err == nil && len(brokers) == 4
	})

	// Refused: an unknown broker, a duplicate, an unknown partition,
	// cancelling what is not moving.
	var bad kadm.AlterPartitionAssignmentsReq
	bad.Assign(topic, 0, []int32{1, 9, 2})
	bad.Assign(topic, 1, nil)
	bad.Assign(topic, 7, []int32{1})
	res, err := adm.AlterPartitionAssignments(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[int32]error{0: kerr.InvalidReplicaAssignment, 1: kerr.NoReassignmentInProgress, 7: kerr.UnknownTopicOrPartition} {
		if got := res[topic][p].Err; !errors.Is(got, want) {
			t.Fatalf("partition %d: %v, want %v", p, got, want)
		}
	}

	var req kadm.AlterPartitionAssignmentsReq
	req.Assign(topic, 0, []int32{4, 2, 3}) // away from leader 1
	req.Assign(topic, 1, []int32{2, 3, 4}) // away from follower 1
	res, err = adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Sorted() {
		if r.Err != nil {
			t.Fatalf("%s[%d]: %v", r.Topic, r.Partition, r.Err)
		}
	}
	testkit.Eventually(t, 60*time.Second, "the reassignments to complete", func() error {
		l, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}, 1: {}}})
		if err != nil {
			return err
		}
		if n := len(l.Sorted()); n > 0 {
			return fmt.Errorf("%d in progress: %+v", n, l.Sorted())
		}
		for p, want := range [][]int32{{4, 2, 3}, {2, 3, 4}} {
			for _, nd := range nodes {
				if _, ok := nd.Replica(topic, int32(p)); ok != slices.Contains(want, nd.NodeID()) {
					return fmt.Errorf("node %d hosts %s[%d]: %v, replicas %v", nd.NodeID(), topic, p, ok, want)
				}
			}
		}
		return nil
	})
	// Leadership of partition 0 left node 1, with a new leader epoch, once
	// the new leader applied the change.
	testkit.Eventually(t, 10*time.Second, "a leader of partition 0 among 2, 3, 4", func() error {
		l := leaderOf(cluster{nodes: nodes[1:]}, topic, 0)
		if l == nil {
			return errors.New("no single leader")
		}
		if st, _ := l.Replica(topic, 0); st.LeaderEpoch <= old0.LeaderEpoch {
			return fmt.Errorf("leader epoch %d after the move, was %d", st.LeaderEpoch, old0.LeaderEpoch)
		}
		return nil
	})
	// The replica leaves the node's partitions before its files go.
	testkit.Eventually(t, 10*time.Second, "node 1's directories deleted", func() error {
		for p := range 2 {
			if _, err := os.Stat(filepath.Join(dirs[0], fmt.Sprintf("%s-%d", topic, p))); !os.IsNotExist(err) {
				return fmt.Errorf("%s-%d: %v", topic, p, err)
			}
		}
		return nil
	})

	// Keep producing on the new layout, then stop and check.
	var before int
	testkit.Eventually(t, 30*time.Second, "produce after the move", func() error {
		l, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return err
		}
		total := 0
		l.Each(func(o kadm.ListedOffset) { total += int(o.Offset) })
		if before == 0 {
			before = total
		}
		if total < before+200 {
			return fmt.Errorf("end offsets sum %d, want %d", total, before+200)
		}
		return nil
	})
	close(stop)
	stopped = true
	acked := wait()
	if len(acked) == 0 {
		t.Fatal("nothing acknowledged")
	}
	t.Logf("%d records acknowledged", len(acked))
	checkAcked(t, nodes[3], topic, []int32{0, 1}, acked)

	for p, replicas := range [][]int32{{4, 2, 3}, {2, 3, 4}} {
		movers := cluster{}
		for _, id := range replicas {
			movers.nodes = append(movers.nodes, nodes[id-1])
		}
		leader := leaderOf(movers, topic, int32(p))
		if leader == nil {
			t.Fatalf("%s[%d] has no leader", topic, p)
		}
		lst, _ := leader.Replica(topic, int32(p))
		want := segmentBytes(t, lst.Dir)
		for _, nd := range movers.nodes {
			checkFor(t, fmt.Sprintf("node %d's replica of %s[%d] to catch up", nd.NodeID(), topic, p), func() bool {
				st, _ := nd.Replica(topic, int32(p))
				return st.HighWatermark == lst.HighWatermark && st.LogEndOffset == lst.LogEndOffset
			})
			st, _ := nd.Replica(topic, int32(p))
			if got := segmentBytes(t, st.Dir); !bytes.Equal(got, want) {
				t.Fatalf("node %d's log of %s[%d] (%d bytes) differs from the leader's (%d bytes)", nd.NodeID(), topic, p, len(got), len(want))
			}
		}
	}
}

// TestClusterReassignAwayWhileDown: a stopped broker's replica is
// reassigned away (RF 3 to 2: its peers are the ISR, so the move completes
// at once); when the broker starts again it deletes the directory the
// metadata no longer assigns it. Meanwhile a move back onto the stopped
// broker stays in progress until cancelled.
func TestClusterReassignAwayWhileDown(t *testing.T) {
	c := startCluster(t, nil)
	const topic = "shrink"
	createReplicated(t, c, topic, 1, map[string]*string{"min.insync.replicas": strp("1")})
	leader := leaderOf(c, topic, 0)
	idx := slices.IndexFunc(c.nodes, func(n *node.Node) bool { return n != leader })
	down := c.nodes[idx]
	sid := down.NodeID()
	st, _ := down.Replica(topic, 0)
	dir := st.Dir
	if err := down.Close(); err != nil {
		t.Fatal(err)
	}
	adm, _ := newAdmin(t, leader)
	ctx := testCtx(t, 60*time.Second)
	checkFor(t, "the stopped broker out of the ISR", func() bool { return !slices.Contains(isrOf(t, leader, topic, 0), sid) })
	var target []int32
	for _, n := range c.nodes {
		if n != down {
			target = append(target, n.NodeID())
		}
	}
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign(topic, 0, target)
	res, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil || res[topic][0].Err != nil {
		t.Fatalf("reassign to %v: %v %+v", target, err, res)
	}
	l, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}}})
	if err != nil || len(l.Sorted()) != 0 {
		t.Fatalf("a shrink onto the ISR must complete at once: %v %+v", err, l.Sorted())
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the stopped broker's directory before its restart: %v", err)
	}

	// Back onto the stopped broker: it cannot catch up, so the move stays
	// in progress, listed, counted by the leader's metrics (and not as
	// under-replicated: Kafka leaves the adding replicas out); a cancel
	// reverts it.
	var back3 kadm.AlterPartitionAssignmentsReq
	back3.Assign(topic, 0, append(slices.Clone(target), sid))
	if res, err := adm.AlterPartitionAssignments(ctx, back3); err != nil || res[topic][0].Err != nil {
		t.Fatalf("reassign onto the stopped broker: %v %+v", err, res)
	}
	l, err = adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}}})
	if got := l.Sorted(); err != nil || len(got) != 1 || !slices.Equal(got[0].AddingReplicas, []int32{sid}) || len(got[0].RemovingReplicas) != 0 {
		t.Fatalf("in progress: %v %+v", err, got)
	}
	metric := func(series string) float64 {
		v, _ := scrapeMetric(t, leader, series)
		return v
	}
	checkFor(t, "the leader's reassignment metrics", func() bool {
		return metric("gregor_partitions_reassigning") == 1 && metric("gregor_partitions_under_replicated") == 0
	})
	var undo kadm.AlterPartitionAssignmentsReq
	undo.Assign(topic, 0, nil)
	if res, err := adm.AlterPartitionAssignments(ctx, undo); err != nil || res[topic][0].Err != nil {
		t.Fatalf("cancel: %v %+v", err, res)
	}
	// Any broker answers Metadata: poll until it applied the cancel.
	checkFor(t, "the replicas back to the shrunk set", func() bool {
		md, err := adm.Metadata(ctx, topic)
		return err == nil && slices.Equal(md.Topics[topic].Partitions[0].Replicas, target)
	})
	checkFor(t, "no reassignment counted", func() bool { return metric("gregor_partitions_reassigning") == 0 })

	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", c.ctrlPorts[0], c.ctrlPorts[1], c.ctrlPorts[2])
	back, err := node.Start(ctx, clusterNodeConfig(c.dirs[idx], sid, c.ctrlPorts[idx], voters,
		map[string]string{"broker.rack": fmt.Sprintf("rack-%d", idx+1)}), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	if _, ok := back.Replica(topic, 0); ok {
		t.Fatal("the restarted broker hosts a partition it is no replica of")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the moved-away directory after the restart: %v, want it deleted", err)
	}
	var cancel kadm.AlterPartitionAssignmentsReq
	cancel.Assign(topic, 0, nil)
	if res, err := adm.AlterPartitionAssignments(ctx, cancel); err != nil || !errors.Is(res[topic][0].Err, kerr.NoReassignmentInProgress) {
		t.Fatalf("cancel with nothing in progress: %v %+v", err, res)
	}
}
