package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ackedAt is where an acknowledgement put a record: partition, offset.
type ackedAt [2]int64

// chunkProducer writes the records k<i>/v<i> for from <= i < to and returns
// where each value was acknowledged; it returns only when all are.
type chunkProducer func(ctx context.Context, from, to int) (map[string]ackedAt, error)

// clusterChecks is the Go half of the cluster phase (run.sh starts three
// nodes and sets $INTEROP_FAULT): for franz-go, sarama and kafka-go an acks=all
// producer writes to an RF=3 topic while the leader of partition 0 is killed
// with kill -9; every acknowledged record must then be read back at the
// offset its acknowledgement named.
func clusterChecks() {
	leaderKillCheck("franz-go", true, func(topic string) (chunkProducer, func(), error) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic),
			kgo.MetadataMinAge(250*time.Millisecond), kgo.RetryTimeout(60*time.Second))
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context, from, to int) (map[string]ackedAt, error) {
			rs := make([]*kgo.Record, 0, to-from)
			for j := from; j < to; j++ {
				rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", j)), Value: []byte(fmt.Sprintf("v%d", j))})
			}
			if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				return nil, err
			}
			acked := map[string]ackedAt{}
			for _, r := range rs {
				acked[string(r.Value)] = ackedAt{int64(r.Partition), r.Offset}
			}
			return acked, nil
		}, cl.Close, nil
	})
	leaderKillCheck("sarama", true, saramaClusterProducer)
	// kafka-go has no idempotent producer: a batch whose acknowledgement
	// the kill lost is written again by the retry, so the check allows
	// extra copies (at other offsets than the acknowledged one).
	leaderKillCheck("kafka-go", false, kafkaGoClusterProducer)
}

// leaderKillCheck creates an RF=3 topic (min.insync.replicas=2), produces
// 3,000 keyed records in chunks of 100 with the client's producer and kills
// the leader of partition 0 after the first 1,000. It then reads the topic
// to its end with franz-go: every acknowledged value must be at the offset
// its acknowledgement named, nothing unacknowledged may appear, and, with
// exactlyOnce (an idempotent producer), no value twice.
func leaderKillCheck(client string, exactlyOnce bool, start func(topic string) (chunkProducer, func(), error)) {
	check(client, "cluster leader kill", 150*time.Second, func(ctx context.Context) (string, error) {
		topic := "interop-cluster-" + client + "-" + run
		cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap, ",")...), kgo.RetryTimeout(60*time.Second))
		if err != nil {
			return "", err
		}
		defer cl.Close()
		if err := createTopic(ctx, cl, topic, 3, 3); err != nil {
			return "", err
		}
		leader, err := partitionLeader(ctx, cl, topic, 0)
		if err != nil {
			return "", err
		}
		produce, stop, err := start(topic)
		if err != nil {
			return "", err
		}
		defer stop()
		const total, chunk = 3000, 100
		acked := map[string]ackedAt{}
		var killedAt time.Time
		var resumed time.Duration
		for i := 0; i < total; i += chunk {
			if i == total/3 {
				if out, err := exec.CommandContext(ctx, "bash", "-c", os.Getenv("INTEROP_FAULT")+" "+fmt.Sprint(leader)).CombinedOutput(); err != nil {
					return "", fmt.Errorf("fault command: %v: %s", err, out)
				}
				killedAt = time.Now()
			}
			got, err := produce(ctx, i, i+chunk)
			if err != nil {
				return "", fmt.Errorf("produce %d..%d: %w", i, i+chunk, err)
			}
			if len(got) != chunk {
				return "", fmt.Errorf("produce %d..%d: %d acknowledged", i, i+chunk, len(got))
			}
			if !killedAt.IsZero() && resumed == 0 {
				resumed = time.Since(killedAt)
			}
			for v, at := range got {
				acked[v] = at
			}
		}
		dups, err := readBack(ctx, topic, acked, exactlyOnce)
		if err != nil {
			return "", err
		}
		what := "idempotent acks=all records"
		copies := ", each read back once at its acked offset"
		if !exactlyOnce {
			what = "acks=all records (retries, no idempotence)"
			copies = fmt.Sprintf(", each read back at its acked offset, %d extra copies from retries", dups)
		}
		return fmt.Sprintf("3 nodes, RF=3: %d %s through kill -9 of leader %d (first ack %.1fs after the kill)%s",
			total, what, leader, resumed.Seconds(), copies), nil
	})
}

// readBack reads topic from the start to its end offsets and checks it
// against acked; it returns how many records were extra copies of an
// acknowledged value (an error with exactlyOnce).
func readBack(ctx context.Context, topic string, acked map[string]ackedAt, exactlyOnce bool) (int, error) {
	consumer, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer consumer.Close()
	end, err := endOffsets(ctx, consumer, topic)
	if err != nil {
		return 0, err
	}
	atAck := map[string]bool{}
	var read int64
	dups := 0
	for read < end {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, fmt.Errorf("read back %d of %d records", read, end)
		}
		var bad error
		fs.EachRecord(func(r *kgo.Record) {
			read++
			v := string(r.Value)
			want, ok := acked[v]
			switch {
			case !ok:
				bad = fmt.Errorf("read %q at %d/%d, never acknowledged", v, r.Partition, r.Offset)
			case want == ackedAt{int64(r.Partition), r.Offset}:
				atAck[v] = true
			case exactlyOnce:
				bad = fmt.Errorf("%q at %d/%d, acknowledged at %d/%d", v, r.Partition, r.Offset, want[0], want[1])
			default:
				dups++
			}
		})
		if bad != nil {
			return 0, bad
		}
	}
	if len(atAck) != len(acked) {
		return 0, fmt.Errorf("%d of %d acknowledged records at their acknowledged offsets (%d records in the topic)", len(atAck), len(acked), end)
	}
	return dups, nil
}

func createTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32, rf int16) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = topic, partitions, rf
	minISR := "2"
	cfg := kmsg.NewCreateTopicsRequestTopicConfig()
	cfg.Name, cfg.Value = "min.insync.replicas", &minISR
	t.Configs = append(t.Configs, cfg)
	req.Topics = append(req.Topics, t)
	req.TimeoutMillis = 30000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if code := resp.Topics[0].ErrorCode; code != 0 {
		return fmt.Errorf("create %s: error code %d", topic, code)
	}
	return nil
}

// partitionLeader polls Metadata until the partition has a leader.
func partitionLeader(ctx context.Context, cl *kgo.Client, topic string, partition int32) (int32, error) {
	for {
		req := kmsg.NewPtrMetadataRequest()
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = &topic
		req.Topics = append(req.Topics, t)
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && len(resp.Topics) == 1 && int(partition) < len(resp.Topics[0].Partitions) {
			if p := resp.Topics[0].Partitions[partition]; p.ErrorCode == 0 && p.Leader >= 0 {
				return p.Leader, nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("no leader for %s-%d: %v", topic, partition, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// endOffsets sums the end offsets of the topic's three partitions, asking
// again while a leader is unreachable (the killed node may still be coming
// back, and a client's metadata may still name it).
func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (int64, error) {
	for {
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for p := int32(0); p < 3; p++ {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp = p, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		var end int64
		if err == nil {
			for _, p := range resp.Topics[0].Partitions {
				if p.ErrorCode != 0 {
					err = fmt.Errorf("end offset of partition %d: error code %d", p.Partition, p.ErrorCode)
					break
				}
				end += p.Offset
			}
		}
		if err == nil {
			return end, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("end offsets: %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
