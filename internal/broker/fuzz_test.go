package broker_test

// FuzzHandle drives the dispatch of every advertised API through a real
// in-process node over TCP, black-box: input byte 0-1 select the API key
// (modulo the advertised keys, sorted), byte 2 the version (within the
// advertised range), the rest is the request body. A body kmsg decodes is
// sanitized (so one exec stays fast and the node stays usable, see sanitize),
// re-encoded and must be answered within 5 s with a response kmsg decodes; a
// body kmsg rejects must make the node close the connection. Either way the
// node must answer Metadata afterwards.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/record"
)

const fuzzTopic = "fuzz"

func FuzzHandle(f *testing.F) {
	addr, keys := fuzzNode(f)
	for i, k := range keys {
		for _, v := range []int16{k.MinVersion, k.MaxVersion} {
			req := kmsg.RequestForKey(k.ApiKey)
			if d, ok := req.(interface{ Default() }); ok {
				d.Default()
			}
			req.SetVersion(v)
			f.Add(append([]byte{byte(i >> 8), byte(i), byte(v - k.MinVersion)}, req.AppendTo(nil)...))
		}
	}
	f.Add(produceSeed(f, keys))

	c := &fuzzConn{addr: addr}
	defer c.close()
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 3 {
			return
		}
		body := in[3:]
		if hasLongUvarint(body) {
			// kmsg v1.15.0 spins up to 2^32 times (seconds of CPU per
			// frame) on a huge tagged-field count in a truncated flexible
			// body; internal/server's fuzz test skips these too.
			return
		}
		k := keys[int(binary.BigEndian.Uint16(in))%len(keys)]
		v := k.MinVersion + int16(int(in[2])%int(k.MaxVersion-k.MinVersion+1))
		req := kmsg.RequestForKey(k.ApiKey)
		req.SetVersion(v)
		if err := req.ReadFrom(body); err != nil {
			if k.ApiKey == 18 {
				return // the server decodes flexible ApiVersions itself, leniently
			}
			// The server decodes with kmsg too: it must close the connection.
			c.send(t, k.ApiKey, v, body)
			c.expectClosed(t)
			c.health(t)
			return
		}
		sanitize(req)
		c.send(t, k.ApiKey, v, req.AppendTo(nil))
		c.expectResponse(t, req)
		c.health(t)
	})
}

// fuzzNode starts one node for the fuzz target, creates fuzzTopic and returns
// the Kafka address and the advertised API versions sorted by key.
func fuzzNode(f *testing.F) (string, []kmsg.ApiVersionsResponseApiKey) {
	f.Helper()
	cfg := config.DefaultNode()
	cfg.DataDir = f.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.ControllerAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Props = map[string]string{"group.initial.rebalance.delay.ms": "0"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, cfg, nil)
	if err != nil {
		f.Fatalf("node.Start: %v", err)
	}
	f.Cleanup(func() { n.Close() })
	addr := n.KafkaAddr().String()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		f.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, fuzzTopic); err != nil {
		f.Fatalf("create topic: %v", err)
	}
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != 0 {
		f.Fatalf("api versions: %v %d", err, resp.ErrorCode)
	}
	var keys []kmsg.ApiVersionsResponseApiKey
	for _, k := range resp.ApiKeys {
		if kmsg.RequestForKey(k.ApiKey) != nil && k.MinVersion <= k.MaxVersion {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b kmsg.ApiVersionsResponseApiKey) int { return int(a.ApiKey) - int(b.ApiKey) })
	return addr, keys
}

