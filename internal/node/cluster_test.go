package node_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/testkit"
)

// checkFor polls cond with the one polling helper (testkit.Eventually).
func checkFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, what, func() error {
		if cond() {
			return nil
		}
		return errors.New("condition not met")
	})
}

func freePorts(t *testing.T, n int) []int { return testkit.FreePorts(t, n) }

func clusterNodeConfig(dir string, id int32, ctrlPort int, voters string, props map[string]string) config.Node {
	cfg := config.DefaultNode()
	cfg.NodeID = id
	cfg.DataDir = dir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.ControllerAddr = fmt.Sprintf("127.0.0.1:%d", ctrlPort)
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Voters = voters
	cfg.Props = props
	return cfg
}

// cluster is three combined nodes started concurrently from one voters list.
type cluster struct {
	nodes     []*node.Node
	dirs      []string
	ctrlPorts []int
}

func startCluster(t *testing.T, props map[string]string) cluster {
	t.Helper()
	return startClusterWith(t, props, nil)
}

// startClusterWith is startCluster with each node's config changed by mod
// (nil: unchanged).
func startClusterWith(t *testing.T, props map[string]string, mod func(*config.Node)) cluster {
	t.Helper()
	c := cluster{nodes: make([]*node.Node, 3), ctrlPorts: freePorts(t, 3)}
	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", c.ctrlPorts[0], c.ctrlPorts[1], c.ctrlPorts[2])
	errs := make([]error, 3)
	for range 3 {
		c.dirs = append(c.dirs, t.TempDir())
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p := map[string]string{"broker.rack": fmt.Sprintf("rack-%d", i+1)}
			for k, v := range props {
				p[k] = v
			}
			cfg := clusterNodeConfig(c.dirs[i], int32(i+1), c.ctrlPorts[i], voters, p)
			if mod != nil {
				mod(&cfg)
			}
			c.nodes[i], errs[i] = node.Start(ctx, cfg, nil)
		})
	}
	wg.Wait()
	for i, n := range c.nodes {
		if n != nil {
			t.Cleanup(func() { n.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i+1, errs[i])
		}
	}
	return c
}

// activeController waits until n reports an active controller and
// returns its id.
func activeController(t *testing.T, n *node.Node) int32 {
	t.Helper()
	var ctrl int32
	checkFor(t, "an active controller", func() bool {
		_, id, err := describe(t, n)
		ctrl = id
		return err == nil && id > 0
	})
	return ctrl
}

// describe returns the brokers and controller n reports in DescribeCluster
// and in Metadata, which must agree.
func describe(t *testing.T, n *node.Node) (brokers []int32, controller int32, err error) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr().String()))
	if err != nil {
		return nil, 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
	if err != nil {
		return nil, 0, err
	}
	if err := kerr.ErrorForCode(dc.ErrorCode); err != nil {
		return nil, 0, err
	}
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return nil, 0, err
	}
	for _, b := range dc.Brokers {
		brokers = append(brokers, b.NodeID)
	}
	slices.Sort(brokers)
	if md.Controller != dc.ControllerID || !slices.Equal(md.Brokers.NodeIDs(), brokers) {
		return nil, 0, fmt.Errorf("metadata says controller %d brokers %v, describe cluster %d %v", md.Controller, md.Brokers.NodeIDs(), dc.ControllerID, brokers)
	}
	return brokers, dc.ControllerID, nil
}

