package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testHandler answers Metadata (one broker: the server itself) and
// DescribeGroups as an echo: one described group per requested group, with the
// group's name. Group names steer it: "panic-handle" and "panic-completion"
// panic there, "block" waits for the connection context to end.
type testHandler struct {
	host  string
	port  int32
	delay func(corr int32) time.Duration // optional completion delay
	// throttle is the throttle time of every Produce response.
	throttle int32

	maxInFlight int // if > 0, Handle checks outstanding <= maxInFlight

	mu struct {
		sync.Mutex
		outstanding int // handled, completion not returned
		violations  []string
		software    []string // ClientSoftwareName of each Metadata request
		// user and listener are the last Metadata request's.
		user, listener string
	}
	handled   atomic.Int64
	cancelled atomic.Int64 // completions that saw ctx done
}

func (h *testHandler) APIVersions() []kmsg.ApiVersionsResponseApiKey {
	return []kmsg.ApiVersionsResponseApiKey{
		{ApiKey: 3, MinVersion: 0, MaxVersion: 12},
		{ApiKey: 0, MinVersion: 3, MaxVersion: 9},
		{ApiKey: 15, MinVersion: 1, MaxVersion: 5},
		{ApiKey: 18, MinVersion: 0, MaxVersion: 99},  // replaced by the server's
		{ApiKey: 9999, MinVersion: 0, MaxVersion: 1}, // unknown to kmsg: dropped
	}
}

func (h *testHandler) Handle(ctx context.Context, req *Request) Completion {
	h.handled.Add(1)
	h.mu.Lock()
	h.mu.outstanding++
	if h.maxInFlight > 0 && h.mu.outstanding > h.maxInFlight {
		h.mu.violations = append(h.mu.violations, fmt.Sprintf("outstanding %d > %d", h.mu.outstanding, h.maxInFlight))
	}
	h.mu.Unlock()
	done := func() {
		h.mu.Lock()
		h.mu.outstanding--
		h.mu.Unlock()
	}
	switch body := req.Body.(type) {
	case *kmsg.MetadataRequest:
		h.mu.Lock()
		h.mu.software = append(h.mu.software, req.Conn.ClientSoftwareName)
		h.mu.user, h.mu.listener = req.Conn.User, req.Conn.Listener
		h.mu.Unlock()
		return func(context.Context) kmsg.Response {
			defer done()
			resp := body.ResponseKind().(*kmsg.MetadataResponse)
			b := kmsg.NewMetadataResponseBroker()
			b.NodeID, b.Host, b.Port = 1, h.host, h.port
			resp.Brokers = append(resp.Brokers, b)
			resp.ControllerID = 1
			return resp
		}
	case *kmsg.ProduceRequest:
		// Records alias the frame buffer: check they are intact when the
		// Completion runs, after later requests have been read.
		records := body.Topics[0].Partitions[0].Records
		sum := checksum(records)
		return func(context.Context) kmsg.Response {
			defer done()
			if body.Acks == 0 {
				return nil
			}
			resp := body.ResponseKind().(*kmsg.ProduceResponse)
			resp.ThrottleMillis = h.throttle
			rt := kmsg.NewProduceResponseTopic()
			rp := kmsg.NewProduceResponseTopicPartition()
			if checksum(records) != sum {
				rp.ErrorCode = 2 // CORRUPT_MESSAGE: the buffer was reused early
			}
			rt.Partitions = append(rt.Partitions, rp)
			resp.Topics = append(resp.Topics, rt)
			return resp
		}
	case *kmsg.DescribeGroupsRequest:
		groups := append([]string(nil), body.Groups...) // outlive the frame buffer
		if len(groups) == 1 && groups[0] == "panic-handle" {
			panic("test: panic in Handle")
		}
		return func(ctx context.Context) kmsg.Response {
			defer done()
			if len(groups) == 1 && groups[0] == "panic-completion" {
				panic("test: panic in completion")
			}
			if len(groups) == 1 && groups[0] == "block" {
				<-ctx.Done()
				h.cancelled.Add(1)
				return nil
			}
			if h.delay != nil {
				t := time.NewTimer(h.delay(req.CorrelationID))
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
			resp := body.ResponseKind().(*kmsg.DescribeGroupsResponse)
			for _, g := range groups {
				dg := kmsg.NewDescribeGroupsResponseGroup()
				dg.Group = g
				resp.Groups = append(resp.Groups, dg)
			}
			return resp
		}
	}
	done()
	return nil
}

func checksum(b []byte) (sum uint64) {
	for i, c := range b {
		sum = sum*31 + uint64(c) + uint64(i)
	}
	return sum
}

// startServer starts a server on 127.0.0.1:0 and shuts it down at cleanup.
func startServer(t *testing.T, cfg Config, h *testHandler) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s := New(cfg, h)
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	host, port, _ := net.SplitHostPort(s.Addr().String())
	p, _ := strconv.Atoi(port)
	h.host, h.port = host, int32(p)
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s
}