// produceSeed is a Produce at the highest advertised version carrying one
// valid batch for fuzzTopic.
func produceSeed(f *testing.F, keys []kmsg.ApiVersionsResponseApiKey) []byte {
	f.Helper()
	i := slices.IndexFunc(keys, func(k kmsg.ApiVersionsResponseApiKey) bool { return k.ApiKey == 0 })
	if i < 0 {
		f.Fatal("produce not advertised")
	}
	batch, err := record.AppendBatch(nil, record.Batch{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
		BaseTimestamp: time.Now().UnixMilli(), Records: []record.Record{{Key: []byte("k"), Value: []byte("v")}}})
	if err != nil {
		f.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = keys[i].MaxVersion, -1, 1000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = fuzzTopic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return append([]byte{byte(i >> 8), byte(i), byte(keys[i].MaxVersion - keys[i].MinVersion)}, req.AppendTo(nil)...)
}

// sanitize bounds what one request may cost: waits are capped (a parked
// fetch or produce would make every exec slow), acks=0 becomes acks=1 (no
// response would be indistinguishable from a hang), and requests that change
// cluster state are made validate-only with few partitions, so thousands of
// execs do not fill the node with topics or rewrite its configs. Dispatch,
// decoding of every field and the validation paths are still exercised.
func sanitize(req kmsg.Request) {
	const maxWaitMs = 50
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		r.TimeoutMillis = min(r.TimeoutMillis, maxWaitMs)
		if r.Acks == 0 {
			r.Acks = 1
		}
	case *kmsg.FetchRequest:
		r.MaxWaitMillis = min(r.MaxWaitMillis, maxWaitMs)
	case *kmsg.JoinGroupRequest:
		r.RebalanceTimeoutMillis = min(r.RebalanceTimeoutMillis, maxWaitMs)
		r.SessionTimeoutMillis = min(r.SessionTimeoutMillis, 6000)
	case *kmsg.CreateTopicsRequest:
		r.TimeoutMillis = min(r.TimeoutMillis, maxWaitMs)
		r.ValidateOnly = true
		for i := range r.Topics {
			t := &r.Topics[i]
			t.NumPartitions = min(t.NumPartitions, 4)
			t.ReplicaAssignment = t.ReplicaAssignment[:min(len(t.ReplicaAssignment), 4)]
		}
		if r.Version == 0 {
			r.Topics = nil // v0 has no validate-only
		}
	case *kmsg.CreatePartitionsRequest:
		r.TimeoutMillis = min(r.TimeoutMillis, maxWaitMs)
		r.ValidateOnly = true
	case *kmsg.DeleteTopicsRequest:
		r.TimeoutMillis = min(r.TimeoutMillis, maxWaitMs)
		r.TopicNames, r.Topics = nil, nil // keep fuzzTopic: only dispatch is fuzzed
	case *kmsg.DeleteRecordsRequest:
		r.TimeoutMillis = min(r.TimeoutMillis, maxWaitMs)
	case *kmsg.AlterConfigsRequest:
		r.ValidateOnly = true
	case *kmsg.IncrementalAlterConfigsRequest:
		r.ValidateOnly = true
	case *kmsg.UnregisterBrokerRequest:
		r.BrokerID = -1 // keep the node registered: only dispatch is fuzzed
	}
}

// fuzzConn is one connection to the node, redialled after the node closes it.
type fuzzConn struct {
	addr string
	nc   net.Conn
	corr int32
}

func (c *fuzzConn) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

func (c *fuzzConn) send(t *testing.T, key, version int16, body []byte) {
	t.Helper()
	if c.nc == nil {
		nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c.nc = nc
	}
	c.corr++
	b := make([]byte, 4, 32+len(body))
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(c.corr))
	b = append(b, 0, 4, 'f', 'u', 'z', 'z')
	probe := kmsg.RequestForKey(key)
	probe.SetVersion(version)
	if probe.IsFlexible() {
		b = append(b, 0)
	}
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		t.Fatalf("write %d-byte frame (key %d v%d): %v", len(b), key, version, err)
	}
}

// readFrame reads one response frame within 5 s; io.EOF (or a reset) means
// the node closed the connection.
func (c *fuzzConn) readFrame() ([]byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 64<<20 {
		return nil, fmt.Errorf("response size %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.nc, b); err != nil {
		return nil, err
	}
	if got := int32(binary.BigEndian.Uint32(b)); got != c.corr {
		return nil, fmt.Errorf("correlation id %d, want %d", got, c.corr)
	}
	return b[4:], nil
}

func (c *fuzzConn) expectResponse(t *testing.T, req kmsg.Request) {
	t.Helper()
	b, err := c.readFrame()
	if err != nil {
		t.Fatalf("key %d v%d: no response: %v", req.Key(), req.GetVersion(), err)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && req.Key() != 18 {
		if len(b) == 0 || b[0] != 0 {
			t.Fatalf("key %d v%d: response header tags % x", req.Key(), req.GetVersion(), b[:min(len(b), 1)])
		}
		b = b[1:]
	}
	if err := resp.ReadFrom(b); err != nil {
		t.Fatalf("key %d v%d: response does not decode: %v", req.Key(), req.GetVersion(), err)
	}
}

func (c *fuzzConn) expectClosed(t *testing.T) {
	t.Helper()
	b, err := c.readFrame()
	c.close()
	if err == nil {
		t.Fatalf("undecodable request answered with %d bytes", len(b))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("undecodable request: connection still open after 5s")
	}
}

// health requires the node to answer Metadata v1 (redialling if the
// previous request closed the connection).
func (c *fuzzConn) health(t *testing.T) {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	c.send(t, 3, 1, req.AppendTo(nil))
	b, err := c.readFrame()
	if err != nil {
		c.close()
		t.Fatalf("metadata after the request: %v", err)
	}
	resp := kmsg.MetadataResponse{Version: 1}
	if err := resp.ReadFrom(b); err != nil || len(resp.Brokers) != 1 {
		t.Fatalf("metadata after the request: %v, %d brokers", err, len(resp.Brokers))
	}
}

// hasLongUvarint reports a run of three bytes with the continuation bit set:
// the start of a varint of 2^21 or more.
func hasLongUvarint(b []byte) bool {
	run := 0
	for _, c := range b {
		if c < 0x80 {
			run = 0
			continue
		}
		if run++; run >= 3 {
			return true
		}
	}
	return false
}