// TestClusterThreeVotersFormQuorumAndFenceAStoppedBroker starts three
// combined nodes from one voters list, concurrently, and checks that every
// node lists the three brokers and the same active controller; when the
// active controller stops, another voter takes over and fences the stopped
// broker once its session (broker.session.timeout.ms) expires.
func TestClusterThreeVotersFormQuorumAndFenceAStoppedBroker(t *testing.T) {
	c := startCluster(t, map[string]string{"broker.session.timeout.ms": "1500", "broker.heartbeat.interval.ms": "200"})
	nodes, ports := c.nodes, c.ctrlPorts

	var leader int32
	for _, n := range nodes {
		checkFor(t, "three brokers and one controller", func() bool {
			brokers, ctrl, err := describe(t, n)
			if err != nil || len(brokers) != 3 || ctrl < 1 || ctrl > 3 {
				return false
			}
			if leader == 0 {
				leader = ctrl
			}
			return ctrl == leader
		})
	}
	// Racks and endpoints come from each broker's own registration.
	cl, err := kgo.NewClient(kgo.SeedBrokers(nodes[0].KafkaAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).BrokerMetadata(testCtx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range md.Brokers {
		n := nodes[b.NodeID-1]
		if want := fmt.Sprintf("rack-%d", b.NodeID); b.Rack == nil || *b.Rack != want {
			t.Errorf("broker %d rack %v, want %s", b.NodeID, b.Rack, want)
		}
		if got, want := net.JoinHostPort(b.Host, fmt.Sprint(b.Port)), n.KafkaAddr().String(); got != want {
			t.Errorf("broker %d endpoint %s, want %s", b.NodeID, got, want)
		}
	}

	// The controller listeners speak Kafka to brokers: followers answer
	// NOT_CONTROLLER, the active controller checks epochs and the cluster id.
	for i := range 3 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(fmt.Sprintf("127.0.0.1:%d", ports[i])))
		if err != nil {
			t.Fatal(err)
		}
		ctrl := cl.SeedBrokers()[0]
		hb := kmsg.NewPtrBrokerHeartbeatRequest()
		hb.BrokerID, hb.BrokerEpoch = 1, 1<<40
		hbResp, err := hb.RequestWith(testCtx(t, 5*time.Second), ctrl)
		if err != nil {
			t.Fatal(err)
		}
		reg := kmsg.NewPtrBrokerRegistrationRequest()
		reg.BrokerID, reg.ClusterID = 9, "not-this-cluster"
		reg.Listeners = []kmsg.BrokerRegistrationRequestListener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 1}}
		regResp, err := reg.RequestWith(testCtx(t, 5*time.Second), ctrl)
		cl.Close()
		if err != nil {
			t.Fatal(err)
		}
		wantHB, wantReg := kerr.NotController.Code, kerr.NotController.Code
		if int32(i+1) == leader {
			wantHB, wantReg = kerr.StaleBrokerEpoch.Code, kerr.InconsistentClusterID.Code
		}
		if hbResp.ErrorCode != wantHB || regResp.ErrorCode != wantReg {
			t.Errorf("controller %d (active %d): heartbeat %v, registration %v; want %v, %v", i+1, leader,
				kerr.ErrorForCode(hbResp.ErrorCode), kerr.ErrorForCode(regResp.ErrorCode), kerr.ErrorForCode(wantHB), kerr.ErrorForCode(wantReg))
		}
	}

	if err := nodes[leader-1].Close(); err != nil {
		t.Fatalf("close the active controller: %v", err)
	}
	var survivors []*node.Node
	for i, n := range nodes {
		if int32(i+1) != leader {
			survivors = append(survivors, n)
		}
	}
	for _, n := range survivors {
		checkFor(t, "a new controller that fenced the stopped broker", func() bool {
			brokers, ctrl, err := describe(t, n)
			if err != nil || ctrl == leader || ctrl < 1 || len(brokers) != 2 {
				return false
			}
			for _, b := range brokers {
				if b == leader {
					return false
				}
			}
			return true
		})
	}
}

// TestClusterStorageIdentity covers meta.properties: a new data directory
// gets one, and a node refuses another node's or another cluster's data, and
// a formatted directory whose metadata log is gone.
func TestClusterStorageIdentity(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	meta, err := config.ReadMetaProperties(dir)
	if err != nil {
		t.Fatalf("meta.properties after the first start: %v", err)
	}
	if meta.NodeID != 1 || meta.ClusterID == "" || meta.DirectoryID == "" {
		t.Fatalf("meta.properties = %+v", meta)
	}
	startNode(t, dir, nil).Close() // same node, same cluster: accepted

	start := func(t *testing.T, dir string, id int32) error {
		cfg := config.DefaultNode()
		cfg.NodeID, cfg.DataDir = id, dir
		cfg.KafkaAddr, cfg.ControllerAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n, err := node.Start(ctx, cfg, nil)
		if err == nil {
			n.Close()
		}
		return err
	}
	t.Run("another node id", func(t *testing.T) {
		err := start(t, dir, 2)
		if !errors.Is(err, config.ErrStorageIdentity) || !strings.Contains(err.Error(), "belongs to node 1") {
			t.Fatalf("start as node 2 on node 1's data: %v", err)
		}
	})
	t.Run("another cluster", func(t *testing.T) {
		other := t.TempDir()
		if err := start(t, other, 1); err != nil {
			t.Fatal(err)
		}
		m, err := config.ReadMetaProperties(other)
		if err != nil {
			t.Fatal(err)
		}
		m.ClusterID = "AAAAAAAAAAAAAAAAAAAAAA"
		if err := config.WriteMetaProperties(other, m); err != nil {
			t.Fatal(err)
		}
		err = start(t, other, 1)
		if !errors.Is(err, config.ErrStorageIdentity) || !strings.Contains(err.Error(), "belongs to cluster AAAAAAAAAAAAAAAAAAAAAA") {
			t.Fatalf("start on another cluster's data: %v", err)
		}
	})
	t.Run("metadata log wiped", func(t *testing.T) {
		wiped := t.TempDir()
		if err := start(t, wiped, 1); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(wiped, "__cluster_metadata")); err != nil {
			t.Fatal(err)
		}
		err := start(t, wiped, 1)
		if err == nil || !strings.Contains(err.Error(), "lost its metadata log") {
			t.Fatalf("start with a wiped metadata log: %v", err)
		}
		// The refused start left empty Raft stores behind; a second start
		// must refuse again, not take them for a new node's.
		if err := start(t, wiped, 1); err == nil || !strings.Contains(err.Error(), "lost its metadata log") {
			t.Fatalf("second start with a wiped metadata log: %v", err)
		}
	})
}

