package node_test

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/node"
)

// ownMetadata is n's Metadata answer, asked of n itself.
func ownMetadata(t *testing.T, n *node.Node) *kmsg.MetadataResponse {
	t.Helper()
	cl := newClient(t, n)
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl)
	if err != nil {
		t.Fatalf("metadata from node %d: %v", n.NodeID(), err)
	}
	return resp
}

// TestClusterRestartedNodeListsItselfAtOnce: once Start returns, a node's
// Metadata lists the node itself at the endpoint of its new registration,
// and names as controller a broker of its list. A node used to serve as
// soon as the controller had unfenced it, from an image that had not
// applied its registration yet: clients got its old endpoint (a dead port
// after a restart) or a list without it, and kept them.
func TestClusterRestartedNodeListsItselfAtOnce(t *testing.T) {
	props := map[string]string{"broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "200"}
	c := startCluster(t, props)
	for round := range 3 {
		idx := round % 3
		old := c.nodes[idx].KafkaAddr().(*net.TCPAddr).Port
		if err := c.nodes[idx].Close(); err != nil {
			t.Fatal(err)
		}
		c.nodes[idx] = restartNode(t, c, idx, props)
		port := c.nodes[idx].KafkaAddr().(*net.TCPAddr).Port
		if port == old {
			t.Fatalf("node %d restarted on its old port %d: the test needs a new one", idx+1, port)
		}
		// No polling: Start has returned.
		md := ownMetadata(t, c.nodes[idx])
		var ids []int32
		self := false
		for _, b := range md.Brokers {
			ids = append(ids, b.NodeID)
			if b.NodeID == int32(idx+1) {
				self = true
				if int(b.Port) != port {
					t.Fatalf("round %d: node %d lists itself at port %d, its new port is %d (old %d)", round, idx+1, b.Port, port, old)
				}
			}
		}
		if !self {
			t.Fatalf("round %d: node %d lists brokers %v, not itself", round, idx+1, ids)
		}
		if md.ControllerID >= 0 && !slices.Contains(ids, md.ControllerID) {
			t.Fatalf("round %d: node %d names controller %d, not among its brokers %v", round, idx+1, md.ControllerID, ids)
		}
	}
}
