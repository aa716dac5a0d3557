package broker

// Metadata (key 3), v0-12.
//
// Lists brokers, the cluster id, the controller and the requested topics (all
// of them when the list is null, or empty at v0). An unknown topic is created
// when the request allows it (v4+: allow_auto_topic_creation; always before)
// and auto.create.topics.enable is true, with num.partitions and
// default.replication.factor; the created topic is answered at once because
// creation completes before the response. Topics can be named by id at v10+.

import (
	"context"
	"errors"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/metadata"
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
	resp.ControllerID = b.controllerID()
	resp.AuthorizedOperations = authorizedOpsUnset
	resp.Brokers = b.metadataBrokers(img)

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
	autoCreate := (req.Version < 4 || req.AllowAutoTopicCreation) &&
		b.brokerBool(img, "auto.create.topics.enable")
	for _, rt := range req.Topics {
		var t *metadata.Topic
		var name string
		if rt.Topic != nil {
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
				created, err := b.autoCreate(ctx, img, name)
				switch {
				case err == nil:
					img = b.image()
					t = created
				case errors.Is(err, controller.ErrTopicExists):
					img = b.image()
					t = img.Topics[name]
				default:
					mt.ErrorCode = b.errorCode(err)
				}
			}
			if t == nil {
				if mt.ErrorCode == 0 {
					mt.ErrorCode = kerr.LeaderNotAvailable.Code
				}
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		}
		resp.Topics = append(resp.Topics, b.metadataTopic(img, t, req.IncludeTopicAuthorizedOperations))
	}
	return done(resp)
}

func (b *Broker) autoCreate(ctx context.Context, img *metadata.Image, name string) (*metadata.Topic, error) {
	spec := controller.TopicSpec{
		Name:              name,
		NumPartitions:     int32(b.brokerInt(img, "num.partitions")),
		ReplicationFactor: int16(b.brokerInt(img, "default.replication.factor")),
	}
	t, err := b.createTopic(ctx, spec)
	if errors.Is(err, errCreatedOnController) {
		return nil, nil // LEADER_NOT_AVAILABLE until the topic reaches this node
	}
	if err != nil {
		return nil, err
	}
	b.cfg.OnMetadataChange()
	b.logger.Info("auto-created topic", "topic", name, "partitions", spec.NumPartitions)
	if cur := b.image().Topics[name]; cur != nil {
		return cur, nil
	}
	return &t, nil
}

func (b *Broker) brokerBool(img *metadata.Image, name string) bool {
	v, _, _ := b.brokerLayers(img).BrokerValue(name)
	return v == "true"
}

func (b *Broker) metadataBrokers(img *metadata.Image) []kmsg.MetadataResponseBroker {
	ids := make([]int32, 0, len(img.Brokers))
	for id, br := range img.Brokers {
		if !br.Fenced {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := make([]kmsg.MetadataResponseBroker, 0, len(ids))
	for _, id := range ids {
		br := img.Brokers[id]
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID = br.NodeID
		mb.Host = br.Host
		mb.Port = br.Port
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
	mt.AuthorizedOperations = authorizedOpsUnset
	if withOps {
		mt.AuthorizedOperations = allTopicOps
	}
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
		if br, ok := img.Brokers[p.Leader]; !ok || br.Fenced {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// allTopicOps is every topic operation (READ, WRITE, CREATE, DELETE, ALTER,
// DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS) as a bit set: with no
// authorizer, everything is allowed.
const allTopicOps = 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<10 | 1<<11

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