// TestClusterPlacementAndForwarding creates a topic through a broker that is
// not the active controller (the request is forwarded, KIP-590), and checks
// that its RF=1 partitions are spread evenly over the three brokers, that a
// broker opens only the partitions it hosts, that produce and fetch to a
// broker that does not lead a partition answer NOT_LEADER_OR_FOLLOWER, that
// a client of the whole cluster writes and reads every partition, and that
// DeleteTopics is forwarded too.
func TestClusterPlacementAndForwarding(t *testing.T) {
	c := startCluster(t, nil)
	var leader int32
	checkFor(t, "one controller", func() bool {
		_, ctrl, err := describe(t, c.nodes[0])
		leader = ctrl
		return err == nil && ctrl >= 1
	})
	follower := c.nodes[leader%3] // another node than the controller
	followerCl, err := kgo.NewClient(kgo.SeedBrokers(follower.KafkaAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer followerCl.Close()
	direct := followerCl.SeedBrokers()[0]

	const topic, partitions = "spread", 6
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, 1
	ct.Topics = append(ct.Topics, rt)
	ctResp, err := ct.RequestWith(testCtx(t, 15*time.Second), direct)
	if err != nil {
		t.Fatal(err)
	}
	if len(ctResp.Topics) != 1 || ctResp.Topics[0].ErrorCode != 0 {
		t.Fatalf("CreateTopics through a non-controller: %+v", ctResp.Topics)
	}

	// Every node learns the placement; RF=1 leaders are balanced.
	leaders := map[int32]int32{}
	for _, n := range c.nodes {
		checkFor(t, "the topic on every node", func() bool {
			cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr().String()))
			if err != nil {
				return false
			}
			defer cl.Close()
			md := kmsg.NewPtrMetadataRequest()
			mt := kmsg.NewMetadataRequestTopic()
			mt.Topic = kmsg.StringPtr(topic)
			md.Topics = append(md.Topics, mt)
			resp, err := md.RequestWith(testCtx(t, 5*time.Second), cl.SeedBrokers()[0])
			if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || len(resp.Topics[0].Partitions) != partitions {
				return false
			}
			for _, p := range resp.Topics[0].Partitions {
				if p.ErrorCode == kerr.LeaderNotAvailable.Code {
					// The leader has the new image but has not opened the
					// partition yet (reconcile follows the image).
					return false
				}
				if len(p.Replicas) != 1 || p.Replicas[0] != p.Leader {
					t.Fatalf("partition %d: leader %d replicas %v, want RF=1 led by its replica", p.Partition, p.Leader, p.Replicas)
				}
				leaders[p.Partition] = p.Leader
			}
			return true
		})
	}
	perBroker := map[int32]int{}
	for _, l := range leaders {
		perBroker[l]++
	}
	for id := int32(1); id <= 3; id++ {
		if perBroker[id] != partitions/3 {
			t.Fatalf("leaders per broker %v, want %d each", perBroker, partitions/3)
		}
	}
	// A broker opens only the partitions it hosts.
	for i, dir := range c.dirs {
		checkFor(t, fmt.Sprintf("node %d's partition directories", i+1), func() bool {
			for p, l := range leaders {
				_, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%s-%d", topic, p)))
				if hosted := l == int32(i+1); hosted != (err == nil) {
					return false
				}
			}
			return true
		})
	}

	// Produce and fetch to a broker that does not lead the partition.
	var foreign int32 = -1
	for p, l := range leaders {
		if l != follower.NodeID() {
			foreign = p
			break
		}
	}
	prod := kmsg.NewPtrProduceRequest()
	prod.Acks, prod.TimeoutMillis = -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = topic
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition = foreign
	pt.Partitions = append(pt.Partitions, pp)
	prod.Topics = append(prod.Topics, pt)
	prodResp, err := prod.RequestWith(testCtx(t, 5*time.Second), direct)
	if err != nil {
		t.Fatal(err)
	}
	if got := prodResp.Topics[0].Partitions[0].ErrorCode; got != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce to a non-leader: %v", kerr.ErrorForCode(got))
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.ReplicaID, fetch.MaxBytes = -1, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.PartitionMaxBytes = foreign, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	fetchResp, err := fetch.RequestWith(testCtx(t, 5*time.Second), direct)
	if err != nil {
		t.Fatal(err)
	}
	if got := fetchResp.Topics[0].Partitions[0].ErrorCode; got != kerr.NotLeaderForPartition.Code {
		t.Fatalf("fetch from a non-leader: %v", kerr.ErrorForCode(got))
	}

	// A client of the whole cluster reaches every leader.
	all := []string{c.nodes[0].KafkaAddr().String(), c.nodes[1].KafkaAddr().String(), c.nodes[2].KafkaAddr().String()}
	cl, err := kgo.NewClient(kgo.SeedBrokers(all...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for p := range int32(partitions) {
		if err := cl.ProduceSync(testCtx(t, 10*time.Second), &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprint(p))}).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", p, err)
		}
	}
	offs := map[int32]kgo.Offset{}
	for p := range int32(partitions) {
		offs[p] = kgo.NewOffset().AtStart()
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(all...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	got := map[int32]string{}
	ctx := testCtx(t, 15*time.Second)
	for len(got) < partitions && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got[r.Partition] = string(r.Value) })
	}
	for p := range int32(partitions) {
		if got[p] != fmt.Sprint(p) {
			t.Fatalf("consumed %v, want each partition's own record", got)
		}
	}

	// Every broker hands out producer ids from blocks the active controller
	// allocated (AllocateProducerIds over the controller listener for the
	// others): no two brokers give the same id.
	seen := map[int64]int32{}
	for _, n := range c.nodes {
		ncl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr().String()))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			resp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(testCtx(t, 10*time.Second), ncl.SeedBrokers()[0])
			if err != nil {
				t.Fatalf("InitProducerId on node %d: %v", n.NodeID(), err)
			}
			if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
				t.Fatalf("InitProducerId on node %d: %v", n.NodeID(), err)
			}
			if other, dup := seen[resp.ProducerID]; dup {
				t.Fatalf("producer id %d given by node %d and node %d", resp.ProducerID, other, n.NodeID())
			}
			seen[resp.ProducerID] = n.NodeID()
		}
		ncl.Close()
	}

	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TimeoutMillis = 10000
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = kmsg.StringPtr(topic)
	del.Topics = append(del.Topics, dt)
	del.TopicNames = []string{topic}
	delResp, err := del.RequestWith(testCtx(t, 15*time.Second), direct)
	if err != nil {
		t.Fatal(err)
	}
	if len(delResp.Topics) != 1 || delResp.Topics[0].ErrorCode != 0 {
		t.Fatalf("DeleteTopics through a non-controller: %+v", delResp.Topics)
	}
}