func dial(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// frame encodes req as a full request frame.
func frame(req kmsg.Request, corr int32, clientID string) []byte {
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID))
	return f.AppendRequest(nil, req, corr)
}

// readFrame reads one response frame and returns it without the size.
func readFrame(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		t.Fatalf("reading response size: %v", err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 1<<20 {
		t.Fatalf("response size %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return b
}

// roundTrip sends req on c and decodes the response into resp (whose version
// must be set), checking the correlation id; flexibleHeader says whether a
// tagged-field byte follows it.
func roundTrip(t *testing.T, c net.Conn, req kmsg.Request, corr int32, resp kmsg.Response, flexibleHeader bool) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(frame(req, corr, "test")); err != nil {
		t.Fatalf("write: %v", err)
	}
	decodeResponse(t, readFrame(t, c), corr, resp, flexibleHeader)
}

func decodeResponse(t *testing.T, b []byte, corr int32, resp kmsg.Response, flexibleHeader bool) {
	t.Helper()
	if got := int32(binary.BigEndian.Uint32(b)); got != corr {
		t.Fatalf("correlation id %d, want %d", got, corr)
	}
	b = b[4:]
	if flexibleHeader {
		if len(b) == 0 || b[0] != 0 {
			t.Fatalf("missing empty tagged-field byte in response header")
		}
		b = b[1:]
	}
	if err := resp.ReadFrom(b); err != nil {
		t.Fatalf("decoding %s v%d response: %v", kmsg.NameForKey(resp.Key()), resp.GetVersion(), err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectClosed checks that the server closes c (EOF or reset, not a timeout).
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue // a response sent before the close
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection not closed by server: %v", err)
		}
		return
	}
}

// checkServes checks that a fresh client is served.
func checkServes(t *testing.T, s *Server) {
	t.Helper()
	checkServesOn(t, dial(t, s))
}

// checkServesOn checks that the connection c is answered a Metadata
// request.
func checkServesOn(t *testing.T, c net.Conn) {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(1)
	resp := req.ResponseKind()
	resp.SetVersion(1)
	roundTrip(t, c, req, 7, resp, false)
	if n := len(resp.(*kmsg.MetadataResponse).Brokers); n != 1 {
		t.Fatalf("metadata brokers %d, want 1", n)
	}
}

func TestServerFranzGoClient(t *testing.T) {
	h := &testHandler{}
	s := startServer(t, Config{}, h)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer cl.Close()

	resp, err := cl.Request(ctx, kmsg.NewPtrMetadataRequest())
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	md := resp.(*kmsg.MetadataResponse)
	if len(md.Brokers) != 1 || md.Brokers[0].Port != h.port {
		t.Fatalf("metadata brokers %+v", md.Brokers)
	}
	if md.Version < 9 {
		t.Fatalf("metadata negotiated v%d, want a flexible version (>= 9)", md.Version)
	}

	// The echo API straight to broker 1 (a new connection from the metadata).
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{"a", "b"}
	resp, err = cl.Broker(1).Request(ctx, dg)
	if err != nil {
		t.Fatalf("describe groups: %v", err)
	}
	groups := resp.(*kmsg.DescribeGroupsResponse).Groups
	if len(groups) != 2 || groups[0].Group != "a" || groups[1].Group != "b" {
		t.Fatalf("echo groups %+v", groups)
	}

	// kgo sends ApiVersions v5 first (we answer UNSUPPORTED_VERSION, v0, with
	// our max), then v4 with its software name (KIP-511).
	h.mu.Lock()
	software := append([]string(nil), h.mu.software...)
	h.mu.Unlock()
	if len(software) == 0 || software[0] != "kgo" {
		t.Fatalf("client software names seen %q, want kgo", software)
	}

	adm := kadm.NewClient(cl)
	vs, err := adm.ApiVersions(ctx)
	if err != nil {
		t.Fatalf("kadm ApiVersions: %v", err)
	}
	if len(vs) != 1 {
		t.Fatalf("kadm ApiVersions: %d brokers, want 1", len(vs))
	}
	for _, bv := range vs {
		if bv.Err != nil {
			t.Fatalf("kadm ApiVersions broker %d: %v", bv.NodeID, bv.Err)
		}
		for key, want := range map[int16][2]int16{3: {0, 12}, 15: {1, 5}, 18: {0, 4}} {
			minV, maxV, ok := bv.KeyVersions(key)
			if !ok || minV != want[0] || maxV != want[1] {
				t.Fatalf("key %d: versions %d-%d (%v), want %v", key, minV, maxV, ok, want)
			}
		}
		if _, _, ok := bv.KeyVersions(1); ok {
			t.Fatalf("Fetch advertised but not handled")
		}
	}
	if st := s.Stats(); st.RequestsServed == 0 || st.BytesIn == 0 || st.BytesOut == 0 {
		t.Fatalf("stats not counted: %+v", st)
	}
}

func TestServerPipelining(t *testing.T) {
	const n = 50
	const limit = 8
	h := &testHandler{
		// Earlier requests take longer, so completions would finish out of
		// order if they ran concurrently.
		delay:       func(corr int32) time.Duration { return time.Duration((n-corr)%7) * time.Millisecond },
		maxInFlight: limit,
	}
	s := startServer(t, Config{MaxInFlightPerConn: limit}, h)
	c := dial(t, s)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))

	var out []byte
	for i := range int32(n) {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.SetVersion(int16(1 + i%5)) // v5 is flexible
		req.Groups = []string{"g" + strconv.Itoa(int(i))}
		out = append(out, frame(req, i, "pipeline")...)
	}
	// Write in the background: with backpressure the server stops reading
	// until we read responses.
	writeErr := make(chan error, 1)
	go func() { _, err := c.Write(out); writeErr <- err }()

	br := bufio.NewReader(c)
	for i := range int32(n) {
		v := int16(1 + i%5)
		resp := kmsg.NewPtrDescribeGroupsResponse()
		resp.SetVersion(v)
		decodeResponse(t, readFrame(t, br), i, resp, v >= 5)
		if len(resp.Groups) != 1 || resp.Groups[0].Group != "g"+strconv.Itoa(int(i)) {
			t.Fatalf("response %d: groups %+v", i, resp.Groups)
		}
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("write: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.mu.violations) > 0 {
		t.Fatalf("in-flight limit exceeded: %v", h.mu.violations)
	}
}

func TestServerProduceBufferOwnership(t *testing.T) {
	const n = 40
	h := &testHandler{}
	s := startServer(t, Config{MaxInFlightPerConn: 4}, h)
	c := dial(t, s)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))

	var out []byte
	var answered []int32
	for i := range int32(n) {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(int16(3 + i%7)) // v9 is flexible
		req.Acks = -1
		if i%3 == 0 {
			req.Acks = 0 // no response
		} else {
			answered = append(answered, i)
		}
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = make([]byte, 1000+int(i)*97)
		for j := range rp.Records {
			rp.Records[j] = byte(int(i) + j)
		}
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		out = append(out, frame(req, i, "producer")...)
	}
	writeErr := make(chan error, 1)
	go func() { _, err := c.Write(out); writeErr <- err }()

	br := bufio.NewReader(c)
	for _, corr := range answered {
		v := int16(3 + corr%7)
		resp := kmsg.NewPtrProduceResponse()
		resp.SetVersion(v)
		decodeResponse(t, readFrame(t, br), corr, resp, v >= 9)
		if len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("produce %d: records changed before the completion returned: %+v", corr, resp.Topics)
		}
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("write: %v", err)
	}
	// Nothing was sent for the acks=0 requests: the next response is ours.
	resp := kmsg.NewPtrMetadataResponse()
	resp.SetVersion(1)
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(1)
	roundTrip(t, c, md, 1000, resp, false)
}

