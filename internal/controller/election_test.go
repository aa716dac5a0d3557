package controller

import (
	"slices"
	"testing"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// TestControllerElectsLeaderOnFencing checks Kafka's clean election on
// fencing: a fenced broker leaves every ISR it is in, a partition it led
// gets the first unfenced ISR member in replica order (leader epoch and
// partition epoch bumped), the last ISR member stays and its partition goes
// offline, and unfencing an offline partition's ISR member elects it.
func TestControllerElectsLeaderOnFencing(t *testing.T) {
	c := openNode(t, Config{NodeID: 1, Dir: t.TempDir()})
	registerBrokers(t, c, 1, 2, 3)
	ctx := testCtx(t)
	topic, err := c.CreateTopic(ctx, TopicSpec{Name: "t", Assignments: map[int32][]int32{
		0: {1, 2, 3}, 1: {2, 1, 3},
	}})
	if err != nil {
		t.Fatal(err)
	}
	solo, err := c.CreateTopic(ctx, TopicSpec{Name: "solo", Assignments: map[int32][]int32{0: {1}}})
	if err != nil {
		t.Fatal(err)
	}
	part := func(p int32) metadata.Partition {
		t.Helper()
		id := topic.ID
		if p == 2 { // solo's partition 0
			id, p = solo.ID, 0
		}
		got, ok := c.Image().Partition(id, p)
		if !ok {
			t.Fatalf("partition %d missing", p)
		}
		return got
	}
	want := func(what string, p int32, leader, leaderEpoch, partitionEpoch int32, isr ...int32) {
		t.Helper()
		got := part(p)
		if got.Leader != leader || got.LeaderEpoch != leaderEpoch || got.PartitionEpoch != partitionEpoch || !slices.Equal(got.ISR, isr) {
			t.Fatalf("%s: partition %d is %+v; want leader %d, leader epoch %d, partition epoch %d, ISR %v",
				what, p, got, leader, leaderEpoch, partitionEpoch, isr)
		}
	}
	heartbeat := func(id int32, fence bool) {
		t.Helper()
		if _, err := c.Heartbeat(ctx, id, c.Image().Brokers[id].Epoch, fence); err != nil {
			t.Fatalf("heartbeat of %d (fence %v): %v", id, fence, err)
		}
		if c.Image().Brokers[id].Fenced != fence {
			t.Fatalf("broker %d fenced %v, want %v", id, c.Image().Brokers[id].Fenced, fence)
		}
	}

	heartbeat(1, true)
	want("leader 1 fenced", 0, 2, 1, 1, 2, 3)
	want("follower 1 fenced", 1, 2, 0, 1, 2, 3)
	want("sole replica 1 fenced", 2, metadata.NoLeader, 1, 1, 1)

	heartbeat(1, false)
	want("1 unfenced, not in the ISR", 0, 2, 1, 1, 2, 3)
	want("sole replica 1 back", 2, 1, 2, 2, 1)

	heartbeat(2, true)
	want("2 fenced: 1 is not in the ISR, 3 is next", 0, 3, 2, 2, 3)
	heartbeat(3, true)
	want("the last ISR member fenced", 0, metadata.NoLeader, 3, 3, 3)
	heartbeat(2, false)
	want("2 unfenced, not in the ISR", 0, metadata.NoLeader, 3, 3, 3)
	heartbeat(3, false)
	want("the last ISR member back", 0, 3, 4, 4, 3)

	// Registering again (a restart, maybe unclean) gives up leaderships
	// as fencing does.
	if _, err := c.Register(ctx, Registration{NodeID: 3, ClusterID: c.Image().ClusterID, Host: "h", Port: 3}); err != nil {
		t.Fatal(err)
	}
	want("3 registered again", 0, metadata.NoLeader, 5, 5, 3)
}
