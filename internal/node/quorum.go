package node

import (
	"maps"
	"slices"
	"sync"

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
