package broker

// BrokerRegistration (key 62) v0-4, BrokerHeartbeat (key 63) v0-1,
// AlterPartition (key 56) v0-3 and AllocateProducerIds (key 67) v0, served on the controller listener only, as
// Kafka serves them. AllocateProducerIds hands out a block of 1000 ids; the
// broker epoch it carries is not checked yet.
//
// A registration is written as a fenced RegisterBroker record with a new
// broker epoch; a heartbeat that does not ask to be fenced unfences the
// broker. Both are answered NOT_CONTROLLER by a controller that is not
// active, STALE_BROKER_EPOCH for a heartbeat whose epoch is not the
// registered one (or with no registration), and INCONSISTENT_CLUSTER_ID for a
// registration naming another cluster. Gregor records one client listener
// per broker: the first listener of the registration that is not named
// CONTROLLER. A CONTROLLER listener is a broker-only node's Raft listener:
// the node is added to the quorum as a non-voter (an observer of the
// metadata log) before the registration is checked, also when it names no
// cluster id yet. Features, log dirs and the incarnation id are accepted and not
// stored yet; every heartbeat is answered caught up.
//
// The admin requests brokers forward (CreateTopics, DeleteTopics,
// CreatePartitions, AlterConfigs, IncrementalAlterConfigs, ElectLeaders,
// AlterPartitionReassignments, ListPartitionReassignments,
// UnregisterBroker) are answered here
// by the broker's own handlers, without an Envelope (no principal to carry
// while Gregor has no authentication); a controller that is not active
// answers them NOT_CONTROLLER.

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/server"
)

// Membership is what the controller APIs need of the controller.
type Membership interface {
	Register(ctx context.Context, r controller.Registration) (epoch int64, err error)
	Heartbeat(ctx context.Context, id int32, epoch int64, metadataOffset int64, wantFence bool) (fenced, caughtUp bool, err error)
	AllocateProducerIDs(ctx context.Context, brokerID int32) (first, count int64, err error)
	AlterPartition(ctx context.Context, r controller.ISRChange) (metadata.Partition, error)
	AddObserver(ctx context.Context, id int32, addr string) error
	Image() *metadata.Image
}

// ControllerAPIs handles the broker-to-controller requests that reach the
// controller listener. It implements server.Handler.
type ControllerAPIs struct {
	m      Membership
	err    *Broker // only for the error table and its logger
	broker atomic.Pointer[Broker]
}

// SetBroker sets the broker whose handlers answer forwarded admin requests;
// until then they are answered NOT_CONTROLLER.
func (h *ControllerAPIs) SetBroker(b *Broker) { h.broker.Store(b) }

// NewControllerAPIs returns the handler of the controller listener.
func NewControllerAPIs(m Membership, logger *slog.Logger) *ControllerAPIs {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &ControllerAPIs{m: m, err: &Broker{logger: logger.With("component", "controller-apis")}}
}

// APIVersions implements server.Handler.
func (h *ControllerAPIs) APIVersions() []kmsg.ApiVersionsResponseApiKey {
	out := []kmsg.ApiVersionsResponseApiKey{
		{ApiKey: 62, MinVersion: 0, MaxVersion: 4},
		{ApiKey: 63, MinVersion: 0, MaxVersion: 1},
		{ApiKey: 67, MinVersion: 0, MaxVersion: 0},
		{ApiKey: 56, MinVersion: 0, MaxVersion: 3},
	}
	for k := range forwarded {
		a := apis[k]
		out = append(out, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: a.min, MaxVersion: a.max})
	}
	return out
}

// Handle implements server.Handler.
func (h *ControllerAPIs) Handle(ctx context.Context, req *server.Request) server.Completion {
	switch body := req.Body.(type) {
	case *kmsg.BrokerRegistrationRequest:
		return h.register(ctx, body)
	case *kmsg.BrokerHeartbeatRequest:
		return h.heartbeat(ctx, body)
	case *kmsg.AlterPartitionRequest:
		return h.alterPartition(ctx, body)
	case *kmsg.AllocateProducerIDsRequest:
		resp := body.ResponseKind().(*kmsg.AllocateProducerIDsResponse)
		first, count, err := h.m.AllocateProducerIDs(ctx, body.BrokerID)
		resp.ErrorCode = h.err.errorCode(err)
		if err == nil {
			resp.ProducerIDStart, resp.ProducerIDLen = first, int32(count)
		}
		return done(resp)
	}
	if b := h.broker.Load(); b != nil {
		return b.HandleForwarded(ctx, req)
	}
	return done(notControllerResponse(req.Body))
}

