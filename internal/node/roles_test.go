package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
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

// roleNode describes one node of a mixed-roles cluster.
type roleNode struct {
	id    int32
	roles string
}

// mixedCluster is a cluster whose nodes have the given roles; voters are
// the nodes with the controller role.
type mixedCluster struct {
	nodes     map[int32]*node.Node
	dirs      map[int32]string
	ctrlPorts map[int32]int
	voters    string
	props     map[string]string
}

func testLogger() *slog.Logger {
	if os.Getenv("GREGOR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func startMixedCluster(t *testing.T, spec []roleNode, props map[string]string) *mixedCluster {
	t.Helper()
	ports := freePorts(t, len(spec))
	c := &mixedCluster{nodes: map[int32]*node.Node{}, dirs: map[int32]string{}, ctrlPorts: map[int32]int{}, props: props}
	var voters []string
	for i, s := range spec {
		c.ctrlPorts[s.id] = ports[i]
		c.dirs[s.id] = t.TempDir()
		if s.roles != "broker" {
			voters = append(voters, fmt.Sprintf("%d@127.0.0.1:%d", s.id, ports[i]))
		}
	}
	c.voters = joinComma(voters)
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for _, s := range spec {
		wg.Go(func() {
			n, err := c.start(s)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("node %d (%s): %w", s.id, s.roles, err))
				return
			}
			c.nodes[s.id] = n
		})
	}
	wg.Wait()
	for _, n := range c.nodes {
		t.Cleanup(func() { n.Close() })
	}
	for _, err := range errs {
		t.Fatal(err)
	}
	return c
}

func (c *mixedCluster) start(s roleNode) (*node.Node, error) {
	p := map[string]string{"process.roles": s.roles}
	for k, v := range c.props {
		p[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return node.Start(ctx, clusterNodeConfig(c.dirs[s.id], s.id, c.ctrlPorts[s.id], c.voters, p), testLogger())
}

func joinComma(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}

// TestRolesBrokerOnlyAndControllerOnly runs a cluster of three voters (two
// combined nodes and one controller-only node) and two broker-only nodes:
// the controller-only node serves no clients and is no broker, the
// broker-only nodes follow the metadata log without voting, register, and
// host replicas of RF=3 topics; produce keeps working after a broker-only
// leader is killed, and every acknowledged record is read back.
func TestRolesBrokerOnlyAndControllerOnly(t *testing.T) {
	c := startMixedCluster(t, []roleNode{
		{1, "broker,controller"}, {2, "broker,controller"}, {3, "controller"}, {4, "broker"}, {5, "broker"},
	}, map[string]string{"broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "200"})

	if addr := c.nodes[3].KafkaAddr(); addr != nil {
		t.Fatalf("the controller-only node has a client listener at %v", addr)
	}
	brokers := []*node.Node{c.nodes[1], c.nodes[2], c.nodes[4], c.nodes[5]}
	for _, n := range brokers {
		// The controller named is a broker clients can reach: the active
		// controller when it is a broker, else the answering broker,
		// which forwards.
		checkFor(t, "brokers 1, 2, 4, 5 and a reachable controller", func() bool {
			ids, ctrl, err := describe(t, n)
			return err == nil && slices.Equal(ids, []int32{1, 2, 4, 5}) && slices.Contains(ids, ctrl)
		})
	}

	var seeds []string
	for _, n := range brokers {
		seeds = append(seeds, n.KafkaAddr().String())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordRetries(100), kgo.RetryTimeout(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, 60*time.Second)
	const topic = "roles"
	res, err := adm.CreateTopic(ctx, 4, 3, map[string]*string{"min.insync.replicas": strPtr("2")}, topic)
	if err != nil || res.Err != nil {
		t.Fatalf("create RF=3 topic: %v %v", err, res.Err)
	}
	// Every broker, broker-only ones included, hosts replicas; the
	// controller-only node hosts none.
	var leaderOn4 int32 = -1
	checkFor(t, "replicas on every broker", func() bool {
		td, err := adm.ListTopics(ctx, topic)
		if err != nil || td[topic].Err != nil {
			return false
		}
		hosted := map[int32]int{}
		for _, p := range td[topic].Partitions {
			if len(p.ISR) != 3 {
				return false
			}
			for _, r := range p.Replicas {
				hosted[r]++
			}
			if p.Leader == 4 {
				leaderOn4 = p.Partition
			}
		}
		return hosted[1] > 0 && hosted[2] > 0 && hosted[4] > 0 && hosted[5] > 0 && hosted[3] == 0
	})
	if _, ok := c.nodes[3].Replica(topic, 0); ok {
		t.Fatal("the controller-only node opened a partition")
	}

	produce := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			r := &kgo.Record{Topic: topic, Partition: int32(i % 4), Value: []byte(fmt.Sprint(i))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}
	produce(0, 40)

	// DescribeQuorum, sent to any broker, is answered by the active
	// controller: three voters, the broker-only nodes as observers, each
	// with its log end.
	checkFor(t, "DescribeQuorum with voters 1-3 and observers 4, 5, caught up", func() bool {
		q, err := describeQuorum(ctx, cl)
		if err != nil {
			t.Log(err)
			return false
		}
		var voters, observers []int32
		for _, v := range q.CurrentVoters {
			if v.LogEndOffset < q.HighWatermark {
				return false
			}
			voters = append(voters, v.ReplicaID)
		}
		for _, o := range q.Observers {
			if o.LogEndOffset < q.HighWatermark || o.LastFetchTimestamp < 0 || o.LastCaughtUpTimestamp < 0 {
				return false
			}
			observers = append(observers, o.ReplicaID)
		}
		return slices.Equal(voters, []int32{1, 2, 3}) && slices.Equal(observers, []int32{4, 5}) &&
			q.LeaderID >= 1 && q.LeaderID <= 3 && q.LeaderEpoch > 0 && q.HighWatermark > 0
	})

	// Kill broker 4 (broker-only); partitions it led move to other ISR
	// members and produce carries on.
	if err := c.nodes[4].Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("broker 4 led partition %d", leaderOn4)
	produce(40, 80)

	// Broker 4 comes back with its data (its Raft stores included): it
	// rejoins as an observer, registers again, catches up and rejoins
	// every ISR.
	n4, err := c.start(roleNode{4, "broker"})
	if err != nil {
		t.Fatalf("restart broker 4: %v", err)
	}
	t.Cleanup(func() { n4.Close() })
	checkFor(t, "broker 4 back in every ISR", func() bool {
		td, err := adm.ListTopics(ctx, topic)
		if err != nil || td[topic].Err != nil {
			return false
		}
		for _, p := range td[topic].Partitions {
			if len(p.ISR) != len(p.Replicas) {
				return false
			}
		}
		return true
	})

	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds[0], seeds[1], seeds[3]),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]bool{}
	for len(seen) < 80 {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read back %d of 80 records: %v", len(seen), err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if seen[string(r.Value)] {
				t.Errorf("record %s read twice", r.Value)
			}
			seen[string(r.Value)] = true
		})
	}
}

