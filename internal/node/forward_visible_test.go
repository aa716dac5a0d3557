package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/node"
)

// TestClusterForwardedCreateVisibleOnForwarder: a topic created through a
// broker that is not the active controller (CreateTopics forwarded) is in
// that broker's own Metadata answer, every partition with its leader, as
// soon as the CreateTopics answer arrives: a client that creates a topic
// and then asks the same broker for it must not see it missing.
func TestClusterForwardedCreateVisibleOnForwarder(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes")
	}
	c := startCluster(t, nil)
	ctrl := activeController(t, c.nodes[0])
	for _, n := range c.nodes {
		if n.NodeID() != ctrl {
			createThenDescribe(t, n)
		}
	}
}

// TestClusterForwardedCreateVisibleOnObserver: the same through a
// broker-only node, which follows the metadata log as a Raft observer.
func TestClusterForwardedCreateVisibleOnObserver(t *testing.T) {
	if testing.Short() {
		t.Skip("four nodes")
	}
	c := startMixedCluster(t, []roleNode{{1, "broker,controller"}, {2, "broker,controller"}, {3, "broker,controller"}, {4, "broker"}}, nil)
	checkFor(t, "broker 4 registered and unfenced", func() bool {
		ids, _, err := describe(t, c.nodes[4])
		return err == nil && len(ids) == 4
	})
	createThenDescribe(t, c.nodes[4])
}

// createThenDescribe creates five RF=3 topics through n and asks n for
// each right after its CreateTopics answer.
func createThenDescribe(t *testing.T, n *node.Node) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	b := cl.Broker(int(n.NodeID()))
	for i := range 5 {
		topic := fmt.Sprintf("fwd-%d-%d", n.NodeID(), i)
		create := kmsg.NewPtrCreateTopicsRequest()
		ct := kmsg.NewCreateTopicsRequestTopic()
		ct.Topic, ct.NumPartitions, ct.ReplicationFactor = topic, 3, 3
		create.Topics = append(create.Topics, ct)
		create.TimeoutMillis = 10000
		cresp, err := create.RequestWith(testCtx(t, 15*time.Second), b)
		if err != nil || cresp.Topics[0].ErrorCode != 0 {
			t.Fatalf("create %s through node %d: %v %+v", topic, n.NodeID(), err, cresp)
		}
		meta := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(topic)
		meta.Topics = append(meta.Topics, mt)
		mresp, err := meta.RequestWith(testCtx(t, 5*time.Second), b)
		if err != nil {
			t.Fatal(err)
		}
		got := mresp.Topics[0]
		if got.ErrorCode != 0 || len(got.Partitions) != 3 {
			t.Fatalf("node %d right after creating %s: code %d, %d partitions", n.NodeID(), topic, got.ErrorCode, len(got.Partitions))
		}
		for _, p := range got.Partitions {
			if p.ErrorCode != 0 || p.Leader < 0 {
				t.Fatalf("node %d right after creating %s: partition %d code %d leader %d", n.NodeID(), topic, p.Partition, p.ErrorCode, p.Leader)
			}
		}
	}
}
