package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// Partition reassignment and broker unregistration, as Kafka's KRaft
// controller does them (ReplicationControlManager, PartitionChangeBuilder,
// PartitionReassignmentReplicas and PartitionReassignmentRevert):
//
//  1. AlterReassignments writes a PartitionChange whose replicas are the
//     target replicas followed by the ones being removed, with
//     AddingReplicas (targets that were not replicas) and RemovingReplicas
//     (replicas that are not targets). The new replicas open the partition
//     and fetch from the leader like any follower.
//  2. The leader adds a caught-up replica to the ISR with AlterPartition.
//  3. The change that leaves every target replica in the ISR (minus the
//     removing ones) completes the reassignment in the same record: the
//     replicas become the targets, the removing replicas leave the ISR,
//     adding/removing are cleared, a leader that is being removed is
//     replaced by the first target in the ISR, and the leader epoch is
//     bumped (the metadata apply rule for a replica set that drops a
//     replica), so a removed replica can fetch no more. A removed replica
//     then deletes its copy (replica.Manager.Reconcile).
//
// A reassignment that needs no new replica (a reordering, a shrink) thus
// completes at once. Cancelling (nil replicas) reverts: the adding replicas
// leave the replicas and the ISR.

// MaxReassignmentsPerRequest bounds one AlterPartitionReassignments request,
// as Kafka bounds the records of one user operation (10000).
const MaxReassignmentsPerRequest = 10000

// Reassignment errors.
var (
	ErrNoReassignmentInProgress = errors.New("controller: no reassignment in progress")
	ErrBrokerNotRegistered      = errors.New("controller: broker is not registered")
)

// Reassignment is one partition of an AlterPartitionReassignments request.
type Reassignment struct {
	Topic     string
	Partition int32
	// Replicas are the target replicas, the first the preferred leader;
	// nil cancels the partition's reassignment in progress.
	Replicas []int32
}

