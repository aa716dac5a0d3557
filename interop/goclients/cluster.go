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

// clusterChecks is the franz-go half of the cluster phase (run.sh starts
// three nodes and sets $INTEROP_FAULT): an idempotent acks=all producer
// writes to an RF=3 topic while the leader of partition 0 is killed with
// kill -9; every acknowledged record must then be read back exactly once, at
// the offset its acknowledgement named.
func clusterChecks() {
	check("franz-go", "cluster leader kill", 150*time.Second, func(ctx context.Context) (string, error) {
		topic := "interop-cluster-franz-" + run
		cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic),
			kgo.MetadataMinAge(250*time.Millisecond), kgo.RetryTimeout(60*time.Second))
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
		const total, chunk = 3000, 100
		acked := map[string][2]int64{} // value -> partition, offset
		var killedAt time.Time
		var resumed time.Duration
		for i := 0; i < total; i += chunk {
			if i == total/3 {
				if out, err := exec.CommandContext(ctx, "bash", "-c", os.Getenv("INTEROP_FAULT")+" "+fmt.Sprint(leader)).CombinedOutput(); err != nil {
					return "", fmt.Errorf("fault command: %v: %s", err, out)
				}
				killedAt = time.Now()
			}
			rs := make([]*kgo.Record, 0, chunk)
			for j := i; j < i+chunk; j++ {
				rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", j)), Value: []byte(fmt.Sprintf("v%d", j))})
			}
			if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				return "", fmt.Errorf("produce %d..%d: %w", i, i+chunk, err)
			}
			if !killedAt.IsZero() && resumed == 0 {
				resumed = time.Since(killedAt)
			}
			for _, r := range rs {
				acked[string(r.Value)] = [2]int64{int64(r.Partition), r.Offset}
			}
		}
		consumer, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
			kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			return "", err
		}
		defer consumer.Close()
		seen := map[string]bool{}
		for len(seen) < total {
			fs := consumer.PollFetches(ctx)
			if ctx.Err() != nil {
				return "", fmt.Errorf("read back %d of %d records", len(seen), total)
			}
			var bad error
			fs.EachRecord(func(r *kgo.Record) {
				v := string(r.Value)
				want, ok := acked[v]
				switch {
				case !ok:
					bad = fmt.Errorf("read %q, never acknowledged", v)
				case seen[v]:
					bad = fmt.Errorf("read %q twice", v)
				case want != [2]int64{int64(r.Partition), r.Offset}:
					bad = fmt.Errorf("%q at %d/%d, acknowledged at %d/%d", v, r.Partition, r.Offset, want[0], want[1])
				}
				seen[v] = true
			})
			if bad != nil {
				return "", bad
			}
		}
		return fmt.Sprintf("3 nodes, RF=3: %d idempotent acks=all records through kill -9 of leader %d (first ack %.1fs after the kill), each read back once at its acked offset", total, leader, resumed.Seconds()), nil
	})
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
