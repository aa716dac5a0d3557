package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// Leader elections on demand (Kafka's ElectLeaders, key 43) and the
// automatic preferred-leader rebalance (auto.leader.rebalance.enable).
//
// A preferred election makes a partition's first replica its leader when it
// is in the ISR and unfenced; an unclean election gives an offline
// partition a leader, from the ISR if it can, else any unfenced replica
// (which becomes the whole ISR). The per-partition outcomes are Kafka's:
// ELECTION_NOT_NEEDED when the partition already has the leader asked for,
// PREFERRED_LEADER_NOT_AVAILABLE and ELIGIBLE_LEADERS_NOT_AVAILABLE when no
// replica qualifies.

// Errors of ElectLeaders, per partition.
var (
	ErrElectionNotNeeded           = errors.New("controller: the partition already has the leader the election would choose")
	ErrPreferredLeaderNotAvailable = errors.New("controller: the preferred leader is not in the ISR or not unfenced")
	ErrEligibleLeadersNotAvailable = errors.New("controller: no replica can lead the partition")
	ErrInvalidElectionType         = errors.New("controller: unknown election type")
)

// Election types, numbered as ElectLeaders' election_type.
const (
	ElectPreferred int8 = 0
	ElectUnclean   int8 = 1
)

// TopicPartitions names partitions by topic name.
type TopicPartitions map[string][]int32

// ElectionResult is one partition's outcome of ElectLeaders: Err is nil
// when a new leader was elected.
type ElectionResult struct {
	Topic     string
	Partition int32
	Err       error
}

// ElectLeaders runs elections of the given type for the named partitions,
// or for every partition when partitions is nil (then, as Kafka, the
// results leave out the partitions whose election was not needed). All
// changes are one metadata batch. With dryRun nothing is written and the
// results say what would happen.
func (c *Controller) ElectLeaders(ctx context.Context, typ int8, partitions TopicPartitions, dryRun bool) ([]ElectionResult, error) {
	if typ != ElectPreferred && typ != ElectUnclean {
		return nil, fmt.Errorf("%w: %d", ErrInvalidElectionType, typ)
	}
	var results []ElectionResult
	err := c.exec(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		results = results[:0]
		var recs []metadata.Record
		one := func(topic string, p int32, all bool) {
			rec, err := electOne(img, topic, p, typ)
			if all && errors.Is(err, ErrElectionNotNeeded) {
				return
			}
			if err == nil {
				recs = append(recs, rec)
			}
			results = append(results, ElectionResult{Topic: topic, Partition: p, Err: err})
		}
		if partitions == nil {
			for _, t := range sortedTopics(img) {
				for _, p := range t.Partitions {
					one(t.Name, p.Partition, true)
				}
			}
		} else {
			for _, topic := range slices.Sorted(func(yield func(string) bool) {
				for k := range partitions {
					if !yield(k) {
						return
					}
				}
			}) {
				for _, p := range partitions[topic] {
					one(topic, p, false)
				}
			}
		}
		if dryRun {
			return nil, nil
		}
		return recs, nil
	})
	return results, err
}