func strPtr(s string) *string { return &s }

// describeQuorum sends DescribeQuorum v2 for __cluster_metadata-0.
func describeQuorum(ctx context.Context, cl *kgo.Client) (kmsg.DescribeQuorumResponseTopicPartition, error) {
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rt.Partitions = []kmsg.DescribeQuorumRequestTopicPartition{kmsg.NewDescribeQuorumRequestTopicPartition()}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return kmsg.DescribeQuorumResponseTopicPartition{}, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return kmsg.DescribeQuorumResponseTopicPartition{}, fmt.Errorf("%d topics", len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	return p, kerr.ErrorForCode(p.ErrorCode)
}

// TestRolesControllerOnlyActive: with a single controller-only voter the
// active controller is never a broker. Clients are told the answering
// broker is the controller, admin requests sent there are forwarded, and
// DescribeQuorum names the real leader with both brokers as observers.
func TestRolesControllerOnlyActive(t *testing.T) {
	c := startMixedCluster(t, []roleNode{{1, "controller"}, {2, "broker"}, {3, "broker"}}, nil)
	for _, id := range []int32{2, 3} {
		checkFor(t, "brokers 2 and 3, the answering broker as controller", func() bool {
			ids, ctrl, err := describe(t, c.nodes[id])
			return err == nil && slices.Equal(ids, []int32{2, 3}) && ctrl == id
		})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.nodes[2].KafkaAddr().String()), kgo.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t, 60*time.Second)
	res, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 2, nil, "via-broker")
	if err != nil || res.Err != nil {
		t.Fatalf("create topic through a broker: %v %v", err, res.Err)
	}
	testkit.Eventually(t, 20*time.Second, "produce to the new topic", func() error {
		return cl.ProduceSync(ctx, &kgo.Record{Topic: "via-broker", Value: []byte("x")}).FirstErr()
	})
	q, err := describeQuorum(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var observers []int32
	for _, o := range q.Observers {
		observers = append(observers, o.ReplicaID)
	}
	if q.LeaderID != 1 || !slices.Equal(quorumVoters(q), []int32{1}) || !slices.Equal(observers, []int32{2, 3}) {
		t.Fatalf("DescribeQuorum: leader %d voters %v observers %v", q.LeaderID, quorumVoters(q), observers)
	}

	// Broker 3 retires: once unregistered it is no observer either.
	if err := c.nodes[3].Close(); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrUnregisterBrokerRequest()
	req.BrokerID = 3
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		t.Fatalf("unregister broker 3: %v", err)
	}
	q, err = describeQuorum(ctx, cl)
	if err != nil || len(q.Observers) != 1 || q.Observers[0].ReplicaID != 2 {
		t.Fatalf("observers after unregistering broker 3: %+v %v", q.Observers, err)
	}
}
