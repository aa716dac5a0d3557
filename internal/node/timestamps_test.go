package node_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestE2ERecordTimestampBounds: a CreateTime topic refuses, with
// INVALID_TIMESTAMP, a batch holding any record older than
// message.timestamp.before.max.ms or newer than .after.max.ms (KIP-937),
// or beyond the deprecated message.timestamp.difference.max.ms (the
// stricter bound applies); by default, as in Kafka 4.0, a record may be
// at most an hour ahead and of any age. The check is per record, so a
// batch whose records are out of time order is refused for its oldest
// one, which its header does not show. A LogAppendTime topic checks
// nothing.
func TestE2ERecordTimestampBounds(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "bounded", 1, map[string]*string{
		"message.timestamp.before.max.ms": strp("3600000"),
		"message.timestamp.after.max.ms":  strp("60000"),
	})
	createTopic(t, adm, "legacy", 1, map[string]*string{"message.timestamp.difference.max.ms": strp("60000")})
	createTopic(t, adm, "defaults", 1, nil)
	createTopic(t, adm, "appended", 1, map[string]*string{
		"message.timestamp.type":          strp("LogAppendTime"),
		"message.timestamp.before.max.ms": strp("1000"),
	})
	cl := newClient(t, n, kgo.ProducerLinger(50*time.Millisecond), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := testCtx(t, 30*time.Second)
	now := time.Now()
	produce := func(topic string, ts ...time.Time) error {
		var rs []*kgo.Record
		for _, at := range ts {
			rs = append(rs, &kgo.Record{Topic: topic, Timestamp: at, Value: []byte(at.String())})
		}
		return cl.ProduceSync(ctx, rs...).FirstErr()
	}
	cases := []struct {
		topic string
		ts    []time.Time
		ok    bool
	}{
		{"bounded", []time.Time{now}, true},
		{"bounded", []time.Time{now.Add(-30 * time.Minute), now.Add(30 * time.Second)}, true},
		{"bounded", []time.Time{now.Add(-2 * time.Hour)}, false},
		{"bounded", []time.Time{now.Add(10 * time.Minute)}, false},
		// One batch whose second record is two hours old: the header's
		// first and max timestamps are both now.
		{"bounded", []time.Time{now, now.Add(-2 * time.Hour)}, false},
		{"legacy", []time.Time{now}, true},
		{"legacy", []time.Time{now.Add(-2 * time.Minute)}, false},
		{"legacy", []time.Time{now.Add(2 * time.Minute)}, false},
		{"appended", []time.Time{now.Add(-48 * time.Hour)}, true},
		// Kafka 4.0's defaults (KIP-1030): an hour ahead at most, any age.
		{"defaults", []time.Time{now.Add(-365 * 24 * time.Hour), now.Add(30 * time.Minute)}, true},
		{"defaults", []time.Time{now.Add(2 * time.Hour)}, false},
	}
	for i, tc := range cases {
		err := produce(tc.topic, tc.ts...)
		if tc.ok && err != nil {
			t.Errorf("case %d (%s %v): %v, want accepted", i, tc.topic, tc.ts, err)
		}
		if !tc.ok && !errors.Is(err, kerr.InvalidTimestamp) {
			t.Errorf("case %d (%s %v): %v, want INVALID_TIMESTAMP", i, tc.topic, tc.ts, err)
		}
	}
	// Nothing of a refused batch was written.
	ends, err := adm.ListEndOffsets(ctx, "bounded", "legacy", "appended", "defaults")
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]int64{"bounded": 3, "legacy": 1, "appended": 1, "defaults": 2} {
		if o, _ := ends.Lookup(topic, 0); o.Offset != want {
			t.Errorf("%s end offset %d, want %d", topic, o.Offset, want)
		}
	}
}