func (h *ControllerAPIs) register(ctx context.Context, req *kmsg.BrokerRegistrationRequest) server.Completion {
	resp := req.ResponseKind().(*kmsg.BrokerRegistrationResponse)
	reg := controller.Registration{NodeID: req.BrokerID, ClusterID: req.ClusterID, Port: -1}
	var raftAddr string
	for _, l := range req.Listeners {
		if l.Name == "CONTROLLER" {
			raftAddr = net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port)))
			continue
		}
		if reg.Port < 0 { // the first is the one brokers reach each other on
			reg.Host, reg.Port = l.Host, int32(l.Port)
		}
		reg.Listeners = append(reg.Listeners, metadata.Endpoint{Name: l.Name, Host: l.Host, Port: int32(l.Port)})
	}
	if len(reg.Listeners) == 1 && reg.Listeners[0].Name == metadata.DefaultListener {
		reg.Listeners = nil // the record of a broker with only the default listener stays as it was
	}
	if req.Rack != nil {
		reg.Rack = *req.Rack
	}
	if reg.NodeID < 0 || reg.Port < 0 || reg.Host == "" {
		resp.ErrorCode = kerr.InvalidRegistration.Code
		return done(resp)
	}
	// A broker-only node names its Raft listener: it becomes an observer
	// of the metadata quorum first, even before it knows the cluster id
	// (it learns it from the log), so that it can catch up and register.
	if raftAddr != "" && (reg.ClusterID == "" || reg.ClusterID == h.m.Image().ClusterID) {
		if err := h.m.AddObserver(ctx, reg.NodeID, raftAddr); err != nil {
			resp.ErrorCode = h.err.errorCode(err)
			resp.BrokerEpoch = -1
			return done(resp)
		}
	}
	epoch, err := h.m.Register(ctx, reg)
	resp.ErrorCode = h.err.errorCode(err)
	resp.BrokerEpoch = epoch
	if err != nil {
		resp.BrokerEpoch = -1
	}
	return done(resp)
}

func (h *ControllerAPIs) heartbeat(ctx context.Context, req *kmsg.BrokerHeartbeatRequest) server.Completion {
	resp := req.ResponseKind().(*kmsg.BrokerHeartbeatResponse)
	fenced, caughtUp, err := h.m.Heartbeat(ctx, req.BrokerID, req.BrokerEpoch, req.CurrentMetadataOffset, req.WantFence)
	resp.ErrorCode = h.err.errorCode(err)
	resp.IsCaughtUp = caughtUp && err == nil
	resp.IsFenced = fenced || err != nil
	return done(resp)
}