// AlterReassignments starts, changes or cancels the reassignment of each
// partition of rs and returns one error per entry (nil: accepted). The
// accepted ones are written in one metadata batch, as Kafka's controller
// writes them atomically. The error is for the whole request (not the
// active controller, ...).
func (c *Controller) AlterReassignments(ctx context.Context, rs []Reassignment) ([]error, error) {
	if len(rs) > MaxReassignmentsPerRequest {
		return nil, fmt.Errorf("%w: %d partitions in one reassignment request, at most %d", ErrInvalidChange, len(rs), MaxReassignmentsPerRequest)
	}
	errs := make([]error, len(rs))
	err := c.exec(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		var recs []metadata.Record
		// Every record is decided on img, so a partition may be named
		// once per request (a second entry could not see the first).
		type tp struct {
			topic     string
			partition int32
		}
		named := make(map[tp]bool, len(rs))
		unclean := c.uncleanFor(img)
		for i, r := range rs {
			key := tp{r.Topic, r.Partition}
			if named[key] {
				errs[i] = fmt.Errorf("%w: %s-%d named twice in one request", ErrInvalidChange, r.Topic, r.Partition)
				continue
			}
			named[key] = true
			// The records are valid by construction; exec checks the
			// batch as a whole before proposing it.
			rec, ok, err := reassignRecord(img, r, unclean)
			if err == nil && ok {
				recs = append(recs, rec)
			}
			errs[i] = err
		}
		return recs, nil
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// reassignRecord is the change that starts, changes or cancels r on img;
// ok is false when nothing changes.
func reassignRecord(img *metadata.Image, r Reassignment, unclean uncleanFunc) (metadata.PartitionChangeRecord, bool, error) {
	t := img.Topic(r.Topic)
	if t == nil {
		return metadata.PartitionChangeRecord{}, false, fmt.Errorf("%w: %q", ErrUnknownTopic, r.Topic)
	}
	if r.Partition < 0 || int(r.Partition) >= len(t.Partitions) {
		return metadata.PartitionChangeRecord{}, false, fmt.Errorf("%w: %s-%d", ErrUnknownPartition, r.Topic, r.Partition)
	}
	p := t.Partitions[r.Partition]
	if r.Replicas == nil {
		return cancelRecord(img, t, p, unclean)
	}
	if err := checkTargetReplicas(img, r.Replicas); err != nil {
		return metadata.PartitionChangeRecord{}, false, err
	}
	// The current replicas are the partition's whole list, including
	// those of a reassignment in progress, as in Kafka: a new target
	// replaces the old one.
	removing := sortedDiff(p.Replicas, r.Replicas)
	adding := sortedDiff(r.Replicas, p.Replicas)
	replicas := append(slices.Clone(r.Replicas), removing...)
	rec, ok := partitionChange(img, t.ID, p, replicas, p.ISR, adding, removing)
	return rec, ok, nil
}

// cancelRecord reverts p's reassignment in progress
// (PartitionReassignmentRevert): the adding replicas leave the replicas and
// the ISR, the removing ones stay.
func cancelRecord(img *metadata.Image, t *metadata.Topic, p metadata.Partition, unclean uncleanFunc) (metadata.PartitionChangeRecord, bool, error) {
	if !p.Reassigning() {
		return metadata.PartitionChangeRecord{}, false, fmt.Errorf("%w: %s-%d", ErrNoReassignmentInProgress, t.Name, p.Partition)
	}
	notAdding := func(id int32) bool { return !slices.Contains(p.AddingReplicas, id) }
	replicas := filter(p.Replicas, notAdding)
	isr := filter(p.ISR, notAdding)
	if len(isr) == 0 {
		// Only the adding replicas are in sync: reverting needs an unclean
		// election, which Kafka allows only when the topic does.
		if !unclean(t) {
			return metadata.PartitionChangeRecord{}, false, fmt.Errorf("%w: reverting %s-%d would need an unclean leader election",
				ErrInvalidReplicaAssignment, t.Name, p.Partition)
		}
		isr = replicas[:1]
	}
	rec, ok := partitionChange(img, t.ID, p, replicas, isr, []int32{}, []int32{})
	return rec, ok, nil
}

// checkTargetReplicas validates a manual assignment as Kafka's
// validateManualPartitionAssignment: not empty, no broker twice, every
// broker registered.
func checkTargetReplicas(img *metadata.Image, replicas []int32) error {
	if len(replicas) == 0 {
		return fmt.Errorf("%w: empty replica list", ErrInvalidReplicaAssignment)
	}
	if len(replicas) > len(img.Brokers) {
		// Checked first: the loop below is quadratic in the list a
		// client sent.
		return fmt.Errorf("%w: %d replicas, %d registered brokers", ErrInvalidReplicaAssignment, len(replicas), len(img.Brokers))
	}
	for i, id := range replicas {
		if _, ok := img.Brokers[id]; !ok {
			return fmt.Errorf("%w: broker %d is not registered", ErrInvalidReplicaAssignment, id)
		}
		if slices.Contains(replicas[:i], id) {
			return fmt.Errorf("%w: broker %d appears more than once", ErrInvalidReplicaAssignment, id)
		}
	}
	return nil
}

// partitionChange is Kafka's PartitionChangeBuilder for the fields Gregor
// has: it moves p towards the given replicas, ISR and reassignment state,
// completes a reassignment the ISR allows, keeps the leader while it is an
// eligible ISR member (else elects the first eligible ISR member in replica
// order), and returns the record holding what differs; ok is false when
// nothing does.
func partitionChange(img *metadata.Image, topicID [16]byte, p metadata.Partition, replicas, isr, adding, removing []int32) (metadata.PartitionChangeRecord, bool) {
	if len(adding) > 0 || len(removing) > 0 {
		replicas, isr, adding, removing = maybeComplete(replicas, isr, adding, removing)
	}
	eligible := func(id int32) bool {
		b, ok := img.Brokers[id]
		return ok && !b.Fenced
	}
	leader := p.Leader
	if !slices.Contains(isr, leader) || !eligible(leader) {
		leader = electLeader(replicas, isr, eligible)
	}
	rec := metadata.PartitionChangeRecord{TopicID: topicID, Partition: p.Partition}
	changed := false
	if !slices.Equal(replicas, p.Replicas) {
		rec.Replicas, changed = slices.Clone(replicas), true
	}
	if !slices.Equal(isr, p.ISR) {
		rec.ISR, changed = slices.Clone(isr), true
	}
	if !slices.Equal(adding, p.AddingReplicas) {
		rec.AddingReplicas, changed = nonNil(adding), true
	}
	if !slices.Equal(removing, p.RemovingReplicas) {
		rec.RemovingReplicas, changed = nonNil(removing), true
	}
	if leader != p.Leader {
		rec.Leader, changed = &leader, true
	}
	return rec, changed
}

// maybeComplete is PartitionReassignmentReplicas.maybeCompleteReassignment:
// once the ISR, less the removing replicas, holds every remaining replica,
// the removing replicas go and the reassignment is over.
func maybeComplete(replicas, isr, adding, removing []int32) (_, _, _, _ []int32) {
	keep := func(id int32) bool { return !slices.Contains(removing, id) }
	newISR, newReplicas := filter(isr, keep), filter(replicas, keep)
	if len(newISR) == 0 || len(newReplicas) == 0 {
		return replicas, isr, adding, removing
	}
	for _, id := range newReplicas {
		if !slices.Contains(newISR, id) {
			return replicas, isr, adding, removing
		}
	}
	return newReplicas, newISR, nil, nil
}

// UnregisterBroker removes broker id's registration (UnregisterBroker, key
// 64), as Kafka's controller does: the broker first leaves every ISR and
// leadership it holds, as on fencing. Kafka does not check that the broker
// is shut down; a live broker's next heartbeat fails and it registers
// again. Replicas assigned to the broker stay assigned: move them first
// (a drain).
func (c *Controller) UnregisterBroker(ctx context.Context, id int32) error {
	err := c.exec(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		b, ok := img.Brokers[id]
		if !ok {
			return nil, fmt.Errorf("%w: %d", ErrBrokerNotRegistered, id)
		}
		c.forgetCatchUp(id)
		return append(leaveRecords(img, id, c.uncleanFor(img)), metadata.UnregisterBrokerRecord{NodeID: id, Epoch: b.Epoch}), nil
	})
	if err != nil {
		return err
	}
	return c.forgetObserver(ctx, id)
}

// sortedDiff is the ids of a not in b, ascending (Kafka's TreeSet).
func sortedDiff(a, b []int32) []int32 {
	out := filter(a, func(id int32) bool { return !slices.Contains(b, id) })
	slices.Sort(out)
	return out
}

func filter(xs []int32, keep func(int32) bool) []int32 {
	out := make([]int32, 0, len(xs))
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// nonNil turns "none" into an empty list, which a PartitionChangeRecord
// reads as "clear" rather than "unchanged".
func nonNil(xs []int32) []int32 {
	if xs == nil {
		return []int32{}
	}
	return slices.Clone(xs)
}
