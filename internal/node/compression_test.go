package node_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/gregor-dev/gregor/internal/record"
)

// fetch0 fetches partition 0 of topic from offset 0 with cl.
func fetch0(t *testing.T, cl *kgo.Client, topic string) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MaxBytes, req.SessionEpoch = 0, 10<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 10 << 20
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	return rawRequest[*kmsg.FetchResponse](t, cl, req).Topics[0].Partitions[0]
}

// storedCodecs fetches partition 0 of topic from offset 0 and returns the
// codec of every batch stored there, as the log holds them.
func storedCodecs(t *testing.T, cl *kgo.Client, topic string) []record.Codec {
	t.Helper()
	rp := fetch0(t, cl, topic)
	if rp.ErrorCode != 0 {
		t.Fatalf("fetch %s: code %d", topic, rp.ErrorCode)
	}
	var out []record.Codec
	for b := rp.RecordBatches; len(b) > 0; {
		h, err := record.Validate(b)
		if err != nil {
			t.Fatalf("fetch %s: %v", topic, err)
		}
		out = append(out, h.Compression())
		b = b[record.LengthOverhead+int(h.BatchLength):]
	}
	return out
}

// storedBatchLength is the size of the one batch stored in partition 0 of topic.
func storedBatchLength(t *testing.T, cl *kgo.Client, topic string) int32 {
	t.Helper()
	b := fetch0(t, cl, topic).RecordBatches
	h, err := record.Validate(b)
	if err != nil {
		t.Fatalf("fetch %s: %v", topic, err)
	}
	return h.BatchLength
}

