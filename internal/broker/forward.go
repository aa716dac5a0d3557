package broker

// Requests for the active controller that reach a broker which is not it
// (KIP-590): the admin requests clients send to any broker, and the topic
// creation a request on this broker triggers (Metadata auto-creation, the
// internal topics of the coordinators). As Kafka's ForwardingManager, the
// broker keeps trying until forwardTimeout while the controller cannot be
// reached or answers NOT_CONTROLLER (an election is under way, or its image
// of the leader lags), and answers REQUEST_TIMED_OUT after that: NOT_CONTROLLER
// is only for a controller that is not active, never for a client of a
// broker.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/metadata"
)

// errCreatedOnController reports a topic the active controller created (or
// already had) for a forwarded request: this node's image shows it once the
// record replicates, so the caller answers with a retriable error.
var errCreatedOnController = errors.New("broker: topic created on the active controller")

// forwardTimeout bounds how long a forwarded request keeps looking for an
// active controller (Kafka's controller channel retry timeout, 30 s by
// default as request.timeout.ms).
var forwardTimeout = 30 * time.Second

// forwardRetry is the pause before forwarding again.
const forwardRetry = 100 * time.Millisecond

// toController sends req to the active controller and returns its answer,
// retrying while none answers for real (see the file comment). local is
// true when this node is the active controller: the caller handles req
// itself.
func (b *Broker) toController(ctx context.Context, req kmsg.Request) (resp kmsg.Response, local bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	var last error
	for {
		id, ok := b.ctrl.Leader()
		switch {
		case ok && id == b.cfg.NodeID:
			return nil, true, nil
		case !ok:
			last = errors.New("no active controller known")
		default:
			resp, err := b.cfg.Forward(ctx, req)
			switch {
			case err != nil:
				last = fmt.Errorf("controller %d: %w", id, err)
			case answersNotController(resp):
				last = fmt.Errorf("controller %d: %w", id, kerr.NotController)
			default:
				return resp, false, nil
			}
		}
		t := time.NewTimer(forwardRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			// The client's wait ended or forwardTimeout passed: a
			// timeout either way (REQUEST_TIMED_OUT).
			return nil, false, fmt.Errorf("broker: forwarding to the active controller: %w (last: %v)", context.DeadlineExceeded, last)
		case <-t.C:
		}
	}
}

// answersNotController reports whether a controller answered NOT_CONTROLLER
// anywhere in resp (Kafka's check: errorCounts contains NOT_CONTROLLER).
func answersNotController(resp kmsg.Response) bool {
	nc := kerr.NotController.Code
	switch r := resp.(type) {
	case *kmsg.CreateTopicsResponse:
		return slices.ContainsFunc(r.Topics, func(t kmsg.CreateTopicsResponseTopic) bool { return t.ErrorCode == nc })
	case *kmsg.DeleteTopicsResponse:
		return slices.ContainsFunc(r.Topics, func(t kmsg.DeleteTopicsResponseTopic) bool { return t.ErrorCode == nc })
	case *kmsg.CreatePartitionsResponse:
		return slices.ContainsFunc(r.Topics, func(t kmsg.CreatePartitionsResponseTopic) bool { return t.ErrorCode == nc })
	case *kmsg.AlterConfigsResponse:
		return slices.ContainsFunc(r.Resources, func(c kmsg.AlterConfigsResponseResource) bool { return c.ErrorCode == nc })
	case *kmsg.IncrementalAlterConfigsResponse:
		return slices.ContainsFunc(r.Resources, func(c kmsg.IncrementalAlterConfigsResponseResource) bool { return c.ErrorCode == nc })
	case *kmsg.ElectLeadersResponse:
		if r.ErrorCode == nc {
			return true
		}
		return slices.ContainsFunc(r.Topics, func(t kmsg.ElectLeadersResponseTopic) bool {
			return slices.ContainsFunc(t.Partitions, func(p kmsg.ElectLeadersResponseTopicPartition) bool { return p.ErrorCode == nc })
		})
	case *kmsg.AlterPartitionAssignmentsResponse:
		return r.ErrorCode == nc
	case *kmsg.ListPartitionReassignmentsResponse:
		return r.ErrorCode == nc
	case *kmsg.UnregisterBrokerResponse:
		return r.ErrorCode == nc
	case *kmsg.DescribeQuorumResponse:
		return r.ErrorCode == nc
	case *kmsg.AddRaftVoterResponse:
		return r.ErrorCode == nc
	case *kmsg.RemoveRaftVoterResponse:
		return r.ErrorCode == nc
	case *kmsg.AllocateProducerIDsResponse:
		return r.ErrorCode == nc
	}
	return false
}

// createTopic creates a topic on this node's controller when it is the
// active one, else on the active controller by a forwarded CreateTopics. As
// for a forwarded request, NOT_CONTROLLER never reaches the caller: a node
// that lost the leadership between the check and the command (its Raft
// state is no longer leader while it still names itself the leader, for a
// moment) tries again, until ctx ends.
func (b *Broker) createTopic(ctx context.Context, spec controller.TopicSpec) (metadata.Topic, error) {
	for {
		t, err := b.ctrl.CreateTopic(ctx, spec)
		if !errors.Is(err, controller.ErrNotController) || b.cfg.Forward == nil {
			return t, err
		}
		resp, local, ferr := b.toController(ctx, forwardedCreateTopics(spec))
		switch {
		case local:
			// This node took over meanwhile, or still names itself.
			timer := time.NewTimer(forwardRetry)
			select {
			case <-ctx.Done():
				timer.Stop()
				return t, fmt.Errorf("broker: creating topic %s: %w (last: %v)", spec.Name, ctx.Err(), err)
			case <-timer.C:
			}
			continue
		case ferr != nil:
			return t, ferr
		}
		r, ok := resp.(*kmsg.CreateTopicsResponse)
		if !ok || len(r.Topics) != 1 {
			return t, fmt.Errorf("broker: forwarded CreateTopics got an answer of %T without one topic", resp)
		}
		switch code := r.Topics[0].ErrorCode; code {
		case 0, kerr.TopicAlreadyExists.Code:
			return t, errCreatedOnController
		default:
			return t, kerr.ErrorForCode(code)
		}
	}
}

// forwardedCreateTopics is the CreateTopics request that creates spec.
func forwardedCreateTopics(spec controller.TopicSpec) *kmsg.CreateTopicsRequest {
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
	return req
}
