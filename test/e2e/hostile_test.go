package e2e

// Hostile clients against the spawned binary: while a well-behaved franz-go
// producer and consumer keep writing and reading one topic, raw TCP
// connections send malformed frames, foreign protocols, hanging giant frames,
// corrupt produce batches, connection floods and unread pipelines. The broker
// must answer a Kafka error code where the request parses, close the
// connection where it does not, keep serving the good pair, keep its RSS
// bounded, and store exactly what the good producer wrote.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/record"
)

// hostileRSSCeiling is the most resident memory the broker may use while it
// is attacked. It idles near 20 MiB and peaks near 45 MiB under these
// attacks: memory follows bytes received, and compressed batches are
// validated as they stream out of the decompressor.
const hostileRSSCeiling = 160 << 20

func TestBinaryHostileClients(t *testing.T) {
	p := startBinary(t, t.TempDir())
	const topic = "hostile-good"
	createTopic(t, p, topic, 1, nil)

	rss := newRSSSampler(t, p.cmd.Process.Pid)
	good := startGoodPair(t, p, topic)
	t.Logf("broker RSS before the attack: %d MiB", rss.current()>>20)

	h := &hostile{t: t, addr: p.kafkaAddr, topic: topic}
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"negative size", func(t *testing.T) { h.expectClosed(t, be32(-1), []byte("junkjunk")) }},
		{"zero size", func(t *testing.T) { h.expectClosed(t, be32(0)) }},
		{"size below header", func(t *testing.T) { h.expectClosed(t, be32(3), []byte{0, 3, 0}) }},
		{"size above socket.request.max.bytes", func(t *testing.T) { h.expectClosed(t, be32(100<<20+1), make([]byte, 64)) }},
		{"size max int32", func(t *testing.T) { h.expectClosed(t, be32(1<<31-1), make([]byte, 64)) }},
		{"truncated frame then EOF", func(t *testing.T) {
			frame := h.frame(3, 1, &kmsg.MetadataRequest{Version: 1})
			h.expectClosedAfterHalfClose(t, frame[:len(frame)/2])
		}},
		{"tls client hello", func(t *testing.T) {
			h.expectClosed(t, []byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03}, make([]byte, 160))
		}},
		{"http get", func(t *testing.T) { h.expectClosed(t, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) }},
		{"array length beyond frame", func(t *testing.T) {
			// Metadata v1: topics array of 2^31-1 entries, then nothing.
			h.expectClosed(t, h.rawFrame(3, 1, be32(1<<31-1)))
		}},
		{"string length beyond frame", func(t *testing.T) {
			// Metadata v1: one topic whose name claims 30000 bytes.
			h.expectClosed(t, h.rawFrame(3, 1, append(be32(1), 0x75, 0x30, 'a', 'b')))
		}},
		{"client id length beyond frame", func(t *testing.T) {
			b := append(be16(3), be16(1)...)
			b = append(b, be32(7)...)
			b = append(b, 0x7f, 0xff, 'x')
			h.expectClosed(t, append(be32(int32(len(b))), b...))
		}},
		{"compact array length beyond frame", func(t *testing.T) {
			// Metadata v12 (flexible): header tags, then a topics compact
			// array claiming 2^20 entries.
			h.expectClosed(t, h.rawFrame(3, 12, []byte{0x81, 0x80, 0x40}))
		}},
		{"array of 1000001 elements", func(t *testing.T) {
			// Metadata v1: 1,000,001 empty topic names, a well-formed
			// 2 MB body over Kafka's array limit of 1,000,000 (the limit
			// itself is tested in internal/server: a million topics
			// would make a large answer here).
			const n = 1_000_001
			h.expectClosed(t, h.rawFrame(3, 1, append(be32(n), make([]byte, 2*n)...)))
		}},
		{"10001 tagged fields in the request header", func(t *testing.T) {
			h.expectClosed(t, h.headerTagsFrame(3, 12, tagSection(10_001), []byte{0x01, 1, 0, 0}))
		}},
		{"10001 tagged fields in the request body", func(t *testing.T) {
			h.expectClosed(t, h.rawFrame(3, 12, append([]byte{0x01, 1, 0}, tagSection(10_001)...)))
		}},
		{"10001 tagged fields in an array element", func(t *testing.T) {
			b := append([]byte{0x02}, make([]byte, 17)...) // one topic: zero uuid, null name
			b = append(b, tagSection(10_001)...)
			h.expectClosed(t, h.rawFrame(3, 12, append(b, 1, 0, 0)))
		}},
		{"10000 tagged fields in header, body and element", func(t *testing.T) {
			b := append([]byte{0x02}, make([]byte, 17)...)
			b = append(b, tagSection(10_000)...)
			b = append(append(b, 1, 0), tagSection(10_000)...)
			c := h.dial(t)
			defer c.Close()
			h.write(t, c, h.headerTagsFrame(3, 12, tagSection(10_000), b))
			body := h.readFrame(t, c, 8)
			resp := kmsg.MetadataResponse{Version: 12}
			if err := resp.ReadFrom(body[1:]); err != nil { // after the header's empty tag section
				t.Fatalf("decode metadata response: %v", err)
			}
		}},
		{"unknown api key", func(t *testing.T) { h.expectClosed(t, h.rawFrame(999, 0, nil)) }},
		{"unadvertised api key", func(t *testing.T) { h.expectClosed(t, h.rawFrame(38, 1, make([]byte, 12))) }}, // CreateDelegationToken
		{"unsupported version", func(t *testing.T) { h.expectClosed(t, h.rawFrame(3, 99, nil)) }},
		{"negative version", func(t *testing.T) { h.expectClosed(t, h.rawFrame(3, -1, nil)) }},
		{"api versions too new", func(t *testing.T) {
			// KIP-511: answered in v0 format with UNSUPPORTED_VERSION.
			c := h.dial(t)
			defer c.Close()
			h.write(t, c, h.rawFrame(18, 127, nil))
			body := h.readFrame(t, c, 7)
			resp := kmsg.ApiVersionsResponse{Version: 0}
			if err := resp.ReadFrom(body); err != nil {
				t.Fatalf("decode api versions response: %v", err)
			}
			if resp.ErrorCode != kerr.UnsupportedVersion.Code {
				t.Fatalf("api versions v127: error code %d, want UNSUPPORTED_VERSION", resp.ErrorCode)
			}
		}},
		{"produce bad crc", func(t *testing.T) {
			b := goodBatch(t)
			b[len(b)-3] ^= 0xff // a byte of the value: the CRC no longer matches
			h.expectProduceCode(t, b, kerr.CorruptMessage.Code)
		}},
		{"produce bad record count", func(t *testing.T) {
			b := goodBatch(t)
			binary.BigEndian.PutUint32(b[57:], 5) // recordCount 5 with one record
			binary.BigEndian.PutUint32(b[17:], record.CRC(b))
			h.expectProduceCode(t, b, kerr.CorruptMessage.Code, kerr.InvalidRecord.Code)
		}},
		{"produce bad record count and last offset delta", func(t *testing.T) {
			b := goodBatch(t)
			binary.BigEndian.PutUint32(b[23:], 4) // lastOffsetDelta consistent with 5 records
			binary.BigEndian.PutUint32(b[57:], 5)
			binary.BigEndian.PutUint32(b[17:], record.CRC(b))
			h.expectProduceCode(t, b, kerr.CorruptMessage.Code, kerr.InvalidRecord.Code)
		}},
		{"produce overflowing varints", func(t *testing.T) {
			h.expectProduceCode(t, overflowBatch(t), kerr.CorruptMessage.Code, kerr.InvalidRecord.Code)
		}},
		{"produce control batch", func(t *testing.T) {
			b, err := record.AppendBatch(nil, record.Batch{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
				Control: true, BaseTimestamp: time.Now().UnixMilli(),
				Records: []record.Record{{Key: []byte{0, 0, 0, 0}, Value: []byte{0, 0, 0, 0, 0, 0}}}})
			if err != nil {
				t.Fatal(err)
			}
			h.expectProduceCode(t, b, kerr.InvalidRecord.Code)
		}},
		{"produce gzip decompression bomb", func(t *testing.T) {
			b := bombBatch(t, record.CodecGzip, 100<<20)
			t.Logf("gzip bomb: %d bytes expanding to %d MiB", len(b), 100)
			h.expectProduceCode(t, b, kerr.MessageTooLarge.Code, kerr.CorruptMessage.Code)
		}},
		{"produce zstd decompression bomb", func(t *testing.T) {
			b := bombBatch(t, record.CodecZstd, 100<<20)
			t.Logf("zstd bomb: %d bytes expanding to %d MiB", len(b), 100)
			h.expectProduceCode(t, b, kerr.MessageTooLarge.Code, kerr.CorruptMessage.Code)
		}},
		{"50 hanging 90 MiB frames", func(t *testing.T) {
			t.Logf("RSS before the hanging frames: %d MiB", rss.current()>>20)
			conns := make([]net.Conn, 50)
			for i := range conns {
				conns[i] = h.dial(t)
				h.write(t, conns[i], be32(90<<20), h.rawFrame(0, 9, nil)[4:], []byte("only a few bytes"))
			}
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			// The good pair keeps going while the frames hang.
			good.waitProgress(t, 20, 15*time.Second)
			t.Logf("RSS with 50 hanging 90 MiB frames: %d MiB", rss.current()>>20)
			for i, c := range conns { // still open: the server waits for the rest
				c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
				if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("hanging conn %d: read %v, want a timeout (no response, no close)", i, err)
				}
			}
		}},
		{"2000 connections opened and dropped", func(t *testing.T) {
			var wg sync.WaitGroup
			var failed atomic.Int64
			for w := range 16 {
				wg.Go(func() {
					for i := w; i < 2000; i += 16 {
						c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
						if err != nil {
							failed.Add(1)
							continue
						}
						if i%2 == 0 {
							c.Write([]byte{0, 0}) // half a size
						}
						c.Close()
					}
				})
			}
			wg.Wait()
			if n := failed.Load(); n > 0 {
				t.Fatalf("%d of 2000 dials failed", n)
			}
		}},
		{"tagged-field count flood", func(t *testing.T) { h.tagFlood(t, p.cmd.Process.Pid, good) }},
		{"200 pipelined requests unread then closed", func(t *testing.T) {
			c := h.dial(t)
			var buf []byte
			for i := range 200 {
				if i%2 == 0 {
					buf = append(buf, h.frame(3, 1, &kmsg.MetadataRequest{Version: 1})...)
				} else {
					f := kmsg.NewPtrFetchRequest()
					f.Version, f.MaxWaitMillis, f.MinBytes, f.MaxBytes = 4, 200, 1<<20, 1<<20
					ft := kmsg.NewFetchRequestTopic()
					ft.Topic = topic
					fp := kmsg.NewFetchRequestTopicPartition()
					fp.PartitionMaxBytes = 1 << 20
					ft.Partitions = append(ft.Partitions, fp)
					f.Topics = append(f.Topics, ft)
					buf = append(buf, h.frame(1, 4, f)...)
				}
			}
			// The server stops reading at its in-flight limit, so the write
			// may block once the socket buffers fill: bound it.
			c.SetWriteDeadline(time.Now().Add(3 * time.Second))
			c.Write(buf)
			c.Close()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t)
			p.checkAlive(t)
		})
	}

	// After the attack the good pair still makes progress, then stops cleanly.
	good.waitProgress(t, 20, 15*time.Second)
	produced := good.stop(t)
	maxRSS := rss.stop()
	t.Logf("broker RSS: max %d MiB (ceiling %d MiB), good pair produced %d records", maxRSS>>20, hostileRSSCeiling>>20, len(produced))
	if maxRSS > hostileRSSCeiling {
		t.Fatalf("broker RSS reached %d MiB, ceiling %d MiB", maxRSS>>20, hostileRSSCeiling>>20)
	}

	// The stored records are exactly the good producer's.
	stored := readAll(t, p, topic)
	if len(stored) != len(produced) {
		t.Fatalf("topic holds %d records, the good producer wrote %d", len(stored), len(produced))
	}
	for i, r := range stored {
		w := produced[i]
		if r.Offset != int64(i) || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) ||
			len(r.Headers) != 1 || r.Headers[0].Key != "seq" || !bytes.Equal(r.Headers[0].Value, w.Headers[0].Value) {
			t.Fatalf("stored record %d (offset %d) = %q/%q, want %q/%q", i, r.Offset, r.Key, r.Value, w.Key, w.Value)
		}
	}
}