// electOne decides one partition's election on img.
func electOne(img *metadata.Image, topic string, partition int32, typ int8) (metadata.PartitionChangeRecord, error) {
	t := img.Topic(topic)
	if t == nil {
		return metadata.PartitionChangeRecord{}, fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	p, ok := img.Partition(t.ID, partition)
	if !ok {
		return metadata.PartitionChangeRecord{}, fmt.Errorf("%w: %s-%d", ErrUnknownPartition, topic, partition)
	}
	eligible := brokerEligible(img)
	var leader int32
	isr := p.ISR
	switch typ {
	case ElectPreferred:
		if p.Leader == p.Replicas[0] {
			return metadata.PartitionChangeRecord{}, ErrElectionNotNeeded
		}
		leader = preferredLeader(p, eligible)
		if leader == p.Leader || leader == metadata.NoLeader {
			return metadata.PartitionChangeRecord{}, fmt.Errorf("%w: %s-%d, preferred %d, ISR %v", ErrPreferredLeaderNotAvailable, topic, partition, p.Replicas[0], p.ISR)
		}
	default:
		if p.Leader != metadata.NoLeader {
			return metadata.PartitionChangeRecord{}, ErrElectionNotNeeded
		}
		leader, isr = electOnline(t, p, eligible, func(*metadata.Topic) bool { return true })
		if leader == metadata.NoLeader {
			return metadata.PartitionChangeRecord{}, fmt.Errorf("%w: %s-%d, replicas %v all fenced", ErrEligibleLeadersNotAvailable, topic, partition, p.Replicas)
		}
	}
	rec, _ := changeRecord(t, p, leader, isr)
	return rec, nil
}

// preferredLeader is Kafka's preferred election: the first replica when it
// is in the ISR and eligible, else the current leader when it still is,
// else the first eligible ISR member.
func preferredLeader(p metadata.Partition, eligible eligibleFunc) int32 {
	valid := func(id int32) bool { return id != metadata.NoLeader && slices.Contains(p.ISR, id) && eligible(id) }
	if valid(p.Replicas[0]) {
		return p.Replicas[0]
	}
	if valid(p.Leader) {
		return p.Leader
	}
	return electLeader(p.Replicas, p.ISR, eligible)
}

// Defaults of the automatic rebalance, Kafka's.
const (
	defaultImbalanceCheckInterval = 300 * time.Second
	defaultImbalancePercentage    = 10
)

// rebalanceSettings resolves auto.leader.rebalance.enable,
// leader.imbalance.check.interval.seconds and
// leader.imbalance.per.broker.percentage from the static properties.
func (c *Controller) rebalanceSettings() (enabled bool, interval time.Duration, percentage int) {
	enabled = c.cfg.Props["auto.leader.rebalance.enable"] != "false"
	interval = defaultImbalanceCheckInterval
	if s, err := strconv.ParseInt(c.cfg.Props["leader.imbalance.check.interval.seconds"], 10, 64); err == nil && s > 0 {
		interval = time.Duration(s) * time.Second
	}
	percentage = defaultImbalancePercentage
	if v, err := strconv.Atoi(c.cfg.Props["leader.imbalance.per.broker.percentage"]); err == nil && v >= 0 {
		percentage = v
	}
	return enabled, interval, percentage
}

// rebalanceLoop runs the automatic preferred-leader rebalance on the active
// controller every leader.imbalance.check.interval.seconds.
func (c *Controller) rebalanceLoop() {
	enabled, interval, percentage := c.rebalanceSettings()
	if !enabled {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stopc:
			return
		case <-t.C:
		}
		if !c.IsActive() {
			continue
		}
		if len(rebalanceRecords(c.Image(), percentage)) == 0 {
			continue
		}
		var n int
		err := c.exec(c.baseCtx, func(img *metadata.Image) ([]metadata.Record, error) {
			recs := rebalanceRecords(img, percentage)
			n = len(recs)
			return recs, nil
		})
		switch {
		case err == nil:
			c.log.Info("preferred leaders restored", "partitions", n)
		case errors.Is(err, ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, ErrNotController):
		default:
			c.log.Warn("preferred leader rebalance failed", "err", err)
		}
	}
}

// rebalanceRecords are the preferred elections of the automatic rebalance:
// for every broker whose imbalance ratio (partitions it is the preferred
// leader of but does not lead, over partitions it is the preferred leader
// of) is above percentage, as Kafka's leader.imbalance.per.broker.percentage
// defines it, each such partition whose preferred leader is in the ISR and
// unfenced gets it back.
func rebalanceRecords(img *metadata.Image, percentage int) []metadata.Record {
	preferred := map[int32]int{}
	notLeading := map[int32]int{}
	for _, t := range img.Topics {
		for _, p := range t.Partitions {
			if len(p.Replicas) == 0 {
				continue
			}
			preferred[p.Replicas[0]]++
			if p.Leader != p.Replicas[0] {
				notLeading[p.Replicas[0]]++
			}
		}
	}
	eligible := brokerEligible(img)
	var recs []metadata.Record
	for _, t := range sortedTopics(img) {
		for _, p := range t.Partitions {
			pl := p.Replicas[0]
			if p.Leader == pl || notLeading[pl]*100 <= percentage*preferred[pl] {
				continue
			}
			if !slices.Contains(p.ISR, pl) || !eligible(pl) {
				continue
			}
			if rec, ok := changeRecord(t, p, pl, p.ISR); ok {
				recs = append(recs, rec)
			}
		}
	}
	return recs
}