func TestServerApiVersions(t *testing.T) {
	h := &testHandler{}
	s := startServer(t, Config{}, h)

	tests := []struct {
		name     string
		version  int16
		software string
		wantErr  int16
		wantKeys []int16
	}{
		{name: "v0", version: 0, wantKeys: []int16{0, 3, 15, 17, 18, 36}},
		{name: "v3 flexible request header", version: 3, software: "gregor-test", wantKeys: []int16{0, 3, 15, 17, 18, 36}},
		{name: "v4", version: 4, software: "gregor-test", wantKeys: []int16{0, 3, 15, 17, 18, 36}},
		{name: "v5 unsupported", version: 5, software: "x", wantErr: errCodeUnsupportedVersion, wantKeys: []int16{18}},
		{name: "v127 unsupported", version: 127, wantErr: errCodeUnsupportedVersion, wantKeys: []int16{18}},
		{name: "v3 invalid software name", version: 3, software: "-bad name", wantErr: errCodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, s)
			req := kmsg.NewPtrApiVersionsRequest()
			req.SetVersion(min(tt.version, req.MaxVersion()))
			req.ClientSoftwareName, req.ClientSoftwareVersion = tt.software, "1.0"
			f := frame(req, 42, "test")
			binary.BigEndian.PutUint16(f[6:], uint16(tt.version)) // beyond kmsg's max too
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(f); err != nil {
				t.Fatalf("write: %v", err)
			}
			b := readFrame(t, c)
			// The response header is v0 at every version: correlation id only.
			respVersion := tt.version
			if tt.wantErr == errCodeUnsupportedVersion {
				respVersion = 0
			}
			resp := kmsg.NewPtrApiVersionsResponse()
			resp.SetVersion(respVersion)
			decodeResponse(t, b, 42, resp, false)
			if resp.ErrorCode != tt.wantErr {
				t.Fatalf("error code %d, want %d", resp.ErrorCode, tt.wantErr)
			}
			var keys []int16
			for _, k := range resp.ApiKeys {
				keys = append(keys, k.ApiKey)
				if k.ApiKey == 18 && (k.MinVersion != 0 || k.MaxVersion != apiVersionsMax) {
					t.Fatalf("ApiVersions advertised %d-%d", k.MinVersion, k.MaxVersion)
				}
			}
			if fmt.Sprint(keys) != fmt.Sprint(tt.wantKeys) {
				t.Fatalf("keys %v, want %v", keys, tt.wantKeys)
			}
			if tt.wantErr != 0 {
				return
			}
			// The connection stays usable, and Handle sees the software name.
			md := kmsg.NewPtrMetadataRequest()
			md.SetVersion(12)
			mdResp := md.ResponseKind()
			mdResp.SetVersion(12)
			roundTrip(t, c, md, 43, mdResp, true)
			h.mu.Lock()
			got := h.mu.software[len(h.mu.software)-1]
			h.mu.Unlock()
			if got != tt.software {
				t.Fatalf("ClientSoftwareName %q, want %q", got, tt.software)
			}
		})
	}
}

