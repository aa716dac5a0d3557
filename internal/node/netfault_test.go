package node_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregor-dev/gregor/internal/node"
)

// netFaults is the in-process harness's network seam: every node of a
// fault cluster makes its connections to the other nodes (replica fetches,
// heartbeats, AlterPartition, forwarding, Raft) through node.Options.Dial,
// and a test cuts links between chosen nodes. A cut link from a to b fails
// every connection a opens to b, new or established (an established one is
// closed, so its peer sees it end too). Cutting a to b alone is a one-way
// partition at the request level: a cannot reach b, while b still opens
// connections to a and is answered. Clients of the test are not affected.
// A Raft cut fails only the metadata quorum's connections (those that
// open with the Raft preamble) and leaves the Kafka requests on the same
// controller port (heartbeats, AlterPartition) through: a node that
// reaches the controller but whose metadata cannot follow.
type netFaults struct {
	mu      sync.Mutex
	owner   map[int]int32 // loopback port -> node id
	cut     map[[2]int32]bool
	raftCut map[[2]int32]bool
	// stalled: writes from the first node to the second vanish and new
	// connections fail, as under a blackhole route: the connections
	// stay open and their requests unanswered. dials counts dials by
	// node and destination port.
	stalled map[[2]int32]bool
	// portCut: connections from a node to one port fail, the rest of
	// the link stays up (a node cut from the controller listeners alone).
	portCut map[nodePort]bool
	dials   map[nodePort]int
	conns   map[*faultConn]struct{}
	// kafkaWrites counts the writes of Kafka-protocol (not Raft)
	// connections by node and destination port.
	kafkaWrites map[nodePort]int
}

// nodePort is a node and a port it sends to.
type nodePort struct {
	from int32
	port int
}

func newNetFaults() *netFaults {
	return &netFaults{owner: make(map[int]int32), cut: make(map[[2]int32]bool), raftCut: make(map[[2]int32]bool),
		stalled: make(map[[2]int32]bool), portCut: make(map[nodePort]bool), dials: make(map[nodePort]int),
		conns: make(map[*faultConn]struct{}), kafkaWrites: make(map[nodePort]int)}
}

// raftPreamble is the first byte of every Raft connection on the
// controller listener (controller.raftPreamble).
const raftPreamble = 0xF7

// own records that port belongs to node id.
func (f *netFaults) own(id int32, ports ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range ports {
		f.owner[p] = id
	}
}

var errLinkCut = errors.New("netfaults: link cut")

// dialer is node from's Options.Dial.
func (f *netFaults) dialer(from int32) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		to := f.nodeOf(addr)
		_, dport, _ := net.SplitHostPort(addr)
		dp, _ := strconv.Atoi(dport)
		f.mu.Lock()
		f.dials[nodePort{from, dp}]++
		refused := f.stalled[[2]int32{from, to}] || f.portCut[nodePort{from, dp}]
		f.mu.Unlock()
		if f.isCut(from, to) || refused {
			return nil, fmt.Errorf("dial %s from node %d: %w", addr, from, errLinkCut)
		}
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		_, ps, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(ps)
		c := &faultConn{Conn: nc, f: f, from: from, to: to, port: port}
		f.mu.Lock()
		f.conns[c] = struct{}{}
		cut := f.cut[[2]int32{from, to}]
		f.mu.Unlock()
		if cut { // cut while dialing
			c.Close()
			return nil, errLinkCut
		}
		return c, nil
	}
}

func (f *netFaults) nodeOf(addr string) int32 {
	_, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return -1
	}
	p, _ := strconv.Atoi(ps)
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.owner[p]; ok {
		return id
	}
	return -1
}

func (f *netFaults) isCut(from, to int32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut[[2]int32{from, to}]
}

// connCut reports whether c's link is cut for its kind of traffic.
func (f *netFaults) connCut(c *faultConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := [2]int32{c.from, c.to}
	return f.cut[k] || (c.raft && f.raftCut[k]) || f.portCut[nodePort{c.from, c.port}]
}