// tagFloodCPUCeiling is the most CPU time (user+system) the broker may
// spend while tagFlood runs, the good pair's traffic included. The flood
// costs about half a second. With kmsg v1.15.0 and no limit walk in the
// server each of its frames cost seconds (a loop up to 2^32 times over an
// empty reader), and the broker burnt 17s of CPU, all it could get on a
// shared 2-core machine, in the 30s the flood is given. Either kmsg v1.15.1
// or the server's walk (which refuses a tag count above the bytes left
// before kmsg sees the body) keeps it under the ceiling.
const tagFloodCPUCeiling = 5 * time.Second

// tagFloodFrames is how many tagFlood frames are sent, one per connection:
// the broker closes a connection at its first undecodable frame, so
// pipelined frames after it would never be decoded.
const tagFloodFrames = 3000

// tagFlood sends thousands of ~30-byte flexible requests whose tagged-field
// count is 2^32-1 (in the top-level body section, in an array element's
// section, in the request header) and requires each connection to be closed
// unanswered, the broker's CPU time to stay under tagFloodCPUCeiling, and the
// good pair to keep working.
func (h *hostile) tagFlood(t *testing.T, pid int, good *goodPair) {
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0x0f} // uvarint 2^32-1
	frames := [][]byte{
		// Metadata v12: null topics, two bools, then the body's tag count.
		h.rawFrame(3, 12, append([]byte{0x00, 1, 0}, huge...)),
		// Produce v9: null transactional id, acks, timeout, no topics.
		h.rawFrame(0, 9, append([]byte{0x00, 0xff, 0xff, 0, 0, 0x13, 0x88, 0x01}, huge...)),
		// Metadata v12: one topic (zero uuid, null name) whose tag count is huge.
		h.rawFrame(3, 12, append(append([]byte{0x02}, make([]byte, 17)...), huge...)),
	}
	// The request header's own tag section (Fetch v12): the frame is
	// built by hand because rawFrame writes an empty one.
	hdr := append(be32(0), be16(1)...)
	hdr = append(hdr, be16(12)...)
	hdr = append(hdr, be32(1)...)
	hdr = append(hdr, be16(-1)...)
	hdr = append(hdr, huge...)
	binary.BigEndian.PutUint32(hdr, uint32(len(hdr)-4))
	frames = append(frames, hdr)
	for _, f := range frames {
		if len(f) > 64 {
			t.Fatalf("flood frame of %d bytes, want a small one", len(f))
		}
	}

	cpu0 := processCPU(t, pid)
	// One deadline for every connection, so that a broker that burns CPU
	// on each frame fails the CPU ceiling rather than hanging the test.
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	var dialFailed, answered, open atomic.Int64
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < tagFloodFrames; i += 16 {
				c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
				if err != nil {
					dialFailed.Add(1)
					continue
				}
				c.SetDeadline(deadline)
				c.Write(frames[i%len(frames)])
				n, err := io.Copy(io.Discard, c)
				switch {
				case n > 0:
					answered.Add(1)
				case errors.Is(err, os.ErrDeadlineExceeded):
					open.Add(1)
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	used := processCPU(t, pid) - cpu0
	t.Logf("%d tagged-field-count frames: broker CPU %v (ceiling %v)", tagFloodFrames, used, tagFloodCPUCeiling)
	if used > tagFloodCPUCeiling {
		t.Fatalf("%d tagged-field-count frames cost the broker %v of CPU, ceiling %v", tagFloodFrames, used, tagFloodCPUCeiling)
	}
	if n := dialFailed.Load(); n > 0 {
		t.Fatalf("%d of %d dials failed", n, tagFloodFrames)
	}
	if n := answered.Load(); n > 0 {
		t.Fatalf("%d connections were answered, want each closed unanswered", n)
	}
	if n := open.Load(); n > 0 {
		t.Fatalf("%d connections still open after 30s", n)
	}
	good.waitProgress(t, 20, 15*time.Second)
}

// processCPU is the user plus system CPU time of pid, from /proc/pid/stat
// (utime and stime, fields 14 and 15, in clock ticks of 1/100 s: USER_HZ
// is 100 on every Linux this runs on).
func processCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatalf("read /proc/%d/stat: %v", pid, err)
	}
	// The command name (field 2) is parenthesised and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if i < 0 || len(f) < 13 {
		t.Fatalf("malformed /proc/%d/stat: %q", pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("malformed /proc/%d/stat: %q", pid, b)
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// hostile sends raw frames to the Kafka port.
type hostile struct {
	t     *testing.T
	addr  string
	topic string
	corr  atomic.Int32
}

func (h *hostile) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", h.addr, err)
	}
	return c
}

