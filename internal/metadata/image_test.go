package metadata

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

var (
	idA = [16]byte{1}
	idB = [16]byte{2}
)

func strp(s string) *string { return &s }
func i32p(v int32) *int32   { return &v }

func mustApply(t *testing.T, img *Image, recs ...Record) *Image {
	t.Helper()
	next, err := img.ApplyBatch(recs, img.LastOffset+1)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return next
}

// baseRecords builds a cluster with three brokers and topic "a" (2
// partitions, 3 replicas).
func baseRecords() []Record {
	return []Record{
		ClusterRecord{ClusterID: "abc"},
		RegisterBrokerRecord{NodeID: 1, Host: "h1", Port: 9092, Epoch: 1},
		RegisterBrokerRecord{NodeID: 2, Host: "h2", Port: 9092, Epoch: 1},
		RegisterBrokerRecord{NodeID: 3, Host: "h3", Port: 9092, Epoch: 1, Rack: "r"},
		TopicRecord{Name: "a", ID: idA},
		PartitionRecord{TopicID: idA, Partition: 0, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 1},
		PartitionRecord{TopicID: idA, Partition: 1, Replicas: []int32{2, 3, 1}, ISR: []int32{2, 3, 1}, Leader: 2},
	}
}

func TestImageApplySequences(t *testing.T) {
	tests := []struct {
		name    string
		recs    []Record
		wantErr error
		check   func(t *testing.T, img *Image)
	}{
		{
			name: "base",
			check: func(t *testing.T, img *Image) {
				if img.ClusterID != "abc" || len(img.Brokers) != 3 || len(img.Topics) != 1 {
					t.Fatalf("image %+v", img)
				}
				tp := img.Topic("a")
				if tp != img.TopicByID(idA) || len(tp.Partitions) != 2 || tp.Partitions[1].Leader != 2 {
					t.Fatalf("topic %+v", tp)
				}
				if got := img.UnfencedBrokers(); !reflect.DeepEqual(got, []int32{1, 2, 3}) {
					t.Fatalf("unfenced %v", got)
				}
			},
		},
		{
			name: "leader change bumps leader and partition epoch",
			recs: []Record{PartitionChangeRecord{TopicID: idA, Partition: 0, Leader: i32p(2)}},
			check: func(t *testing.T, img *Image) {
				p, _ := img.Partition(idA, 0)
				if p.Leader != 2 || p.LeaderEpoch != 1 || p.PartitionEpoch != 1 {
					t.Fatalf("partition %+v", p)
				}
			},
		},
		{
			name: "isr shrink bumps only partition epoch",
			recs: []Record{PartitionChangeRecord{TopicID: idA, Partition: 0, ISR: []int32{1}}},
			check: func(t *testing.T, img *Image) {
				p, _ := img.Partition(idA, 0)
				if p.Leader != 1 || p.LeaderEpoch != 0 || p.PartitionEpoch != 1 || !reflect.DeepEqual(p.ISR, []int32{1}) {
					t.Fatalf("partition %+v", p)
				}
			},
		},
		{
			name:    "isr without leader",
			recs:    []Record{PartitionChangeRecord{TopicID: idA, Partition: 0, ISR: []int32{2}}},
			wantErr: ErrInvalidRecord,
		},
		{
			name:    "isr outside replicas",
			recs:    []Record{PartitionChangeRecord{TopicID: idA, Partition: 0, ISR: []int32{1, 9}}},
			wantErr: ErrInvalidRecord,
		},
		{
			name:    "change unknown partition",
			recs:    []Record{PartitionChangeRecord{TopicID: idA, Partition: 2, Leader: i32p(1)}},
			wantErr: ErrUnknownPartition,
		},
		{
			name:    "partition gap",
			recs:    []Record{PartitionRecord{TopicID: idA, Partition: 3, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1}},
			wantErr: ErrInvalidPartition,
		},
		{
			name:    "duplicate topic name",
			recs:    []Record{TopicRecord{Name: "a", ID: idB}},
			wantErr: ErrTopicExists,
		},
		{
			name:    "duplicate topic id",
			recs:    []Record{TopicRecord{Name: "b", ID: idA}},
			wantErr: ErrTopicExists,
		},
		{
			name: "remove topic",
			recs: []Record{RemoveTopicRecord{TopicID: idA}},
			check: func(t *testing.T, img *Image) {
				if len(img.Topics) != 0 || len(img.TopicsByID) != 0 {
					t.Fatalf("topics left: %v", img.Topics)
				}
			},
		},
		{
			name: "remove and recreate in one batch",
			recs: []Record{
				RemoveTopicRecord{TopicID: idA},
				TopicRecord{Name: "a", ID: idB},
				PartitionRecord{TopicID: idB, Partition: 0, Replicas: []int32{3}, ISR: []int32{3}, Leader: 3},
			},
			check: func(t *testing.T, img *Image) {
				if tp := img.Topic("a"); tp.ID != idB || len(tp.Partitions) != 1 || img.TopicByID(idA) != nil {
					t.Fatalf("topic %+v", tp)
				}
			},
		},
		{
			name:    "remove unknown topic",
			recs:    []Record{RemoveTopicRecord{TopicID: idB}},
			wantErr: ErrUnknownTopic,
		},
		{
			name: "topic and broker configs",
			recs: []Record{
				ConfigRecord{ResourceType: ResourceTopic, ResourceName: "a", Name: "retention.ms", Value: strp("1000")},
				ConfigRecord{ResourceType: ResourceTopic, ResourceName: "a", Name: "cleanup.policy", Value: strp("compact")},
				ConfigRecord{ResourceType: ResourceTopic, ResourceName: "a", Name: "retention.ms", Value: nil},
				ConfigRecord{ResourceType: ResourceBroker, ResourceName: "", Name: "log.retention.ms", Value: strp("5")},
				ConfigRecord{ResourceType: ResourceBroker, ResourceName: "2", Name: "log.retention.ms", Value: strp("7")},
			},
			check: func(t *testing.T, img *Image) {
				if got := img.Topic("a").Configs; !reflect.DeepEqual(got, map[string]string{"cleanup.policy": "compact"}) {
					t.Fatalf("topic configs %v", got)
				}
				if v, _ := img.BrokerConfig(2, "log.retention.ms"); v != "7" {
					t.Fatalf("broker 2 config %q", v)
				}
				if v, _ := img.BrokerConfig(1, "log.retention.ms"); v != "5" {
					t.Fatalf("broker 1 config %q", v)
				}
			},
		},
		{
			name: "group configs",
			recs: []Record{
				ConfigRecord{ResourceType: ResourceGroup, ResourceName: "g", Name: "consumer.session.timeout.ms", Value: strp("50000")},
				ConfigRecord{ResourceType: ResourceGroup, ResourceName: "h", Name: "consumer.heartbeat.interval.ms", Value: strp("6000")},
				ConfigRecord{ResourceType: ResourceGroup, ResourceName: "h", Name: "consumer.heartbeat.interval.ms", Value: nil},
			},
			check: func(t *testing.T, img *Image) {
				if want := map[string]map[string]string{"g": {"consumer.session.timeout.ms": "50000"}}; !reflect.DeepEqual(img.GroupConfigs, want) {
					t.Fatalf("group configs %v, want %v", img.GroupConfigs, want)
				}
				back, err := DecodeImage(img.Encode())
				if err != nil || !reflect.DeepEqual(back.GroupConfigs, img.GroupConfigs) {
					t.Fatalf("through a snapshot: %v, %v", back.GroupConfigs, err)
				}
			},
		},
		{
			name:    "config of a group without a name",
			recs:    []Record{ConfigRecord{ResourceType: ResourceGroup, ResourceName: "", Name: "k", Value: strp("v")}},
			wantErr: ErrInvalidResource,
		},
		{
			name:    "config of unknown topic",
			recs:    []Record{ConfigRecord{ResourceType: ResourceTopic, ResourceName: "zz", Name: "k", Value: strp("v")}},
			wantErr: ErrUnknownTopic,
		},
		{
			name:    "config of bad broker name",
			recs:    []Record{ConfigRecord{ResourceType: ResourceBroker, ResourceName: "x", Name: "k", Value: strp("v")}},
			wantErr: ErrInvalidResource,
		},
		{
			name: "fence and unfence",
			recs: []Record{FenceBrokerRecord{NodeID: 2, Epoch: 1}},
			check: func(t *testing.T, img *Image) {
				if got := img.UnfencedBrokers(); !reflect.DeepEqual(got, []int32{1, 3}) {
					t.Fatalf("unfenced %v", got)
				}
			},
		},
		{
			name:    "fence with stale epoch",
			recs:    []Record{FenceBrokerRecord{NodeID: 2, Epoch: 0}},
			wantErr: ErrStaleBrokerEpoch,
		},
		{
			name:    "unfence unknown broker",
			recs:    []Record{UnfenceBrokerRecord{NodeID: 9, Epoch: 1}},
			wantErr: ErrUnknownBroker,
		},
		{
			name:    "re-register with same epoch",
			recs:    []Record{RegisterBrokerRecord{NodeID: 1, Epoch: 1}},
			wantErr: ErrStaleBrokerEpoch,
		},
		{
			name: "producer ids move forward",
			recs: []Record{ProducerIDsRecord{BrokerID: 1, NextProducerID: 1000}, ProducerIDsRecord{BrokerID: 2, NextProducerID: 2000}},
			check: func(t *testing.T, img *Image) {
				if img.NextProducerID != 2000 {
					t.Fatalf("next producer id %d", img.NextProducerID)
				}
			},
		},
		{
			name:    "producer ids backwards",
			recs:    []Record{ProducerIDsRecord{BrokerID: 1, NextProducerID: 1000}, ProducerIDsRecord{BrokerID: 2, NextProducerID: 1000}},
			wantErr: ErrProducerIDsNotRaised,
		},
		{
			name:    "cluster id set twice",
			recs:    []Record{ClusterRecord{ClusterID: "other"}},
			wantErr: ErrClusterIDSet,
		},
		{
			name:    "failing record in the middle leaves nothing",
			recs:    []Record{TopicRecord{Name: "b", ID: idB}, RemoveTopicRecord{TopicID: [16]byte{9}}},
			wantErr: ErrUnknownTopic,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := mustApply(t, &Image{}, baseRecords()...)
			before := base.Encode()
			next, err := base.ApplyBatch(tc.recs, 42)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if next != base {
					t.Fatalf("failed batch returned a new image")
				}
			} else if next.LastOffset != 42 {
				t.Fatalf("LastOffset = %d", next.LastOffset)
			}
			if got := base.Encode(); string(got) != string(before) {
				t.Fatalf("base image was modified")
			}
			if tc.check != nil && err == nil {
				tc.check(t, next)
			}
		})
	}
}

