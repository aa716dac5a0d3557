package controller

import (
	"errors"
	"slices"
	"testing"
)

// TestControllerAlterPartition checks a leader's ISR change as Kafka's
// controller does: sender, broker epoch, leader epoch and partition epoch
// must be current, the new ISR must hold the leader and only replicas, and
// a member it adds must be unfenced.
func TestControllerAlterPartition(t *testing.T) {
	c := openNode(t, Config{NodeID: 1, Dir: t.TempDir()})
	registerBrokers(t, c, 1, 2, 3)
	ctx := testCtx(t)
	topic, err := c.CreateTopic(ctx, TopicSpec{Name: "t", Assignments: map[int32][]int32{0: {1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	epoch1 := c.Image().Brokers[1].Epoch
	change := func(broker int32, brokerEpoch int64, leaderEpoch, partitionEpoch int32, isr ...int32) ISRChange {
		return ISRChange{BrokerID: broker, BrokerEpoch: brokerEpoch, TopicID: topic.ID, Partition: 0,
			LeaderEpoch: leaderEpoch, PartitionEpoch: partitionEpoch, NewISR: isr}
	}
	p, err := c.AlterPartition(ctx, change(1, epoch1, 0, 0, 1, 2))
	if err != nil || !slices.Equal(p.ISR, []int32{1, 2}) || p.PartitionEpoch != 1 || p.LeaderEpoch != 0 {
		t.Fatalf("shrink: %+v, %v; want ISR [1 2] at partition epoch 1", p, err)
	}
	refused := []struct {
		name string
		r    ISRChange
		want error
	}{
		{"stale partition epoch", change(1, epoch1, 0, 0, 1, 2, 3), ErrInvalidUpdate},
		{"other leader epoch", change(1, epoch1, 1, 1, 1, 2, 3), ErrFencedLeaderEpoch},
		{"not the leader", change(2, c.Image().Brokers[2].Epoch, 0, 1, 1, 2, 3), ErrNotPartitionLeader},
		{"stale broker epoch", change(1, epoch1+100, 0, 1, 1, 2, 3), ErrStaleBrokerEpoch},
		{"leader missing", change(1, epoch1, 0, 1, 2, 3), ErrInvalidISR},
		{"not a replica", change(1, epoch1, 0, 1, 1, 2, 4), ErrInvalidISR},
		{"duplicate member", change(1, epoch1, 0, 1, 1, 2, 2), ErrInvalidISR},
	}
	for _, tc := range refused {
		before := c.Image()
		if _, err := c.AlterPartition(ctx, tc.r); !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if c.Image() != before {
			t.Fatalf("%s: a refused change modified the image", tc.name)
		}
	}
	// A fenced broker (registered again, not yet heartbeating) cannot join.
	if _, err := c.Register(ctx, Registration{NodeID: 3, ClusterID: c.Image().ClusterID, Host: "h", Port: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AlterPartition(ctx, change(1, epoch1, 0, 1, 1, 2, 3)); !errors.Is(err, ErrIneligibleReplica) {
		t.Fatalf("expand with a fenced broker: %v, want ErrIneligibleReplica", err)
	}
	p, err = c.AlterPartition(ctx, change(1, epoch1, 0, 1, 2, 1))
	if err != nil || p.PartitionEpoch != 1 {
		t.Fatalf("the ISR it already has: %+v, %v; want no change", p, err)
	}
}
