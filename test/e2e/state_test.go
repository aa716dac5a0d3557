package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/record"
)

func request[R kmsg.Response](t *testing.T, cl *kgo.Client, req kmsg.Request) R {
	t.Helper()
	resp, err := cl.Broker(1).Request(testCtx(t, 15*time.Second), req)
	if err != nil {
		t.Fatalf("%T: %v", req, err)
	}
	return resp.(R)
}

func initPID(t *testing.T, cl *kgo.Client) int64 {
	t.Helper()
	resp := request[*kmsg.InitProducerIDResponse](t, cl, kmsg.NewPtrInitProducerIDRequest())
	if resp.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	return resp.ProducerID
}

func idempotentBatch(t *testing.T, pid int64, seq int32) []byte {
	t.Helper()
	b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: time.Now().UnixMilli(), ProducerID: pid,
		BaseSequence: seq, PartitionLeaderEpoch: -1,
		Records: []record.Record{{Value: []byte(fmt.Sprintf("seq-%d", seq))}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func produceRaw(t *testing.T, cl *kgo.Client, topic string, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.ProduceResponse](t, cl, req)
	return resp.Topics[0].Partitions[0]
}

func topicIDs(t *testing.T, cl *kgo.Client, topics ...string) map[string]kmsg.MetadataResponseTopic {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range topics {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = strp(name)
		req.Topics = append(req.Topics, mt)
	}
	out := map[string]kmsg.MetadataResponseTopic{}
	for _, mt := range request[*kmsg.MetadataResponse](t, cl, req).Topics {
		out[*mt.Topic] = mt
	}
	return out
}

// TestBinaryCrashState kills the broker right after metadata and producer
// state changes and checks all of them after the restart: topic ids and
// configs, deleted topics, the log start offset, idempotent producer state
// rebuilt without a clean-shutdown snapshot, and producer id blocks.
func TestBinaryCrashState(t *testing.T) {
	dir := t.TempDir()
	p := startBinary(t, dir)
	cl := newClient(t, p)
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, 60*time.Second)
	createTopic(t, p, "kept", 1, map[string]*string{"retention.ms": strp("86400000")})
	createTopic(t, p, "dropped", 2, nil)
	pid := initPID(t, cl)
	var bases []int64
	for seq := range int32(10) {
		r := produceRaw(t, cl, "kept", idempotentBatch(t, pid, seq))
		if r.ErrorCode != 0 {
			t.Fatalf("seq %d: %v", seq, kerr.ErrorForCode(r.ErrorCode))
		}
		bases = append(bases, r.BaseOffset)
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "kept", Partition: 0, At: 5})
	if dr, err := adm.DeleteRecords(ctx, offs); err != nil || dr.Error() != nil {
		t.Fatalf("delete records: %v %v", err, dr.Error())
	}
	if ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: strp("7200000")}}, "kept"); err != nil || ar[0].Err != nil {
		t.Fatalf("alter: %v %+v", err, ar)
	}
	if dr, err := adm.DeleteTopic(ctx, "dropped"); err != nil || dr.Err != nil {
		t.Fatalf("delete topic: %v %+v", err, dr)
	}
	seen := map[int64]bool{pid: true}
	for range 3 {
		seen[initPID(t, cl)] = true
	}
	keptID := topicIDs(t, cl, "kept")["kept"].TopicID
	cl.Close()
	p.kill()

	p2 := startBinary(t, dir)
	cl2 := newClient(t, p2)
	adm2 := kadm.NewClient(cl2)
	md := topicIDs(t, cl2, "kept", "dropped")
	if md["kept"].ErrorCode != 0 || md["kept"].TopicID != keptID {
		t.Errorf("kept after crash: %v id %x, want id %x", kerr.ErrorForCode(md["kept"].ErrorCode), md["kept"].TopicID, keptID)
	}
	if md["dropped"].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("deleted topic after crash: %v", kerr.ErrorForCode(md["dropped"].ErrorCode))
	}
	for _, part := range []string{"dropped-0", "dropped-1"} {
		if _, err := os.Stat(filepath.Join(dir, part)); err == nil {
			t.Errorf("directory %s of the deleted topic still exists after restart", part)
		}
	}
	rcs, err := adm2.DescribeTopicConfigs(ctx, "kept")
	if err != nil || len(rcs) != 1 {
		t.Fatalf("describe configs: %v", err)
	}
	for _, c := range rcs[0].Configs {
		if c.Key == "retention.ms" && c.MaybeValue() != "7200000" {
			t.Errorf("retention.ms after crash: %q, want 7200000", c.MaybeValue())
		}
	}
	lo, err := adm2.ListStartOffsets(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lo.Lookup("kept", 0); o.Offset != 5 {
		t.Errorf("log start offset after crash: %d, want 5", o.Offset)
	}
	if end := endOffsets(t, p2, "kept")[0]; end != 10 {
		t.Errorf("end offset after crash: %d, want 10", end)
	}
	dp := kmsg.NewPtrDescribeProducersRequest()
	dt := kmsg.NewDescribeProducersRequestTopic()
	dt.Topic, dt.Partitions = "kept", []int32{0}
	dp.Topics = append(dp.Topics, dt)
	dresp := request[*kmsg.DescribeProducersResponse](t, cl2, dp)
	if ps := dresp.Topics[0].Partitions[0].ActiveProducers; len(ps) != 1 || ps[0].ProducerID != pid || ps[0].LastSequence != 9 {
		t.Errorf("producers after crash: %+v, want id %d last sequence 9", ps, pid)
	}
	if r := produceRaw(t, cl2, "kept", idempotentBatch(t, pid, 9)); r.ErrorCode != 0 || r.BaseOffset != bases[9] {
		t.Errorf("retry of the last batch after crash: %v base %d, want success at %d", kerr.ErrorForCode(r.ErrorCode), r.BaseOffset, bases[9])
	}
	if r := produceRaw(t, cl2, "kept", idempotentBatch(t, pid, 10)); r.ErrorCode != 0 || r.BaseOffset != 10 {
		t.Errorf("next sequence after crash: %v base %d, want 10", kerr.ErrorForCode(r.ErrorCode), r.BaseOffset)
	}
	for range 3 {
		if id := initPID(t, cl2); seen[id] {
			t.Errorf("InitProducerId after crash returned %d again", id)
		}
	}
	// The name of the deleted topic is free again.
	createTopic(t, p2, "dropped", 1, nil)
	if end := endOffsets(t, p2, "dropped")[0]; end != 0 {
		t.Errorf("recreated topic has end offset %d", end)
	}
}
