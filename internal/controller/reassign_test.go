package controller

import (
	"errors"
	"slices"
	"testing"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// TestControllerReassignment moves t-0 from 1,2,3 to 4,2,1 as Kafka's
// controller does: the new replica is added first (replicas 4,2,1,3, adding
// 4, removing 3), the reassignment completes only with the ISR change that
// brings 4 in, and then 3 leaves with a leader epoch bump; a reassignment
// away from the leader moves the leadership at completion.
func TestControllerReassignment(t *testing.T) {
	c := openNode(t, Config{NodeID: 1, Dir: t.TempDir()})
	registerBrokers(t, c, 1, 2, 3, 4)
	ctx := testCtx(t)
	topic, err := c.CreateTopic(ctx, TopicSpec{Name: "t", Assignments: map[int32][]int32{0: {1, 2, 3}, 1: {1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	part := func(p int32) metadata.Partition {
		got, _ := c.Image().Partition(topic.ID, p)
		return got
	}
	for _, tc := range []struct {
		r    Reassignment
		want error
	}{
		{Reassignment{Topic: "t", Partition: 0, Replicas: []int32{1, 1}}, ErrInvalidReplicaAssignment},
		{Reassignment{Topic: "t", Partition: 0, Replicas: []int32{1, 9}}, ErrInvalidReplicaAssignment},
		{Reassignment{Topic: "t", Partition: 0, Replicas: []int32{}}, ErrInvalidReplicaAssignment},
		{Reassignment{Topic: "t", Partition: 1, Replicas: nil}, ErrNoReassignmentInProgress},
	} {
		errs, err := c.AlterReassignments(ctx, []Reassignment{tc.r})
		if err != nil || !errors.Is(errs[0], tc.want) {
			t.Errorf("%+v: %v %v, want %v", tc.r, err, errs, tc.want)
		}
	}
	errs, err := c.AlterReassignments(ctx, []Reassignment{
		{Topic: "t", Partition: 0, Replicas: []int32{4, 2, 1}},
		{Topic: "t", Partition: 1, Replicas: []int32{1, 3, 2}}, // a reordering completes at once
		{Topic: "t", Partition: 2, Replicas: []int32{1}},
		{Topic: "nope", Partition: 0, Replicas: []int32{1}},
		{Topic: "t", Partition: 0, Replicas: []int32{1, 2, 3}}, // named twice
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []error{nil, nil, ErrUnknownPartition, ErrUnknownTopic, ErrInvalidChange}
	for i := range want {
		if !errors.Is(errs[i], want[i]) || (want[i] == nil && errs[i] != nil) {
			t.Errorf("entry %d: %v, want %v", i, errs[i], want[i])
		}
	}
	if _, err := c.AlterReassignments(ctx, make([]Reassignment, MaxReassignmentsPerRequest+1)); !errors.Is(err, ErrInvalidChange) {
		t.Errorf("a request over the bound: %v", err)
	}
	p0 := part(0)
	if !slices.Equal(p0.Replicas, []int32{4, 2, 1, 3}) || !slices.Equal(p0.AddingReplicas, []int32{4}) ||
		!slices.Equal(p0.RemovingReplicas, []int32{3}) || p0.Leader != 1 || p0.LeaderEpoch != 0 {
		t.Fatalf("started: %+v", p0)
	}
	if p1 := part(1); p1.Reassigning() || !slices.Equal(p1.Replicas, []int32{1, 3, 2}) {
		t.Fatalf("reordering: %+v", p1)
	}

	// An ISR change that does not hold 4 yet leaves it in progress.
	isr := func(p metadata.Partition, ids ...int32) ISRChange {
		return ISRChange{BrokerID: p.Leader, BrokerEpoch: c.Image().Brokers[p.Leader].Epoch, TopicID: topic.ID,
			Partition: p.Partition, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: ids}
	}
	if _, err := c.AlterPartition(ctx, isr(p0, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if p := part(0); !p.Reassigning() {
		t.Fatalf("completed without 4 in the ISR: %+v", p)
	}
	// 4 joins: completion. 3 leaves the replicas (it was out of the ISR
	// already); the leader stays 1, an eligible ISR member, and the leader
	// epoch is bumped so 3 can fetch no more.
	p := part(0)
	if _, err := c.AlterPartition(ctx, isr(p, 1, 2, 4)); err != nil {
		t.Fatal(err)
	}
	if p := part(0); p.Reassigning() || !slices.Equal(p.Replicas, []int32{4, 2, 1}) || !slices.Equal(p.ISR, []int32{1, 2, 4}) ||
		p.Leader != 1 || p.LeaderEpoch != 1 {
		t.Fatalf("completed: %+v", p)
	}

	// Away from the leader: 1,3,2 -> 4,3,2 moves the leadership to the
	// first target in the ISR when 4 joins.
	if errs, err := c.AlterReassignments(ctx, []Reassignment{{Topic: "t", Partition: 1, Replicas: []int32{4, 3, 2}}}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	if _, err := c.AlterPartition(ctx, isr(part(1), 1, 3, 2, 4)); err != nil {
		t.Fatal(err)
	}
	if p := part(1); p.Reassigning() || !slices.Equal(p.Replicas, []int32{4, 3, 2}) || p.Leader != 4 || slices.Contains(p.ISR, 1) {
		t.Fatalf("leader removed: %+v", p)
	}
}

// TestControllerReassignmentCancel reverts a reassignment in progress: the
// adding replicas leave the replicas and the ISR; the removing ones stay.
func TestControllerReassignmentCancel(t *testing.T) {
	c := openNode(t, Config{NodeID: 1, Dir: t.TempDir()})
	registerBrokers(t, c, 1, 2, 3, 4, 5)
	ctx := testCtx(t)
	topic, err := c.CreateTopic(ctx, TopicSpec{Name: "t", Assignments: map[int32][]int32{0: {1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if errs, err := c.AlterReassignments(ctx, []Reassignment{{Topic: "t", Partition: 0, Replicas: []int32{1, 4, 5}}}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	p, _ := c.Image().Partition(topic.ID, 0)
	// 4 caught up, 5 not yet.
	if _, err := c.AlterPartition(ctx, ISRChange{BrokerID: 1, BrokerEpoch: -1, TopicID: topic.ID, LeaderEpoch: p.LeaderEpoch,
		PartitionEpoch: p.PartitionEpoch, NewISR: []int32{1, 2, 3, 4}}); err != nil {
		t.Fatal(err)
	}
	if errs, err := c.AlterReassignments(ctx, []Reassignment{{Topic: "t", Partition: 0}}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	p, _ = c.Image().Partition(topic.ID, 0)
	if p.Reassigning() || !slices.Equal(p.Replicas, []int32{1, 2, 3}) || !slices.Equal(p.ISR, []int32{1, 2, 3}) || p.Leader != 1 {
		t.Fatalf("reverted: %+v", p)
	}
	if errs, _ := c.AlterReassignments(ctx, []Reassignment{{Topic: "t", Partition: 0}}); !errors.Is(errs[0], ErrNoReassignmentInProgress) {
		t.Fatalf("second cancel: %v", errs[0])
	}
}

func TestControllerUnregisterBroker(t *testing.T) {
	c := openNode(t, Config{NodeID: 1, Dir: t.TempDir()})
	registerBrokers(t, c, 1, 2, 3)
	ctx := testCtx(t)
	topic, err := c.CreateTopic(ctx, TopicSpec{Name: "t", Assignments: map[int32][]int32{0: {3, 1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UnregisterBroker(ctx, 3); err != nil {
		t.Fatal(err)
	}
	p, _ := c.Image().Partition(topic.ID, 0)
	if _, ok := c.Image().Brokers[3]; ok || p.Leader != 1 || slices.Contains(p.ISR, 3) {
		t.Fatalf("after unregistering 3: brokers %v, partition %+v", c.Image().Brokers, p)
	}
	if err := c.UnregisterBroker(ctx, 3); !errors.Is(err, ErrBrokerNotRegistered) {
		t.Fatalf("again: %v", err)
	}
}
