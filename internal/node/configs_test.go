package node_test

import (
	"errors"
	"fmt"
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

// TestE2EDescribeConfigsAsKafka checks the parts of DescribeConfigs and
// AlterConfigs where Kafka's answers follow its implementation rather than
// a rule a client could guess (kafkajs and librdkafka test them): synonyms
// listed source by source from the config's own broker name on, a topic
// config's source taken from its first synonym, the cluster default listing
// only what is set on it, unknown broker configs stored, and a bad broker
// value refused with INVALID_REQUEST.
func TestE2EDescribeConfigsAsKafka(t *testing.T) {
	n := startNode(t, t.TempDir(), map[string]string{"log.retention.hours": "24"})
	adm, cl := newAdmin(t, n)
	const topic = "synonymous"
	createTopic(t, adm, topic, 1, nil)

	type syn struct {
		name, value string
		src         kmsg.ConfigSource
	}
	describe := func(t *testing.T, typ kmsg.ConfigResourceType, resource string, names ...string) map[string]kmsg.DescribeConfigsResponseResourceConfig {
		t.Helper()
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.IncludeSynonyms = true
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName, r.ConfigNames = typ, resource, names
		req.Resources = append(req.Resources, r)
		resp := rawRequest[*kmsg.DescribeConfigsResponse](t, cl, req)
		if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
			t.Fatalf("describe %s: %+v", resource, resp.Resources)
		}
		out := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
		for _, c := range resp.Resources[0].Configs {
			out[c.Name] = c
		}
		return out
	}
	expect := func(t *testing.T, c kmsg.DescribeConfigsResponseResourceConfig, value string, src kmsg.ConfigSource, want ...syn) {
		t.Helper()
		var got []syn
		for _, s := range c.ConfigSynonyms {
			v := "<null>"
			if s.Value != nil {
				v = *s.Value
			}
			got = append(got, syn{s.Name, v, s.Source})
		}
		v := "<null>"
		if c.Value != nil {
			v = *c.Value
		}
		if v != value || c.Source != src || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %s (%v), synonyms %v; want %s (%v), synonyms %v", c.Name, v, c.Source, got, value, src, want)
		}
	}
	alter := func(t *testing.T, typ kmsg.ConfigResourceType, resource, name string, value *string) int16 {
		t.Helper()
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		r := kmsg.NewIncrementalAlterConfigsRequestResource()
		r.ResourceType, r.ResourceName = typ, resource
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value, c.Op = name, value, kmsg.IncrementalAlterConfigOpSet
		if value == nil {
			c.Op = kmsg.IncrementalAlterConfigOpDelete
		}
		r.Configs = append(r.Configs, c)
		req.Resources = append(req.Resources, r)
		resp := rawRequest[*kmsg.IncrementalAlterConfigsResponse](t, cl, req)
		if len(resp.Resources) != 1 {
			t.Fatalf("alter %s: %+v", name, resp.Resources)
		}
		return resp.Resources[0].ErrorCode
	}
	const (
		topicT  = kmsg.ConfigResourceTypeTopic
		brokerT = kmsg.ConfigResourceTypeBroker
	)

	// retention.ms takes 24 h from log.retention.hours, but Kafka's list
	// starts at log.retention.ms, which nothing sets: no synonyms, and so
	// the source is DEFAULT_CONFIG.
	cs := describe(t, topicT, topic, "retention.ms", "segment.bytes")
	expect(t, cs["retention.ms"], "86400000", kmsg.ConfigSourceDefaultConfig)
	expect(t, cs["segment.bytes"], "1073741824", kmsg.ConfigSourceDefaultConfig,
		syn{"log.segment.bytes", "1073741824", kmsg.ConfigSourceDefaultConfig})
	// An empty list default is "", not null, as Kafka shows it (kafkajs
	// checks it); a broker property without a value is null.
	cs = describe(t, topicT, topic, "leader.replication.throttled.replicas")
	expect(t, cs["leader.replication.throttled.replicas"], "", kmsg.ConfigSourceDefaultConfig)
	bs := describe(t, brokerT, "1", "broker.rack")
	expect(t, bs["broker.rack"], "<null>", kmsg.ConfigSourceDefaultConfig)
	bs = describe(t, brokerT, "1", "log.retention.hours")
	expect(t, bs["log.retention.hours"], "24", kmsg.ConfigSourceStaticBrokerConfig,
		syn{"log.retention.hours", "24", kmsg.ConfigSourceStaticBrokerConfig},
		syn{"log.retention.hours", "168", kmsg.ConfigSourceDefaultConfig})

	// Set on this broker, log.retention.ms leads the list: every source
	// that sets a name of the group follows, source by source.
	if code := alter(t, brokerT, "1", "log.retention.ms", strp("5000")); code != 0 {
		t.Fatalf("set log.retention.ms: %v", kerr.ErrorForCode(code))
	}
	cs = describe(t, topicT, topic, "retention.ms")
	expect(t, cs["retention.ms"], "5000", kmsg.ConfigSourceDynamicBrokerConfig,
		syn{"log.retention.ms", "5000", kmsg.ConfigSourceDynamicBrokerConfig},
		syn{"log.retention.hours", "24", kmsg.ConfigSourceStaticBrokerConfig},
		syn{"log.retention.hours", "168", kmsg.ConfigSourceDefaultConfig})
	if code := alter(t, topicT, topic, "retention.ms", strp("1000")); code != 0 {
		t.Fatalf("set retention.ms: %v", kerr.ErrorForCode(code))
	}
	cs = describe(t, topicT, topic, "retention.ms")
	expect(t, cs["retention.ms"], "1000", kmsg.ConfigSourceDynamicTopicConfig,
		syn{"retention.ms", "1000", kmsg.ConfigSourceDynamicTopicConfig},
		syn{"log.retention.ms", "5000", kmsg.ConfigSourceDynamicBrokerConfig},
		syn{"log.retention.hours", "24", kmsg.ConfigSourceStaticBrokerConfig},
		syn{"log.retention.hours", "168", kmsg.ConfigSourceDefaultConfig})

	// The cluster default lists only what is set on it.
	if cs := describe(t, brokerT, ""); len(cs) != 0 {
		t.Errorf("cluster default with nothing set lists %d configs", len(cs))
	}
	if code := alter(t, brokerT, "", "num.partitions", strp("3")); code != 0 {
		t.Fatalf("set the cluster default num.partitions: %v", kerr.ErrorForCode(code))
	}
	cs = describe(t, brokerT, "")
	if len(cs) != 1 {
		t.Errorf("cluster default lists %d configs, want 1 (num.partitions)", len(cs))
	}
	expect(t, cs["num.partitions"], "3", kmsg.ConfigSourceDynamicDefaultBrokerConfig,
		syn{"num.partitions", "3", kmsg.ConfigSourceDynamicDefaultBrokerConfig})

	// A broker config name Kafka's table has and ours does not is stored
	// and listed, sensitive (its type is unknown) and read-only, as Kafka
	// lists an unknown name; a bad value for a known one is INVALID_REQUEST.
	const unknown = "sasl.kerberos.min.time.before.relogin"
	if code := alter(t, brokerT, "1", unknown, strp("58000")); code != 0 {
		t.Fatalf("set %s: %v", unknown, kerr.ErrorForCode(code))
	}
	bs = describe(t, brokerT, "1")
	c, ok := bs[unknown]
	if !ok || !c.IsSensitive || !c.ReadOnly || c.ConfigType != kmsg.ConfigTypeUnknown {
		t.Errorf("%s after setting it: listed %v, %+v; want sensitive, read-only, type UNKNOWN", unknown, ok, c)
	}
	expect(t, c, "<null>", kmsg.ConfigSourceDynamicBrokerConfig, syn{unknown, "<null>", kmsg.ConfigSourceDynamicBrokerConfig})
	if code := alter(t, brokerT, "1", "num.partitions", strp("abc")); code != kerr.InvalidRequest.Code {
		t.Errorf("num.partitions=abc on a broker: %v, want INVALID_REQUEST", kerr.ErrorForCode(code))
	}
	if code := alter(t, topicT, topic, "retention.ms", strp("abc")); code != kerr.InvalidConfig.Code {
		t.Errorf("retention.ms=abc on a topic: %v, want INVALID_CONFIG", kerr.ErrorForCode(code))
	}
}
