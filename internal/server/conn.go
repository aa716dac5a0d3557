package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// readBufferBytes sizes the bufio.Reader: big enough that small pipelined
// requests are read with one syscall, small enough for thousands of connections.
const readBufferBytes = 16 << 10

// errCleanClose is the client closing the connection between frames.
var errCleanClose = errors.New("server: connection closed by client")

// conn is one client connection: a reader goroutine (serve) and a writer
// goroutine (write), joined by queue.
type conn struct {
	s   *Server
	nc  net.Conn
	ip  string
	log *slog.Logger

	ctx    context.Context // cancelled by close
	cancel context.CancelFunc

	info atomic.Pointer[ConnInfo] // replaced by ApiVersions v3+ and by authentication

	// sasl is the reader's SASL state until the connection authenticates
	// (sasl.go); nil on a listener without SASL and after authentication.
	sasl *saslConn

	// mutedUntil (unix nanoseconds) is when the reader may read the next
	// request of a throttled client, and the writer answer it (KIP-219:
	// the broker answers at once and then reads nothing from the client
	// for the throttle time).
	mutedUntil atomic.Int64

	// slots holds one token per request read but not yet answered (bounded
	// by Config.MaxInFlightPerConn); the reader takes one before reading a
	// frame, the writer returns it after the Completion has returned.
	slots chan struct{}
	// queue carries decoded requests from reader to writer in order. Only
	// the reader sends and closes it.
	queue chan *pending

	closeOnce sync.Once
}

// pending is a request between reader and writer.
type pending struct {
	req  *Request
	done Completion
	buf  *[]byte // the frame buffer req.Body may alias
	// apiVersions marks a response the server built itself: its version is
	// already set (v0 for UNSUPPORTED_VERSION) and its header is always v0.
	apiVersions bool
	// read is when the request's frame was read, for Config.Observe.
	read time.Time
	// rawReply marks a bare SASL token (after SaslHandshake v0): raw is
	// written as the frame's body, without a response header.
	rawReply bool
	raw      []byte
	// closeAfter, when set, is closed by the writer once the answer is
	// written (or dropped); the reader, which has stopped reading, then
	// closes the connection (a failed authentication).
	closeAfter chan struct{}
}

func newConn(ctx context.Context, s *Server, nc net.Conn, ip string) *conn {
	ctx, cancel := context.WithCancel(ctx)
	c := &conn{
		s:      s,
		nc:     nc,
		ip:     ip,
		ctx:    ctx,
		cancel: cancel,
		slots:  make(chan struct{}, s.cfg.MaxInFlightPerConn),
		queue:  make(chan *pending, s.cfg.MaxInFlightPerConn),
	}
	info := &ConnInfo{ID: s.nextConnID.Add(1), RemoteAddr: nc.RemoteAddr()}
	info.Listener = s.cfg.Name
	c.info.Store(info)
	if s.cfg.SASL != nil {
		c.sasl = &saslConn{}
	}
	c.log = s.log.With("conn_id", info.ID, "remote", nc.RemoteAddr().String())
	context.AfterFunc(ctx, func() { _ = nc.Close() })
	return c
}

// close cancels the connection context, which closes the socket; the reader and
// writer then stop. Safe to call many times, from any goroutine.
func (c *conn) close() { c.closeOnce.Do(c.cancel) }

// serve runs the reader in the calling goroutine and the writer in one it owns,
// and returns when both have stopped.
func (c *conn) serve() {
	defer c.s.unregister(c)
	labels := pprof.Labels("component", "server", "conn_id", strconv.FormatUint(c.info.Load().ID, 10))
	pprof.Do(c.ctx, labels, func(ctx context.Context) {
		if err := c.handshake(); err != nil {
			c.close()
			if c.log.Enabled(ctx, slog.LevelDebug) {
				c.log.Debug("TLS handshake failed", "err", err)
			}
			return
		}
		var wg sync.WaitGroup
		wg.Go(c.write)
		err := c.read()
		c.close()
		close(c.queue)
		wg.Wait()
		if err != nil && c.log.Enabled(ctx, slog.LevelDebug) {
			c.log.Debug("connection closed", "err", err)
		}
	})
}