// TestTopicCompressionType: a topic's compression.type, as in Kafka.
// "producer" stores each batch as sent; a codec rewrites a batch sent with
// another one, which reads back record for record (keys, values, headers,
// timestamps, offsets) and at the topic's compression.gzip.level; the
// rewritten batch is held to max.message.bytes;
// zstd is refused to Produce below v7 and, on a zstd topic, to Fetch below
// v10 (UNSUPPORTED_COMPRESSION_TYPE).
func TestTopicCompressionType(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	for _, tc := range []struct {
		topicType string
		sent      kgo.CompressionCodec
		want      record.Codec
	}{
		{"producer", kgo.Lz4Compression(), record.CodecLZ4},
		{"gzip", kgo.NoCompression(), record.CodecGzip},
		{"zstd", kgo.SnappyCompression(), record.CodecZstd},
		{"uncompressed", kgo.Lz4Compression(), record.CodecNone},
		{"snappy", kgo.SnappyCompression(), record.CodecSnappy},
	} {
		t.Run(tc.topicType, func(t *testing.T) {
			topic := "compression-" + tc.topicType
			createTopic(t, adm, topic, 1, map[string]*string{"compression.type": strp(tc.topicType)})
			prod := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(tc.sent), kgo.ProducerLinger(50*time.Millisecond))
			var sent []*kgo.Record
			for i := range 50 {
				r := &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: bytes.Repeat(fmt.Appendf(nil, "value-%d ", i), 20),
					Headers: []kgo.RecordHeader{{Key: "i", Value: fmt.Appendf(nil, "%d", i)}}, Timestamp: time.UnixMilli(1_700_000_000_000 + int64(i))}
				sent = append(sent, r)
				prod.Produce(testCtx(t, 10*time.Second), r, nil)
			}
			if err := prod.Flush(testCtx(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			codecs := storedCodecs(t, cl, topic)
			if len(codecs) == 0 {
				t.Fatal("no batch stored")
			}
			for _, c := range codecs {
				if c != tc.want {
					t.Fatalf("stored codecs %v, want every batch %s", codecs, tc.want)
				}
			}
			cons := newClient(t, n, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			var got []*kgo.Record
			for len(got) < len(sent) {
				fs := cons.PollFetches(testCtx(t, 10*time.Second))
				if err := fs.Err0(); err != nil {
					t.Fatal(err)
				}
				got = append(got, fs.Records()...)
			}
			for i, r := range got {
				w := sent[i]
				if r.Offset != int64(i) || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) ||
					len(r.Headers) != 1 || !bytes.Equal(r.Headers[0].Value, w.Headers[0].Value) || !r.Timestamp.Equal(w.Timestamp) {
					t.Fatalf("record %d read back as offset %d key %q headers %v at %v", i, r.Offset, r.Key, r.Headers, r.Timestamp)
				}
			}
		})
	}

	// A gzip batch that fits max.message.bytes compressed but not once
	// an "uncompressed" topic stores it.
	createTopic(t, adm, "compression-limit", 1, map[string]*string{"compression.type": strp("uncompressed"), "max.message.bytes": strp("4096")})
	big, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
		PartitionLeaderEpoch: -1, Compression: record.CodecGzip, Records: []record.Record{{Value: bytes.Repeat([]byte("a"), 64<<10)}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(big) > 4096 {
		t.Fatalf("the compressed batch is %d bytes", len(big))
	}
	if rp := rawProduce(t, cl, "compression-limit", big); rp.ErrorCode != kerr.MessageTooLarge.Code {
		t.Errorf("a batch over max.message.bytes once uncompressed: code %d, want MESSAGE_TOO_LARGE", rp.ErrorCode)
	}

	// compression.gzip.level: the same batch stored at levels 1 and 9.
	var text []byte
	for i := range 2000 {
		text = fmt.Appendf(text, "line %d of a compressible value, %d; ", i, i%13)
	}
	plain, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
		PartitionLeaderEpoch: -1, Records: []record.Record{{Value: text}}})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for _, level := range []string{"1", "9"} {
		topic := "compression-gzip-" + level
		createTopic(t, adm, topic, 1, map[string]*string{"compression.type": strp("gzip"), "compression.gzip.level": strp(level)})
		if rp := rawProduce(t, cl, topic, plain); rp.ErrorCode != 0 {
			t.Fatalf("produce to %s: code %d", topic, rp.ErrorCode)
		}
		stored[level] = int(storedBatchLength(t, cl, topic))
	}
	if stored["9"] >= stored["1"] {
		t.Errorf("gzip level 9 stored %d bytes, level 1 %d", stored["9"], stored["1"])
	}
	res, err := adm.CreateTopic(testCtx(t, 5*time.Second), 1, 1, map[string]*string{"compression.gzip.level": strp("0")}, "compression-gzip-0")
	if err == nil {
		err = res.Err
	}
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Errorf("gzip level 0: %v, want INVALID_CONFIG", err)
	}

	// zstd and the versions older than it.
	old := kversion.Stable()
	old.SetMaxKeyVersion(0, 6) // Produce
	old.SetMaxKeyVersion(1, 9) // Fetch
	oldCl := newClient(t, n, kgo.MaxVersions(old))
	zstd, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
		PartitionLeaderEpoch: -1, Compression: record.CodecZstd, Records: []record.Record{{Value: []byte("z")}}})
	if err != nil {
		t.Fatal(err)
	}
	if rp := rawProduce(t, oldCl, "compression-producer", zstd); rp.ErrorCode != kerr.UnsupportedCompressionType.Code {
		t.Errorf("zstd in Produce v6: code %d, want UNSUPPORTED_COMPRESSION_TYPE", rp.ErrorCode)
	}
	if rp := rawProduce(t, cl, "compression-producer", zstd); rp.ErrorCode != 0 {
		t.Errorf("zstd in a current Produce: code %d", rp.ErrorCode)
	}
	fetchCode := func(topic string) int16 { return fetch0(t, oldCl, topic).ErrorCode }
	if code := fetchCode("compression-zstd"); code != kerr.UnsupportedCompressionType.Code {
		t.Errorf("Fetch v9 of a zstd topic: code %d, want UNSUPPORTED_COMPRESSION_TYPE", code)
	}
	if code := fetchCode("compression-gzip"); code != 0 {
		t.Errorf("Fetch v9 of a gzip topic: code %d", code)
	}
}
