package node_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestE2EEdgeOffsets covers offsets at and past the ends of a partition.
func TestE2EEdgeOffsets(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	const topic = "edges"
	createTopic(t, adm, topic, 1, nil)

	t.Run("empty partition max timestamp", func(t *testing.T) {
		got := rawListOffset(t, cl, topic, 0, -3)
		if got.ErrorCode != 0 || got.Offset != -1 || got.Timestamp != -1 {
			t.Fatalf("-3 on an empty partition: %v offset %d ts %d, want -1 -1",
				kerr.ErrorForCode(got.ErrorCode), got.Offset, got.Timestamp)
		}
	})
	p := newClient(t, n, kgo.DefaultProduceTopic(topic))
	ctx := testCtx(t, 20*time.Second)
	for i := range 3 {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("fetch at high watermark", func(t *testing.T) {
		code, fp := fetchErr(t, cl, topic, 0, 3)
		if code != 0 || len(fp.RecordBatches) != 0 || fp.HighWatermark != 3 {
			t.Fatalf("fetch at the end: %v %d bytes hw %d", kerr.ErrorForCode(code), len(fp.RecordBatches), fp.HighWatermark)
		}
	})
	t.Run("fetch past high watermark", func(t *testing.T) {
		if code, _ := fetchErr(t, cl, topic, 0, 4); code != kerr.OffsetOutOfRange.Code {
			t.Fatalf("fetch past the end: %v, want OFFSET_OUT_OF_RANGE", kerr.ErrorForCode(code))
		}
	})
	t.Run("fetch mid batch", func(t *testing.T) {
		code, fp := fetchErr(t, cl, topic, 0, 1)
		if code != 0 || len(fp.RecordBatches) == 0 {
			t.Fatalf("fetch at 1: %v, %d bytes", kerr.ErrorForCode(code), len(fp.RecordBatches))
		}
	})
	t.Run("unknown partition", func(t *testing.T) {
		if got := rawListOffset(t, cl, topic, 7, -1); got.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("ListOffsets on partition 7: %v", kerr.ErrorForCode(got.ErrorCode))
		}
		if code, _ := fetchErr(t, cl, topic, 7, 0); code != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("Fetch on partition 7: %v", kerr.ErrorForCode(code))
		}
		if r := rawProduceTo(t, cl, topic, 7, rawBatch(t, -1, -1, -1, 1, "x")); r.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("Produce to partition 7: %v", kerr.ErrorForCode(r.ErrorCode))
		}
	})
	t.Run("delete records past the end", func(t *testing.T) {
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 10})
		dr, err := adm.DeleteRecords(ctx, offs)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := dr.Lookup(topic, 0); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
			t.Fatalf("DeleteRecords past the high watermark: %v, want OFFSET_OUT_OF_RANGE", r.Err)
		}
	})
	t.Run("delete records to the end", func(t *testing.T) {
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: -1})
		dr, err := adm.DeleteRecords(ctx, offs)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := dr.Lookup(topic, 0); r.Err != nil || r.LowWatermark != 3 {
			t.Fatalf("DeleteRecords(-1): %v low watermark %d, want 3", r.Err, r.LowWatermark)
		}
		r := &kgo.Record{Value: []byte("after")}
		if err := p.ProduceSync(ctx, r).FirstErr(); err != nil || r.Offset != 3 {
			t.Fatalf("produce after deleting everything: offset %d err %v", r.Offset, err)
		}
	})
}

func rawListOffset(t *testing.T, cl *kgo.Client, topic string, partition int32, ts int64) kmsg.ListOffsetsResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = partition
	rp.Timestamp = ts
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := rawRequest[*kmsg.ListOffsetsResponse](t, cl, req)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("ListOffsets: malformed response")
	}
	return resp.Topics[0].Partitions[0]
}

// TestE2EIdempotentWindow checks a retry of an older batch within Kafka's
// five-batch window is answered as a duplicate, not written again.
func TestE2EIdempotentWindow(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	const topic = "window"
	createTopic(t, adm, topic, 1, nil)
	pid, epoch := initProducerID(t, cl)
	var batches [][]byte
	var bases []int64
	for i := range 4 {
		b := rawBatch(t, pid, epoch, int32(i*2), 2, "w")
		batches = append(batches, b)
		r := rawProduceTo(t, cl, topic, 0, append([]byte(nil), b...))
		if r.ErrorCode != 0 {
			t.Fatalf("batch %d: %v", i, kerr.ErrorForCode(r.ErrorCode))
		}
		bases = append(bases, r.BaseOffset)
	}
	end := endOffset(t, adm, topic, 0)
	for i := range 3 {
		r := rawProduceTo(t, cl, topic, 0, append([]byte(nil), batches[i]...))
		if r.ErrorCode != 0 && r.ErrorCode != kerr.DuplicateSequenceNumber.Code {
			t.Errorf("retry of batch %d: %v", i, kerr.ErrorForCode(r.ErrorCode))
		}
		if r.ErrorCode == 0 && r.BaseOffset != bases[i] {
			t.Errorf("retry of batch %d answered base %d, originally %d", i, r.BaseOffset, bases[i])
		}
	}
	if after := endOffset(t, adm, topic, 0); after != end {
		t.Fatalf("retries of older batches were written: end offset %d -> %d", end, after)
	}
}