// cutRaft cuts the Raft traffic from a to b and from b to a.
func (f *netFaults) cutRaft(a, b int32) {
	f.mu.Lock()
	f.raftCut[[2]int32{a, b}] = true
	f.raftCut[[2]int32{b, a}] = true
	f.mu.Unlock()
	f.closeConns(func(c *faultConn) bool {
		return c.raft && ((c.from == a && c.to == b) || (c.from == b && c.to == a))
	})
}

// closeConns closes the open connections match selects (match runs
// under f.mu).
func (f *netFaults) closeConns(match func(c *faultConn) bool) {
	f.mu.Lock()
	var doomed []*faultConn
	for c := range f.conns {
		if match(c) {
			doomed = append(doomed, c)
		}
	}
	f.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
}

// cutLink cuts the link from a to b (one way; call twice for both).
func (f *netFaults) cutLink(a, b int32) {
	f.mu.Lock()
	f.cut[[2]int32{a, b}] = true
	f.mu.Unlock()
	f.closeConns(func(c *faultConn) bool { return c.from == a && c.to == b })
}

// cutPort cuts what node from sends to port (one way), closing its open
// connections there.
func (f *netFaults) cutPort(from int32, port int) {
	f.mu.Lock()
	f.portCut[nodePort{from, port}] = true
	f.mu.Unlock()
	f.closeConns(func(c *faultConn) bool { return c.from == from && c.port == port })
}

// isolate cuts node id from every other node of ids, both ways.
func (f *netFaults) isolate(id int32, ids ...int32) {
	for _, o := range ids {
		if o != id {
			f.cutLink(id, o)
			f.cutLink(o, id)
		}
	}
}

// kafkaWritesTo is how many Kafka-protocol writes node from has made to
// port (a controller listener: its heartbeats and ISR changes).
func (f *netFaults) kafkaWritesTo(from int32, port int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kafkaWrites[nodePort{from, port}]
}

// healExceptRaft restores every link but the Raft cuts (cutRaft).
func (f *netFaults) healExceptRaft() {
	f.mu.Lock()
	clear(f.cut)
	f.mu.Unlock()
}

// heal restores every link.
func (f *netFaults) heal() {
	f.mu.Lock()
	clear(f.cut)
	clear(f.raftCut)
	clear(f.stalled)
	clear(f.portCut)
	f.mu.Unlock()
}

// stall drops what node from writes to node to, and fails its new dials
// there, leaving its open connections open (see stalled).
func (f *netFaults) stall(from, to int32) {
	f.mu.Lock()
	f.stalled[[2]int32{from, to}] = true
	f.mu.Unlock()
}

// dialCount is how many dials node from has made to port.
func (f *netFaults) dialCount(from int32, port int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials[nodePort{from, port}]
}

// faultConn is a connection opened through netFaults.
type faultConn struct {
	net.Conn
	f        *netFaults
	from, to int32
	port     int // the destination port
	once     sync.Once
	// raft is set by the first write (the Raft preamble), under f.mu;
	// its owner writes before it reads.
	raft, typed bool
}

func (c *faultConn) Read(p []byte) (int, error) {
	if c.f.connCut(c) {
		c.Close()
		return 0, errLinkCut
	}
	return c.Conn.Read(p)
}

func (c *faultConn) Write(p []byte) (int, error) {
	c.f.mu.Lock()
	if !c.typed && len(p) > 0 {
		c.typed, c.raft = true, p[0] == raftPreamble
	}
	if !c.raft {
		c.f.kafkaWrites[nodePort{c.from, c.port}]++
	}
	c.f.mu.Unlock()
	if c.f.connCut(c) {
		c.Close()
		return 0, errLinkCut
	}
	c.f.mu.Lock()
	stalled := c.f.stalled[[2]int32{c.from, c.to}]
	c.f.mu.Unlock()
	if stalled {
		return len(p), nil // dropped on the way
	}
	return c.Conn.Write(p)
}

