package node_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestE2EConfigEdges covers config errors and dynamic broker configs
// flowing into topic defaults.
func TestE2EConfigEdges(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	ctx := testCtx(t, 30*time.Second)
	const topic = "edgy"
	createTopic(t, adm, topic, 1, nil)

	t.Run("unknown topic", func(t *testing.T) {
		rcs, err := adm.DescribeTopicConfigs(ctx, "no-such-topic")
		if err == nil && (len(rcs) != 1 || !errors.Is(rcs[0].Err, kerr.UnknownTopicOrPartition)) {
			t.Fatalf("describe configs of a missing topic: %+v", rcs)
		}
	})
	t.Run("incremental unknown config", func(t *testing.T) {
		ar, _ := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "no.such", Value: strp("1")}}, topic)
		if len(ar) != 1 || !errors.Is(ar[0].Err, kerr.InvalidConfig) {
			t.Fatalf("unknown config: %+v, want INVALID_CONFIG", ar)
		}
	})
	t.Run("validate only alter", func(t *testing.T) {
		ar, err := adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: strp("1000")}}, topic)
		if err != nil || len(ar) != 1 || ar[0].Err != nil {
			t.Fatalf("validate-only alter: %v %+v", err, ar)
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if c := findConfig(t, rcs, err, "retention.ms"); c.Source != kmsg.ConfigSourceDefaultConfig {
			t.Fatalf("validate-only alter changed retention.ms: %q (%v)", c.MaybeValue(), c.Source)
		}
	})
	t.Run("dynamic default broker config", func(t *testing.T) {
		// Cluster-wide default for all brokers: resource name "".
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType = kmsg.ConfigResourceTypeBroker
		rr.ResourceName = ""
		rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		rc.Name, rc.Value, rc.Op = "log.retention.ms", strp("3600000"), kmsg.IncrementalAlterConfigOpSet
		rr.Configs = append(rr.Configs, rc)
		req.Resources = append(req.Resources, rr)
		resp := rawRequest[*kmsg.IncrementalAlterConfigsResponse](t, cl, req)
		if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
			t.Fatalf("alter cluster default: %+v", resp.Resources)
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		c := findConfig(t, rcs, err, "retention.ms")
		if c.MaybeValue() != "3600000" || c.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
			t.Fatalf("retention.ms after a cluster default: %q (%v), want 3600000 DYNAMIC_DEFAULT_BROKER_CONFIG", c.MaybeValue(), c.Source)
		}
	})
	t.Run("dynamic num.partitions", func(t *testing.T) {
		ar, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "num.partitions", Value: strp("5")}}, 1)
		if err == nil && (len(ar) != 1 || ar[0].Err != nil) {
			err = ar[0].Err
		}
		if err != nil {
			t.Fatalf("alter num.partitions: %v", err)
		}
		rcs, err := adm.DescribeBrokerConfigs(ctx, 1)
		if c := findConfig(t, rcs, err, "num.partitions"); c.MaybeValue() != "5" || c.Source != kmsg.ConfigSourceDynamicBrokerConfig {
			t.Fatalf("num.partitions: %q (%v)", c.MaybeValue(), c.Source)
		}
		r, err := adm.CreateTopic(ctx, -1, -1, nil, "defaulted")
		if err == nil {
			err = r.Err
		}
		if err != nil {
			t.Fatalf("create with default partitions: %v", err)
		}
		td, err := adm.ListTopics(ctx, "defaulted")
		if err != nil || len(td["defaulted"].Partitions) != 5 {
			t.Fatalf("topic created with -1 partitions: %v, %d partitions, want 5", err, len(td["defaulted"].Partitions))
		}
	})
	t.Run("duplicate in one request", func(t *testing.T) {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = 10000
		for range 2 {
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "twice", 1, 1
			req.Topics = append(req.Topics, rt)
		}
		resp := rawRequest[*kmsg.CreateTopicsResponse](t, cl, req)
		for _, rt := range resp.Topics {
			if rt.ErrorCode != kerr.InvalidRequest.Code {
				t.Errorf("topic named twice in one request: %v, want INVALID_REQUEST", kerr.ErrorForCode(rt.ErrorCode))
			}
		}
	})
}