func TestImageCopyOnWrite(t *testing.T) {
	base := mustApply(t, &Image{}, baseRecords()...)
	base = mustApply(t, base, TopicRecord{Name: "b", ID: idB},
		PartitionRecord{TopicID: idB, Partition: 0, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1},
		ConfigRecord{ResourceType: ResourceTopic, ResourceName: "b", Name: "k", Value: strp("v")})
	oldA, oldB := base.Topic("a"), base.Topic("b")
	oldP0 := oldA.Partitions[0]

	next := mustApply(t, base,
		PartitionChangeRecord{TopicID: idA, Partition: 0, Leader: i32p(3), ISR: []int32{3}},
		ConfigRecord{ResourceType: ResourceTopic, ResourceName: "a", Name: "k", Value: strp("x")},
		FenceBrokerRecord{NodeID: 1, Epoch: 1})

	if !reflect.DeepEqual(base.Topic("a").Partitions[0], oldP0) || oldA.Configs != nil {
		t.Fatalf("old topic changed: %+v", base.Topic("a"))
	}
	if base.Brokers[1].Fenced {
		t.Fatalf("old broker map changed")
	}
	if next.Topic("b") != oldB {
		t.Fatalf("untouched topic was copied")
	}
	if next.Topic("a") == oldA || next.TopicByID(idA) != next.Topic("a") {
		t.Fatalf("changed topic not copied into both maps")
	}
	if p := next.Topic("a").Partitions[0]; p.Leader != 3 || p.LeaderEpoch != 1 {
		t.Fatalf("new partition %+v", p)
	}
	if next.Topic("a").Configs["k"] != "x" || base.Topic("b").Configs["k"] != "v" {
		t.Fatalf("configs wrong")
	}
	// A single-record Apply also leaves the old image untouched.
	single, err := next.Apply(RemoveTopicRecord{TopicID: idB})
	if err != nil {
		t.Fatal(err)
	}
	if next.Topic("b") == nil || single.Topic("b") != nil {
		t.Fatalf("remove topic: old %v new %v", next.Topic("b"), single.Topic("b"))
	}
}

