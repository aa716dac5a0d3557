package controller

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// TopicSpec describes a topic to create. Name and config validation is the
// caller's job.
type TopicSpec struct {
	Name              string
	NumPartitions     int32
	ReplicationFactor int16
	// Assignments optionally gives the replicas of every partition
	// (partition id -> replicas, first replica the preferred leader). When
	// set, NumPartitions and ReplicationFactor are ignored.
	Assignments  map[int32][]int32
	Configs      map[string]string
	ValidateOnly bool
}

// RegisterBroker registers b, or re-registers it. The broker epoch is raised
// to one more than the registered one when b.Epoch is not already higher; the
// epoch used can be read from the image afterwards.
func (c *Controller) RegisterBroker(ctx context.Context, b metadata.Broker) error {
	err := c.exec(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		epoch := max(b.Epoch, 1)
		if old, ok := img.Brokers[b.NodeID]; ok && epoch <= old.Epoch {
			epoch = old.Epoch + 1
		}
		return []metadata.Record{metadata.RegisterBrokerRecord{
			NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack, Epoch: epoch, Fenced: b.Fenced,
		}}, nil
	})
	if err == nil {
		c.touch(b.NodeID)
	}
	return err
}

// CreateTopic creates a topic, its partitions and configs in one entry and
// returns it as applied (or, with ValidateOnly, as it would be).
func (c *Controller) CreateTopic(ctx context.Context, spec TopicSpec) (metadata.Topic, error) {
	var planned []metadata.Record
	err := c.execVisible(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		recs, err := planTopic(img, spec)
		if err != nil {
			return nil, err
		}
		if spec.ValidateOnly {
			planned = recs
			return nil, nil
		}
		return recs, nil
	})
	if err != nil {
		return metadata.Topic{}, err
	}
	if spec.ValidateOnly {
		scratch, err := (&metadata.Image{}).ApplyBatch(planned, 0)
		if err != nil {
			return metadata.Topic{}, mapApplyErr(err)
		}
		return *scratch.Topic(spec.Name), nil
	}
	img := c.Image()
	c.awaitFollowersCommit(ctx, img.LastOffset)
	t := img.Topic(spec.Name)
	if t == nil {
		// Deleted again between apply and this read.
		return metadata.Topic{}, ErrUnknownTopic
	}
	return *t, nil
}

// planTopic returns the records that create spec's topic on img. The topic
// record's configs are emitted without depending on img, so that with
// ValidateOnly the records also apply to an empty image.
func planTopic(img *metadata.Image, spec TopicSpec) ([]metadata.Record, error) {
	if img.Topic(spec.Name) != nil {
		return nil, fmt.Errorf("%w: %q", ErrTopicExists, spec.Name)
	}
	var assignment [][]int32
	if spec.Assignments != nil {
		n := int32(len(spec.Assignments))
		if n == 0 {
			return nil, fmt.Errorf("%w: empty assignment", ErrInvalidReplicaAssignment)
		}
		assignment = make([][]int32, n)
		for p, replicas := range spec.Assignments {
			if p < 0 || p >= n {
				return nil, fmt.Errorf("%w: partition ids must be 0..%d, got %d", ErrInvalidReplicaAssignment, n-1, p)
			}
			assignment[p] = replicas
		}
		if err := checkAssignment(img, assignment, len(assignment[0])); err != nil {
			return nil, err
		}
	} else {
		if spec.NumPartitions <= 0 {
			return nil, fmt.Errorf("%w: %d", ErrInvalidPartitions, spec.NumPartitions)
		}
		var err error
		assignment, err = newPlacement(img).place(int(spec.NumPartitions), int(spec.ReplicationFactor))
		if err != nil {
			return nil, err
		}
	}

	id := newTopicID(img)
	recs := []metadata.Record{metadata.TopicRecord{Name: spec.Name, ID: id}}
	recs = append(recs, partitionRecords(id, 0, assignment)...)
	for _, k := range slices.Sorted(maps.Keys(spec.Configs)) {
		v := spec.Configs[k]
		recs = append(recs, metadata.ConfigRecord{
			ResourceType: metadata.ResourceTopic, ResourceName: spec.Name, Name: k, Value: &v,
		})
	}
	return recs, nil
}

// checkAssignment validates manual assignments: each of size rf, without
// duplicates, naming registered brokers.
func checkAssignment(img *metadata.Image, assignment [][]int32, rf int) error {
	for p, replicas := range assignment {
		if len(replicas) == 0 || len(replicas) != rf {
			return fmt.Errorf("%w: partition %d has %d replicas, want %d", ErrInvalidReplicaAssignment, p, len(replicas), rf)
		}
		for i, r := range replicas {
			if _, ok := img.Brokers[r]; !ok {
				return fmt.Errorf("%w: partition %d: unknown broker %d", ErrInvalidReplicaAssignment, p, r)
			}
			if slices.Contains(replicas[:i], r) {
				return fmt.Errorf("%w: partition %d: duplicate broker %d", ErrInvalidReplicaAssignment, p, r)
			}
		}
	}
	return nil
}

func partitionRecords(id [16]byte, first int32, assignment [][]int32) []metadata.Record {
	recs := make([]metadata.Record, 0, len(assignment))
	for i, replicas := range assignment {
		recs = append(recs, metadata.PartitionRecord{
			TopicID: id, Partition: first + int32(i),
			Replicas: slices.Clone(replicas), ISR: slices.Clone(replicas), Leader: replicas[0],
		})
	}
	return recs
}

// newTopicID returns a random id that is not zero and not in use.
func newTopicID(img *metadata.Image) [16]byte {
	for {
		var id [16]byte
		_, _ = rand.Read(id[:])
		if id != ([16]byte{}) && img.TopicByID(id) == nil {
			return id
		}
	}
}

