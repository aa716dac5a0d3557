package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/record"
)

// TestE2ERoundTrip produces keyed records with headers under every
// compression codec and acks level, and reads them back byte for byte.
func TestE2ERoundTrip(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	}
	acks := []struct {
		name string
		opts []kgo.Opt
	}{
		{"acks0", []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}},
		{"acks1", []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}},
		{"acksall", []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}},
	}
	for _, c := range codecs {
		for _, a := range acks {
			t.Run(c.name+"/"+a.name, func(t *testing.T) {
				topic := "rt-" + c.name + "-" + a.name
				createTopic(t, adm, topic, 1, nil)
				opts := append([]kgo.Opt{kgo.ProducerBatchCompression(c.codec), kgo.DefaultProduceTopic(topic),
					kgo.ProducerLinger(0)}, a.opts...)
				cl := newClient(t, n, opts...)
				const count = 50
				var recs []*kgo.Record
				for i := range count {
					recs = append(recs, &kgo.Record{
						Key:   []byte(fmt.Sprintf("key-%d", i)),
						Value: bytes.Repeat([]byte(fmt.Sprintf("value-%d;", i)), 20),
						Headers: []kgo.RecordHeader{
							{Key: "h1", Value: []byte(fmt.Sprint(i))},
							{Key: "empty", Value: nil},
						},
					})
				}
				if err := cl.ProduceSync(testCtx(t, 15*time.Second), recs...).FirstErr(); err != nil {
					t.Fatalf("produce: %v", err)
				}
				got := consumePartitions(t, n, topic, []int32{0}, count)
				for i, r := range got {
					if r.Offset != int64(i) {
						t.Fatalf("record %d has offset %d", i, r.Offset)
					}
					if !bytes.Equal(r.Key, recs[i].Key) || !bytes.Equal(r.Value, recs[i].Value) {
						t.Fatalf("record %d: key %q value %q, want %q %q", i, r.Key, r.Value, recs[i].Key, recs[i].Value)
					}
					if len(r.Headers) != 2 || r.Headers[0].Key != "h1" || string(r.Headers[0].Value) != fmt.Sprint(i) ||
						r.Headers[1].Key != "empty" || len(r.Headers[1].Value) != 0 {
						t.Fatalf("record %d headers: %+v", i, r.Headers)
					}
				}
			})
		}
	}
}

