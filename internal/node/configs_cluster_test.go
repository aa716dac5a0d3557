package node_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestClusterBrokerConfigsOnEveryBroker alters broker configs the way
// kafka-configs and kafkajs do, by sending each broker's resource to that
// broker. A broker that is not the active controller checks the broker
// resources itself (its own id or "", valid values) and forwards the rest,
// as Kafka's ConfigAdminManager.preprocess does: the controller used to
// check the resource against its own id and refused every other broker's
// (found by kafkajs's alterConfigs test).
func TestClusterBrokerConfigsOnEveryBroker(t *testing.T) {
	c := startCluster(t, nil)
	_, ctrl, err := describe(t, c.nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	var seeds []string
	for _, n := range c.nodes {
		seeds = append(seeds, n.KafkaAddr().String())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx := testCtx(t, 60*time.Second)
	adm, _ := newAdmin(t, c.nodes[0])
	createTopic(t, adm, "cfg", 1, nil)

	type change struct {
		typ            kmsg.ConfigResourceType
		resource, name string
		value          string
	}
	incremental := func(t *testing.T, to int32, changes ...change) []int16 {
		t.Helper()
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		for _, ch := range changes {
			r := kmsg.NewIncrementalAlterConfigsRequestResource()
			r.ResourceType, r.ResourceName = ch.typ, ch.resource
			rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			rc.Name, rc.Value, rc.Op = ch.name, strp(ch.value), kmsg.IncrementalAlterConfigOpSet
			r.Configs = append(r.Configs, rc)
			req.Resources = append(req.Resources, r)
		}
		resp, err := req.RequestWith(ctx, cl.Broker(int(to)))
		if err != nil {
			t.Fatalf("incremental alter configs to %d: %v", to, err)
		}
		if len(resp.Resources) != len(changes) {
			t.Fatalf("%d resources answered for %d", len(resp.Resources), len(changes))
		}
		var codes []int16
		for i, r := range resp.Resources {
			if r.ResourceType != changes[i].typ || r.ResourceName != changes[i].resource {
				t.Fatalf("answer %d is for %v %q, asked %v %q", i, r.ResourceType, r.ResourceName, changes[i].typ, changes[i].resource)
			}
			codes = append(codes, r.ErrorCode)
		}
		return codes
	}
	legacy := func(t *testing.T, to int32, ch change) int16 {
		t.Helper()
		req := kmsg.NewPtrAlterConfigsRequest()
		r := kmsg.NewAlterConfigsRequestResource()
		r.ResourceType, r.ResourceName = ch.typ, ch.resource
		rc := kmsg.NewAlterConfigsRequestResourceConfig()
		rc.Name, rc.Value = ch.name, strp(ch.value)
		r.Configs = append(r.Configs, rc)
		req.Resources = append(req.Resources, r)
		resp, err := req.RequestWith(ctx, cl.Broker(int(to)))
		if err != nil || len(resp.Resources) != 1 {
			t.Fatalf("alter configs to %d: %v %+v", to, err, resp)
		}
		return resp.Resources[0].ErrorCode
	}
	const broker, topic = kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeTopic

	for id := int32(1); id <= 3; id++ {
		self := strconv.Itoa(int(id))
		if code := incremental(t, id, change{broker, self, "log.retention.ms", "3600000"})[0]; code != 0 {
			t.Errorf("broker %d (controller %d), its own log.retention.ms: %v", id, ctrl, kerr.ErrorForCode(code))
		}
		if code := legacy(t, id, change{broker, self, "num.partitions", "4"}); code != 0 {
			t.Errorf("broker %d (controller %d), its own num.partitions with AlterConfigs: %v", id, ctrl, kerr.ErrorForCode(code))
		}
		other := strconv.Itoa(int(id%3 + 1))
		if code := incremental(t, id, change{broker, other, "log.retention.ms", "1"})[0]; code != kerr.InvalidRequest.Code {
			t.Errorf("broker %d (controller %d) altering broker %s: %v, want INVALID_REQUEST", id, ctrl, other, kerr.ErrorForCode(code))
		}
		if code := legacy(t, id, change{broker, other, "num.partitions", "9"}); code != kerr.InvalidRequest.Code {
			t.Errorf("broker %d (controller %d) altering broker %s with AlterConfigs: %v, want INVALID_REQUEST", id, ctrl, other, kerr.ErrorForCode(code))
		}
	}

	// One request mixing what the receiving broker answers and what it
	// forwards: the answers come back in the order asked.
	var follower int32 = 1
	if ctrl == 1 {
		follower = 2
	}
	self := strconv.Itoa(int(follower))
	codes := incremental(t, follower,
		change{broker, self, "num.partitions", "abc"},
		change{topic, "cfg", "retention.ms", "1000"},
		change{broker, "", "log.retention.ms", "7200000"},
		change{topic, "no-such-topic", "retention.ms", "1000"},
		change{broker, strconv.Itoa(int(ctrl)), "num.partitions", "2"},
	)
	want := []int16{kerr.InvalidRequest.Code, 0, 0, kerr.UnknownTopicOrPartition.Code, kerr.InvalidRequest.Code}
	for i := range want {
		if codes[i] != want[i] {
			t.Errorf("mixed request to broker %d, resource %d: %v, want %v", follower, i, kerr.ErrorForCode(codes[i]), kerr.ErrorForCode(want[i]))
		}
	}

	// Each broker sees its own dynamic config once the record reaches it.
	for id := int32(1); id <= 3; id++ {
		req := kmsg.NewPtrDescribeConfigsRequest()
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName, r.ConfigNames = broker, strconv.Itoa(int(id)), []string{"num.partitions"}
		req.Resources = append(req.Resources, r)
		checkFor(t, "num.partitions=4 on broker "+r.ResourceName, func() bool {
			resp, err := req.RequestWith(ctx, cl.Broker(int(id)))
			if err != nil || len(resp.Resources) != 1 || len(resp.Resources[0].Configs) != 1 {
				return false
			}
			cfg := resp.Resources[0].Configs[0]
			return cfg.Value != nil && *cfg.Value == "4" && cfg.Source == kmsg.ConfigSourceDynamicBrokerConfig
		})
	}
}