func TestServerHostileInput(t *testing.T) {
	h := &testHandler{}
	s := startServer(t, Config{MaxRequestBytes: 1 << 20}, h)

	u16 := func(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
	u32 := func(v int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
	withSize := func(parts ...[]byte) []byte {
		body := []byte{}
		for _, p := range parts {
			body = append(body, p...)
		}
		return append(u32(len(body)), body...)
	}
	header := func(key, version int) []byte {
		return append(append(append(u16(key), u16(version)...), u32(1)...), u16(-1)...)
	}
	describe := func(group string) []byte {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.SetVersion(1)
		req.Groups = []string{group}
		return frame(req, 1, "hostile")
	}

	tests := []struct {
		name string
		in   []byte
		// halfClose closes our write side after sending (a truncated frame).
		halfClose bool
	}{
		{name: "negative size", in: u32(-1)},
		{name: "zero size", in: u32(0)},
		{name: "size below minimal header", in: append(u32(7), make([]byte, 7)...)},
		{name: "size above max", in: append(u32(1<<20+1), make([]byte, 64)...)},
		{name: "truncated frame then close", in: append(u32(100), make([]byte, 10)...), halfClose: true},
		{name: "client id longer than frame", in: withSize(u16(3), u16(0), u32(1), u16(1000), []byte("abc"))},
		{name: "negative client id length", in: withSize(u16(3), u16(0), u32(1), u16(-2))},
		{name: "metadata v1 topics count 0x7fffffff", in: withSize(header(3, 1), u32(0x7fffffff))},
		{name: "metadata v12 bad tagged fields", in: withSize(u16(3), u16(12), u32(1), u16(-1), []byte{5})},
		{name: "metadata v12 tag size beyond frame", in: withSize(u16(3), u16(12), u32(1), u16(-1), []byte{1, 0, 100})},
		{name: "unknown api key 999", in: withSize(header(999, 0))},
		{name: "fetch not handled", in: withSize(header(1, 3), make([]byte, 16))},
		{name: "unsupported metadata version", in: withSize(header(3, 13), make([]byte, 16))},
		{name: "version below handler minimum", in: withSize(header(15, 0), u32(0))},
		{name: "negative version", in: withSize(header(3, -1), u32(0))},
		{name: "tls client hello", in: []byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03}},
		{name: "http get", in: []byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")},
		{name: "http post", in: []byte("POST /x HTTP/1.1\r\n\r\n")},
		{name: "panic in handle", in: describe("panic-handle")},
		{name: "panic in completion", in: describe("panic-completion")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, s)
			if _, err := c.Write(tt.in); err != nil {
				t.Fatalf("write: %v", err)
			}
			if tt.halfClose {
				_ = c.(*net.TCPConn).CloseWrite()
			}
			expectClosed(t, c)
			checkServes(t, s)
		})
	}
	waitFor(t, "open connections to drop to 0", func() bool {
		return s.Stats().OpenConnections == 0
	})
}