// murmur2 is Kafka's Utils.murmur2, used by the default partitioner for keyed records.
func murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(data))
	n := len(data) / 4
	for i := range n {
		k := uint32(data[i*4]) | uint32(data[i*4+1])<<8 | uint32(data[i*4+2])<<16 | uint32(data[i*4+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	rest := data[n*4:]
	switch len(rest) {
	case 3:
		h ^= uint32(rest[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(rest[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(rest[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// TestE2EKeyedPartitioning checks that keyed records land on murmur2(key) %
// partitions, consistently, and that each partition preserves produce order.
func TestE2EKeyedPartitioning(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	const topic, parts = "keyed", 6
	createTopic(t, adm, topic, parts, nil)
	cl := newClient(t, n, kgo.DefaultProduceTopic(topic))
	keys := []string{"alpha", "beta", "gamma", "delta", "epsilon", "z", "", "a-much-longer-key-0123456789"}
	type sent struct {
		key string
		seq int
	}
	var recs []*kgo.Record
	for round := range 5 {
		for _, k := range keys {
			recs = append(recs, &kgo.Record{Key: []byte(k), Value: []byte(fmt.Sprintf("%s|%d", k, round))})
		}
	}
	if err := cl.ProduceSync(testCtx(t, 15*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	want := map[string]int32{}
	for _, k := range keys {
		want[k] = (murmur2([]byte(k)) & 0x7fffffff) % parts
	}
	for _, r := range recs {
		if r.Partition != want[string(r.Key)] {
			t.Fatalf("key %q produced to partition %d, murmur2 says %d", r.Key, r.Partition, want[string(r.Key)])
		}
	}
	all := []int32{0, 1, 2, 3, 4, 5}
	got := consumePartitions(t, n, topic, all, len(recs))
	lastRound := map[string]int{}
	for _, r := range got {
		k := string(r.Key)
		if r.Partition != want[k] {
			t.Fatalf("key %q read from partition %d, want %d", k, r.Partition, want[k])
		}
		var round int
		fmt.Sscanf(string(r.Value[len(k)+1:]), "%d", &round)
		if prev, ok := lastRound[k]; ok && round != prev+1 {
			t.Fatalf("key %q: round %d after %d, order not preserved", k, round, prev)
		}
		if _, ok := lastRound[k]; !ok && round != 0 {
			t.Fatalf("key %q: first round read is %d", k, round)
		}
		lastRound[k] = round
	}
}

// TestE2ELongPoll checks that a fetch parked on an empty topic answers as
// soon as a record arrives, long before max wait.
func TestE2ELongPoll(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	const topic = "longpoll"
	createTopic(t, adm, topic, 1, nil)
	fetchSent := make(chan struct{}, 16)
	consumer := newClient(t, n,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}),
		kgo.FetchMaxWait(20*time.Second),
		kgo.WithHooks(fetchHook(fetchSent)))
	type result struct {
		recs []*kgo.Record
		at   time.Time
	}
	got := make(chan result, 1)
	ctx := testCtx(t, 30*time.Second)
	go func() {
		for {
			fs := consumer.PollFetches(ctx)
			if recs := fs.Records(); len(recs) > 0 || ctx.Err() != nil {
				got <- result{recs, time.Now()}
				return
			}
		}
	}()
	select {
	case <-fetchSent:
	case <-ctx.Done():
		t.Fatal("consumer never sent a fetch")
	}
	// The fetch is on the wire; give the broker no hint and produce.
	producer := newClient(t, n, kgo.DefaultProduceTopic(topic))
	produced := time.Now()
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("wake")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	select {
	case r := <-got:
		if len(r.recs) != 1 || string(r.recs[0].Value) != "wake" {
			t.Fatalf("got %d records", len(r.recs))
		}
		if d := r.at.Sub(produced); d > 3*time.Second {
			t.Fatalf("parked fetch answered %v after the produce; max wait is 20s, want prompt wake-up", d)
		}
	case <-ctx.Done():
		t.Fatal("record never delivered")
	}
}

type fetchHookT chan struct{}

func fetchHook(c chan struct{}) kgo.Hook { return fetchHookT(c) }

func (h fetchHookT) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		select {
		case h <- struct{}{}:
		default:
		}
	}
}

// TestE2EListOffsets covers earliest, latest, by timestamp and max timestamp.
func TestE2EListOffsets(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	const topic = "offsets"
	createTopic(t, adm, topic, 1, nil)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	ts := []time.Time{base, base.Add(5 * time.Second), base.Add(2 * time.Second)}
	p := newClient(t, n, kgo.DefaultProduceTopic(topic))
	ctx := testCtx(t, 20*time.Second)
	for i, tm := range ts {
		// One batch per record, so each batch carries its own timestamps.
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}, Timestamp: tm}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	lookup := func(lo kadm.ListedOffsets, err error) kadm.ListedOffset {
		t.Helper()
		if err != nil {
			t.Fatalf("list offsets: %v", err)
		}
		o, ok := lo.Lookup(topic, 0)
		if !ok || o.Err != nil {
			t.Fatalf("list offsets: %v %v", ok, o.Err)
		}
		return o
	}
	if o := lookup(adm.ListStartOffsets(ctx, topic)); o.Offset != 0 {
		t.Fatalf("earliest = %d, want 0", o.Offset)
	}
	if o := lookup(adm.ListEndOffsets(ctx, topic)); o.Offset != 3 {
		t.Fatalf("latest = %d, want 3", o.Offset)
	}
	cases := []struct {
		at         time.Time
		wantOffset int64
	}{
		{base.Add(-time.Minute), 0},
		{base, 0},
		{base.Add(time.Second), 1},
		{base.Add(3 * time.Second), 1},
		{base.Add(5 * time.Second), 1},
	}
	for _, c := range cases {
		if o := lookup(adm.ListOffsetsAfterMilli(ctx, c.at.UnixMilli(), topic)); o.Offset != c.wantOffset {
			t.Errorf("after %v: offset %d, want %d", c.at.Sub(base), o.Offset, c.wantOffset)
		}
	}
	// No record at or after the timestamp: -1 on the wire.
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, ts := range []int64{base.Add(time.Hour).UnixMilli(), -3} {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = 0
		rp.Timestamp = ts
		rt.Partitions = []kmsg.ListOffsetsRequestTopicPartition{rp}
		req.Topics = []kmsg.ListOffsetsRequestTopic{rt}
		resp := rawRequest[*kmsg.ListOffsetsResponse](t, cl, req)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("ListOffsets(%d): malformed response %+v", ts, resp)
		}
		got := resp.Topics[0].Partitions[0]
		if got.ErrorCode != 0 {
			t.Fatalf("ListOffsets(%d): %v", ts, kerr.ErrorForCode(got.ErrorCode))
		}
		switch ts {
		case -3:
			if got.Offset != 1 || got.Timestamp != ts1(ts, base) {
				t.Errorf("max timestamp: offset %d ts %d, want 1 %d", got.Offset, got.Timestamp, base.Add(5*time.Second).UnixMilli())
			}
		default:
			if got.Offset != -1 || got.Timestamp != -1 {
				t.Errorf("after the last timestamp: offset %d ts %d, want -1 -1", got.Offset, got.Timestamp)
			}
		}
	}
}

func ts1(_ int64, base time.Time) int64 { return base.Add(5 * time.Second).UnixMilli() }

// fetchErr fetches one partition at offset with a raw request and returns the partition error.
func fetchErr(t *testing.T, cl *kgo.Client, topic string, partition int32, offset int64) (int16, kmsg.FetchResponseTopicPartition) {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition = partition
	fp.FetchOffset = offset
	fp.PartitionMaxBytes = 1 << 20
	fp.CurrentLeaderEpoch = -1
	fp.LogStartOffset = -1
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	resp := rawRequest[*kmsg.FetchResponse](t, cl, req)
	if resp.ErrorCode != 0 {
		t.Fatalf("fetch: top-level error %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch: malformed response")
	}
	p := resp.Topics[0].Partitions[0]
	return p.ErrorCode, p
}

// TestE2EDeleteRecords moves the log start offset and checks reads below it fail.
func TestE2EDeleteRecords(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	const topic = "delrecs"
	createTopic(t, adm, topic, 1, nil)
	p := newClient(t, n, kgo.DefaultProduceTopic(topic))
	ctx := testCtx(t, 20*time.Second)
	for i := range 10 {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 4})
	dr, err := adm.DeleteRecords(ctx, offs)
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
	if r, ok := dr.Lookup(topic, 0); !ok || r.Err != nil || r.LowWatermark != 4 {
		t.Fatalf("delete records response: %+v %v", r, ok)
	}
	lo, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lo.Lookup(topic, 0); o.Offset != 4 {
		t.Fatalf("start offset after DeleteRecords = %d, want 4", o.Offset)
	}
	if code, _ := fetchErr(t, cl, topic, 0, 2); code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch below the start offset: %v, want OFFSET_OUT_OF_RANGE", kerr.ErrorForCode(code))
	}
	code, fp := fetchErr(t, cl, topic, 0, 4)
	if code != 0 || fp.LogStartOffset != 4 || fp.HighWatermark != 10 {
		t.Fatalf("fetch at the start offset: %v log start %d hw %d", kerr.ErrorForCode(code), fp.LogStartOffset, fp.HighWatermark)
	}
	got := consumePartitions(t, n, topic, []int32{0}, 6)
	if got[0].Offset != 4 || got[0].Value[0] != 4 {
		t.Fatalf("first readable record is offset %d value %d", got[0].Offset, got[0].Value[0])
	}
}

// TestE2ECreateTopicsValidation checks CreateTopics' per-topic errors.
func TestE2ECreateTopicsValidation(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	type spec struct {
		name    string
		parts   int32
		rf      int16
		configs map[string]string
	}
	cases := []struct {
		desc string
		spec spec
		want *kerr.Error
	}{
		{"empty name", spec{"", 1, 1, nil}, kerr.InvalidTopicException},
		{"dot", spec{".", 1, 1, nil}, kerr.InvalidTopicException},
		{"dotdot", spec{"..", 1, 1, nil}, kerr.InvalidTopicException},
		{"slash", spec{"a/b", 1, 1, nil}, kerr.InvalidTopicException},
		{"too long", spec{strings.Repeat("x", 250), 1, 1, nil}, kerr.InvalidTopicException},
		{"zero partitions", spec{"zero-parts", 0, 1, nil}, kerr.InvalidPartitions},
		{"rf 3 on one node", spec{"rf3", 1, 3, nil}, kerr.InvalidReplicationFactor},
		{"unknown config", spec{"unknown-cfg", 1, 1, map[string]string{"no.such.config": "1"}}, kerr.InvalidConfig},
		{"bad value", spec{"bad-value", 1, 1, map[string]string{"retention.ms": "abc"}}, kerr.InvalidConfig},
		{"valid", spec{"valid-one", 2, 1, map[string]string{"retention.ms": "60000"}}, nil},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			req := kmsg.NewPtrCreateTopicsRequest()
			req.TimeoutMillis = 10000
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic = c.spec.name
			rt.NumPartitions = c.spec.parts
			rt.ReplicationFactor = c.spec.rf
			for k, v := range c.spec.configs {
				rc := kmsg.NewCreateTopicsRequestTopicConfig()
				rc.Name, rc.Value = k, strp(v)
				rt.Configs = append(rt.Configs, rc)
			}
			req.Topics = append(req.Topics, rt)
			resp := rawRequest[*kmsg.CreateTopicsResponse](t, cl, req)
			if len(resp.Topics) != 1 {
				t.Fatalf("%d topics in response", len(resp.Topics))
			}
			got := kerr.ErrorForCode(resp.Topics[0].ErrorCode)
			if !errors.Is(got, c.want) && !(got == nil && c.want == nil) {
				t.Fatalf("create %q: %v, want %v", c.spec.name, got, c.want)
			}
		})
	}
	ctx := testCtx(t, 20*time.Second)

	t.Run("validate only", func(t *testing.T) {
		resp, err := adm.ValidateCreateTopics(ctx, 3, 1, nil, "validate-only")
		if err != nil {
			t.Fatal(err)
		}
		if r := resp["validate-only"]; r.Err != nil {
			t.Fatalf("validate only: %v", r.Err)
		}
		if r, _ := adm.ValidateCreateTopics(ctx, 0, 1, nil, "validate-only-bad"); !errors.Is(r["validate-only-bad"].Err, kerr.InvalidPartitions) {
			t.Fatalf("validate only with 0 partitions: %v", r["validate-only-bad"].Err)
		}
		td, err := adm.ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"validate-only", "zero-parts", "rf3", "unknown-cfg", "bad-value"} {
			if td.Has(name) {
				t.Fatalf("topic %q exists after a failed or validate-only create", name)
			}
		}
		if !td.Has("valid-one") {
			t.Fatalf("valid-one missing")
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		createTopic(t, adm, "dup", 1, nil)
		r, err := adm.CreateTopic(ctx, 1, 1, nil, "dup")
		if err == nil {
			err = r.Err
		}
		if !errors.Is(err, kerr.TopicAlreadyExists) {
			t.Fatalf("second create: %v, want TOPIC_ALREADY_EXISTS", err)
		}
	})
}

// TestE2EDeleteAndRecreate deletes a topic with data and recreates it empty.
func TestE2EDeleteAndRecreate(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	const topic = "phoenix"
	ctx := testCtx(t, 30*time.Second)
	createTopic(t, adm, topic, 2, nil)
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	oldID := td[topic].ID
	if raw := rawTopicID(t, cl, topic); raw != oldID {
		t.Fatalf("kadm id %v, raw metadata id %v", oldID, raw)
	}
	p := newClient(t, n, kgo.DefaultProduceTopic(topic))
	for i := range 5 {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}, Partition: int32(i % 2)}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	dr, err := adm.DeleteTopic(ctx, topic)
	if err == nil {
		err = dr.Err
	}
	if err != nil {
		t.Fatalf("delete topic: %v", err)
	}
	createTopic(t, adm, topic, 2, nil)
	if id := rawTopicID(t, cl, topic); id == oldID {
		t.Errorf("recreated topic kept topic id %v (metadata reports the deleted topic's id)", oldID)
	}
	for _, list := range []func(context.Context, ...string) (kadm.ListedOffsets, error){adm.ListStartOffsets, adm.ListEndOffsets} {
		lo, err := list(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		lo.Each(func(o kadm.ListedOffset) {
			if o.Err != nil || o.Offset != 0 {
				t.Errorf("recreated topic partition %d: offset %d err %v, want empty", o.Partition, o.Offset, o.Err)
			}
		})
	}
	// The new topic takes writes from offset 0.
	p2 := newClient(t, n, kgo.DefaultProduceTopic(topic))
	r := &kgo.Record{Value: []byte("new")}
	if err := p2.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatalf("produce to recreated topic: %v", err)
	}
	if r.Offset != 0 {
		t.Fatalf("first record of the recreated topic at offset %d", r.Offset)
	}
}

// TestE2ECreatePartitions grows a topic and writes to the new partitions.
func TestE2ECreatePartitions(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	const topic = "growing"
	ctx := testCtx(t, 20*time.Second)
	createTopic(t, adm, topic, 1, nil)
	resp, err := adm.UpdatePartitions(ctx, 3, topic)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("create partitions: %v", err)
	}
	if resp, _ := adm.UpdatePartitions(ctx, 2, topic); resp.Error() == nil || !errors.Is(resp[topic].Err, kerr.InvalidPartitions) {
		t.Fatalf("shrinking: %v, want INVALID_PARTITIONS", resp[topic].Err)
	}
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(td[topic].Partitions); got != 3 {
		t.Fatalf("%d partitions after growing to 3", got)
	}
	p := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range int32(3) {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}, Partition: i}).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", i, err)
		}
	}
	consumePartitions(t, n, topic, []int32{0, 1, 2}, 3)
}