func (h *hostile) write(t *testing.T, c net.Conn, parts ...[]byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	for _, b := range parts {
		if _, err := c.Write(b); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

// rawFrame is a size-prefixed request with header v1 (client id "hostile",
// plus an empty tag section when key/version is flexible) and body.
func (h *hostile) rawFrame(key, version int16, body []byte) []byte {
	b := append(be32(0), be16(key)...)
	b = append(b, be16(version)...)
	b = append(b, be32(h.corr.Add(1))...)
	b = append(b, be16(7)...)
	b = append(b, "hostile"...)
	if r := kmsg.RequestForKey(key); r != nil && version >= 0 {
		r.SetVersion(version)
		if r.IsFlexible() {
			b = append(b, 0)
		}
	}
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// headerTagsFrame is rawFrame with headerTags as the request header's tag
// section (key/version must be flexible).
func (h *hostile) headerTagsFrame(key, version int16, headerTags, body []byte) []byte {
	f := h.rawFrame(key, version, nil)
	f = append(f[:len(f)-1], headerTags...) // replace the empty tag section
	f = append(f, body...)
	binary.BigEndian.PutUint32(f, uint32(len(f)-4))
	return f
}

// tagSection is a tag section of n empty fields with unknown tags.
func tagSection(n int) []byte {
	b := binary.AppendUvarint(nil, uint64(n))
	for i := range n {
		b = binary.AppendUvarint(b, uint64(1000+i))
		b = append(b, 0)
	}
	return b
}

// frame encodes req with kmsg at version.
func (h *hostile) frame(key, version int16, req kmsg.Request) []byte {
	req.SetVersion(version)
	return h.rawFrame(key, version, req.AppendTo(nil))
}

// expectClosed sends parts on a new connection and requires the broker to
// close it without answering.
func (h *hostile) expectClosed(t *testing.T, parts ...[]byte) {
	t.Helper()
	c := h.dial(t)
	defer c.Close()
	for _, b := range parts {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(b); err != nil {
			break // already closed: fine
		}
	}
	waitClosed(t, c)
}

// expectClosedAfterHalfClose sends b, shuts the write side and requires the
// broker to close the connection without answering.
func (h *hostile) expectClosedAfterHalfClose(t *testing.T, b []byte) {
	t.Helper()
	c := h.dial(t)
	defer c.Close()
	h.write(t, c, b)
	c.(*net.TCPConn).CloseWrite()
	waitClosed(t, c)
}

func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open 5s later")
	}
	if n > 0 {
		t.Fatalf("broker answered %d bytes, want a closed connection", n)
	}
}

// readFrame reads one response frame and checks its correlation id; it
// returns the bytes after the response header (v0: no tag section).
func (h *hostile) readFrame(t *testing.T, c net.Conn, minLen int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatalf("reading response size: %v", err)
	}
	n := int(binary.BigEndian.Uint32(size[:]))
	if n < minLen || n > 16<<20 {
		t.Fatalf("response size %d", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatalf("reading %d-byte response: %v", n, err)
	}
	if got, want := int32(binary.BigEndian.Uint32(body)), h.corr.Load(); got != want {
		t.Fatalf("correlation id %d, want %d", got, want)
	}
	return body[4:]
}

// expectProduceCode sends batch to the good topic's partition 0 in a
// ProduceRequest v9 (acks=all) and requires one of the error codes.
func (h *hostile) expectProduceCode(t *testing.T, batch []byte, codes ...int16) {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = h.topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)

	c := h.dial(t)
	defer c.Close()
	h.write(t, c, h.frame(0, 9, req))
	body := h.readFrame(t, c, 5)
	if len(body) == 0 || body[0] != 0 {
		t.Fatalf("produce v9 response without an empty header tag section")
	}
	resp := kmsg.ProduceResponse{Version: 9}
	if err := resp.ReadFrom(body[1:]); err != nil {
		t.Fatalf("decode produce response: %v", err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("produce response has %d topics", len(resp.Topics))
	}
	got := resp.Topics[0].Partitions[0]
	for _, c := range codes {
		if got.ErrorCode == c {
			msg := ""
			if got.ErrorMessage != nil {
				msg = *got.ErrorMessage
			}
			t.Logf("error code %d (%v): %s", got.ErrorCode, kerr.ErrorForCode(got.ErrorCode), msg)
			return
		}
	}
	t.Fatalf("produce: error code %d (%v) base offset %d, want one of %v", got.ErrorCode,
		kerr.ErrorForCode(got.ErrorCode), got.BaseOffset, codes)
}

// checkAlive requires the broker process to be running and answering
// ApiVersions on a fresh connection.
func (p *proc) checkAlive(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("gregor exited: %v\n%s", p.exitErr, p.logText())
	default:
	}
	h := &hostile{addr: p.kafkaAddr}
	c := h.dial(t)
	defer c.Close()
	h.write(t, c, h.frame(18, 0, kmsg.NewPtrApiVersionsRequest()))
	resp := kmsg.ApiVersionsResponse{Version: 0}
	if err := resp.ReadFrom(h.readFrame(t, c, 6)); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("api versions after the attack: err %v code %d", err, resp.ErrorCode)
	}
}

