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
		if _, _, err := c.Heartbeat(ctx, id, c.Image().Brokers[id].Epoch, int64(c.Image().LastOffset), fence); err != nil {
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

// TestControllerUncleanElection checks unclean.leader.election.enable: when
// the last ISR member is fenced, a topic with the option (topic config, or
// the cluster default set later) gets its first unfenced out-of-sync
// replica as leader and sole ISR member, at fencing, at the periodic check
// and at unfencing, with the leader epoch bumped; without it the partition
// stays offline.
func TestControllerUncleanElection(t *testing.T) {
	c := openNode(t, Config{NodeID: 1, Dir: t.TempDir()})
	registerBrokers(t, c, 1, 2, 3)
	ctx := testCtx(t)
	u, err := c.CreateTopic(ctx, TopicSpec{Name: "u", Assignments: map[int32][]int32{0: {1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.CreateTopic(ctx, TopicSpec{Name: "v", Assignments: map[int32][]int32{0: {1, 2, 3}},
		Configs: map[string]string{"unclean.leader.election.enable": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	epochs := map[[16]byte]int32{}
	want := func(what string, topic metadata.Topic, leader int32, isr ...int32) {
		t.Helper()
		p, _ := c.Image().Partition(topic.ID, 0)
		if p.Leader != leader || !slices.Equal(p.ISR, isr) {
			t.Fatalf("%s: %s-0 is %+v; want leader %d, ISR %v", what, topic.Name, p, leader, isr)
		}
		if p.LeaderEpoch < epochs[topic.ID] {
			t.Fatalf("%s: leader epoch went back", what)
		}
		epochs[topic.ID] = p.LeaderEpoch
	}
	heartbeat := func(id int32, fence bool) {
		t.Helper()
		if _, _, err := c.Heartbeat(ctx, id, c.Image().Brokers[id].Epoch, int64(c.Image().LastOffset), fence); err != nil {
			t.Fatalf("heartbeat of %d (fence %v): %v", id, fence, err)
		}
	}

	heartbeat(2, true)
	heartbeat(3, true)
	heartbeat(2, false)
	want("2 back but out of sync", u, 1, 1)
	want("2 back but out of sync", v, 1, 1)
	before := epochs[v.ID]

	heartbeat(1, true)
	want("the last ISR member fenced, clean only", u, metadata.NoLeader, 1)
	want("the last ISR member fenced, unclean", v, 2, 2)
	if epochs[v.ID] != before+1 {
		t.Fatalf("unclean election: leader epoch %d, want %d", epochs[v.ID], before+1)
	}
	c.maybeElectUnclean()
	want("the periodic check leaves a clean-only topic offline", u, metadata.NoLeader, 1)

	if err := c.AlterConfigs(ctx, metadata.ResourceBroker, "", map[string]*string{"unclean.leader.election.enable": strp("true")}, false); err != nil {
		t.Fatal(err)
	}
	c.maybeElectUnclean()
	want("the cluster default enabled: the periodic check elects", u, 2, 2)

	heartbeat(2, true)
	want("the unclean leader fenced with nobody left", u, metadata.NoLeader, 2)
	want("the unclean leader fenced with nobody left", v, metadata.NoLeader, 2)
	heartbeat(3, false)
	want("3 unfenced elects it uncleanly", u, 3, 3)
	want("3 unfenced elects it uncleanly", v, 3, 3)
	heartbeat(1, false)
	heartbeat(2, false)
	want("others back: the leader stays", u, 3, 3)
}