// TestE2EBrokerMessageMaxBytes checks the broker-wide message.max.bytes
// applies to topics without an override, and a topic override wins.
func TestE2EBrokerMessageMaxBytes(t *testing.T) {
	n := startNode(t, t.TempDir(), map[string]string{"message.max.bytes": "2000"})
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "default-limit", 1, nil)
	createTopic(t, adm, "raised-limit", 1, map[string]*string{"max.message.bytes": strp("100000")})
	p := newClient(t, n, kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx := testCtx(t, 20*time.Second)
	big := make([]byte, 5000)
	err := p.ProduceSync(ctx, &kgo.Record{Topic: "default-limit", Value: big}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Errorf("5000 bytes under message.max.bytes=2000: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "raised-limit", Value: big}).FirstErr(); err != nil {
		t.Errorf("5000 bytes under a topic max.message.bytes=100000: %v", err)
	}
}

// TestE2ERestartAfterAdmin checks DeleteRecords, DeleteTopics and
// CreatePartitions survive a restart.
func TestE2ERestartAfterAdmin(t *testing.T) {
	dir := t.TempDir()
	props := map[string]string{"log.segment.bytes": "4096"}
	n := startNode(t, dir, props)
	adm, _ := newAdmin(t, n)
	ctx := testCtx(t, 60*time.Second)
	createTopic(t, adm, "trimmed", 1, nil)
	createTopic(t, adm, "gone", 1, nil)
	createTopic(t, adm, "grown", 1, nil)
	p := newClient(t, n, kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 50 {
		r := &kgo.Record{Topic: "trimmed", Value: make([]byte, 500)}
		r.Value[0] = byte(i)
		if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "gone", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "trimmed", Partition: 0, At: 37})
	if dr, err := adm.DeleteRecords(ctx, offs); err != nil || dr.Error() != nil {
		t.Fatalf("delete records: %v %v", err, dr.Error())
	}
	if dr, err := adm.DeleteTopic(ctx, "gone"); err != nil || dr.Err != nil {
		t.Fatalf("delete topic: %v %v", err, dr.Err)
	}
	if cr, err := adm.UpdatePartitions(ctx, 4, "grown"); err != nil || cr.Error() != nil {
		t.Fatalf("create partitions: %v %v", err, cr.Error())
	}
	p.Close()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n2 := startNode(t, dir, props)
	adm2, cl2 := newAdmin(t, n2)
	lo, err := adm2.ListStartOffsets(ctx, "trimmed")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lo.Lookup("trimmed", 0); o.Offset != 37 {
		t.Errorf("log start offset after restart: %d, want 37", o.Offset)
	}
	if end := endOffset(t, adm2, "trimmed", 0); end != 50 {
		t.Errorf("end offset after restart: %d, want 50", end)
	}
	got := consumePartitions(t, n2, "trimmed", []int32{0}, 13)
	if got[0].Offset != 37 || got[0].Value[0] != 37 {
		t.Errorf("first record after restart: offset %d value %d", got[0].Offset, got[0].Value[0])
	}
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range []string{"gone", "grown"} {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = strp(name)
		req.Topics = append(req.Topics, mt)
	}
	resp := rawRequest[*kmsg.MetadataResponse](t, cl2, req)
	for _, mt := range resp.Topics {
		switch *mt.Topic {
		case "gone":
			if mt.ErrorCode != kerr.UnknownTopicOrPartition.Code {
				t.Errorf("deleted topic after restart: %v", kerr.ErrorForCode(mt.ErrorCode))
			}
		case "grown":
			if mt.ErrorCode != 0 || len(mt.Partitions) != 4 {
				t.Errorf("grown topic after restart: %v, %d partitions", kerr.ErrorForCode(mt.ErrorCode), len(mt.Partitions))
			}
		}
	}
}

// TestE2EACLsSecurityDisabled: the ACL APIs answer as a Kafka broker
// without an authorizer: SECURITY_DISABLED for a describe, and for each
// creation and deletion filter.
func TestE2EACLsSecurityDisabled(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	ctx := testCtx(t, 10*time.Second)
	b := kadm.NewACLs().Topics("t").Allow("User:alice").AllowHosts().Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)
	described, err := adm.DescribeACLs(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(described) != 1 || !errors.Is(described[0].Err, kerr.SecurityDisabled) {
		t.Fatalf("DescribeACLs: %+v, want SECURITY_DISABLED", described)
	}
	created, err := adm.CreateACLs(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 1 || !errors.Is(created[0].Err, kerr.SecurityDisabled) {
		t.Fatalf("CreateACLs: %+v, want SECURITY_DISABLED", created)
	}
	deleted, err := adm.DeleteACLs(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || !errors.Is(deleted[0].Err, kerr.SecurityDisabled) {
		t.Fatalf("DeleteACLs: %+v, want SECURITY_DISABLED", deleted)
	}
}

// TestE2EMetadataByTopicIDWithEmptyName: the Java admin client describes
// topics by id with an empty name beside the id; Kafka looks the id up
// whenever one is given (gregor answered INVALID_TOPIC_EXCEPTION for the
// empty name, and the client failed).
func TestE2EMetadataByTopicIDWithEmptyName(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	createTopic(t, adm, "by-id", 2, nil)
	details, err := adm.ListTopics(testCtx(t, 10*time.Second), "by-id")
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic, mt.TopicID = kmsg.StringPtr(""), details["by-id"].ID
	req.Topics = append(req.Topics, mt)
	resp := rawRequest[*kmsg.MetadataResponse](t, cl, req)
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || resp.Topics[0].Topic == nil ||
		*resp.Topics[0].Topic != "by-id" || len(resp.Topics[0].Partitions) != 2 {
		t.Fatalf("metadata by id with an empty name: %+v", resp.Topics)
	}
}