func TestServerManyConnections(t *testing.T) {
	s := startServer(t, Config{}, &testHandler{})
	const conns, workers = 1000, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < conns; i += workers {
				c, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
				if err != nil {
					errs <- err
					return
				}
				if i%2 == 0 { // half send a partial frame first
					_, _ = c.Write([]byte{0, 0})
				}
				_ = c.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("dial: %v", err)
	}
	waitFor(t, "all connections accepted and closed", func() bool {
		st := s.Stats()
		return st.AcceptedConnections >= conns && st.OpenConnections == 0
	})
	checkServes(t, s)
}

func TestServerConnectionLimits(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "max.connections", cfg: Config{MaxConnections: 2}},
		{name: "max.connections.per.ip", cfg: Config{MaxConnectionsPerIP: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, tt.cfg, &testHandler{})
			a, b := dial(t, s), dial(t, s)
			waitFor(t, "two open connections", func() bool { return s.Stats().OpenConnections == 2 })
			over := dial(t, s)
			expectClosed(t, over)
			if st := s.Stats(); st.RejectedConnections != 1 {
				t.Fatalf("rejected %d, want 1", st.RejectedConnections)
			}
			// The admitted connections still work; closing one frees a place.
			for i, c := range []net.Conn{a, b} {
				resp := kmsg.NewPtrMetadataResponse()
				req := kmsg.NewPtrMetadataRequest()
				req.SetVersion(12)
				resp.SetVersion(12)
				roundTrip(t, c, req, int32(i), resp, true)
			}
			_ = a.Close()
			waitFor(t, "one open connection", func() bool { return s.Stats().OpenConnections == 1 })
			checkServes(t, s)
		})
	}
}

func TestServerIdleTimeout(t *testing.T) {
	h := &testHandler{delay: func(int32) time.Duration { return 300 * time.Millisecond }}
	s := startServer(t, Config{IdleTimeout: 100 * time.Millisecond}, h)

	t.Run("idle connection is closed", func(t *testing.T) {
		expectClosed(t, dial(t, s))
	})
	t.Run("in-flight request keeps the connection", func(t *testing.T) {
		c := dial(t, s)
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.SetVersion(5)
		req.Groups = []string{"slow"}
		resp := req.ResponseKind()
		roundTrip(t, c, req, 1, resp, true)
		if g := resp.(*kmsg.DescribeGroupsResponse).Groups; len(g) != 1 || g[0].Group != "slow" {
			t.Fatalf("groups %+v", g)
		}
		expectClosed(t, c) // idle again afterwards
	})
}

