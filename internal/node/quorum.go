package node

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/controller"
)

// controllers finds controller listeners for the requests a broker sends
// to the active controller (registration, heartbeats, AlterPartition,
// forwarded admin requests). The quorum's Raft configuration comes first:
// every Raft server listens for Kafka requests on its Raft address, and the
// configuration follows voters added and removed at runtime (KIP-853).
// Before this node knows the configuration (a broker-only node that has
// not joined yet, a controller waiting to be added) the configured voters
// and bootstrap servers are tried in turn.
type controllers struct {
	static    map[int32]string // controller.quorum.voters
	bootstrap []string         // controller.quorum.bootstrap.servers
	ctrl      *controller.Controller
	self      int32

	mu   sync.Mutex
	next int // round-robin position in candidates
}

// addr returns controller id's listener, if known. This node's own is its
// bound address: a single node started on port 0 again has a new one.
func (c *controllers) addr(id int32) (string, bool) {
	if id == c.self {
		return c.ctrl.Addr(), true
	}
	if a, ok := c.static[id]; ok {
		return a, true
	}
	return c.ctrl.ServerAddr(id)
}

// nextAddr returns the next controller listener to try when the active
// controller is not known.
func (c *controllers) nextAddr() string {
	var cands []string
	if servers, err := c.ctrl.Servers(); err == nil {
		for _, s := range servers {
			if s.Voter {
				cands = append(cands, s.Addr)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.static)) {
		cands = append(cands, c.static[id])
	}
	cands = append(cands, c.bootstrap...)
	seen := map[string]bool{}
	cands = slices.DeleteFunc(cands, func(a string) bool {
		dup := seen[a]
		seen[a] = true
		return dup
	})
	if len(cands) == 0 {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	return cands[c.next%len(cands)]
}

// probeTimeout bounds the exchange with one peer when a voter with a new
// data directory asks whether its quorum is already running.
const probeTimeout = time.Second

// quorumRunning asks the other voters' controller listeners for the quorum
// (DescribeQuorum): true when one of them is an active controller with a
// committed log. A voter with a new data directory is then either a late
// first start or a voter that lost its disk; it cannot tell which, so it
// rejoins without voting until caught up (controller.Config.Rejoin). When
// no peer answers as active (the cluster is forming, or has no leader) it
// bootstraps, as every voter of a new cluster does.
func quorumRunning(ctx context.Context, self int32, voters map[int32]string, dial dialFunc) bool {
	for _, id := range slices.Sorted(maps.Keys(voters)) {
		if id == self {
			continue
		}
		req := kmsg.NewPtrDescribeQuorumRequest()
		rt := kmsg.NewDescribeQuorumRequestTopic()
		rt.Topic = "__cluster_metadata"
		rt.Partitions = []kmsg.DescribeQuorumRequestTopicPartition{kmsg.NewDescribeQuorumRequestTopicPartition()}
		req.Topics = append(req.Topics, rt)
		var resp kmsg.DescribeQuorumResponse
		c := controllerClient{timeout: probeTimeout, clientID: "gregor-probe-" + strconv.Itoa(int(self)), dial: dial}
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		err := c.request(pctx, voters[id], req, &resp)
		cancel()
		c.close()
		if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			continue
		}
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode == 0 && p.HighWatermark > 0 {
			return true
		}
	}
	return false
}
