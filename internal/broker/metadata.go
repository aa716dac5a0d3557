package broker

// Metadata (key 3), v0-12.
//
// Lists brokers, the cluster id, the controller and the requested topics (all
// of them when the list is null, or empty at v0). An unknown topic is created
// when the request allows it (v4+: allow_auto_topic_creation; always before)
// and auto.create.topics.enable is true, with num.partitions and
// default.replication.factor. As in Kafka, the answer for a topic this request
// created (or found created by a concurrent one) is LEADER_NOT_AVAILABLE with
// no partitions: clients (kgo, librdkafka, kafkajs, sarama, kafka-go) retry
// the Metadata request. Topics can be named by id at v10+.
//
// A partition is answered with a leader only when that leader can serve it:
// when the leader is this node, the partition must be open here with the
// image's topic id and leader epoch. Until then (the metadata log applied
// before the replica layer followed) it is LEADER_NOT_AVAILABLE with leader
// -1, so a client never produces to a leader that answers
// NOT_LEADER_OR_FOLLOWER.

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/server"
)

// authorizedOpsUnset is Kafka's "not requested" value for authorized operations.
const authorizedOpsUnset = -2147483648

func handleMetadata(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	img := b.image()
	clusterID := img.ClusterID
	resp.ClusterID = &clusterID
	resp.ControllerID = b.controllerID(img)
	resp.AuthorizedOperations = authorizedOps(req.IncludeClusterAuthorizedOperations, allClusterOps)
	resp.Brokers = b.metadataBrokers(img, listenerOf(sreq))

	allTopics := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if allTopics {
		names := make([]string, 0, len(img.Topics))
		for name := range img.Topics {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			resp.Topics = append(resp.Topics, b.metadataTopic(img, img.Topics[name], req.IncludeTopicAuthorizedOperations))
		}
		return done(resp)
	}
	autoCreate := b.autoCreates(req, img)
	for _, rt := range req.Topics {
		var t *metadata.Topic
		var name string
		// By id whenever one is given, as Kafka: the Java admin client
		// describing topics by id sends an empty name beside the id.
		if rt.Topic != nil && rt.TopicID == [16]byte{} {
			name = *rt.Topic
			t = img.Topics[name]
		} else if rt.TopicID != [16]byte{} {
			t = img.TopicsByID[rt.TopicID]
			if t == nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID = rt.TopicID
				mt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		}
		if t == nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = &name
			mt.AuthorizedOperations = authorizedOpsUnset
			if err := validateTopicName(name); err != nil {
				mt.ErrorCode = kerr.InvalidTopicException.Code
			} else if !autoCreate {
				mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			} else {
				// Created now or by a concurrent request: either way
				// Kafka answers LEADER_NOT_AVAILABLE, no partitions.
				if err := b.autoCreate(ctx, img, name); err != nil && !errors.Is(err, controller.ErrTopicExists) {
					mt.ErrorCode = b.errorCode(err)
				}
				mt.IsInternal = isInternalTopic(name)
			}
			if mt.ErrorCode == 0 {
				mt.ErrorCode = kerr.LeaderNotAvailable.Code
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, b.metadataTopic(img, t, req.IncludeTopicAuthorizedOperations))
	}
	return done(resp)
}

// autoCreates reports whether req creates the topics it names that do not
// exist: always before v4, with allow_auto_topic_creation from it, and only
// with auto.create.topics.enable.
func (b *Broker) autoCreates(req *kmsg.MetadataRequest, img *metadata.Image) bool {
	return (req.Version < 4 || req.AllowAutoTopicCreation) && b.brokerBool(img, "auto.create.topics.enable")
}

// autoCreateWait bounds how long a Metadata request waits for the topic it
// auto-creates. Kafka's brokers do not wait (they send the creation to the
// controller and answer); a short wait lets the client's first retry find
// the partitions ready, and the bound keeps a Metadata request (and the
// requests behind it on its connection) from hanging while no controller
// answers.
const autoCreateWait = time.Second