// alterPartition answers AlterPartition (key 56) v0-3: a partition
// leader's ISR change, one partition at a time through the controller's
// checks (broker epoch, leader, leader epoch, partition epoch, eligible
// members). Topics are named by name in v0-1 and by id in v2+; v3 carries
// the new ISR with broker epochs, which are checked like the sender's.
// A stale broker epoch or an inactive controller fails the whole request
// at the top level, as Kafka does.
func (h *ControllerAPIs) alterPartition(ctx context.Context, req *kmsg.AlterPartitionRequest) server.Completion {
	resp := req.ResponseKind().(*kmsg.AlterPartitionResponse)
	img := h.m.Image()
	for _, t := range req.Topics {
		rt := kmsg.NewAlterPartitionResponseTopic()
		rt.Topic, rt.TopidID = t.Topic, t.TopicID
		id := t.TopicID
		if req.Version < 2 {
			if mt := img.Topics[t.Topic]; mt != nil {
				id = mt.ID
			}
		}
		for _, tp := range t.Partitions {
			rp := kmsg.NewAlterPartitionResponseTopicPartition()
			rp.Partition = tp.Partition
			isr := tp.NewISR
			eligible := true
			if req.Version >= 3 {
				isr = nil
				for _, e := range tp.NewEpochISR {
					isr = append(isr, e.BrokerID)
					if b, ok := img.Brokers[e.BrokerID]; e.BrokerEpoch >= 0 && (!ok || b.Epoch != e.BrokerEpoch) {
						eligible = false
					}
				}
			}
			var p metadata.Partition
			err := controller.ErrIneligibleReplica
			if eligible {
				p, err = h.m.AlterPartition(ctx, controller.ISRChange{BrokerID: req.BrokerID, BrokerEpoch: req.BrokerEpoch,
					TopicID: id, Partition: tp.Partition, LeaderEpoch: tp.LeaderEpoch, PartitionEpoch: tp.PartitionEpoch, NewISR: isr})
			}
			switch {
			case errors.Is(err, controller.ErrStaleBrokerEpoch), errors.Is(err, controller.ErrNotController):
				resp.ErrorCode = h.err.errorCode(err)
				resp.Topics = nil
				return done(resp)
			case err != nil:
				rp.ErrorCode = h.err.errorCode(err)
			default:
				rp.LeaderID, rp.LeaderEpoch, rp.ISR, rp.PartitionEpoch = p.Leader, p.LeaderEpoch, p.ISR, p.PartitionEpoch
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return done(resp)
}

func setTopLevelError(resp kmsg.Response, code int16) {
	switch r := resp.(type) {
	case *kmsg.AlterPartitionAssignmentsResponse:
		r.ErrorCode = code
	case *kmsg.ListPartitionReassignmentsResponse:
		r.ErrorCode = code
	case *kmsg.UnregisterBrokerResponse:
		r.ErrorCode = code
	case *kmsg.DescribeQuorumResponse:
		r.ErrorCode = code
	case *kmsg.AddRaftVoterResponse:
		r.ErrorCode = code
	case *kmsg.RemoveRaftVoterResponse:
		r.ErrorCode = code
	}
}

// notControllerResponse answers a forwarded admin request NOT_CONTROLLER
// for every resource it names.
func notControllerResponse(req kmsg.Request) kmsg.Response {
	return errorResponse(req, kerr.NotController.Code)
}

// errorResponse answers a forwarded admin request with code for every
// resource it names (Kafka's AbstractRequest.getErrorResponse).
func errorResponse(req kmsg.Request, code int16) kmsg.Response {
	resp := req.ResponseKind()
	switch r := resp.(type) {
	case *kmsg.CreateTopicsResponse:
		for _, t := range req.(*kmsg.CreateTopicsRequest).Topics {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic, rt.ErrorCode = t.Topic, code
			r.Topics = append(r.Topics, rt)
		}
	case *kmsg.DeleteTopicsResponse:
		for _, t := range req.(*kmsg.DeleteTopicsRequest).Topics {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.TopicID, rt.ErrorCode = t.Topic, t.TopicID, code
			r.Topics = append(r.Topics, rt)
		}
		for _, name := range req.(*kmsg.DeleteTopicsRequest).TopicNames {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.ErrorCode = &name, code
			r.Topics = append(r.Topics, rt)
		}
	case *kmsg.CreatePartitionsResponse:
		for _, t := range req.(*kmsg.CreatePartitionsRequest).Topics {
			rt := kmsg.NewCreatePartitionsResponseTopic()
			rt.Topic, rt.ErrorCode = t.Topic, code
			r.Topics = append(r.Topics, rt)
		}
	case *kmsg.AlterConfigsResponse:
		for _, c := range req.(*kmsg.AlterConfigsRequest).Resources {
			rr := kmsg.NewAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode = c.ResourceType, c.ResourceName, code
			r.Resources = append(r.Resources, rr)
		}
	case *kmsg.AlterPartitionAssignmentsResponse, *kmsg.ListPartitionReassignmentsResponse, *kmsg.UnregisterBrokerResponse,
		*kmsg.DescribeQuorumResponse, *kmsg.AddRaftVoterResponse, *kmsg.RemoveRaftVoterResponse:
		// One top-level error code, as Kafka's controller answers them.
		setTopLevelError(r, code)
	case *kmsg.ElectLeadersResponse:
		setElectLeadersError(r, req.(*kmsg.ElectLeadersRequest), code)
	case *kmsg.IncrementalAlterConfigsResponse:
		for _, c := range req.(*kmsg.IncrementalAlterConfigsRequest).Resources {
			rr := kmsg.NewIncrementalAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode = c.ResourceType, c.ResourceName, code
			r.Resources = append(r.Resources, rr)
		}
	}
	return resp
}