// DeleteTopic deletes the topic called name.
func (c *Controller) DeleteTopic(ctx context.Context, name string) error {
	err := c.exec(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		t := img.Topic(name)
		if t == nil {
			return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
		}
		return []metadata.Record{metadata.RemoveTopicRecord{TopicID: t.ID}}, nil
	})
	if err == nil {
		c.awaitFollowersCommit(ctx, c.Image().LastOffset)
	}
	return err
}

// CreatePartitions grows topic name to newTotal partitions. assignments, if
// non-nil, gives the replicas of each new partition (len newTotal-current,
// each of the topic's replication factor).
func (c *Controller) CreatePartitions(ctx context.Context, name string, newTotal int32, assignments [][]int32, validateOnly bool) error {
	err := c.exec(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		t := img.Topic(name)
		if t == nil {
			return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
		}
		current := int32(len(t.Partitions))
		if newTotal <= current {
			return nil, fmt.Errorf("%w: topic %q has %d partitions, asked for %d", ErrInvalidPartitions, name, current, newTotal)
		}
		rf := 1
		if current > 0 {
			rf = len(t.Partitions[0].Replicas)
		}
		count := int(newTotal - current)
		if assignments != nil {
			if len(assignments) != count {
				return nil, fmt.Errorf("%w: %d assignments for %d new partitions", ErrInvalidReplicaAssignment, len(assignments), count)
			}
			if err := checkAssignment(img, assignments, rf); err != nil {
				return nil, err
			}
		} else {
			var err error
			if assignments, err = newPlacement(img).place(count, rf); err != nil {
				return nil, err
			}
		}
		if validateOnly {
			return nil, nil
		}
		return partitionRecords(t.ID, current, assignments), nil
	})
	if err == nil && !validateOnly {
		c.awaitFollowersCommit(ctx, c.Image().LastOffset)
	}
	return err
}

// followerCommitWait bounds how long a topic change waits for the other
// nodes to learn that it committed.
const followerCommitWait = time.Second

// awaitFollowersCommit waits until every follower that answered Raft
// recently has acknowledged a commit index of at least index (it has then
// handed the entry to its image), so that a client told a topic exists finds
// it in the Metadata answer of any live broker, not only the active
// controller's: clients such as segmentio/kafka-go fail at once on an
// unknown topic instead of retrying. A Kafka broker learns a commit in its
// next metadata fetch, at once; a hashicorp/raft follower learns it in the
// next AppendEntries, up to 2*commitTimeout later. Best effort, bounded by
// followerCommitWait and ctx: a follower that stops answering is not
// waited for.
func (c *Controller) awaitFollowersCommit(ctx context.Context, index uint64) {
	ctx, cancel := context.WithTimeout(ctx, followerCommitWait)
	defer cancel()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for c.progress.lagging(index, time.Now().Add(-heartbeatTimeout)) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		case <-c.stopc:
			return
		}
	}
}

// AlterConfigs changes the configs of a topic (resourceType
// metadata.ResourceTopic, by name) or a broker (metadata.ResourceBroker; ""
// for the cluster default). A nil value deletes the key. With replaceAll
// (legacy AlterConfigs) keys not in set are deleted too.
func (c *Controller) AlterConfigs(ctx context.Context, resourceType int8, name string, set map[string]*string, replaceAll bool) error {
	return c.exec(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		var current map[string]string
		switch resourceType {
		case metadata.ResourceTopic:
			t := img.Topic(name)
			if t == nil {
				return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
			}
			current = t.Configs
		case metadata.ResourceBroker:
			if name != "" {
				if id, err := strconv.ParseInt(name, 10, 32); err != nil || id < 0 {
					return nil, fmt.Errorf("%w: broker %q", ErrInvalidConfigResource, name)
				}
			}
			current = img.BrokerConfigs[name]
		case metadata.ResourceGroup:
			if name == "" {
				return nil, fmt.Errorf("%w: empty group name", ErrInvalidConfigResource)
			}
			current = img.GroupConfigs[name]
		default:
			return nil, fmt.Errorf("%w: resource type %d", ErrInvalidConfigResource, resourceType)
		}
		var recs []metadata.Record
		add := func(k string, v *string) {
			recs = append(recs, metadata.ConfigRecord{ResourceType: resourceType, ResourceName: name, Name: k, Value: v})
		}
		for _, k := range slices.Sorted(maps.Keys(set)) {
			v := set[k]
			old, ok := current[k]
			switch {
			case v == nil && !ok, v != nil && ok && old == *v:
				// No change.
			default:
				add(k, v)
			}
		}
		if replaceAll {
			for _, k := range slices.Sorted(maps.Keys(current)) {
				if _, ok := set[k]; !ok {
					add(k, nil)
				}
			}
		}
		return recs, nil
	})
}

// AllocateProducerIDs hands out the next block of ProducerIDBlockSize
// producer ids to brokerID. Blocks are recorded in the log, so they are
// never reused, across restarts and leader changes included.
func (c *Controller) AllocateProducerIDs(ctx context.Context, brokerID int32) (first, count int64, err error) {
	err = c.exec(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		first = img.NextProducerID
		return []metadata.Record{metadata.ProducerIDsRecord{BrokerID: brokerID, NextProducerID: first + ProducerIDBlockSize}}, nil
	})
	if err != nil {
		return 0, 0, err
	}
	return first, ProducerIDBlockSize, nil
}

// ChangePartition applies a leader, ISR or replica change to one partition.
func (c *Controller) ChangePartition(ctx context.Context, change metadata.PartitionChangeRecord) error {
	return c.exec(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		return []metadata.Record{change}, nil
	})
}
