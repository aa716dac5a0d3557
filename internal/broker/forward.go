package broker

// Topic creation that a request on this broker triggers (Metadata
// auto-creation, the internal topics of the coordinators) goes to the active
// controller: here when this node is it, else as a forwarded CreateTopics.

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/metadata"
)

// errCreatedOnController reports a topic the active controller created (or
// already had) for a forwarded request: this node's image shows it once the
// record replicates, so the caller answers with a retriable error.
var errCreatedOnController = errors.New("broker: topic created on the active controller")

func (b *Broker) createTopic(ctx context.Context, spec controller.TopicSpec) (metadata.Topic, error) {
	t, err := b.ctrl.CreateTopic(ctx, spec)
	if !errors.Is(err, controller.ErrNotController) || b.cfg.Forward == nil {
		return t, err
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = 7
	req.TimeoutMillis = 30000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = spec.Name, spec.NumPartitions, spec.ReplicationFactor
	for _, k := range slices.Sorted(maps.Keys(spec.Configs)) {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		v := spec.Configs[k]
		c.Name, c.Value = k, &v
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp, ferr := b.cfg.Forward(ctx, req)
	if ferr != nil {
		return t, err
	}
	r, ok := resp.(*kmsg.CreateTopicsResponse)
	if !ok || len(r.Topics) != 1 {
		return t, err
	}
	switch code := r.Topics[0].ErrorCode; code {
	case 0, kerr.TopicAlreadyExists.Code:
		return t, errCreatedOnController
	default:
		return t, kerr.ErrorForCode(code)
	}
}