// autoCreate creates a topic with the broker defaults in the background and
// waits for it up to autoCreateWait. An error is returned only when the
// creation ended in time with one.
func (b *Broker) autoCreate(ctx context.Context, img *metadata.Image, name string) error {
	c := b.createTopicInBackground(controller.TopicSpec{
		Name:              name,
		NumPartitions:     int32(b.brokerInt(img, "num.partitions")),
		ReplicationFactor: int16(b.brokerInt(img, "default.replication.factor")),
	})
	t := time.NewTimer(autoCreateWait)
	defer t.Stop()
	select {
	case <-c.done:
		return c.err
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

func (b *Broker) brokerBool(img *metadata.Image, name string) bool {
	v, _, _ := b.brokerLayers(img).BrokerValue(name)
	return v == "true"
}

// listenerOf is the name of the listener a request came in on: its
// clients are told the brokers' endpoints of that listener.
func listenerOf(sreq *server.Request) string {
	if sreq.Conn == nil {
		return ""
	}
	return sreq.Conn.Listener
}

// metadataBrokers lists the unfenced brokers at their endpoints of
// listener; a broker without that listener is left out, as Kafka leaves it.
func (b *Broker) metadataBrokers(img *metadata.Image, listener string) []kmsg.MetadataResponseBroker {
	ids := make([]int32, 0, len(img.Brokers))
	for id, br := range img.Brokers {
		if _, _, ok := br.Endpoint(listener); ok && !br.Fenced {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := make([]kmsg.MetadataResponseBroker, 0, len(ids))
	for _, id := range ids {
		br := img.Brokers[id]
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID = br.NodeID
		mb.Host, mb.Port, _ = br.Endpoint(listener)
		if br.Rack != "" {
			rack := br.Rack
			mb.Rack = &rack
		}
		out = append(out, mb)
	}
	return out
}

func (b *Broker) metadataTopic(img *metadata.Image, t *metadata.Topic, withOps bool) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	mt.IsInternal = isInternalTopic(t.Name)
	mt.AuthorizedOperations = authorizedOps(withOps, allTopicOps)
	for _, p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.Partition
		mp.Leader = p.Leader
		mp.LeaderEpoch = p.LeaderEpoch
		mp.Replicas = p.Replicas
		mp.ISR = p.ISR
		for _, r := range p.Replicas {
			if br, ok := img.Brokers[r]; !ok || br.Fenced {
				mp.OfflineReplicas = append(mp.OfflineReplicas, r)
			}
		}
		if br, ok := img.Brokers[p.Leader]; !ok || br.Fenced || !b.canLead(t, p) {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
			mp.Leader = -1
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// canLead reports whether the partition's leader can serve it: for a
// partition led here, whether the replica layer has it open for this topic
// id at the image's leader epoch, after reconciling to the image if it was
// not yet (leaderReplica). Hiding such a leader (leader -1,
// LEADER_NOT_AVAILABLE) until the background reconcile ran is what Gregor
// did before; segmentio/kafka-go's Writer then fails at once ("topic
// partition has no leader") when it creates its topic and its first
// Metadata answer comes from the new leader. Kafka names the leader from its
// metadata image at once.
func (b *Broker) canLead(t *metadata.Topic, p metadata.Partition) bool {
	if p.Leader != b.cfg.NodeID {
		return true // another node's partitions are its own to serve
	}
	rp := b.leaderReplica(t, p.Partition)
	return rp != nil && rp.TopicID == t.ID && rp.LeaderEpoch() >= p.LeaderEpoch
}

// leaderReplica returns the hosted replica of partition of t (which the
// caller has checked exists). When the image names this node the leader but
// the replica is not leading at the image's epoch yet, the node reconciles
// first: an image is published before the node reconciles to it, and a
// client may arrive in between because another broker's Metadata already
// named this one. Kafka answers it NOT_LEADER_OR_FOLLOWER, and the client
// then backs off until its next metadata refresh: 5 s in franz-go, every
// time a producer starts right after creating its topic on a cluster.
func (b *Broker) leaderReplica(t *metadata.Topic, partition int32) *replica.Partition {
	p := b.replicas.Get(t.Name, partition)
	part := t.Partitions[partition]
	if part.Leader != b.cfg.NodeID || b.cfg.OnMetadataChange == nil ||
		(p != nil && p.IsLeader() && p.TopicID == t.ID && p.LeaderEpoch() >= part.LeaderEpoch) {
		return p
	}
	b.cfg.OnMetadataChange()
	return b.replicas.Get(t.Name, partition)
}

// The authorized operations of a resource, asked for with Metadata's,
// DescribeCluster's or DescribeGroups' Include...AuthorizedOperations, are
// a bit set of ACL operation codes (READ 3, WRITE 4, CREATE 5, DELETE 6,
// ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS
// 11, IDEMPOTENT_WRITE 12). With no authorizer Kafka answers every operation
// the resource type supports, and so does Gregor.
const (
	// allTopicOps: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
	// DESCRIBE_CONFIGS, ALTER_CONFIGS.
	allTopicOps = 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<10 | 1<<11
	// allClusterOps: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
	// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
	allClusterOps = 1<<5 | 1<<7 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12
	// allGroupOps: READ, DELETE, DESCRIBE (groups have no configs here).
	allGroupOps = 1<<3 | 1<<6 | 1<<8
)

// authorizedOps is ops when the request asked for them, else Kafka's "not
// requested" value.
func authorizedOps(asked bool, ops int32) int32 {
	if asked {
		return ops
	}
	return authorizedOpsUnset
}

func isInternalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state"
}

var (
	errTopicNameEmpty   = errors.New("broker: topic name is empty")
	errTopicNameLength  = errors.New("broker: topic name is longer than 249 characters")
	errTopicNameDots    = errors.New("broker: topic name cannot be '.' or '..'")
	errTopicNameIllegal = errors.New("broker: topic name may only contain ASCII alphanumerics, '.', '_' and '-'")
)

// validateTopicName applies Kafka's topic name rules.
func validateTopicName(name string) error {
	switch {
	case name == "":
		return errTopicNameEmpty
	case len(name) > 249:
		return errTopicNameLength
	case name == "." || name == "..":
		return errTopicNameDots
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return errTopicNameIllegal
		}
	}
	return nil
}
