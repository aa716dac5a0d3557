package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/controller"
)

// brokerLifecycle is the broker side of cluster membership, as a KRaft
// broker's BrokerLifecycleManager: it registers this broker with the active
// controller (BrokerRegistration over the controller listener, in Kafka's
// protocol), heartbeats every broker.heartbeat.interval.ms (BrokerHeartbeat),
// asks to be unfenced, and registers again when the controller answers
// STALE_BROKER_EPOCH (a new controller that lost the registration, or a
// fencing it missed). The controller is found by trying the voters in turn,
// starting with the Raft leader this node knows of; NOT_CONTROLLER or a
// network error moves on to the next one.
type brokerLifecycle struct {
	nodeID    int32
	clusterID string
	host      string
	port      int32
	// listener names host:port (inter.broker.listener.name); extra are the
	// broker's other client listeners, registered so that each listener's
	// clients are told the brokers' endpoints of that listener.
	listener string
	extra    []kmsg.BrokerRegistrationRequestListener
	rack     string
	interval time.Duration
	// raftAddr, on a broker-only node, is its Raft listener: the
	// registration carries it as the CONTROLLER listener, and the active
	// controller adds the node to the quorum as an observer.
	raftAddr    string
	controllers *controllers
	leader      func() (int32, bool)
	logger      *slog.Logger
	// lease is renewed by every heartbeat answered unfenced (nil: none).
	lease *brokerLease
	// applied is the metadata offset this broker's partitions follow
	// (nil: -1, unknown); a fenced broker is unfenced only once it has
	// caught up (controller.Heartbeat).
	applied func() int64

	client controllerClient
	// behindSince is when the first of the heartbeats answered fenced and
	// not caught up in a row was sent (zero: the last answer was neither);
	// warned says the warning for this run was logged. The lifecycle
	// goroutine's.
	behindSince time.Time
	warned      bool

	mu struct {
		sync.Mutex
		epoch    int64 // 0: not registered
		unfenced chan struct{}
		closed   bool // unfenced is closed
	}
}

// behindWarnAfter is how long heartbeats answered "not caught up" in a row
// make a warning.
const behindWarnAfter = 20 * time.Second

// catchUpHeartbeat is the pause between heartbeats while the controller
// answers "fenced, not caught up", for up to catchUpFastFor. The controller
// unfences a broker on the first heartbeat that shows it caught up, and
// catching up takes milliseconds, so waiting a whole heartbeat interval
// left a restarted or healed broker fenced for up to 2 s more than needed
// (Kafka's BrokerLifecycleManager heartbeats every 10 ms while it starts).
// After catchUpFastFor a broker that cannot catch up (a metadata log it
// cannot follow) goes back to the interval.
const (
	catchUpHeartbeat = 20 * time.Millisecond
	catchUpFastFor   = 10 * time.Second
)

// lifecycleRetry is the pause before trying again after a failed exchange
// with the controllers (none active yet, an election under way).
const lifecycleRetry = 100 * time.Millisecond

func newBrokerLifecycle(l *brokerLifecycle) *brokerLifecycle {
	l.mu.unfenced = make(chan struct{})
	l.client.timeout = max(l.interval, time.Second)
	l.client.clientID = "gregor-broker-" + strconv.Itoa(int(l.nodeID))
	return l
}

// brokerEpoch is the broker epoch of the current registration (0: none).
func (l *brokerLifecycle) brokerEpoch() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.epoch
}

// waitUnfenced blocks until the controller has unfenced this broker once.
func (l *brokerLifecycle) waitUnfenced(ctx context.Context) error {
	l.mu.Lock()
	ch := l.mu.unfenced
	l.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("node: waiting for the controller to unfence this broker: %w", context.Cause(ctx))
	}
}

// shutdownFenceTimeout bounds the last heartbeat of a broker that stops.
const shutdownFenceTimeout = 2 * time.Second