func TestServerShutdownEndsParkedCompletions(t *testing.T) {
	h := &testHandler{}
	cfg := Config{Addr: "127.0.0.1:0"}
	s := New(cfg, h)
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()

	c := dial(t, s)
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.SetVersion(1)
	req.Groups = []string{"block"}
	if _, err := c.Write(frame(req, 1, "t")); err != nil {
		t.Fatalf("write: %v", err)
	}
	waitFor(t, "request handled", func() bool { return h.handled.Load() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v, want ErrServerClosed", err)
	}
	if h.cancelled.Load() != 1 {
		t.Fatalf("parked completion did not see its context end")
	}
	if st := s.Stats(); st.OpenConnections != 0 {
		t.Fatalf("open connections %d after Shutdown", st.OpenConnections)
	}
	expectClosed(t, c)
	if err := s.Serve(context.Background()); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func TestServerServeContextCancel(t *testing.T) {
	h := &testHandler{}
	s := New(Config{Addr: "127.0.0.1:0"}, h)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	go func() { served <- s.Serve(ctx) }()
	c := dial(t, s)
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.SetVersion(1)
	req.Groups = []string{"block"}
	if _, err := c.Write(frame(req, 1, "t")); err != nil {
		t.Fatalf("write: %v", err)
	}
	waitFor(t, "request handled", func() bool { return h.handled.Load() == 1 })
	cancel()
	if err := <-served; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve: %v, want context.Canceled", err)
	}
	if h.cancelled.Load() != 1 || s.Stats().OpenConnections != 0 {
		t.Fatalf("connections not closed when Serve's context ended")
	}
}

func TestServerConfigValidate(t *testing.T) {
	tests := map[string]Config{
		"negative max request bytes": {MaxRequestBytes: -1},
		"negative max connections":   {MaxConnections: -1},
		"negative per ip":            {MaxConnectionsPerIP: -1},
		"negative in flight":         {MaxInFlightPerConn: -1},
		"negative idle":              {IdleTimeout: -time.Second},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if err := cfg.Validate(); err == nil {
				t.Fatalf("Validate accepted %+v", cfg)
			}
			cfg.Addr = "127.0.0.1:0"
			if err := New(cfg, &testHandler{}).Listen(); err == nil || !strings.Contains(err.Error(), "server:") {
				t.Fatalf("Listen: %v, want a validation error", err)
			}
		})
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
}

// TestServerThrottleMutesConnection: a response with a throttle time is
// sent at once to a client that throttles itself (Produce v6+, KIP-219),
// and the server reads nothing more from the connection until the time
// has passed; a client too old to throttle itself (Produce v5) gets its
// response only after the time, as Kafka delays it.
func TestServerThrottleMutesConnection(t *testing.T) {
	const throttle = 300 * time.Millisecond
	h := &testHandler{throttle: int32(throttle.Milliseconds())}
	s := startServer(t, Config{}, h)
	produce := func(v int16) *kmsg.ProduceRequest {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(v)
		req.Acks = 1
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = []byte("records")
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return req
	}
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(1)

	c := dial(t, s)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// The produce and the metadata request go out together: the second
	// is read (and answered) only once the first's throttle has passed.
	sent := time.Now()
	if _, err := c.Write(append(frame(produce(7), 1, "p"), frame(md, 2, "p")...)); err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(7)
	decodeResponse(t, readFrame(t, c), 1, resp, false)
	if resp.ThrottleMillis != h.throttle {
		t.Fatalf("throttle %d ms, want %d", resp.ThrottleMillis, h.throttle)
	}
	mresp := kmsg.NewPtrMetadataResponse()
	mresp.SetVersion(1)
	decodeResponse(t, readFrame(t, c), 2, mresp, false)
	if waited := time.Since(sent); waited < throttle {
		t.Fatalf("the request after a %v throttle was answered after %v", throttle, waited)
	}

	old := dial(t, s)
	_ = old.SetDeadline(time.Now().Add(10 * time.Second))
	sent = time.Now()
	resp = kmsg.NewPtrProduceResponse()
	resp.SetVersion(5)
	roundTrip(t, old, produce(5), 3, resp, false)
	if waited := time.Since(sent); waited < throttle {
		t.Fatalf("a v5 produce throttled %v was answered after %v", throttle, waited)
	}
}

// TestServerThrottledClientLeaving: a client that leaves during a long
// throttle ends its connection at once, not at the throttle's end.
func TestServerThrottledClientLeaving(t *testing.T) {
	h := &testHandler{throttle: 60_000}
	s := startServer(t, Config{}, h)
	for _, v := range []int16{7, 5} { // throttled by itself, and by the server
		c := dial(t, s)
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(v)
		req.Acks = 1
		rt := kmsg.NewProduceRequestTopic()
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = []byte("records")
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		if _, err := c.Write(frame(req, 1, "p")); err != nil {
			t.Fatal(err)
		}
		if v >= 6 {
			resp := kmsg.NewPtrProduceResponse()
			resp.SetVersion(v)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			decodeResponse(t, readFrame(t, c), 1, resp, false)
		}
		waitFor(t, "the request handled", func() bool { return h.handled.Load() > 0 })
		_ = c.Close()
		waitFor(t, fmt.Sprintf("the v%d connection closed well before its 60 s throttle", v), func() bool {
			return s.Stats().OpenConnections == 0
		})
	}
}
