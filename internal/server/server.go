package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Defaults, with Kafka's property names.
const (
	// DefaultAddr is the listen address used when Config.Addr is empty.
	DefaultAddr = "127.0.0.1:9092"
	// DefaultMaxRequestBytes is socket.request.max.bytes's default (100 MiB).
	DefaultMaxRequestBytes = 100 << 20
	// DefaultMaxInFlightPerConn bounds the requests read but not yet answered on
	// one connection. Kafka itself processes one request per connection at a
	// time; clients pipeline at most max.in.flight.requests.per.connection (5 by
	// default in the Java client, 10 in kgo), so 64 never throttles a sane client
	// while bounding the memory one connection can pin (64 frames).
	DefaultMaxInFlightPerConn = 64
	// DefaultIdleTimeout is connections.max.idle.ms's default (10 minutes).
	DefaultIdleTimeout = 10 * time.Minute
)

// ErrServerClosed is returned by Serve and Listen after Shutdown.
var ErrServerClosed = errors.New("server: closed")

// Config configures a Server. The zero value is valid and means the defaults.
type Config struct {
	// Addr is the listen address, DefaultAddr when empty.
	Addr string
	// Name is the listener's name (PLAINTEXT, SASL_PLAINTEXT, ...), which
	// every request's ConnInfo carries.
	Name string
	// SASL, when set, makes every connection authenticate first.
	SASL *SASL
	// TLS, when set, makes the listener an SSL (or, with SASL, a
	// SASL_SSL) one. Fetch responses are then copied through TLS rather
	// than sent from the files with sendfile. A client certificate, when
	// the config asks for one and SASL is off, names the connection's user
	// by its subject, as Kafka's default SSL principal does.
	TLS *tls.Config
	// Listener, when set, is served instead of binding Addr: a listener
	// shared with another protocol (the controller listener). Shutdown
	// closes it.
	Listener net.Listener
	// MaxRequestBytes is socket.request.max.bytes: a frame whose size is larger
	// closes the connection before anything is allocated. 0 means the default.
	MaxRequestBytes int32
	// MaxConnections is max.connections: connections over it are accepted and
	// closed at once. 0 means unlimited.
	MaxConnections int
	// MaxConnectionsPerIP is max.connections.per.ip. 0 means unlimited.
	MaxConnectionsPerIP int
	// MaxInFlightPerConn bounds the requests decoded but not yet answered per
	// connection; when it is reached the reader stops reading. 0 means the
	// default.
	MaxInFlightPerConn int
	// IdleTimeout is connections.max.idle.ms: a connection that sends nothing
	// for this long while no request of it is in flight is closed. 0 means the
	// default.
	IdleTimeout time.Duration
	// Observe, when set, is called from the connection's writer once a
	// request's response has been written (or dropped), with the API key and
	// the time since its frame was read: request metrics. It must be cheap
	// and safe for concurrent use.
	Observe func(key int16, d time.Duration)
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// Validate reports a Config with a negative limit.
func (c Config) Validate() error {
	switch {
	case c.MaxRequestBytes < 0:
		return fmt.Errorf("server: MaxRequestBytes %d < 0", c.MaxRequestBytes)
	case c.MaxConnections < 0:
		return fmt.Errorf("server: MaxConnections %d < 0", c.MaxConnections)
	case c.MaxConnectionsPerIP < 0:
		return fmt.Errorf("server: MaxConnectionsPerIP %d < 0", c.MaxConnectionsPerIP)
	case c.MaxInFlightPerConn < 0:
		return fmt.Errorf("server: MaxInFlightPerConn %d < 0", c.MaxInFlightPerConn)
	case c.IdleTimeout < 0:
		return fmt.Errorf("server: IdleTimeout %v < 0", c.IdleTimeout)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxInFlightPerConn == 0 {
		c.MaxInFlightPerConn = DefaultMaxInFlightPerConn
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Stats are the server's counters, for metrics.
type Stats struct {
	OpenConnections     int64  // connections currently being served
	AcceptedConnections uint64 // total connections accepted, rejected ones included
	RejectedConnections uint64 // accepted then closed because of a connection limit
	RequestsServed      uint64 // requests whose Completion has returned
	BytesIn, BytesOut   uint64 // frame bytes read and written, size prefixes included
}

// Server is a Kafka protocol listener. Create it with New.
type Server struct {
	cfg     Config
	handler Handler
	log     *slog.Logger

	// versions[key] is the accepted range; keys[] is the ApiVersions answer.
	versions map[int16]kmsg.ApiVersionsResponseApiKey
	keys     []kmsg.ApiVersionsResponseApiKey

	nextConnID atomic.Uint64
	stats      struct {
		open                                          atomic.Int64
		accepted, rejected, served, bytesIn, bytesOut atomic.Uint64
	}

	connWG  sync.WaitGroup // connection goroutines
	serveWG sync.WaitGroup // Serve calls

	mu struct {
		sync.Mutex
		ln          net.Listener
		closed      bool
		serving     bool
		cancelServe context.CancelFunc
		conns       map[*conn]struct{}
		perIP       map[string]int
	}
}

// New returns a Server that dispatches to h. It calls h.APIVersions once.
func New(cfg Config, h Handler) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		handler:  h,
		log:      cfg.Logger.With("component", "server"),
		versions: make(map[int16]kmsg.ApiVersionsResponseApiKey),
	}
	s.mu.conns = make(map[*conn]struct{})
	s.mu.perIP = make(map[string]int)
	for _, k := range h.APIVersions() {
		req := kmsg.RequestForKey(k.ApiKey)
		if req == nil || k.ApiKey == apiVersionsKey || k.MinVersion < 0 {
			continue
		}
		k.MaxVersion = min(k.MaxVersion, req.MaxVersion())
		if k.MinVersion > k.MaxVersion {
			continue
		}
		k.UnknownTags = kmsg.Tags{}
		s.versions[k.ApiKey] = k
	}
	s.versions[apiVersionsKey] = kmsg.ApiVersionsResponseApiKey{ApiKey: apiVersionsKey, MinVersion: 0, MaxVersion: apiVersionsMax}
	// The SASL APIs are the server's on every listener, as in Kafka: a
	// client may ask for a mechanism before it knows the listener's kind.
	s.versions[saslHandshakeKey] = kmsg.ApiVersionsResponseApiKey{ApiKey: saslHandshakeKey, MinVersion: 0, MaxVersion: saslHandshakeMax}
	s.versions[saslAuthenticateKey] = kmsg.ApiVersionsResponseApiKey{ApiKey: saslAuthenticateKey, MinVersion: 0, MaxVersion: saslAuthenticateMax}
	for _, k := range s.versions {
		s.keys = append(s.keys, k)
	}
	slices.SortFunc(s.keys, func(a, b kmsg.ApiVersionsResponseApiKey) int { return cmp.Compare(a.ApiKey, b.ApiKey) })
	return s
}

// APIKeys returns the keys and versions the server advertises in ApiVersions.
func (s *Server) APIKeys() []kmsg.ApiVersionsResponseApiKey { return slices.Clone(s.keys) }

// maxVersion is parseRequest's view of the advertised versions.
func (s *Server) maxVersion(key int16) (int16, bool) {
	k, ok := s.versions[key]
	return k.MaxVersion, ok
}

// Listen binds the listen address, so that Addr is known before Serve.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.mu.closed:
		return ErrServerClosed
	case s.mu.ln != nil:
		return errors.New("server: already listening")
	}
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("server: listen: %w", err)
		}
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.mu.ln = ln
	return nil
}

