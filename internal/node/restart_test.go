package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestE2ERestart closes a node and starts it again on the same data dir:
// topics, ids, configs, records, offsets and producer state survive, and
// producer ids are never handed out twice.
func TestE2ERestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	adm, cl := newAdmin(t, n)
	ctx := testCtx(t, 60*time.Second)
	topics := map[string]int32{"restart-a": 3, "restart-b": 1}
	for name, parts := range topics {
		createTopic(t, adm, name, parts, map[string]*string{"retention.ms": strp("7200000"), "max.message.bytes": strp("20000")})
	}
	ids := map[string][16]byte{}
	for name := range topics {
		ids[name] = rawTopicID(t, cl, name)
	}
	p := newClient(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	const perPartition = 20
	var sent []*kgo.Record
	for name, parts := range topics {
		for part := range parts {
			for i := range perPartition {
				sent = append(sent, &kgo.Record{Topic: name, Partition: part, Key: []byte(fmt.Sprint(i)),
					Value: []byte(fmt.Sprintf("%s/%d/%d", name, part, i))})
			}
		}
	}
	if err := p.ProduceSync(ctx, sent...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	pid, pepoch, _ := p.ProducerID(ctx)
	before := describeProducers(t, cl, "restart-a", 1)
	seenPIDs := map[int64]bool{pid: true}
	for range 3 {
		id, _ := initProducerID(t, cl)
		seenPIDs[id] = true
	}
	p.Close()
	cl.Close()
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	n2 := startNode(t, dir, nil)
	adm2, cl2 := newAdmin(t, n2)
	for name, parts := range topics {
		if id := rawTopicID(t, cl2, name); id != ids[name] {
			t.Errorf("%s: topic id %x after restart, was %x", name, id, ids[name])
		}
		rcs, err := adm2.DescribeTopicConfigs(ctx, name)
		if c := findConfig(t, rcs, err, "retention.ms"); c.MaybeValue() != "7200000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
			t.Errorf("%s retention.ms after restart: %q (%v)", name, c.MaybeValue(), c.Source)
		}
		rcs, err = adm2.DescribeTopicConfigs(ctx, name)
		if c := findConfig(t, rcs, err, "max.message.bytes"); c.MaybeValue() != "20000" {
			t.Errorf("%s max.message.bytes after restart: %q", name, c.MaybeValue())
		}
		var all []int32
		for part := range parts {
			all = append(all, part)
			if end := endOffset(t, adm2, name, part); end != perPartition {
				t.Errorf("%s[%d]: end offset %d after restart, want %d", name, part, end, perPartition)
			}
		}
		got := consumePartitions(t, n2, name, all, int(parts)*perPartition)
		next := map[int32]int{}
		for _, r := range got {
			want := fmt.Sprintf("%s/%d/%d", name, r.Partition, next[r.Partition])
			if string(r.Value) != want || r.Offset != int64(next[r.Partition]) {
				t.Fatalf("%s[%d] offset %d = %q, want %q at %d", name, r.Partition, r.Offset, r.Value, want, next[r.Partition])
			}
			next[r.Partition]++
		}
	}
	after := describeProducers(t, cl2, "restart-a", 1)
	if len(after) != 1 || len(before) != 1 || after[0].ProducerID != pid || after[0].LastSequence != before[0].LastSequence ||
		after[0].ProducerEpoch != int32(pepoch) {
		t.Errorf("producer state: before restart %+v, after %+v", before, after)
	}
	// The same producer's next sequence is accepted, a duplicate of the
	// last one is not written again: the state is live, not just reported.
	last := before[0].LastSequence
	if r := rawProduceTo(t, cl2, "restart-a", 1, rawBatch(t, pid, pepoch, last+1, 1, "after-restart")); r.ErrorCode != 0 {
		t.Errorf("next sequence %d after restart: error code %d", last+1, r.ErrorCode)
	}
	if r := rawProduceTo(t, cl2, "restart-a", 1, rawBatch(t, pid, pepoch, last+3, 1, "gap")); r.ErrorCode == 0 {
		t.Errorf("sequence gap after restart accepted")
	}
	for range 3 {
		id, _ := initProducerID(t, cl2)
		if seenPIDs[id] {
			t.Fatalf("InitProducerId after restart returned %d, handed out before the restart", id)
		}
		seenPIDs[id] = true
	}
	// New writes continue the offsets.
	p2 := newClient(t, n2, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	r := &kgo.Record{Topic: "restart-b", Partition: 0, Value: []byte("more")}
	if err := p2.ProduceSync(ctx, r).FirstErr(); err != nil || r.Offset != perPartition {
		t.Fatalf("produce after restart: offset %d err %v, want offset %d", r.Offset, err, perPartition)
	}
}

// rawProduceTo sends one batch to a partition with acks=all.
func rawProduceTo(t *testing.T, cl *kgo.Client, topic string, partition int32, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := rawRequest[*kmsg.ProduceResponse](t, cl, req)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("produce: malformed response")
	}
	return resp.Topics[0].Partitions[0]
}

// TestBrokerUnfencedWithoutWaitingAnInterval: a starting broker is fenced
// until its metadata reaches its own registration, which takes
// milliseconds; it heartbeats again at once to be unfenced rather than after
// broker.heartbeat.interval.ms. With a two-minute interval each node of a
// new cluster, and a restarted one, used to wait two minutes to serve (here:
// past the start timeout).
func TestBrokerUnfencedWithoutWaitingAnInterval(t *testing.T) {
	props := map[string]string{"broker.heartbeat.interval.ms": "120000", "broker.session.timeout.ms": "300000"}
	c := startCluster(t, props)
	if err := c.nodes[1].Close(); err != nil {
		t.Fatal(err)
	}
	n := restartNode(t, c, 1, props)
	checkFor(t, "three brokers after the restart", func() bool {
		brokers, _, err := describe(t, n)
		return err == nil && len(brokers) == 3
	})
}