// read is the reader loop. It returns why the connection ended.
func (c *conn) read() error {
	br := bufio.NewReaderSize(c.nc, readBufferBytes)
	first := true
	for {
		select { // backpressure: wait for a free in-flight slot
		case c.slots <- struct{}{}:
		case <-c.ctx.Done():
			return nil
		}
		if err := c.waitUnmutedReading(br); err != nil {
			if errors.Is(err, io.EOF) || c.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("server: waiting out a throttle: %w", err)
		}
		size, err := c.readSize(br, first)
		if errors.Is(err, errCleanClose) {
			return nil
		}
		if err != nil {
			return err
		}
		first = false

		if err := c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout)); err != nil {
			return err
		}
		var bp *[]byte
		if c.sasl != nil {
			bp, err = readGrowing(br, int(size)) // an unauthenticated client gets memory only as it sends
		} else {
			bp, err = readFrameBody(br, int(size))
		}
		if err != nil {
			return fmt.Errorf("server: reading %d-byte frame: %w", size, err)
		}
		c.s.stats.bytesIn.Add(4 + uint64(size))

		var p *pending
		if c.sasl != nil && c.sasl.stage == stageRawToken {
			p = c.rawToken(*bp)
		} else if p, err = c.decode(*bp); err != nil {
			putBuf(bp)
			return err
		}
		p.buf = bp
		if c.s.cfg.Observe != nil && p.req.Key >= 0 {
			p.read = time.Now()
		}
		c.queue <- p // never blocks: queue has room for every slot
		if p.closeAfter != nil {
			select {
			case <-p.closeAfter:
			case <-c.ctx.Done():
			}
			return errSASLFailed
		}
	}
}

// readSize reads and checks the 4-byte frame size. While the connection has
// requests in flight it is not idle, so a read deadline expiring then is
// extended (Peek consumes nothing, so retrying is safe).
func (c *conn) readSize(br *bufio.Reader, first bool) (int32, error) {
	for {
		if err := c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout)); err != nil {
			return 0, err
		}
		hdr, err := br.Peek(4)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && len(c.slots) > 1 && c.ctx.Err() == nil {
				continue // our own slot is taken; others are in flight
			}
			if len(hdr) == 0 && errors.Is(err, io.EOF) {
				return 0, errCleanClose
			}
			return 0, fmt.Errorf("server: reading frame size: %w", err)
		}
		if first {
			if what := sniffForeign(hdr); what != "" {
				return 0, fmt.Errorf("server: %s on the Kafka port", what)
			}
		}
		size := int32(binary.BigEndian.Uint32(hdr))
		lo, hi := int32(minHeaderBytes), c.s.cfg.MaxRequestBytes
		if c.sasl != nil {
			hi = min(hi, saslMaxReceive)
			if c.sasl.stage == stageRawToken {
				lo = 0 // a bare token, not a request
			}
		}
		if size < lo || size > hi {
			return 0, fmt.Errorf("server: frame size %d outside [%d, %d]", size, lo, hi)
		}
		_, _ = br.Discard(4)
		return size, nil
	}
}

// sniffForeign names the protocol when the first bytes of a connection are a
// TLS ClientHello or an HTTP request rather than a Kafka frame (kgo does the
// same check on responses).
func sniffForeign(b []byte) string {
	switch {
	case b[0] == 0x16 && b[1] == 0x03:
		return "tls handshake"
	case string(b) == "GET " || string(b) == "POST" || string(b) == "PUT " || string(b) == "HEAD":
		return "http request"
	}
	return ""
}

// decode parses a frame and, for ApiVersions, answers it; for everything else
// it calls the Handler. Panics in decoding or in Handle become errors.
func (c *conn) decode(buf []byte) (p *pending, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic handling request", "panic", r, "stack", string(debug.Stack()))
			p, err = nil, fmt.Errorf("server: panic handling request: %v", r)
		}
	}()
	req, err := parseRequest(buf, c.s.maxVersion)
	if err != nil {
		return nil, err
	}
	if req.Key != apiVersionsKey && req.Version < c.s.versions[req.Key].MinVersion {
		return nil, fmt.Errorf("%w: key %d version %d", errUnsupportedVersion, req.Key, req.Version)
	}
	if c.sasl != nil {
		if p, err := c.authenticating(req); p != nil || err != nil {
			return p, err
		}
	}
	if req.Key == apiVersionsKey {
		resp := c.apiVersions(req)
		if c.sasl != nil && resp.ErrorCode == 0 {
			c.sasl.stage = stageVersioned
		}
		return &pending{req: req, apiVersions: true, done: func(context.Context) kmsg.Response { return resp }}, nil
	}
	if req.Key == saslHandshakeKey || req.Key == saslAuthenticateKey {
		return illegalSASLState(req), nil
	}
	req.Conn = c.info.Load()
	req.Size = len(buf)
	req.Mute = c.mute
	req.Close = c.close
	return &pending{req: req, done: c.s.handler.Handle(c.ctx, req)}, nil
}