// run registers and heartbeats until ctx ends, then asks to be fenced.
func (l *brokerLifecycle) run(ctx context.Context) {
	defer l.client.close()
	defer l.fenceSelf()
	for ctx.Err() == nil {
		wait := l.interval
		if err := l.step(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.logger.Debug("controller exchange failed", "err", err)
			l.client.close()
			wait = lifecycleRetry
		} else if !l.behindSince.IsZero() && time.Since(l.behindSince) < catchUpFastFor {
			wait = min(wait, catchUpHeartbeat)
		}
		l.lease.held() // logs the lease's expiry when no request asks
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// fenceSelf sends a heartbeat with WantFence, so that the controller stops
// listing a broker that shuts down cleanly at once rather than after its
// session expires. Best effort: if no controller answers, the session
// expiry fences it.
func (l *brokerLifecycle) fenceSelf() {
	l.mu.Lock()
	epoch := l.mu.epoch
	l.mu.Unlock()
	if epoch == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownFenceTimeout)
	defer cancel()
	req := kmsg.NewPtrBrokerHeartbeatRequest()
	req.Version = 1
	req.BrokerID, req.BrokerEpoch, req.WantFence = l.nodeID, epoch, true
	req.CurrentMetadataOffset = -1
	var resp kmsg.BrokerHeartbeatResponse
	err := l.exchange(ctx, req, &resp)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		l.logger.Info("could not ask the controller to fence this broker; its session will expire", "err", err)
		return
	}
	l.logger.Info("fenced for shutdown")
}

// step does one registration or one heartbeat.
func (l *brokerLifecycle) step(ctx context.Context) error {
	l.mu.Lock()
	epoch := l.mu.epoch
	l.mu.Unlock()
	if epoch == 0 {
		if err := l.register(ctx); err != nil {
			return err
		}
		epoch = l.brokerEpoch()
	}
	req := kmsg.NewPtrBrokerHeartbeatRequest()
	req.Version = 1
	req.BrokerID = l.nodeID
	req.BrokerEpoch = epoch
	req.CurrentMetadataOffset = -1
	if l.applied != nil {
		req.CurrentMetadataOffset = l.applied()
	}
	var resp kmsg.BrokerHeartbeatResponse
	// The lease counts from the send: the controller's session counts
	// from its receipt, which is later (see brokerLease).
	sent := time.Now()
	if err := l.exchange(ctx, req, &resp); err != nil {
		return err
	}
	if resp.ErrorCode == kerr.StaleBrokerEpoch.Code {
		l.mu.Lock()
		l.mu.epoch = 0
		l.mu.Unlock()
		l.logger.Info("controller does not know this broker epoch: registering again", "broker_epoch", epoch)
		return nil
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("broker heartbeat: %w", err)
	}
	if resp.IsFenced && !resp.IsCaughtUp {
		// Catching up takes a heartbeat or two; a broker that stays
		// behind (a metadata log it cannot follow, an offline log
		// directory) says so once.
		if l.behindSince.IsZero() {
			l.behindSince, l.warned = sent, false
		}
		if behind := time.Since(l.behindSince); behind >= behindWarnAfter && !l.warned {
			l.warned = true
			l.logger.Warn("still fenced: this broker's metadata has not caught up with the controller's",
				"for", behind.Round(time.Second), "metadata_offset", req.CurrentMetadataOffset)
		} else {
			l.logger.Debug("fenced until this broker's metadata catches up", "metadata_offset", req.CurrentMetadataOffset)
		}
	} else {
		l.behindSince = time.Time{}
	}
	if !resp.IsFenced {
		l.lease.renew(sent)
		l.mu.Lock()
		if !l.mu.closed {
			l.mu.closed = true
			close(l.mu.unfenced)
		}
		l.mu.Unlock()
	}
	return nil
}

// register sends one BrokerRegistration.
func (l *brokerLifecycle) register(ctx context.Context) error {
	req := kmsg.NewPtrBrokerRegistrationRequest()
	req.Version = 3
	req.BrokerID = l.nodeID
	req.ClusterID = l.clusterID
	req.Listeners = append([]kmsg.BrokerRegistrationRequestListener{{Name: l.listener, Host: l.host, Port: uint16(l.port), SecurityProtocol: 0}}, l.extra...)
	if l.raftAddr != "" {
		host, portStr, err := net.SplitHostPort(l.raftAddr)
		port, perr := strconv.ParseUint(portStr, 10, 16)
		if err != nil || perr != nil {
			return fmt.Errorf("node: raft address %q", l.raftAddr)
		}
		req.Listeners = append(req.Listeners, kmsg.BrokerRegistrationRequestListener{Name: "CONTROLLER", Host: host, Port: uint16(port)})
	}
	if l.rack != "" {
		req.Rack = &l.rack
	}
	req.PreviousBrokerEpoch = -1
	var resp kmsg.BrokerRegistrationResponse
	if err := l.exchange(ctx, req, &resp); err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("broker registration: %w", err)
	}
	l.mu.Lock()
	l.mu.epoch = resp.BrokerEpoch
	l.mu.Unlock()
	l.logger.Info("registered with the controller", "broker_epoch", resp.BrokerEpoch)
	return nil
}