func goodBatch(t *testing.T) []byte {
	t.Helper()
	b, err := record.AppendBatch(nil, record.Batch{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
		BaseTimestamp: time.Now().UnixMilli(),
		Records:       []record.Record{{Key: []byte("evil-key"), Value: []byte("evil-value")}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// overflowBatch is a one-record batch whose record's timestamp delta,
// offset delta and key length are 10-byte varints with the continuation bit
// set throughout, framed consistently and with a correct CRC.
func overflowBatch(t *testing.T) []byte {
	t.Helper()
	b := goodBatch(t)[:record.HeaderSize]
	var rec []byte
	rec = append(rec, 0) // attributes
	for range 3 {
		rec = append(rec, bytes.Repeat([]byte{0xff}, 10)...)
		rec = append(rec, 0x01)
	}
	rec = append(rec, 0, 0)
	b = binary.AppendVarint(b, int64(len(rec)))
	b = append(b, rec...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-record.LengthOverhead))
	binary.BigEndian.PutUint32(b[17:], record.CRC(b))
	if _, err := record.Validate(b); err != nil {
		t.Fatalf("overflow batch header does not validate: %v", err)
	}
	return b
}

// bombBatch is a one-record batch whose compressed records area expands to
// expand bytes of zeros.
// bombBatch is a well-formed compressed batch of 1 MiB records whose
// records expand to expand bytes: small on the wire, huge uncompressed, and
// valid up to the point where the broker's cap stops it.
func bombBatch(t *testing.T, codec record.Codec, expand int) []byte {
	t.Helper()
	value := make([]byte, 1<<20)
	recs := make([]record.Record, expand/len(value))
	for i := range recs {
		recs[i] = record.Record{Value: value}
	}
	b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: time.Now().UnixMilli(), ProducerID: -1,
		ProducerEpoch: -1, BaseSequence: -1, Compression: codec, Records: recs})
	if err != nil {
		t.Fatalf("build bomb: %v", err)
	}
	if _, err := record.Validate(b); err != nil {
		t.Fatalf("bomb header does not validate: %v", err)
	}
	return b
}

func be16(v int16) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func be32(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

// goodPair is a franz-go producer writing numbered records one at a time and
// a consumer reading them back and checking each against what was written.
type goodPair struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	produced atomic.Int64
	consumed atomic.Int64

	mu      sync.Mutex
	records []*kgo.Record // acknowledged, in offset order
	err     error
}

func goodRecord(seq int64) *kgo.Record {
	s := strconv.FormatInt(seq, 10)
	return &kgo.Record{Key: []byte("k-" + s), Value: []byte(strings.Repeat("v"+s+"-", 1+int(seq%7))),
		Headers: []kgo.RecordHeader{{Key: "seq", Value: []byte(s)}}}
}

func startGoodPair(t *testing.T, p *proc, topic string) *goodPair {
	t.Helper()
	g := &goodPair{}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	prod := newClient(t, p, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	cons := newClient(t, p, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(100*time.Millisecond))
	g.wg.Go(func() {
		for seq := int64(0); ctx.Err() == nil; seq++ {
			r := goodRecord(seq)
			if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
				if ctx.Err() == nil {
					g.fail(fmt.Errorf("produce %d: %w", seq, err))
				}
				return
			}
			if r.Offset != seq {
				g.fail(fmt.Errorf("record %d acknowledged at offset %d", seq, r.Offset))
				return
			}
			g.mu.Lock()
			g.records = append(g.records, r)
			g.mu.Unlock()
			g.produced.Add(1)
		}
	})
	g.wg.Go(func() {
		next := int64(0)
		for ctx.Err() == nil {
			fs := cons.PollFetches(ctx)
			fs.EachError(func(_ string, _ int32, err error) {
				if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
					g.fail(fmt.Errorf("consume: %w", err))
				}
			})
			for _, r := range fs.Records() {
				want := goodRecord(next)
				if r.Offset != next || !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value) ||
					len(r.Headers) != 1 || !bytes.Equal(r.Headers[0].Value, want.Headers[0].Value) {
					g.fail(fmt.Errorf("consumed offset %d %q/%q, want offset %d %q/%q", r.Offset, r.Key, r.Value, next, want.Key, want.Value))
					return
				}
				next++
				g.consumed.Add(1)
			}
		}
	})
	t.Cleanup(func() { g.cancel(); g.wg.Wait() })
	return g
}

