package broker

// CreateTopics (key 19) v0-7, DeleteTopics (key 20) v0-6, CreatePartitions
// (key 37) v0-3.
//
// Names follow Kafka's rules (validateTopicName); partition counts and
// replication factors of -1 take the broker defaults (v4+); a manual replica
// assignment excludes both counts; configs are checked against the topic
// config table before anything is proposed, so a request either creates a
// topic with valid configs or fails without a trace. validate_only runs every
// check and proposes nothing. Each topic succeeds or fails on its own.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/server"
)

// maxPartitions bounds one topic's partition count: every partition is a
// directory with open files on this node, and a typo of an extra zero
// should not take the node down.
const maxPartitions = 100_000

func handleCreateTopics(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	seen := make(map[string]int, len(req.Topics))
	for _, t := range req.Topics {
		seen[t.Topic]++
	}
	for _, t := range req.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		rt.NumPartitions, rt.ReplicationFactor = -1, -1
		fail := func(code *kerr.Error, msg string) {
			rt.ErrorCode = code.Code
			rt.ErrorMessage = &msg
		}
		if seen[t.Topic] > 1 {
			fail(kerr.InvalidRequest, "topic "+t.Topic+" appears more than once in the request")
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		spec, code, msg := b.topicSpec(t, req.ValidateOnly)
		if code != nil {
			fail(code, msg)
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		created, err := b.ctrl.CreateTopic(ctx, spec)
		if err == nil && !spec.ValidateOnly {
			b.cfg.OnMetadataChange()
		}
		if err != nil {
			rt.ErrorCode = b.errorCode(err)
			rt.ErrorMessage = errorMessage(err)
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		rt.TopicID = created.ID
		rt.NumPartitions = int32(len(created.Partitions))
		if rt.NumPartitions == 0 {
			rt.NumPartitions = spec.NumPartitions
		}
		rt.ReplicationFactor = spec.ReplicationFactor
		if len(created.Partitions) > 0 {
			rt.ReplicationFactor = int16(len(created.Partitions[0].Replicas))
		}
		if req.Version >= 5 {
			img := b.image()
			layers := b.topicLayers(img, spec.Configs)
			for _, name := range config.SortedNames(config.TopicDefs) {
				v, src := layers.TopicValue(name)
				c := kmsg.NewCreateTopicsResponseTopicConfig()
				c.Name = name
				c.Value = &v
				c.Source = int8(src)
				rt.Configs = append(rt.Configs, c)
			}
		}
		if !req.ValidateOnly {
			b.logger.Info("created topic", "topic", t.Topic, "partitions", rt.NumPartitions,
				"replication_factor", rt.ReplicationFactor)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return done(resp)
}

// topicSpec validates one CreateTopics entry and turns it into a controller spec.
func (b *Broker) topicSpec(t kmsg.CreateTopicsRequestTopic, validateOnly bool) (controller.TopicSpec, *kerr.Error, string) {
	img := b.image()
	spec := controller.TopicSpec{Name: t.Topic, NumPartitions: t.NumPartitions,
		ReplicationFactor: t.ReplicationFactor, ValidateOnly: validateOnly}
	if err := validateTopicName(t.Topic); err != nil {
		return spec, kerr.InvalidTopicException, err.Error()
	}
	if len(t.ReplicaAssignment) > 0 {
		if t.NumPartitions != -1 || t.ReplicationFactor != -1 {
			return spec, kerr.InvalidRequest, "both num_partitions/replication_factor and a replica assignment were given"
		}
		spec.Assignments = make(map[int32][]int32, len(t.ReplicaAssignment))
		for _, a := range t.ReplicaAssignment {
			if _, dup := spec.Assignments[a.Partition]; dup {
				return spec, kerr.InvalidReplicaAssignment, fmt.Sprintf("partition %d is assigned twice", a.Partition)
			}
			spec.Assignments[a.Partition] = a.Replicas
		}
		spec.NumPartitions = int32(len(t.ReplicaAssignment))
		spec.ReplicationFactor = int16(len(t.ReplicaAssignment[0].Replicas))
	}
	if spec.NumPartitions == -1 {
		spec.NumPartitions = int32(b.brokerInt(img, "num.partitions"))
	}
	if spec.ReplicationFactor == -1 {
		spec.ReplicationFactor = int16(b.brokerInt(img, "default.replication.factor"))
	}
	if spec.NumPartitions <= 0 || spec.NumPartitions > maxPartitions {
		return spec, kerr.InvalidPartitions, fmt.Sprintf("number of partitions must be in [1, %d], not %d", maxPartitions, spec.NumPartitions)
	}
	if spec.ReplicationFactor <= 0 {
		return spec, kerr.InvalidReplicationFactor, fmt.Sprintf("replication factor must be larger than 0, not %d", spec.ReplicationFactor)
	}
	if len(t.Configs) > 0 {
		spec.Configs = make(map[string]string, len(t.Configs))
	}
	for _, c := range t.Configs {
		if c.Value == nil {
			return spec, kerr.InvalidConfig, "null value for config " + c.Name
		}
		if err := config.CheckTopicConfig(c.Name, *c.Value); err != nil {
			return spec, kerr.InvalidConfig, err.Error()
		}
		spec.Configs[c.Name] = *c.Value
	}
	return spec, nil, ""
}

func handleDeleteTopics(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	if req.Version < 6 {
		for i := range req.TopicNames {
			targets = append(targets, target{name: &req.TopicNames[i]})
		}
	} else {
		for _, t := range req.Topics {
			targets = append(targets, target{name: t.Topic, id: t.TopicID})
		}
	}
	for _, t := range targets {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic, rt.TopicID = t.name, t.id
		img := b.image()
		var name string
		switch {
		case t.name != nil:
			name = *t.name
			if tp := img.Topics[name]; tp != nil {
				rt.TopicID = tp.ID
			}
		case t.id != [16]byte{}:
			tp := img.TopicsByID[t.id]
			if tp == nil {
				rt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, rt)
				continue
			}
			name = tp.Name
			n := name
			rt.Topic = &n
		}
		if isInternalTopic(name) {
			rt.ErrorCode = kerr.InvalidRequest.Code
			rt.ErrorMessage = errorMessage(errors.New("internal topics cannot be deleted"))
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		if err := b.ctrl.DeleteTopic(ctx, name); err != nil {
			rt.ErrorCode = b.errorCode(err)
			rt.ErrorMessage = errorMessage(err)
		} else {
			b.cfg.OnMetadataChange()
			b.logger.Info("deleted topic", "topic", name)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return done(resp)
}

func handleCreatePartitions(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	for _, t := range req.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		img := b.image()
		cur := img.Topics[t.Topic]
		switch {
		case cur == nil:
			rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case t.Count <= int32(len(cur.Partitions)):
			rt.ErrorCode = kerr.InvalidPartitions.Code
			rt.ErrorMessage = errorMessage(fmt.Errorf("topic has %d partitions; the new count must be larger, not %d", len(cur.Partitions), t.Count))
		case t.Count > maxPartitions:
			rt.ErrorCode = kerr.InvalidPartitions.Code
			rt.ErrorMessage = errorMessage(fmt.Errorf("at most %d partitions", maxPartitions))
		case t.Assignment != nil && len(t.Assignment) != int(t.Count)-len(cur.Partitions):
			rt.ErrorCode = kerr.InvalidReplicaAssignment.Code
			rt.ErrorMessage = errorMessage(fmt.Errorf("%d assignments for %d new partitions", len(t.Assignment), int(t.Count)-len(cur.Partitions)))
		default:
			var assign [][]int32
			for _, a := range t.Assignment {
				assign = append(assign, a.Replicas)
			}
			if err := b.ctrl.CreatePartitions(ctx, t.Topic, t.Count, assign, req.ValidateOnly); err != nil {
				rt.ErrorCode = b.errorCode(err)
				rt.ErrorMessage = errorMessage(err)
			} else if !req.ValidateOnly {
				b.cfg.OnMetadataChange()
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return done(resp)
}

// requestTimeout bounds a request by its timeout_ms field (<= 0: 30 s).
func requestTimeout(ctx context.Context, ms int32) (context.Context, context.CancelFunc) {
	if ms <= 0 {
		ms = 30_000
	}
	return context.WithTimeout(ctx, msDuration(ms))
}

// creation is a topic creation running in the background: done is closed
// when it ends, and err is then its outcome (nil when the topic exists).
type creation struct {
	done    chan struct{}
	err     error
	started time.Time
}

// creatingHold bounds how long creating reports a creation in flight: the
// followers learn a new topic within a second (controller.followerCommitWait),
// while a creation whose answer is lost (a stalled controller) runs for
// its whole 30 s timeout.
const creatingHold = 2 * time.Second

// creating reports whether this node's background creation of topic is in
// flight, for at most creatingHold.
func (b *Broker) creating(topic string) bool {
	b.bg.mu.Lock()
	defer b.bg.mu.Unlock()
	c := b.bg.creating[topic]
	return c != nil && time.Since(c.started) < creatingHold
}

// createTopicInBackground creates a topic on the controller in the
// background, one creation at a time per name (a second caller joins the
// first), and makes this node's partitions follow once it exists. Close
// waits for the creations in flight.
func (b *Broker) createTopicInBackground(spec controller.TopicSpec) *creation {
	b.bg.mu.Lock()
	defer b.bg.mu.Unlock()
	if c := b.bg.creating[spec.Name]; c != nil {
		return c
	}
	c := &creation{done: make(chan struct{}), started: time.Now()}
	if b.bg.closed {
		close(c.done) // shutting down: the client retries elsewhere
		return c
	}
	if b.bg.creating == nil {
		b.bg.creating = map[string]*creation{}
	}
	b.bg.creating[spec.Name] = c
	b.bg.wg.Go(func() {
		defer func() {
			b.bg.mu.Lock()
			delete(b.bg.creating, spec.Name)
			b.bg.mu.Unlock()
			close(c.done)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stop := context.AfterFunc(b.bg.ctx, cancel)
		defer stop()
		_, err := b.createTopic(ctx, spec)
		switch {
		case errors.Is(err, controller.ErrTopicExists), errors.Is(err, errCreatedOnController):
			// Created by another request, or by the controller and
			// not here yet: LEADER_NOT_AVAILABLE until it arrives, as
			// for any fresh topic.
		case err != nil:
			b.logger.Warn("creating a topic failed", "topic", spec.Name, "err", err)
			c.err = err
			return
		default:
			b.logger.Info("created topic", "topic", spec.Name, "partitions", spec.NumPartitions)
		}
		b.cfg.OnMetadataChange()
	})
	return c
}