func (c *faultConn) Close() error {
	c.once.Do(func() {
		c.f.mu.Lock()
		delete(c.f.conns, c)
		c.f.mu.Unlock()
	})
	return c.Conn.Close()
}

// faultCluster is three combined nodes whose node-to-node links go
// through one netFaults. Kafka ports are reserved up front so that every
// address a node dials is known to belong to its node.
type faultCluster struct {
	cluster
	net        *netFaults
	kafkaPorts []int
	props      map[string]string
}

func startFaultCluster(t *testing.T, props map[string]string) *faultCluster {
	t.Helper()
	ports := freePorts(t, 6)
	c := &faultCluster{cluster: cluster{nodes: make([]*node.Node, 3), ctrlPorts: ports[:3]},
		net: newNetFaults(), kafkaPorts: ports[3:], props: props}
	for i := range 3 {
		c.dirs = append(c.dirs, t.TempDir())
		c.net.own(int32(i+1), c.ctrlPorts[i], c.kafkaPorts[i])
	}
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { c.nodes[i], errs[i] = c.start(i) })
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

// start starts node i+1 (again) on its directory and ports.
func (c *faultCluster) start(i int) (*node.Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := map[string]string{"broker.rack": fmt.Sprintf("rack-%d", i+1)}
	for k, v := range c.props {
		p[k] = v
	}
	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", c.ctrlPorts[0], c.ctrlPorts[1], c.ctrlPorts[2])
	cfg := clusterNodeConfig(c.dirs[i], int32(i+1), c.ctrlPorts[i], voters, p)
	cfg.KafkaAddr = fmt.Sprintf("127.0.0.1:%d", c.kafkaPorts[i])
	return node.Start(ctx, cfg, testLogger(), node.Options{Dial: c.net.dialer(int32(i + 1))})
}

// TestClusterReplicaFetchLeavesAStalledConnection: when a follower's
// requests to its leader vanish on an open connection (a blackhole route,
// as the chaos runs' partitions), its fetcher gives the connection up a few
// seconds past the fetch's max wait and dials again, rather than waiting
// 10 s for an answer or for TCP to retransmit: a follower that fetched
// nothing for seconds after such a partition healed shrank its leader's
// ISR and held acks=all writes (8.4 s recoveries). After the heal it
// catches up.
func TestClusterReplicaFetchLeavesAStalledConnection(t *testing.T) {
	c := startFaultCluster(t, nil)
	const topic = "stalled"
	createReplicated(t, c.cluster, topic, 1, nil)
	leader := leaderOf(c.cluster, topic, 0)
	var follower *node.Node
	for _, n := range c.nodes {
		if n != leader {
			follower = n
			break
		}
	}
	cl := newClient(t, leader, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(v string) {
		t.Helper()
		if err := cl.ProduceSync(testCtx(t, 20*time.Second), &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	caughtUp := func() bool {
		l, _ := leader.Replica(topic, 0)
		f, ok := follower.Replica(topic, 0)
		return ok && f.LogEndOffset == l.LogEndOffset
	}
	produce("before")
	checkFor(t, "the follower caught up", caughtUp)

	from, to := follower.NodeID(), leader.NodeID()
	port := c.kafkaPorts[to-1] // the fetcher's; heartbeats go to the controller port
	dials := c.net.dialCount(from, port)
	c.net.stall(from, to)
	// The fetch in flight (or the next one) is never answered: within
	// max wait + slack (3.5 s) the fetcher must dial again, well before
	// the 10 s it used to wait.
	deadline := time.Now().Add(7 * time.Second)
	for c.net.dialCount(from, port) == dials {
		if time.Now().After(deadline) {
			t.Fatal("the follower kept waiting on its stalled connection for 7 s without dialing its leader again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.net.heal()
	produce("after")
	checkFor(t, "the follower caught up after the heal", caughtUp)
}