func TestImageEncodeRoundTrip(t *testing.T) {
	img := mustApply(t, &Image{}, baseRecords()...)
	img = mustApply(t, img,
		ConfigRecord{ResourceType: ResourceTopic, ResourceName: "a", Name: "k", Value: strp("v")},
		ConfigRecord{ResourceType: ResourceBroker, ResourceName: "", Name: "d", Value: strp("")},
		FenceBrokerRecord{NodeID: 3, Epoch: 1},
		ProducerIDsRecord{BrokerID: 1, NextProducerID: 3000},
		PartitionChangeRecord{TopicID: idA, Partition: 1, Leader: i32p(3)})
	tests := map[string]*Image{"empty": {}, "full": img}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := DecodeImage(in.Encode())
			if err != nil {
				t.Fatal(err)
			}
			if string(out.Encode()) != string(in.Encode()) {
				t.Fatalf("round trip differs:\n%+v\n%+v", in, out)
			}
			if out.LastOffset != in.LastOffset || out.ClusterID != in.ClusterID || out.NextProducerID != in.NextProducerID {
				t.Fatalf("header fields differ: %+v", out)
			}
		})
	}
	if _, err := DecodeImage([]byte("GMX")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad magic: %v", err)
	}
}

// TestImageReassignment walks a reassignment of a/0 from 1,2,3 to 1,2,4
// through the records KRaft's controller writes, and the apply rules they
// rely on: adding and removing replicas are disjoint sets of the replicas,
// and a replica set that drops a replica bumps the leader epoch.
func TestImageReassignment(t *testing.T) {
	img := mustApply(t, &Image{}, append(baseRecords(), RegisterBrokerRecord{NodeID: 4, Host: "h4", Port: 9092, Epoch: 1})...)
	start := img.Topic("a").Partitions[0]

	img = mustApply(t, img, PartitionChangeRecord{TopicID: idA, Replicas: []int32{1, 2, 4, 3},
		AddingReplicas: []int32{4}, RemovingReplicas: []int32{3}})
	p := img.Topic("a").Partitions[0]
	if !p.Reassigning() || !reflect.DeepEqual(p.AddingReplicas, []int32{4}) || !reflect.DeepEqual(p.RemovingReplicas, []int32{3}) {
		t.Fatalf("in progress: %+v", p)
	}
	if p.LeaderEpoch != start.LeaderEpoch || p.PartitionEpoch != start.PartitionEpoch+1 {
		t.Fatalf("adding a replica: epochs %d/%d, from %d/%d", p.LeaderEpoch, p.PartitionEpoch, start.LeaderEpoch, start.PartitionEpoch)
	}
	// The snapshot keeps the reassignment.
	round, err := DecodeImage(img.Encode())
	if err != nil || !reflect.DeepEqual(round.Topic("a").Partitions[0], p) {
		t.Fatalf("snapshot: %v %+v", err, round.Topic("a").Partitions[0])
	}
	// An ISR change leaves the reassignment alone (nil fields).
	img = mustApply(t, img, PartitionChangeRecord{TopicID: idA, ISR: []int32{1, 2, 3, 4}})
	if p := img.Topic("a").Partitions[0]; !p.Reassigning() {
		t.Fatalf("ISR change cleared the reassignment: %+v", p)
	}
	// Completion: 3 leaves the replicas; the leader epoch is bumped.
	img = mustApply(t, img, PartitionChangeRecord{TopicID: idA, Replicas: []int32{1, 2, 4}, ISR: []int32{1, 2, 4},
		AddingReplicas: []int32{}, RemovingReplicas: []int32{}})
	p = img.Topic("a").Partitions[0]
	if p.Reassigning() || p.AddingReplicas != nil || p.LeaderEpoch != start.LeaderEpoch+1 || p.Leader != 1 {
		t.Fatalf("completed: %+v", p)
	}

	bad := map[string]Record{
		"adding outside replicas":    PartitionChangeRecord{TopicID: idA, AddingReplicas: []int32{3}},
		"removing twice":             PartitionChangeRecord{TopicID: idA, RemovingReplicas: []int32{1, 1}},
		"added and removed":          PartitionChangeRecord{TopicID: idA, AddingReplicas: []int32{2}, RemovingReplicas: []int32{2}},
		"partition adding elsewhere": PartitionRecord{TopicID: idA, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1, AddingReplicas: []int32{2}},
	}
	for name, rec := range bad {
		if _, err := img.Apply(rec); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestImageUnregisterBroker(t *testing.T) {
	img := mustApply(t, &Image{}, baseRecords()...)
	if _, err := img.Apply(UnregisterBrokerRecord{NodeID: 3, Epoch: 2}); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Fatalf("stale epoch: %v", err)
	}
	if _, err := img.Apply(UnregisterBrokerRecord{NodeID: 9, Epoch: 1}); !errors.Is(err, ErrUnknownBroker) {
		t.Fatalf("unknown broker: %v", err)
	}
	next := mustApply(t, img, UnregisterBrokerRecord{NodeID: 3, Epoch: 1})
	if _, ok := next.Brokers[3]; ok || len(img.Brokers) != 3 {
		t.Fatalf("broker 3 still registered, or the old image changed: %v %v", next.Brokers, img.Brokers)
	}
}

// TestBrokerEndpoint: a broker registered without names has only the
// PLAINTEXT listener; one with names has exactly those.
func TestBrokerEndpoint(t *testing.T) {
	plain := Broker{Host: "b1", Port: 9092}
	named := Broker{Host: "b2", Port: 9092, Listeners: []Endpoint{{Name: "PLAINTEXT", Host: "b2", Port: 9092}, {Name: "SASL_SSL", Host: "b2.example", Port: 9094}}}
	for _, tc := range []struct {
		b        Broker
		listener string
		want     string
		ok       bool
	}{
		{plain, "PLAINTEXT", "b1:9092", true},
		{plain, "", "b1:9092", true},
		{plain, "SASL_SSL", "", false},
		{named, "SASL_SSL", "b2.example:9094", true},
		{named, "SSL", "", false},
	} {
		host, port, ok := tc.b.Endpoint(tc.listener)
		got := ""
		if ok {
			got = fmt.Sprintf("%s:%d", host, port)
		}
		if ok != tc.ok || got != tc.want {
			t.Errorf("%+v on %q: %q %v, want %q %v", tc.b, tc.listener, got, ok, tc.want, tc.ok)
		}
	}
}
