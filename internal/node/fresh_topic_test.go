package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawMetadata asks for one topic, with or without auto creation.
func rawMetadata(t *testing.T, cl *kgo.Client, topic string, autoCreate bool) kmsg.MetadataResponseTopic {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = autoCreate
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = strp(topic)
	req.Topics = append(req.Topics, mt)
	resp := rawRequest[*kmsg.MetadataResponse](t, cl, req)
	if len(resp.Topics) != 1 || resp.Topics[0].Topic == nil || *resp.Topics[0].Topic != topic {
		t.Fatalf("metadata for %q: malformed response %+v", topic, resp.Topics)
	}
	return resp.Topics[0]
}

// TestE2EMetadataAutoCreateAnswer checks Kafka's answer to the Metadata
// request that auto-creates a topic: LEADER_NOT_AVAILABLE and no partitions,
// also when the name comes back after DeleteTopics; a client retrying its
// metadata then produces at once.
func TestE2EMetadataAutoCreateAnswer(t *testing.T) {
	n := startNode(t, t.TempDir(), map[string]string{"num.partitions": "2"})
	adm, cl := newAdmin(t, n)
	const topic = "fresh"
	for round := range 2 {
		mt := rawMetadata(t, cl, topic, true)
		if mt.ErrorCode != kerr.LeaderNotAvailable.Code || len(mt.Partitions) != 0 || mt.IsInternal {
			t.Fatalf("round %d: auto-create answer %v with %d partitions (internal %v), want LEADER_NOT_AVAILABLE and none",
				round, kerr.ErrorForCode(mt.ErrorCode), len(mt.Partitions), mt.IsInternal)
		}
		p := newClient(t, n, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		for part := range int32(2) {
			r := &kgo.Record{Partition: part, Value: []byte("v")}
			if err := p.ProduceSync(testCtx(t, 10*time.Second), r).FirstErr(); err != nil || r.Offset != 0 {
				t.Fatalf("round %d: produce to %s[%d]: offset %d err %v", round, topic, part, r.Offset, err)
			}
		}
		p.Close()
		mt = rawMetadata(t, cl, topic, true)
		if mt.ErrorCode != 0 || len(mt.Partitions) != 2 {
			t.Fatalf("round %d: metadata after produce: %v, %d partitions", round, kerr.ErrorForCode(mt.ErrorCode), len(mt.Partitions))
		}
		for _, mp := range mt.Partitions {
			if mp.ErrorCode != 0 || mp.Leader != 1 {
				t.Fatalf("round %d: partition %d: %v leader %d", round, mp.Partition, kerr.ErrorForCode(mp.ErrorCode), mp.Leader)
			}
		}
		resp, err := adm.DeleteTopics(testCtx(t, 10*time.Second), topic)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("round %d: delete %s: %v", round, topic, err)
		}
	}
}

// TestE2EMetadataNamesOnlyReadyLeaders creates topics while another
// connection asks for their metadata as fast as it can: as soon as Metadata
// names a leader for a partition, a produce to that leader (no client retry)
// must succeed, never NOT_LEADER_OR_FOLLOWER.
func TestE2EMetadataNamesOnlyReadyLeaders(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	cl := newClient(t, n)
	for i := range 8 {
		topic := fmt.Sprintf("race-%d", i)
		created := make(chan error, 1)
		go func() {
			resp, err := adm.CreateTopic(testCtx(t, 10*time.Second), 4, 1, nil, topic)
			if err == nil {
				err = resp.Err
			}
			created <- err
		}()
		ready := map[int32]bool{}
		deadline := time.Now().Add(10 * time.Second)
		for len(ready) < 4 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: partitions ready %v before the deadline", topic, ready)
			}
			mt := rawMetadata(t, cl, topic, false)
			if mt.ErrorCode != 0 {
				if mt.ErrorCode != kerr.UnknownTopicOrPartition.Code {
					t.Fatalf("%s: %v", topic, kerr.ErrorForCode(mt.ErrorCode))
				}
				continue
			}
			for _, mp := range mt.Partitions {
				switch {
				case ready[mp.Partition]:
				case mp.ErrorCode == kerr.LeaderNotAvailable.Code:
					if mp.Leader != -1 {
						t.Fatalf("%s[%d]: LEADER_NOT_AVAILABLE names leader %d", topic, mp.Partition, mp.Leader)
					}
				case mp.ErrorCode != 0:
					t.Fatalf("%s[%d]: %v", topic, mp.Partition, kerr.ErrorForCode(mp.ErrorCode))
				default:
					rp := rawProduceTo(t, cl, topic, mp.Partition, rawBatch(t, -1, -1, -1, 1, "x"))
					if rp.ErrorCode != 0 {
						t.Fatalf("%s[%d]: produce right after Metadata named leader %d: %v",
							topic, mp.Partition, mp.Leader, kerr.ErrorForCode(rp.ErrorCode))
					}
					ready[mp.Partition] = true
				}
			}
		}
		if err := <-created; err != nil {
			t.Fatalf("create %s: %v", topic, err)
		}
	}
}