func findConfig(t *testing.T, rcs kadm.ResourceConfigs, err error, name string) kadm.Config {
	t.Helper()
	if err != nil {
		t.Fatalf("describe configs: %v", err)
	}
	if len(rcs) != 1 || rcs[0].Err != nil {
		t.Fatalf("describe configs: %+v", rcs)
	}
	for _, c := range rcs[0].Configs {
		if c.Key == name {
			return c
		}
	}
	t.Fatalf("config %q not described", name)
	return kadm.Config{}
}

// TestE2EConfigs covers DescribeConfigs sources and both alter APIs.
func TestE2EConfigs(t *testing.T) {
	n := startNode(t, t.TempDir(), map[string]string{"log.segment.bytes": "1048576"})
	adm, cl := newAdmin(t, n)
	const topic = "configured"
	ctx := testCtx(t, 30*time.Second)
	createTopic(t, adm, topic, 1, map[string]*string{"retention.ms": strp("123456")})
	check := func(name, value string, source kmsg.ConfigSource) {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		c := findConfig(t, rcs, err, name)
		if c.MaybeValue() != value || c.Source != source {
			t.Errorf("%s = %q (%v), want %q (%v)", name, c.MaybeValue(), c.Source, value, source)
		}
	}
	check("retention.ms", "123456", kmsg.ConfigSourceDynamicTopicConfig)
	check("segment.bytes", "1048576", kmsg.ConfigSourceStaticBrokerConfig)
	check("cleanup.policy", "delete", kmsg.ConfigSourceDefaultConfig)

	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: strp("999")},
		{Op: kadm.SetConfig, Name: "max.message.bytes", Value: strp("5000")},
	}, topic)
	if err == nil {
		err = ar[0].Err
	}
	if err != nil {
		t.Fatalf("incremental alter: %v", err)
	}
	check("retention.ms", "999", kmsg.ConfigSourceDynamicTopicConfig)
	check("max.message.bytes", "5000", kmsg.ConfigSourceDynamicTopicConfig)

	ar, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "retention.ms"}}, topic)
	if err == nil {
		err = ar[0].Err
	}
	if err != nil {
		t.Fatalf("incremental delete: %v", err)
	}
	check("retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig)

	if ar, _ := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: strp("abc")}}, topic); len(ar) != 1 || !errors.Is(ar[0].Err, kerr.InvalidConfig) {
		t.Fatalf("incremental alter with a bad value: %+v, want INVALID_CONFIG", ar)
	}

	// Legacy AlterConfigs replaces the whole set: max.message.bytes reverts.
	ar, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "cleanup.policy", Value: strp("compact")}}, topic)
	if err == nil {
		err = ar[0].Err
	}
	if err != nil {
		t.Fatalf("alter configs: %v", err)
	}
	check("cleanup.policy", "compact", kmsg.ConfigSourceDynamicTopicConfig)
	check("max.message.bytes", "1048588", kmsg.ConfigSourceDefaultConfig)

	t.Run("broker", func(t *testing.T) {
		rcs, err := adm.DescribeBrokerConfigs(ctx, 1)
		c := findConfig(t, rcs, err, "log.segment.bytes")
		if c.MaybeValue() != "1048576" || c.Source != kmsg.ConfigSourceStaticBrokerConfig {
			t.Errorf("log.segment.bytes = %q (%v), want static 1048576", c.MaybeValue(), c.Source)
		}
		rcs, err = adm.DescribeBrokerConfigs(ctx, 1)
		c = findConfig(t, rcs, err, "num.partitions")
		if c.MaybeValue() != "1" || c.Source != kmsg.ConfigSourceDefaultConfig {
			t.Errorf("num.partitions = %q (%v), want default 1", c.MaybeValue(), c.Source)
		}
	})

	t.Run("describe cluster", func(t *testing.T) {
		resp := rawRequest[*kmsg.DescribeClusterResponse](t, cl, kmsg.NewPtrDescribeClusterRequest())
		if resp.ErrorCode != 0 || resp.ClusterID == "" || resp.ControllerID != 1 || len(resp.Brokers) != 1 {
			t.Fatalf("describe cluster: err %v cluster %q controller %d brokers %d",
				kerr.ErrorForCode(resp.ErrorCode), resp.ClusterID, resp.ControllerID, len(resp.Brokers))
		}
		b := resp.Brokers[0]
		if b.NodeID != 1 || fmt.Sprintf("%s:%d", "127.0.0.1", b.Port) != n.KafkaAddr().String() {
			t.Fatalf("describe cluster broker %d at %s:%d, listener %s", b.NodeID, b.Host, b.Port, n.KafkaAddr())
		}
	})

	t.Run("describe log dirs", func(t *testing.T) {
		p := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err := p.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: bytes.Repeat([]byte("x"), 1000)}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		dirs, err := adm.DescribeAllLogDirs(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		dirs.Each(func(d kadm.DescribedLogDir) {
			if d.Err != nil {
				t.Errorf("log dir %s: %v", d.Dir, d.Err)
			}
			d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
				if p.Topic == topic && p.Partition == 0 {
					found = true
					if p.Size < 1000 {
						t.Errorf("%s[0] size %d after a 1000-byte record", topic, p.Size)
					}
				}
			})
		})
		if !found {
			t.Fatalf("%s[0] not in DescribeLogDirs: %+v", topic, dirs)
		}
	})
}