// mute stops the reader for d from now (a later end wins).
func (c *conn) mute(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := c.mutedUntil.Load()
		if cur >= until || c.mutedUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// waitUnmuted waits out a throttle (mute); it fails when the connection
// closes meanwhile.
func (c *conn) waitUnmuted() error {
	d := time.Until(time.Unix(0, c.mutedUntil.Load()))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}

// waitUnmutedReading is the reader's waitUnmuted: it watches the socket
// meanwhile (reading nothing from it), so that a client that leaves
// during a long throttle ends the connection at once rather than at the
// throttle's end. It returns io.EOF when the client left, and the
// context's error when the connection closed.
func (c *conn) waitUnmutedReading(br *bufio.Reader) error {
	for {
		until := time.Unix(0, c.mutedUntil.Load())
		if !time.Now().Before(until) {
			return nil
		}
		if br.Buffered() > 0 {
			return c.waitUnmuted() // a request is waiting: the socket says nothing more
		}
		if err := c.nc.SetReadDeadline(until); err != nil {
			return err
		}
		_, err := br.Peek(1)
		switch {
		case err == nil:
			// The next request arrived; it is read once the time is up.
			return c.waitUnmuted()
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The throttle may have been extended meanwhile: look again.
		case c.ctx.Err() != nil:
			return c.ctx.Err()
		default:
			return err
		}
	}
}

// throttle mutes the connection for a response's throttle time. A client
// too old to throttle itself (a version before KIP-219's) gets the
// response only once the time has passed, as Kafka delays it.
func (c *conn) throttle(resp kmsg.Response, version int16) {
	if sr, ok := resp.(*SplicedResponse); ok {
		resp = sr.Response
	}
	resp.SetVersion(version) // Throttle tells by the version
	tr, ok := resp.(kmsg.ThrottleResponse)
	if !ok {
		return
	}
	ms, clientThrottles := tr.Throttle()
	if ms <= 0 {
		return
	}
	c.mute(time.Duration(ms) * time.Millisecond)
	if !clientThrottles {
		_ = c.waitUnmuted()
	}
}

// write is the writer loop: it runs Completions in order and writes responses.
// It drains the queue until the reader closes it, also after an error, so that
// every Completion is called and every buffer returned.
func (c *conn) write() {
	out := getBuf(0)
	defer putBuf(out)
	for p := range c.queue {
		// A request read before an earlier response's throttle was known
		// (a pipelining client) is answered after the throttle too: Kafka
		// reads one request of a connection at a time, so none of them
		// would have been read yet.
		_ = c.waitUnmuted()
		resp := c.finishResponse(p)
		spliced, _ := resp.(*SplicedResponse)
		if p.rawReply && c.ctx.Err() == nil {
			*out = binary.BigEndian.AppendUint32((*out)[:0], uint32(len(p.raw)))
			if err := c.writeFrame(append(*out, p.raw...)); err != nil {
				c.close()
			}
		}
		if resp != nil && c.ctx.Err() == nil {
			if !p.apiVersions {
				c.throttle(resp, p.req.Version)
			}
			var err error
			if *out, err = c.appendResponse((*out)[:0], p, resp); err == nil {
				if spliced != nil {
					err = c.writeSpliced(*out, spliced)
				} else {
					err = c.writeFrame(*out)
				}
			}
			if err != nil {
				if c.log.Enabled(c.ctx, slog.LevelDebug) {
					c.log.Debug("writing response failed", "err", err)
				}
				c.close()
			}
			if cap(*out) > maxPooledBufBytes {
				*out = nil // do not keep a huge buffer for the connection's life
			}
		}
		if spliced != nil && spliced.Release != nil {
			spliced.Release()
		}
		if obs := c.s.cfg.Observe; obs != nil && !p.read.IsZero() {
			obs(p.req.Key, time.Since(p.read))
		}
		putBuf(p.buf)
		p.buf = nil
		if p.closeAfter != nil {
			close(p.closeAfter)
		}
		<-c.slots
	}
}

// finishResponse calls p's Completion, recovering a panic (which closes the
// connection).
func (c *conn) finishResponse(p *pending) (resp kmsg.Response) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic in completion", "panic", r, "key", p.req.Key, "stack", string(debug.Stack()))
			resp = nil
			c.close()
		}
	}()
	defer c.s.stats.served.Add(1)
	if p.done == nil {
		return nil
	}
	return p.done(c.ctx)
}

