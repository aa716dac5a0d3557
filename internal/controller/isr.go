package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// Errors of AlterPartition (Kafka's ISR change from a partition leader).
var (
	ErrNotPartitionLeader = errors.New("controller: the sender does not lead the partition")
	ErrFencedLeaderEpoch  = errors.New("controller: leader epoch differs from the partition's")
	ErrInvalidUpdate      = errors.New("controller: partition epoch differs from the partition's")
	ErrIneligibleReplica  = errors.New("controller: the new ISR names a replica that cannot join it")
	ErrInvalidISR         = errors.New("controller: the new ISR is not a set of the partition's replicas holding its leader")
)

// ISRChange is one partition of an AlterPartition request.
type ISRChange struct {
	BrokerID       int32
	BrokerEpoch    int64 // -1: not checked (AlterPartition v0-1 carry one too; Kafka checks it when >= 0)
	TopicID        [16]byte
	Partition      int32
	LeaderEpoch    int32
	PartitionEpoch int32
	NewISR         []int32
}

// AlterPartition applies a leader's ISR change, checked as Kafka's
// controller checks it: the sender must be the registered broker (broker
// epoch) leading the partition at the same leader epoch, the partition
// epoch must be the current one (a stale leader's request is refused), and
// the new ISR must be replicas including the leader, any member it adds an
// unfenced broker. It returns the partition as committed (unchanged when
// the ISR already was the new one).
func (c *Controller) AlterPartition(ctx context.Context, r ISRChange) (metadata.Partition, error) {
	check := func(img *metadata.Image) (metadata.Partition, bool, error) {
		b, ok := img.Brokers[r.BrokerID]
		if !ok || (r.BrokerEpoch >= 0 && b.Epoch != r.BrokerEpoch) {
			return metadata.Partition{}, false, fmt.Errorf("%w: broker %d", ErrStaleBrokerEpoch, r.BrokerID)
		}
		p, ok := img.Partition(r.TopicID, r.Partition)
		if !ok {
			return p, false, fmt.Errorf("%w: %x/%d", ErrUnknownPartition, r.TopicID, r.Partition)
		}
		switch {
		case p.Leader != r.BrokerID:
			return p, false, fmt.Errorf("%w: leader is %d, not %d", ErrNotPartitionLeader, p.Leader, r.BrokerID)
		case r.LeaderEpoch != p.LeaderEpoch:
			return p, false, fmt.Errorf("%w: %d, current %d", ErrFencedLeaderEpoch, r.LeaderEpoch, p.LeaderEpoch)
		case r.PartitionEpoch != p.PartitionEpoch:
			return p, false, fmt.Errorf("%w: %d, current %d", ErrInvalidUpdate, r.PartitionEpoch, p.PartitionEpoch)
		case !slices.Contains(r.NewISR, p.Leader):
			return p, false, ErrInvalidISR
		}
		for i, id := range r.NewISR {
			if !slices.Contains(p.Replicas, id) || slices.Contains(r.NewISR[:i], id) {
				return p, false, ErrInvalidISR
			}
			if !slices.Contains(p.ISR, id) {
				if nb, ok := img.Brokers[id]; !ok || nb.Fenced {
					return p, false, fmt.Errorf("%w: broker %d", ErrIneligibleReplica, id)
				}
			}
		}
		same := len(r.NewISR) == len(p.ISR)
		for _, id := range r.NewISR {
			same = same && slices.Contains(p.ISR, id)
		}
		return p, !same, nil
	}
	err := c.exec(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		p, change, err := check(img)
		if err != nil || !change {
			return nil, err
		}
		// Through the change builder: an ISR that now holds every target
		// replica completes a reassignment in progress (reassign.go).
		rec, ok := partitionChange(img, r.TopicID, p, p.Replicas, r.NewISR, p.AddingReplicas, p.RemovingReplicas)
		if !ok {
			return nil, nil
		}
		return []metadata.Record{rec}, nil
	})
	if err != nil {
		return metadata.Partition{}, err
	}
	p, _ := c.Image().Partition(r.TopicID, r.Partition)
	return p, nil
}