// TestE2EMessageTooLarge checks max.message.bytes is enforced per topic.
func TestE2EMessageTooLarge(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	const topic = "small"
	createTopic(t, adm, topic, 1, map[string]*string{"max.message.bytes": strp("1000")})
	p := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx := testCtx(t, 20*time.Second)
	err := p.ProduceSync(ctx, &kgo.Record{Value: bytes.Repeat([]byte("b"), 5000)}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("5000-byte record into max.message.bytes=1000: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("fits")}).FirstErr(); err != nil {
		t.Fatalf("small record: %v", err)
	}
}

// TestE2EAutoCreate checks Metadata creates unknown topics with num.partitions.
func TestE2EAutoCreate(t *testing.T) {
	n := startNode(t, t.TempDir(), map[string]string{"num.partitions": "3"})
	_, cl := newAdmin(t, n)
	const topic = "auto-created"
	deadline := time.Now().Add(10 * time.Second)
	for {
		req := kmsg.NewPtrMetadataRequest()
		req.AllowAutoTopicCreation = true
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = strp(topic)
		req.Topics = append(req.Topics, mt)
		resp := rawRequest[*kmsg.MetadataResponse](t, cl, req)
		if len(resp.Topics) != 1 {
			t.Fatalf("%d topics in metadata", len(resp.Topics))
		}
		mtr := resp.Topics[0]
		if mtr.ErrorCode == 0 {
			if len(mtr.Partitions) != 3 {
				t.Fatalf("auto-created topic has %d partitions, want num.partitions=3", len(mtr.Partitions))
			}
			for _, p := range mtr.Partitions {
				if p.ErrorCode != 0 || p.Leader != 1 {
					t.Fatalf("partition %d: %v leader %d", p.Partition, kerr.ErrorForCode(p.ErrorCode), p.Leader)
				}
			}
			break
		}
		if mtr.ErrorCode != kerr.LeaderNotAvailable.Code && mtr.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("metadata for auto-created topic: %v", kerr.ErrorForCode(mtr.ErrorCode))
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic not auto-created: %v", kerr.ErrorForCode(mtr.ErrorCode))
		}
	}
	// Without auto creation an unknown topic stays unknown.
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = strp("not-auto")
	req.Topics = append(req.Topics, mt)
	resp := rawRequest[*kmsg.MetadataResponse](t, cl, req)
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("metadata without auto create: %+v", resp.Topics)
	}
}