// appendResponse appends the size-prefixed response frame for p to dst.
func (c *conn) appendResponse(dst []byte, p *pending, resp kmsg.Response) ([]byte, error) {
	if resp.Key() != p.req.Key {
		return dst, fmt.Errorf("server: handler answered key %d with a key %d response", p.req.Key, resp.Key())
	}
	if !p.apiVersions {
		resp.SetVersion(p.req.Version)
	}
	dst = append(dst, 0, 0, 0, 0) // size, patched below
	dst = binary.BigEndian.AppendUint32(dst, uint32(p.req.CorrelationID))
	// ApiVersions responses always use response header v0.
	if resp.IsFlexible() && p.req.Key != apiVersionsKey {
		dst = append(dst, 0) // no tagged fields
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst, uint32(len(dst)-4))
	return dst, nil
}

// writeSpliced sends a frame whose record bytes come from files.
func (c *conn) writeSpliced(frame []byte, sr *SplicedResponse) error {
	buf, parts, err := spliceFrame(frame, sr.IsFlexible(), sr.Splices)
	if err != nil {
		return err
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout)); err != nil {
		return err
	}
	n, err := writeParts(c.nc, buf, parts)
	c.s.stats.bytesOut.Add(uint64(n))
	return err
}

func (c *conn) writeFrame(b []byte) error {
	// A client that stops reading must not pin the writer forever.
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout)); err != nil {
		return err
	}
	n, err := c.nc.Write(b)
	c.s.stats.bytesOut.Add(uint64(n))
	return err
}

// readGrowing reads a frame body of size bytes into a buffer that doubles
// from 4 KiB as the bytes arrive, never the size up front.
func readGrowing(r io.Reader, size int) (*[]byte, error) {
	b := make([]byte, 0, min(size, 4<<10))
	for len(b) < size {
		if len(b) == cap(b) {
			b = append(b, make([]byte, min(cap(b), size-len(b)))...)[:len(b)]
		}
		n, err := r.Read(b[len(b):min(cap(b), size)])
		b = b[:len(b)+n]
		if err != nil && len(b) < size {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return &b, nil
}

// readFrameBody reads a frame body of size bytes. Small frames use a pooled
// buffer; a large one takes an idle pooled buffer of its size class, or else
// grows by doubling as its bytes arrive, so a client that announces a 100 MiB
// frame and sends nothing costs 1 MiB, not 100: new memory follows the bytes
// actually received, never the length field.
func readFrameBody(r io.Reader, size int) (*[]byte, error) {
	if size <= maxPooledBufBytes {
		bp := getBuf(size)
		if _, err := io.ReadFull(r, *bp); err != nil {
			putBuf(bp)
			return nil, err
		}
		return bp, nil
	}
	if bp := getFrame(size); bp != nil {
		if _, err := io.ReadFull(r, *bp); err != nil {
			putBuf(bp)
			return nil, err
		}
		return bp, nil
	}
	b := make([]byte, maxPooledBufBytes)
	n := 0
	for {
		m, err := io.ReadFull(r, b[n:])
		n += m
		if err != nil {
			return nil, err
		}
		if n == size {
			return &b, nil
		}
		// The capacity of a pooled size, so that putBuf can keep it.
		l := min(2*len(b), size)
		grown := make([]byte, l, frameCap(l))
		copy(grown, b[:n])
		b = grown
	}
}