func (g *goodPair) fail(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		g.err = err
	}
}

func (g *goodPair) check(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		t.Fatalf("good pair: %v", g.err)
	}
}

// waitProgress waits until both the producer and the consumer have advanced
// by n records.
func (g *goodPair) waitProgress(t *testing.T, n int64, within time.Duration) {
	t.Helper()
	p0, c0 := g.produced.Load(), g.consumed.Load()
	deadline := time.Now().Add(within)
	for g.produced.Load() < p0+n || g.consumed.Load() < c0+n {
		g.check(t)
		if time.Now().After(deadline) {
			t.Fatalf("good pair made no progress in %v: produced %d->%d, consumed %d->%d",
				within, p0, g.produced.Load(), c0, g.consumed.Load())
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	g.check(t)
}

// stop stops the pair once the consumer has read everything acknowledged and
// returns the acknowledged records.
func (g *goodPair) stop(t *testing.T) []*kgo.Record {
	t.Helper()
	g.cancel()
	g.wg.Wait()
	g.check(t)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.records
}

// rssSampler records the highest VmRSS of a process, sampled every 50ms.
type rssSampler struct {
	pid          int
	max          atomic.Int64
	stopc, donec chan struct{}
}

func newRSSSampler(t *testing.T, pid int) *rssSampler {
	t.Helper()
	s := &rssSampler{pid: pid, stopc: make(chan struct{}), donec: make(chan struct{})}
	if s.current() == 0 {
		t.Fatalf("cannot read VmRSS of pid %d", pid)
	}
	go func() {
		defer close(s.donec)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if v := s.current(); v > s.max.Load() {
				s.max.Store(v)
			}
			select {
			case <-s.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { s.stop() })
	return s
}

// current is the process's VmRSS in bytes, 0 if unreadable.
func (s *rssSampler) current() int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// stop ends sampling and returns the maximum seen. Safe to call twice.
func (s *rssSampler) stop() int64 {
	select {
	case <-s.stopc:
	default:
		close(s.stopc)
	}
	<-s.donec
	return s.max.Load()
}

// TestBinaryHostileConcurrentBombs: each compressed batch may expand to 64
// MiB while it is validated, so concurrent bombs must be bounded node-wide
// (before the bound, 8 concurrent 11 KiB zstd bombs took the broker from 16
// MiB to about 600 MiB RSS).
func TestBinaryHostileConcurrentBombs(t *testing.T) {
	p := startBinary(t, t.TempDir())
	const topic = "hostile-bombs"
	createTopic(t, p, topic, 1, nil)
	rss := newRSSSampler(t, p.cmd.Process.Pid)
	b := bombBatch(t, record.CodecZstd, 100<<20)
	var wg sync.WaitGroup
	for range 8 {
		// One hostile client each: they check their own correlation ids.
		h := &hostile{addr: p.kafkaAddr, topic: topic}
		wg.Go(func() { h.expectProduceCode(t, b, kerr.MessageTooLarge.Code) })
	}
	wg.Wait()
	p.checkAlive(t)
	if maxRSS := rss.stop(); maxRSS > hostileRSSCeiling {
		t.Fatalf("8 concurrent %d-byte bombs: broker RSS reached %d MiB, ceiling %d MiB", len(b), maxRSS>>20, hostileRSSCeiling>>20)
	}
}