// rawBatch builds one v2 batch with count records.
func rawBatch(t *testing.T, pid int64, epoch int16, seq int32, count int, tag string) []byte {
	t.Helper()
	var recs []record.Record
	for i := range count {
		recs = append(recs, record.Record{Key: []byte(tag), Value: []byte(fmt.Sprintf("%s-%d", tag, i))})
	}
	b, err := record.AppendBatch(nil, record.Batch{
		BaseTimestamp: time.Now().UnixMilli(), ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq,
		PartitionLeaderEpoch: -1, Records: recs,
	})
	if err != nil {
		t.Fatalf("build batch: %v", err)
	}
	return b
}

// rawProduce sends one batch to partition 0 with acks=all.
func rawProduce(t *testing.T, cl *kgo.Client, topic string, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	return rawProduceTo(t, cl, topic, 0, batch)
}

func endOffset(t *testing.T, adm *kadm.Client, topic string, partition int32) int64 {
	t.Helper()
	lo, err := adm.ListEndOffsets(testCtx(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := lo.Lookup(topic, partition)
	if !ok || o.Err != nil {
		t.Fatalf("end offset %s[%d]: %v", topic, partition, o.Err)
	}
	return o.Offset
}

func initProducerID(t *testing.T, cl *kgo.Client) (int64, int16) {
	t.Helper()
	resp := rawRequest[*kmsg.InitProducerIDResponse](t, cl, kmsg.NewPtrInitProducerIDRequest())
	if resp.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// TestE2ERawProduce sends hand-built batches: corrupt CRC, idempotent
// duplicates, sequence gaps and stale epochs.
func TestE2ERawProduce(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	const topic = "raw"
	createTopic(t, adm, topic, 1, nil)

	if r := rawProduce(t, cl, topic, rawBatch(t, -1, -1, -1, 2, "plain")); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("plain batch: %v base %d", kerr.ErrorForCode(r.ErrorCode), r.BaseOffset)
	}

	t.Run("corrupt crc", func(t *testing.T) {
		b := rawBatch(t, -1, -1, -1, 3, "crc")
		b[len(b)-1] ^= 0x01 // a record byte, covered by the CRC
		before := endOffset(t, adm, topic, 0)
		r := rawProduce(t, cl, topic, b)
		if r.ErrorCode != kerr.CorruptMessage.Code {
			t.Fatalf("flipped CRC byte: %v, want CORRUPT_MESSAGE", kerr.ErrorForCode(r.ErrorCode))
		}
		if after := endOffset(t, adm, topic, 0); after != before {
			t.Fatalf("end offset moved %d -> %d after a corrupt batch", before, after)
		}
		got := consumePartitions(t, n, topic, []int32{0}, int(before))
		for _, rec := range got {
			if string(rec.Key) != "plain" {
				t.Fatalf("unexpected record %q at %d", rec.Key, rec.Offset)
			}
		}
	})

	pid, epoch := initProducerID(t, cl)
	t.Run("idempotent duplicate", func(t *testing.T) {
		b := rawBatch(t, pid, epoch, 0, 3, "idem")
		first := rawProduce(t, cl, topic, append([]byte(nil), b...))
		if first.ErrorCode != 0 {
			t.Fatalf("first send: %v", kerr.ErrorForCode(first.ErrorCode))
		}
		end := endOffset(t, adm, topic, 0)
		second := rawProduce(t, cl, topic, append([]byte(nil), b...))
		if second.ErrorCode != 0 || second.BaseOffset != first.BaseOffset {
			t.Fatalf("duplicate send: %v base %d, want success with base %d", kerr.ErrorForCode(second.ErrorCode), second.BaseOffset, first.BaseOffset)
		}
		if after := endOffset(t, adm, topic, 0); after != end {
			t.Fatalf("duplicate was written again: end offset %d -> %d", end, after)
		}
		count := 0
		for _, rec := range consumePartitions(t, n, topic, []int32{0}, int(end)) {
			if string(rec.Key) == "idem" {
				count++
			}
		}
		if count != 3 {
			t.Fatalf("log holds %d idempotent records, want 3", count)
		}
	})
	t.Run("out of order sequence", func(t *testing.T) {
		r := rawProduce(t, cl, topic, rawBatch(t, pid, epoch, 5, 1, "gap"))
		if r.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
			t.Fatalf("seq 5 after 0-2: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", kerr.ErrorForCode(r.ErrorCode))
		}
		if r := rawProduce(t, cl, topic, rawBatch(t, pid, epoch, 3, 1, "next")); r.ErrorCode != 0 {
			t.Fatalf("seq 3 after 0-2: %v", kerr.ErrorForCode(r.ErrorCode))
		}
	})
	t.Run("old epoch", func(t *testing.T) {
		if r := rawProduce(t, cl, topic, rawBatch(t, pid, epoch+1, 0, 1, "bumped")); r.ErrorCode != 0 {
			t.Fatalf("bumped epoch at seq 0: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		r := rawProduce(t, cl, topic, rawBatch(t, pid, epoch, 4, 1, "stale"))
		if r.ErrorCode != kerr.InvalidProducerEpoch.Code {
			t.Fatalf("old epoch: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(r.ErrorCode))
		}
	})
	t.Run("describe producers", func(t *testing.T) {
		ps := describeProducers(t, cl, topic, 0)
		found := false
		for _, p := range ps {
			if p.ProducerID == pid {
				found = true
				if p.ProducerEpoch != int32(epoch+1) || p.LastSequence != 0 {
					t.Fatalf("producer %d: epoch %d last seq %d, want %d 0", pid, p.ProducerEpoch, p.LastSequence, epoch+1)
				}
			}
		}
		if !found {
			t.Fatalf("producer %d not described: %+v", pid, ps)
		}
	})
}

func describeProducers(t *testing.T, cl *kgo.Client, topic string, partition int32) []kmsg.DescribeProducersResponseTopicPartitionActiveProducer {
	t.Helper()
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic = topic
	rt.Partitions = []int32{partition}
	req.Topics = append(req.Topics, rt)
	resp := rawRequest[*kmsg.DescribeProducersResponse](t, cl, req)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("describe producers: malformed response")
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("describe producers: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	return p.ActiveProducers
}

// TestE2EDescribeProducersKgo checks an idempotent kgo producer is described.
func TestE2EDescribeProducersKgo(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	const topic = "idem-kgo"
	createTopic(t, adm, topic, 1, nil)
	p := newClient(t, n, kgo.DefaultProduceTopic(topic))
	ctx := testCtx(t, 20*time.Second)
	for i := range 5 {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	pid, _, _ := p.ProducerID(ctx)
	ps := describeProducers(t, cl, topic, 0)
	if len(ps) != 1 || ps[0].ProducerID != pid || ps[0].LastSequence != 4 {
		t.Fatalf("active producers %+v, want id %d last sequence 4", ps, pid)
	}
}

// rawTopicID asks node 1 directly (no client metadata cache) for a topic's id.
func rawTopicID(t *testing.T, cl *kgo.Client, topic string) [16]byte {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = strp(topic)
	req.Topics = append(req.Topics, mt)
	resp := rawRequest[*kmsg.MetadataResponse](t, cl, req)
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata for %q: %+v", topic, resp.Topics)
	}
	return resp.Topics[0].TopicID
}
