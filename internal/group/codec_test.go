package group

import (
	"errors"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// FuzzDecodeGroupRecord feeds arbitrary __consumer_offsets keys and values
// to the decoder: it must never panic, must classify every failure as
// ErrCorruptRecord, and what it decodes must survive a re-encode.
func FuzzDecodeGroupRecord(f *testing.F) {
	tp := TopicPartition{Topic: "t", Partition: 3}
	st := newGroupState("g", DefaultLimits(), time.UnixMilli(1234))
	st.protocolType, st.protocol, st.generation, st.leader, st.state = "consumer", "range", 4, "m-1", Stable
	st.members["m-1"] = &member{id: "m-1", instanceID: "i-1", clientID: "c", clientHost: "/h",
		protocols: []Protocol{{Name: "range", Metadata: []byte{0, 1}}}, session: time.Second, rebalance: time.Second,
		assignment: []byte{9}}
	seeds := []struct{ key, value []byte }{
		{offsetKey("g", tp), offsetValue(Offset{Offset: 42, LeaderEpoch: 7, Metadata: "meta", CommitTimestamp: 99})},
		{offsetKey("g", tp), nil}, // tombstone
		{groupKey("g"), groupValue(st)},
		{groupKey("g"), nil},
		{[]byte{0, 1, 0}, []byte{0, 3}},      // truncated
		{[]byte{0, 9, 0, 1, 'g'}, []byte{1}}, // a key version that is not ours
		{[]byte{0, 2, 0xff, 0xff}, nil},      // null group string
		{[]byte{0, 2, 0x7f, 0xff}, nil},      // length past the end
		{[]byte{0}, nil},                     // shorter than a version
	}
	// A consumer group's records (KIP-848), every kind.
	cg := newConsumerGroup(DefaultConsumerLimits())
	inst, re := "i-1", "t.*"
	h := ConsumerHeartbeat{Version: 1, MemberID: "m", RebalanceTimeout: time.Second, Topics: []string{"t"}, Regex: &re,
		InstanceID: &inst, Owned: Assignment{}}
	cg.heartbeat(h, &metadata.Image{Topics: map[string]*metadata.Topic{"t": {Name: "t", ID: [16]byte{1},
		Partitions: make([]metadata.Partition, 2)}}}, time.UnixMilli(1234))
	for k, v := range cg.records("g") {
		seeds = append(seeds, struct{ key, value []byte }{[]byte(k), v}, struct{ key, value []byte }{[]byte(k), nil})
	}
	for _, s := range seeds {
		f.Add(s.key, s.value)
	}
	f.Fuzz(func(t *testing.T, key, value []byte) {
		d, err := decodeRecord(key, value)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("error %v is not ErrCorruptRecord", err)
			}
			return
		}
		switch {
		case d.isOffset && d.offset != nil:
			d2, err := decodeRecord(offsetKey(d.group, d.tp), offsetValue(*d.offset))
			if err != nil || d2.group != d.group || d2.tp != d.tp || d2.offset == nil || *d2.offset != *d.offset {
				t.Fatalf("offset record does not round-trip: %+v %+v -> %+v %v", d, *d.offset, d2, err)
			}
		case d.meta != nil:
			if d.meta.Version < 0 {
				t.Fatalf("negative group value version %d", d.meta.Version)
			}
		case d.cg != nil:
			// Whatever a record holds, loading it builds a group.
			acc := newCgAcc()
			acc.apply(*d.cg, key, value)
			acc.members["m"] = &cgMemberMeta{}
			acc.build(DefaultConsumerLimits(), time.Now())
		}
	})
}

// TestDecodeGroupRecordRoundTrip checks the seeds decode to what was encoded.
func TestDecodeGroupRecordRoundTrip(t *testing.T) {
	tp := TopicPartition{Topic: "t", Partition: 3}
	o := Offset{Offset: 42, LeaderEpoch: 7, Metadata: "meta", CommitTimestamp: 99}
	cases := []struct {
		name       string
		key, value []byte
		check      func(d decoded) bool
	}{
		{"offset", offsetKey("g", tp), offsetValue(o), func(d decoded) bool {
			return d.isOffset && d.group == "g" && d.tp == tp && d.offset != nil && *d.offset == o
		}},
		{"offset tombstone", offsetKey("g", tp), nil, func(d decoded) bool { return d.isOffset && d.offset == nil }},
		{"group tombstone", groupKey("g"), nil, func(d decoded) bool { return !d.isOffset && d.group == "g" && d.meta == nil }},
		{"unknown key version", []byte{0, 9}, nil, func(d decoded) bool { return d.group == "" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := decodeRecord(c.key, c.value)
			if err != nil || !c.check(d) {
				t.Fatalf("decoded %+v, %v", d, err)
			}
		})
	}
	if _, err := decodeRecord([]byte{0, 1, 0}, nil); !errors.Is(err, ErrCorruptRecord) {
		t.Fatalf("truncated key: %v", err)
	}
}