// join makes a broker-only node an observer of the metadata quorum before
// it knows the metadata log: its registration carries its Raft listener,
// and the active controller adds it as a non-voter before checking the
// registration. A node that does not know its cluster id yet (a new data
// directory) registers with none; the refusal (INCONSISTENT_CLUSTER_ID)
// still means it was added, and it registers for real once it has caught
// up. A registration refused for another cluster id fails.
func (l *brokerLifecycle) join(ctx context.Context) error {
	for {
		err := l.register(ctx)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, kerr.InconsistentClusterID) && l.clusterID == "":
			return nil
		case errors.Is(err, kerr.InconsistentClusterID):
			return fmt.Errorf("node: the controllers refused this broker's cluster id %s (meta.properties): %w", l.clusterID, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("node: joining the metadata quorum: %w (last error: %v)", context.Cause(ctx), err)
		}
		l.logger.Debug("joining the metadata quorum failed", "err", err)
		l.client.close()
		t := time.NewTimer(lifecycleRetry)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// exchange sends req to a controller and decodes its answer into resp,
// moving to the next controller on NOT_CONTROLLER.
func (l *brokerLifecycle) exchange(ctx context.Context, req kmsg.Request, resp kmsg.Response) error {
	addr := l.pick()
	if err := l.client.request(ctx, addr, req, resp); err != nil {
		return err
	}
	var code int16
	switch r := resp.(type) {
	case *kmsg.BrokerRegistrationResponse:
		code = r.ErrorCode
	case *kmsg.BrokerHeartbeatResponse:
		code = r.ErrorCode
	}
	if code == kerr.NotController.Code {
		return fmt.Errorf("%s: %w", addr, kerr.NotController)
	}
	return nil
}

// pick returns the controller to talk to: the connected one while it
// answers, else the Raft leader if known, else the next voter in turn.
func (l *brokerLifecycle) pick() string {
	if a := l.client.addr; a != "" {
		return a
	}
	if id, ok := l.leader(); ok {
		if a, ok := l.controllers.addr(id); ok {
			return a
		}
	}
	return l.controllers.nextAddr()
}

// maxControllerResponse bounds a controller's answer before it is read:
// registration and heartbeat answers are a few dozen bytes.
const maxControllerResponse = 1 << 20

// controllerClient is one connection to a controller listener. It is used
// by one goroutine at a time (the lifecycle's).
type controllerClient struct {
	timeout  time.Duration
	clientID string
	addr     string
	conn     net.Conn
	corr     int32
	buf      []byte
	// maxResponse bounds an answer's size before it is read (0:
	// maxControllerResponse); replica fetchers read record batches.
	maxResponse int32
	// dial opens the connection (nil: a TCP dial); Options.Dial.
	dial dialFunc
}

// dialFunc opens a connection to another node (Options.Dial).
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (c *controllerClient) close() {
	if c.conn != nil {
		c.conn.Close()
	}
	c.conn, c.addr = nil, ""
}

func (c *controllerClient) request(ctx context.Context, addr string, req kmsg.Request, resp kmsg.Response) error {
	if c.conn == nil || c.addr != addr {
		c.close()
		dial := c.dial
		if dial == nil {
			d := net.Dialer{Timeout: c.timeout}
			dial = d.DialContext
		}
		dctx, cancel := context.WithTimeout(ctx, c.timeout)
		nc, err := dial(dctx, "tcp", addr)
		cancel()
		if err != nil {
			return err
		}
		c.conn, c.addr = nc, addr
	}
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.conn.SetDeadline(deadline)
	// The connection, not c.conn: the func may run after this request
	// returned and the caller's close set c.conn to nil (a nil
	// dereference that crashed a node closing mid-heartbeat).
	conn := c.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	c.corr++
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID(c.clientID))
	c.buf = f.AppendRequest(c.buf[:0], req, c.corr)
	if _, err := c.conn.Write(c.buf); err != nil {
		return err
	}
	var size [4]byte
	if _, err := io.ReadFull(c.conn, size[:]); err != nil {
		return err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	limit := c.maxResponse
	if limit <= 0 {
		limit = maxControllerResponse
	}
	if n < 4 || n > limit {
		return fmt.Errorf("controller %s: response size %d", addr, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.conn, body); err != nil {
		return err
	}
	r := kbin.Reader{Src: body}
	if corr := r.Int32(); corr != c.corr {
		return fmt.Errorf("controller %s: correlation id %d, want %d", addr, corr, c.corr)
	}
	if req.IsFlexible() {
		tags := r.Uvarint()
		if int64(tags) > int64(len(r.Src)) {
			return fmt.Errorf("controller %s: %d header tags in %d bytes", addr, tags, len(r.Src))
		}
		for range tags { // response header tags: none is defined, skip them
			r.Uvarint()
			r.Span(int(r.Uvarint()))
		}
	}
	if err := r.Complete(); err != nil {
		return fmt.Errorf("controller %s: response header: %w", addr, err)
	}
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(r.Src); err != nil {
		return fmt.Errorf("controller %s: %w", addr, err)
	}
	return nil
}

// forwarderConns bounds the connections a broker keeps to the active
// controller for forwarded admin requests; more concurrent requests wait.
const forwarderConns = 4

// forwardTimeout bounds one forwarded admin request: topic creation waits
// for a Raft commit on the controller.
const forwardTimeout = 30 * time.Second

// forwarder sends admin requests that reached this broker to the active
// controller's controller listener (KIP-590), over a few reused connections.
type forwarder struct {
	controllers *controllers
	leader      func() (int32, bool)
	idle        chan *controllerClient // capacity forwarderConns
}

func newForwarder(nodeID int32, controllers *controllers, leader func() (int32, bool), dial dialFunc) *forwarder {
	f := &forwarder{controllers: controllers, leader: leader, idle: make(chan *controllerClient, forwarderConns)}
	for range forwarderConns {
		f.idle <- &controllerClient{timeout: forwardTimeout, clientID: "gregor-forward-" + strconv.Itoa(int(nodeID)), dial: dial}
	}
	return f
}

func (f *forwarder) forward(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	id, ok := f.leader()
	if !ok {
		return nil, fmt.Errorf("node: no active controller to forward to")
	}
	addr, known := f.controllers.addr(id)
	if !known {
		return nil, fmt.Errorf("node: no active controller to forward to")
	}
	var c *controllerClient
	select {
	case c = <-f.idle:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { f.idle <- c }()
	resp := req.ResponseKind()
	if err := c.request(ctx, addr, req, resp); err != nil {
		c.close()
		return nil, err
	}
	return resp, nil
}

func (f *forwarder) close() {
	for range forwarderConns {
		(<-f.idle).close()
	}
}

// allocateProducerIDs asks the active controller for a block of producer ids
// (AllocateProducerIds, key 67), for a broker that is not the controller.
func (f *forwarder) allocateProducerIDs(ctx context.Context, brokerID int32) (first, count int64, err error) {
	req := kmsg.NewPtrAllocateProducerIDsRequest()
	req.BrokerID, req.BrokerEpoch = brokerID, -1
	resp, err := f.forward(ctx, req)
	if err != nil {
		// No controller reachable: the same retriable answer as before
		// forwarding existed.
		return 0, 0, fmt.Errorf("%w: %w", controller.ErrNotController, err)
	}
	r := resp.(*kmsg.AllocateProducerIDsResponse)
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		return 0, 0, fmt.Errorf("node: allocate producer ids: %w", err) // answered with the controller's code
	}
	if r.ProducerIDLen <= 0 || r.ProducerIDStart < 0 {
		return 0, 0, fmt.Errorf("%w: the controller gave block [%d, +%d)", controller.ErrNotController, r.ProducerIDStart, r.ProducerIDLen)
	}
	return r.ProducerIDStart, int64(r.ProducerIDLen), nil
}
