package controller

import (
	"errors"
	"testing"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// TestControllerElectLeaders checks ElectLeaders' per-partition outcomes as
// Kafka's controller gives them: a preferred election moves leadership back
// to the first replica when it is in the ISR and unfenced
// (PREFERRED_LEADER_NOT_AVAILABLE otherwise, ELECTION_NOT_NEEDED when it
// leads already); an unclean election needs an offline partition
// (ELECTION_NOT_NEEDED otherwise) and an unfenced replica
// (ELIGIBLE_LEADERS_NOT_AVAILABLE otherwise); a dry run writes nothing;
// the all-partitions form leaves out the partitions that need nothing.
func TestControllerElectLeaders(t *testing.T) {
	c := openNode(t, Config{NodeID: 1, Dir: t.TempDir()})
	registerBrokers(t, c, 1, 2, 3)
	ctx := testCtx(t)
	topic, err := c.CreateTopic(ctx, TopicSpec{Name: "e", Assignments: map[int32][]int32{
		0: {1, 2}, 1: {2, 1}, 2: {3, 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	heartbeat := func(id int32, fence bool) {
		t.Helper()
		if _, _, err := c.Heartbeat(ctx, id, c.Image().Brokers[id].Epoch, int64(c.Image().LastOffset), fence); err != nil {
			t.Fatal(err)
		}
	}
	leader := func(p int32) int32 {
		part, _ := c.Image().Partition(topic.ID, p)
		return part.Leader
	}
	elect := func(typ int8, parts TopicPartitions, dry bool) map[int32]error {
		t.Helper()
		res, err := c.ElectLeaders(ctx, typ, parts, dry)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]error{}
		for _, r := range res {
			out[r.Partition] = r.Err
		}
		return out
	}

	heartbeat(1, true) // 0 moves to 2; 1 keeps 2; 2 keeps 3
	heartbeat(3, true) // 2 goes offline (ISR [3] kept)
	heartbeat(1, false)
	if leader(0) != 2 || leader(2) != metadata.NoLeader {
		t.Fatalf("leaders %d, %d", leader(0), leader(2))
	}
	// 1 is back but out of the ISR of partition 0.
	got := elect(ElectPreferred, TopicPartitions{"e": {0, 1, 2}}, false)
	if !errors.Is(got[0], ErrPreferredLeaderNotAvailable) || !errors.Is(got[1], ErrElectionNotNeeded) ||
		!errors.Is(got[2], ErrPreferredLeaderNotAvailable) {
		t.Fatalf("preferred, 1 out of the ISR: %v", got)
	}
	res, _ := c.ElectLeaders(ctx, ElectPreferred, TopicPartitions{"nope": {0}, "e": {7}}, false)
	for _, r := range res {
		if !errors.Is(r.Err, ErrUnknownTopic) && !errors.Is(r.Err, ErrUnknownPartition) {
			t.Fatalf("unknown partition: %+v", r)
		}
	}

	// 1 rejoins the ISR (as its leader 2 would ask).
	p0, _ := c.Image().Partition(topic.ID, 0)
	if _, err := c.AlterPartition(ctx, ISRChange{BrokerID: 2, BrokerEpoch: -1, TopicID: topic.ID, Partition: 0,
		LeaderEpoch: p0.LeaderEpoch, PartitionEpoch: p0.PartitionEpoch, NewISR: []int32{2, 1}}); err != nil {
		t.Fatal(err)
	}
	if got := elect(ElectPreferred, TopicPartitions{"e": {0}}, true); got[0] != nil || leader(0) != 2 {
		t.Fatalf("dry run: %v, leader %d", got, leader(0))
	}
	// Partition 1 needs nothing and is left out; 2 is offline with its
	// preferred leader fenced.
	if got := elect(ElectPreferred, nil, false); len(got) != 2 || got[0] != nil || !errors.Is(got[2], ErrPreferredLeaderNotAvailable) {
		t.Fatalf("preferred, all partitions: %v", got)
	}
	if leader(0) != 1 {
		t.Fatalf("partition 0 led by %d after the preferred election", leader(0))
	}

	// Unclean: partition 2 is offline; its ISR [3] is fenced, 1 is not.
	got = elect(ElectUnclean, TopicPartitions{"e": {0, 2}}, false)
	if !errors.Is(got[0], ErrElectionNotNeeded) || got[2] != nil || leader(2) != 1 {
		t.Fatalf("unclean: %v, partition 2 led by %d", got, leader(2))
	}
	if p, _ := c.Image().Partition(topic.ID, 2); len(p.ISR) != 1 || p.ISR[0] != 1 {
		t.Fatalf("unclean election left ISR %v", p.ISR)
	}
	heartbeat(1, true)
	if leader(2) != metadata.NoLeader {
		t.Fatalf("partition 2 led by %d with 1 and 3 fenced", leader(2))
	}
	if got := elect(ElectUnclean, TopicPartitions{"e": {2}}, false); !errors.Is(got[2], ErrEligibleLeadersNotAvailable) {
		t.Fatalf("unclean with every replica fenced: %v", got)
	}
	if _, err := c.ElectLeaders(ctx, 5, nil, false); !errors.Is(err, ErrInvalidElectionType) {
		t.Fatalf("election type 5: %v", err)
	}
}

// TestControllerRebalanceRecords checks the automatic rebalance's trigger:
// a broker whose share of preferred leaderships it does not hold is above
// leader.imbalance.per.broker.percentage gets them back where it is in the
// ISR and unfenced; at or below the threshold nothing moves.
func TestControllerRebalanceRecords(t *testing.T) {
	img := placementImage(t, map[int32]string{1: "", 2: "", 3: ""})
	id := [16]byte{9}
	recs := []metadata.Record{metadata.TopicRecord{Name: "r", ID: id}}
	for p := range 10 {
		// Broker 1 is preferred for all ten; 2 leads partitions 0-1,
		// and partition 2's ISR lacks 1.
		rec := metadata.PartitionRecord{TopicID: id, Partition: int32(p), Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Leader: 1}
		if p < 3 {
			rec.Leader = 2
		}
		if p == 2 {
			rec.ISR = []int32{2}
		}
		recs = append(recs, rec)
	}
	img, err := img.ApplyBatch(recs, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := rebalanceRecords(img, 30); len(got) != 0 {
		t.Fatalf("3 of 10 not led is 30%%, not above: %v", got)
	}
	got := rebalanceRecords(img, 10)
	if len(got) != 2 {
		t.Fatalf("above 10%%: %d changes, want partitions 0 and 1", len(got))
	}
	for _, r := range got {
		pc := r.(metadata.PartitionChangeRecord)
		if pc.Partition > 1 || pc.Leader == nil || *pc.Leader != 1 {
			t.Fatalf("change %+v", pc)
		}
	}
}

// TestControllerCaughtUp: a node is caught up with the metadata log only
// once WaitReady learnt the commit index and it applied that far; its
// metadata lag is then zero.
func TestControllerCaughtUp(t *testing.T) {
	c, err := Open(Config{NodeID: 1, Dir: t.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if c.CaughtUp() {
		t.Fatal("caught up before WaitReady")
	}
	if err := c.WaitReady(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if !c.CaughtUp() || c.AppliedOffset() == 0 {
		t.Fatalf("after WaitReady: caught up %v, applied %d", c.CaughtUp(), c.AppliedOffset())
	}
	checkFor(t, "no metadata lag", func() bool { return c.MetadataLag() == 0 })
}
