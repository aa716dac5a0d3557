package controller

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The controller listener carries two protocols on one port, as Kafka's
// controller listener does: Raft traffic of the metadata quorum and Kafka
// requests from brokers to the controller (BrokerRegistration,
// BrokerHeartbeat). Gregor's own Raft dialer opens each connection with
// raftPreamble; a Kafka request frame opens with the high byte of its size,
// which is at most 0x06 for the largest frame a Gregor node accepts
// (socket.request.max.bytes is at most MaxInt32, and a negative size is
// invalid). The first byte therefore tells the two apart without ambiguity.
const raftPreamble byte = 0xF7

// sniffTimeout bounds how long an accepted connection may stay silent before
// its first byte. Each connection waiting for it holds one goroutine, so the
// timeout is what bounds them.
const sniffTimeout = 10 * time.Second

// muxListener accepts on the controller address and hands Raft connections
// to Raft (as a raft.StreamLayer) and the others to Kafka (KafkaListener).
type muxListener struct {
	ln        net.Listener
	advertise net.Addr
	raftc     chan net.Conn
	kafka     *subListener
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
}

func newMuxListener(addr string, advertise string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*muxListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	m := &muxListener{ln: ln, advertise: ln.Addr(), raftc: make(chan net.Conn), closed: make(chan struct{}), dial: dial}
	if advertise != "" {
		if a, err := net.ResolveTCPAddr("tcp", advertise); err == nil {
			m.advertise = a
		}
	}
	m.kafka = &subListener{parent: m, c: make(chan net.Conn), done: make(chan struct{})}
	m.wg.Go(m.acceptLoop)
	return m, nil
}

func (m *muxListener) acceptLoop() {
	for {
		nc, err := m.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-m.closed:
				return
			case <-time.After(50 * time.Millisecond): // accept error (fd limit): back off
			}
			continue
		}
		m.wg.Go(func() { m.route(nc) })
	}
}

// route reads a connection's first byte and queues it for Raft or Kafka.
func (m *muxListener) route(nc net.Conn) {
	var first [1]byte
	_ = nc.SetReadDeadline(time.Now().Add(sniffTimeout))
	if _, err := io.ReadFull(nc, first[:]); err != nil {
		nc.Close()
		return
	}
	_ = nc.SetReadDeadline(time.Time{})
	dst := m.kafka.c
	var conn net.Conn = &prefixConn{Conn: nc, first: first[0], pending: true}
	if first[0] == raftPreamble {
		dst, conn = m.raftc, nc
	}
	var done chan struct{} // Raft's half closes with the listener
	if dst == m.kafka.c {
		done = m.kafka.done
	}
	select {
	case dst <- conn:
	case <-done:
		nc.Close()
	case <-m.closed:
		nc.Close()
	}
}

// Accept implements raft.StreamLayer.
func (m *muxListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftc:
		return c, nil
	case <-m.closed:
		return nil, net.ErrClosed
	}
}

// Close closes the listener; connections already handed out are their
// owners' to close.
func (m *muxListener) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		err = m.ln.Close()
		m.wg.Wait()
	})
	return err
}

// Addr is the address Raft advertises to its peers: this node's entry in the
// voters list when it has one, so that every voter bootstraps the same
// configuration, otherwise the bound address.
func (m *muxListener) Addr() net.Addr { return m.advertise }

// Dial implements raft.StreamLayer: a Raft connection with its preamble.
func (m *muxListener) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	nc, err := m.dial(ctx, "tcp", string(address))
	if err != nil {
		return nil, err
	}
	_ = nc.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := nc.Write([]byte{raftPreamble}); err != nil {
		nc.Close()
		return nil, err
	}
	_ = nc.SetWriteDeadline(time.Time{})
	return nc, nil
}

// subListener is the Kafka half of the controller listener.
type subListener struct {
	parent *muxListener
	c      chan net.Conn
	done   chan struct{}
	once   sync.Once
}

func (s *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.c:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	case <-s.parent.closed:
		return nil, net.ErrClosed
	}
}

// Close stops handing out Kafka connections (later ones are closed at
// once); Raft keeps the shared listener until the controller closes.
func (s *subListener) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *subListener) Addr() net.Addr { return s.parent.ln.Addr() }

// prefixConn gives back the byte the router read.
type prefixConn struct {
	net.Conn
	first   byte
	pending bool
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if c.pending && len(p) > 0 {
		c.pending = false
		p[0] = c.first
		return 1, nil
	}
	return c.Conn.Read(p)
}
