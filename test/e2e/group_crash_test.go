package e2e

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBinaryGroupCrash: committed offsets and group state are records in
// __consumer_offsets, fsynced before the commit is answered, so a kill -9 of
// the broker loses none of them, and a group consumer started after the
// restart resumes exactly after the last commit.
func TestBinaryGroupCrash(t *testing.T) {
	dir := t.TempDir()
	p := startBinary(t, dir, "group.initial.rebalance.delay.ms=0")
	const topic, group = "gcrash", "g-crash"
	createTopic(t, p, topic, 3, nil)
	prod := newClient(t, p, kgo.DefaultProduceTopic(topic))
	ctx := testCtx(t, 60*time.Second)
	for i := 0; i < 90; i++ {
		r := &kgo.Record{Partition: int32(i % 3), Value: []byte{byte(i)}}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// A group member consumes 60 records and commits them synchronously.
	cons := newClient(t, p, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.SessionTimeout(6*time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	consumed := 0
	for consumed < 60 {
		fs := cons.PollRecords(ctx, 60-consumed)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		recs := fs.Records()
		consumed += len(recs)
		if err := cons.CommitRecords(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(newClient(t, p))
	before, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil || described[group].State != "Stable" {
		t.Fatalf("group before the crash: %+v %v", described[group], err)
	}

	p.kill()
	p = startBinary(t, dir, "group.initial.rebalance.delay.ms=0")
	adm = kadm.NewClient(newClient(t, p))
	after, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	before.Each(func(o kadm.OffsetResponse) {
		a, ok := after.Lookup(o.Topic, o.Partition)
		if !ok || a.At != o.At {
			t.Errorf("%s/%d committed %d before the crash, %+v after", o.Topic, o.Partition, o.At, a)
		}
		sum += o.At
	})
	if sum != 60 {
		t.Fatalf("committed offsets sum to %d before the crash, want 60", sum)
	}
	groups, err := adm.ListGroups(ctx)
	if _, ok := groups[group]; err != nil || !ok {
		t.Fatalf("group %s gone after the crash: %v %v", group, groups.Groups(), err)
	}

	// A new member resumes after the commits: it reads exactly the other 30.
	cons2 := newClient(t, p, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[byte]bool{}
	for len(seen) < 30 {
		fs := cons2.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if seen[r.Value[0]] {
				t.Fatalf("record %d read twice", r.Value[0])
			}
			seen[r.Value[0]] = true
		})
	}
	if len(seen) != 30 {
		t.Fatalf("resumed consumer read %d records, want 30", len(seen))
	}
}