// Addr returns the bound address, or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.ln == nil {
		return nil
	}
	return s.mu.ln.Addr()
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return Stats{
		OpenConnections:     s.stats.open.Load(),
		AcceptedConnections: s.stats.accepted.Load(),
		RejectedConnections: s.stats.rejected.Load(),
		RequestsServed:      s.stats.served.Load(),
		BytesIn:             s.stats.bytesIn.Load(),
		BytesOut:            s.stats.bytesOut.Load(),
	}
}

// Serve accepts connections until ctx is done or Shutdown is called, calling
// Listen first if needed. ctx is the base context of every connection: when it
// ends, Serve closes the listener and every connection, waits for their
// goroutines and returns ctx.Err(). After Shutdown it returns ErrServerClosed.
func (s *Server) Serve(ctx context.Context) error {
	if s.Addr() == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.mu.serving {
		s.mu.Unlock()
		return errors.New("server: Serve called twice")
	}
	s.mu.serving = true
	s.mu.cancelServe = cancel
	ln := s.mu.ln
	s.serveWG.Add(1)
	s.mu.Unlock()
	defer s.serveWG.Done()

	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	s.log.Info("listening", "addr", ln.Addr().String())

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			// Likely out of file descriptors: back off as net/http does
			// rather than spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			continue
		}
		backoff = 0
		s.accept(ctx, nc)
	}

	cancel() // closes every connection
	s.mu.Lock()
	for c := range s.mu.conns {
		c.close()
	}
	closed := s.mu.closed
	s.mu.Unlock()
	s.connWG.Wait()
	if closed {
		return ErrServerClosed
	}
	return context.Cause(ctx)
}

// accept registers nc and starts serving it, or closes it when a limit is hit.
func (s *Server) accept(ctx context.Context, nc net.Conn) {
	s.stats.accepted.Add(1)
	ip := remoteIP(nc.RemoteAddr())
	s.mu.Lock()
	reason := ""
	switch {
	case s.mu.closed:
		reason = "server closed"
	case s.cfg.MaxConnections > 0 && len(s.mu.conns) >= s.cfg.MaxConnections:
		reason = "max.connections"
	case s.cfg.MaxConnectionsPerIP > 0 && s.mu.perIP[ip] >= s.cfg.MaxConnectionsPerIP:
		reason = "max.connections.per.ip"
	}
	if reason != "" {
		s.mu.Unlock()
		s.stats.rejected.Add(1)
		s.log.Debug("connection rejected", "remote", nc.RemoteAddr().String(), "reason", reason)
		_ = nc.Close()
		return
	}
	c := newConn(ctx, s, nc, ip)
	s.mu.conns[c] = struct{}{}
	s.mu.perIP[ip]++
	s.stats.open.Add(1)
	s.connWG.Add(1) // under mu, before closed can be set: Shutdown's Wait sees it
	s.mu.Unlock()
	go func() {
		defer s.connWG.Done()
		c.serve()
	}()
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	delete(s.mu.conns, c)
	if s.mu.perIP[c.ip]--; s.mu.perIP[c.ip] <= 0 {
		delete(s.mu.perIP, c.ip)
	}
	s.mu.Unlock()
	s.stats.open.Add(-1)
}

// Shutdown stops accepting, closes every connection (cancelling their contexts,
// so parked Completions end) and waits for all connection goroutines and Serve to
// return, or for ctx to end (then it returns ctx.Err()).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.mu.closed = true
	if s.mu.ln != nil {
		_ = s.mu.ln.Close()
	}
	if s.mu.cancelServe != nil {
		s.mu.cancelServe()
	}
	for c := range s.mu.conns {
		c.close()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { // ends when the waited-for goroutines end
		s.connWG.Wait()
		s.serveWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
