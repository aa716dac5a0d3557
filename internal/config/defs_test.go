package config

import (
	"errors"
	"testing"
)

func TestConfigTopicValueLayers(t *testing.T) {
	cases := []struct {
		name    string
		layers  Layers
		config  string
		want    string
		wantSrc Source
	}{
		{name: "built-in default", config: "retention.ms", want: "604800000", wantSrc: SourceDefault},
		{name: "static hours scaled to ms", layers: Layers{Static: map[string]string{"log.retention.hours": "1"}},
			config: "retention.ms", want: "3600000", wantSrc: SourceStaticBroker},
		{name: "ms beats hours", layers: Layers{Static: map[string]string{"log.retention.hours": "1", "log.retention.ms": "5"}},
			config: "retention.ms", want: "5", wantSrc: SourceStaticBroker},
		{name: "dynamic beats static", layers: Layers{Static: map[string]string{"log.segment.bytes": "100"},
			DynamicDefault: map[string]string{"log.segment.bytes": "200"}},
			config: "segment.bytes", want: "200", wantSrc: SourceDynamicDefaultBroker},
		{name: "topic beats all", layers: Layers{Topic: map[string]string{"segment.bytes": "300"},
			DynamicBroker: map[string]string{"log.segment.bytes": "200"}},
			config: "segment.bytes", want: "300", wantSrc: SourceTopic},
		{name: "unlimited retention stays -1", layers: Layers{Static: map[string]string{"log.retention.hours": "-1"}},
			config: "retention.ms", want: "-1", wantSrc: SourceStaticBroker},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, src := tc.layers.TopicValue(tc.config)
			if v != tc.want || src != tc.wantSrc {
				t.Fatalf("TopicValue(%s) = %q (%d), want %q (%d)", tc.config, v, src, tc.want, tc.wantSrc)
			}
		})
	}
}

func TestConfigCheck(t *testing.T) {
	cases := []struct {
		name, config, value string
		ok                  bool
	}{
		{"valid long", "retention.ms", "1000", true},
		{"not a number", "retention.ms", "abc", false},
		{"below min", "retention.ms", "-2", false},
		{"enum", "cleanup.policy", "compact,delete", true},
		{"bad enum", "cleanup.policy", "shred", false},
		{"bool", "unclean.leader.election.enable", "yes", false},
		{"timestamp type", "message.timestamp.type", "LogAppendTime", true},
		{"throttle all", "leader.replication.throttled.replicas", " * ", true},
		{"throttle pairs", "follower.replication.throttled.replicas", "0:1, 1:2,2:3", true},
		{"throttle none", "leader.replication.throttled.replicas", "", true},
		{"throttle no broker", "leader.replication.throttled.replicas", "0:", false},
		{"throttle word", "follower.replication.throttled.replicas", "0:1,all", false},
		{"throttle star in list", "leader.replication.throttled.replicas", "0:1,*", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckTopicConfig(tc.config, tc.value); (err == nil) != tc.ok {
				t.Fatalf("CheckTopicConfig(%s=%s) = %v, want ok=%v", tc.config, tc.value, err, tc.ok)
			}
		})
	}
	if err := CheckTopicConfig("no.such.config", "1"); !errors.Is(err, ErrUnknownConfig) {
		t.Fatalf("unknown config = %v", err)
	}
}

func TestConfigResolveTopic(t *testing.T) {
	c := Layers{Topic: map[string]string{"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime"}}.ResolveTopic()
	if !c.Compact || c.Delete || !c.LogAppendTime || c.MaxMessageBytes != 1048588 || c.RetentionBytes != -1 {
		t.Fatalf("ResolveTopic = %+v", c)
	}
}

func TestThrottledReplicas(t *testing.T) {
	for _, c := range []struct {
		list              string
		partition, broker int32
		want              bool
	}{
		{"", 0, 1, false},
		{"*", 3, 7, true},
		{" * ", 3, 7, true},
		{"0:1,1:2", 0, 1, true},
		{"0:1, 1:2", 1, 2, true},
		{"0:1,1:2", 1, 1, false},
		{"10:1", 1, 1, false},
		{"0:01", 0, 1, true},
	} {
		if got := Throttled(c.list, c.partition, c.broker); got != c.want {
			t.Errorf("Throttled(%q, %d, %d) = %v", c.list, c.partition, c.broker, got)
		}
	}
}

func TestThrottledAllocatesNothing(t *testing.T) {
	for _, list := range []string{"", "*", "0:1, 1:2,2:3"} {
		if n := testing.AllocsPerRun(100, func() { Throttled(list, 2, 3) }); n != 0 {
			t.Errorf("Throttled(%q) allocates %.0f times", list, n)
		}
	}
}