// TestClusterConsumerGroupAcrossBrokers runs a consumer group on a
// three-broker cluster: the auto-created topic and __consumer_offsets are
// created through whichever broker the client asks (forwarded to the active
// controller), the group's coordinator is the broker leading its
// __consumer_offsets partition, and committed offsets read back.
func TestClusterConsumerGroupAcrossBrokers(t *testing.T) {
	c := startCluster(t, map[string]string{"group.initial.rebalance.delay.ms": "0", "num.partitions": "3"})
	all := []string{c.nodes[0].KafkaAddr().String(), c.nodes[1].KafkaAddr().String(), c.nodes[2].KafkaAddr().String()}
	const topic, group, records = "events", "billing", 30
	prod, err := kgo.NewClient(kgo.SeedBrokers(all...), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range records {
		if err := prod.ProduceSync(testCtx(t, 20*time.Second), &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(all...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := 0
	ctx := testCtx(t, 20*time.Second)
	for got < records && ctx.Err() == nil {
		got += len(cons.PollFetches(ctx).Records())
	}
	if got != records {
		t.Fatalf("consumed %d of %d records", got, records)
	}
	if err := cons.CommitUncommittedOffsets(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(prod)
	offs, err := adm.FetchOffsets(testCtx(t, 10*time.Second), group)
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
	if committed != records {
		t.Fatalf("committed offsets add up to %d, want %d", committed, records)
	}
}

// TestClusterCleanShutdownFencesAtOnce stops a broker that is not the
// active controller: its last heartbeat asks to be fenced, so it leaves
// Metadata without waiting for its (here one minute) session to expire.
func TestClusterCleanShutdownFencesAtOnce(t *testing.T) {
	c := startCluster(t, map[string]string{"broker.session.timeout.ms": "60000"})
	var leader int32
	checkFor(t, "three brokers", func() bool {
		brokers, ctrl, err := describe(t, c.nodes[0])
		leader = ctrl
		return err == nil && len(brokers) == 3
	})
	stopped := c.nodes[leader%3]
	if err := stopped.Close(); err != nil {
		t.Fatal(err)
	}
	// checkFor gives up after 20 s, well before the 60 s session expires.
	checkFor(t, "the stopped broker unlisted", func() bool {
		brokers, _, err := describe(t, c.nodes[leader-1])
		return err == nil && len(brokers) == 2 && !slices.Contains(brokers, stopped.NodeID())
	})
}

// TestClusterProduceRightAfterAnotherBrokerNamesTheLeader: as soon as any
// broker's Metadata names the leader of a new topic's partition, a produce
// sent straight to that leader succeeds. The leader may not have reconciled
// to that image yet; it then does so before answering, where it used to
// answer NOT_LEADER_OR_FOLLOWER, which sent franz-go producers into a 5 s
// metadata backoff right after creating their topic. The leader's own image
// may still lag the answering broker's: UNKNOWN_TOPIC_OR_PARTITION is
// retried, as a client does.
func TestClusterProduceRightAfterAnotherBrokerNamesTheLeader(t *testing.T) {
	c := startCluster(t, nil)
	direct := make(map[int32]*kgo.Broker)
	for i, n := range c.nodes {
		cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr().String()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		direct[int32(i+1)] = cl.SeedBrokers()[0]
	}
	adm, _ := newAdmin(t, c.nodes[0])
	const partitions = 48
	for round := range 3 {
		topic := fmt.Sprintf("named-%d", round)
		asked := direct[int32(round%3+1)]
		created := make(chan error, 1)
		go func() {
			resp, err := adm.CreateTopic(testCtx(t, 15*time.Second), partitions, 3, nil, topic)
			if err == nil {
				err = resp.Err
			}
			created <- err
		}()
		ready := map[int32]bool{}
		deadline := time.Now().Add(15 * time.Second)
		for len(ready) < partitions {
			if time.Now().After(deadline) {
				t.Fatalf("%s: partitions produced to %v before the deadline", topic, ready)
			}
			mreq := kmsg.NewPtrMetadataRequest()
			mt := kmsg.NewMetadataRequestTopic()
			mt.Topic = strp(topic)
			mreq.Topics = append(mreq.Topics, mt)
			md, err := mreq.RequestWith(testCtx(t, 5*time.Second), asked)
			if err != nil {
				t.Fatal(err)
			}
			for _, mp := range md.Topics[0].Partitions {
				if ready[mp.Partition] || mp.ErrorCode != 0 || mp.Leader < 0 {
					continue
				}
				preq := kmsg.NewPtrProduceRequest()
				preq.Acks, preq.TimeoutMillis = 1, 10000
				rt := kmsg.NewProduceRequestTopic()
				rt.Topic = topic
				rp := kmsg.NewProduceRequestTopicPartition()
				rp.Partition, rp.Records = mp.Partition, rawBatch(t, -1, -1, -1, 1, "x")
				rt.Partitions = append(rt.Partitions, rp)
				preq.Topics = append(preq.Topics, rt)
				presp, err := preq.RequestWith(testCtx(t, 15*time.Second), direct[mp.Leader])
				if err != nil {
					t.Fatal(err)
				}
				switch code := presp.Topics[0].Partitions[0].ErrorCode; code {
				case 0:
					ready[mp.Partition] = true
				case kerr.UnknownTopicOrPartition.Code:
				default:
					t.Fatalf("%s[%d]: produce to leader %d right after Metadata named it: %v",
						topic, mp.Partition, mp.Leader, kerr.ErrorForCode(code))
				}
			}
		}
		if err := <-created; err != nil {
			t.Fatalf("create %s: %v", topic, err)
		}
	}
}

// TestClusterAutoCreateWithoutQuorum: a Metadata request that auto-creates
// a topic while no controller can answer (two of the three voters are down)
// is answered LEADER_NOT_AVAILABLE within about a second, as Kafka's broker
// answers at once, instead of holding its connection until the creation
// gives up (30 s).
func TestClusterAutoCreateWithoutQuorum(t *testing.T) {
	c := startCluster(t, nil)
	for _, n := range c.nodes[1:] {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.nodes[0].KafkaAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for round := range 2 { // the second joins the creation still in flight
		req := kmsg.NewPtrMetadataRequest()
		req.AllowAutoTopicCreation = true
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = strp("nowhere")
		req.Topics = append(req.Topics, mt)
		start := time.Now()
		resp, err := req.RequestWith(testCtx(t, 40*time.Second), cl.SeedBrokers()[0])
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("round %d: Metadata answered after %v without a quorum", round, took)
		}
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.LeaderNotAvailable.Code {
			t.Fatalf("round %d: %+v, want LEADER_NOT_AVAILABLE", round, resp.Topics)
		}
	}
}

// TestClusterTopicChangeVisibleOnEveryBrokerOnceAnswered: once CreateTopics
// (or CreatePartitions, DeleteTopics) has answered, every broker's Metadata
// answer for all topics shows the change, with a leader for every
// partition, whichever broker is asked. segmentio/kafka-go's Writer reads
// the topic's partitions from such an answer and fails at once when the
// topic or a partition's leader is missing. Before the controller waited
// for its followers to learn the commit, a follower's image lagged the
// answer by up to 100 ms; before a leader reconciled when asked, it named
// no leader for its own new partitions until its background reconcile.
func TestClusterTopicChangeVisibleOnEveryBrokerOnceAnswered(t *testing.T) {
	c := startCluster(t, nil)
	direct := make([]*kgo.Broker, len(c.nodes))
	for i, n := range c.nodes {
		cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr().String()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		direct[i] = cl.SeedBrokers()[0]
	}
	// partitions is each broker's count of topic's partitions in its
	// all-topics Metadata answer, -1 when the topic is missing; a
	// partition answered without a leader fails the test.
	partitions := func(topic string) []int {
		out := make([]int, len(direct))
		for i, br := range direct {
			md, err := kmsg.NewPtrMetadataRequest().RequestWith(testCtx(t, 5*time.Second), br)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = -1
			for _, mt := range md.Topics {
				if mt.Topic == nil || *mt.Topic != topic {
					continue
				}
				out[i] = len(mt.Partitions)
				for _, mp := range mt.Partitions {
					if mp.ErrorCode != 0 || mp.Leader < 0 {
						t.Fatalf("broker %d names no leader for %s[%d] (leader %d, %v) in a Metadata answer after the change was answered",
							i+1, topic, mp.Partition, mp.Leader, kerr.ErrorForCode(mp.ErrorCode))
					}
				}
			}
		}
		return out
	}
	for round := range 6 {
		adm, _ := newAdmin(t, c.nodes[round%3])
		topic := fmt.Sprintf("visible-%d", round)
		createTopic(t, adm, topic, 12, nil)
		if got := partitions(topic); !slices.Equal(got, []int{12, 12, 12}) {
			t.Fatalf("round %d: right after CreateTopics answered, brokers 1-3 list %s with partitions %v, want 12 each (-1: missing)", round, topic, got)
		}
		cp, err := adm.UpdatePartitions(testCtx(t, 10*time.Second), 15, topic)
		if err == nil {
			err = cp.Error()
		}
		if err != nil {
			t.Fatalf("round %d: create partitions: %v", round, err)
		}
		if got := partitions(topic); !slices.Equal(got, []int{15, 15, 15}) {
			t.Fatalf("round %d: right after CreatePartitions answered, brokers 1-3 list %s with partitions %v, want 15 each", round, topic, got)
		}
		resp, err := adm.DeleteTopics(testCtx(t, 10*time.Second), topic)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("round %d: delete: %v", round, err)
		}
		if got := partitions(topic); !slices.Equal(got, []int{-1, -1, -1}) {
			t.Fatalf("round %d: right after DeleteTopics answered, brokers 1-3 list %s with partitions %v, want it missing everywhere", round, topic, got)
		}
	}
}
