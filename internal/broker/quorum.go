package broker

// DescribeQuorum (key 55) v0-2, AddRaftVoter (key 80) v0-1 and
// RemoveRaftVoter (key 81) v0: the metadata quorum, as Kafka's KRaft
// controllers answer them. Brokers forward all three to the active
// controller (Kafka does the same); a controller that is not active answers
// NOT_LEADER_OR_FOLLOWER. The quorum's only partition is
// __cluster_metadata-0; other partitions get UNKNOWN_TOPIC_OR_PARTITION.
//
// Offsets are the metadata log's Raft indexes. Voters and observers come
// from the Raft configuration: observers are the broker-only nodes, which
// follow the log as non-voters. Directory ids are not tracked (they are
// answered zero and not checked on removal): a voter is its node id.
// AddRaftVoter takes the voter's controller listener from the listener
// named CONTROLLER, or the only one given; hashicorp/raft adds it as a
// voter at once, so the node must be running (an unreachable one is
// refused, INVALID_REQUEST), and the change is answered
// once committed (AckWhenCommitted is always honoured).

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/server"
)

// MetadataTopic is the quorum's log as DescribeQuorum names it.
const MetadataTopic = "__cluster_metadata"

// Quorum is what the quorum APIs need of the controller.
type Quorum interface {
	Quorum() (controller.QuorumState, error)
	AddVoter(ctx context.Context, id int32, addr string) error
	RemoveVoter(ctx context.Context, id int32) error
}

func (b *Broker) quorum() (Quorum, bool) {
	q, ok := b.ctrl.(Quorum)
	return q, ok
}

func handleDescribeQuorum(b *Broker, _ context.Context, req *server.Request) server.Completion {
	r := req.Body.(*kmsg.DescribeQuorumRequest)
	resp := r.ResponseKind().(*kmsg.DescribeQuorumResponse)
	var (
		state controller.QuorumState
		err   = controller.ErrNotController
	)
	if q, ok := b.quorum(); ok {
		state, err = q.Quorum()
	}
	for _, t := range r.Topics {
		rt := kmsg.NewDescribeQuorumResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDescribeQuorumResponseTopicPartition()
			rp.Partition = p.Partition
			switch {
			case t.Topic != MetadataTopic || p.Partition != 0:
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case err != nil:
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
				rp.LeaderID, rp.LeaderEpoch = -1, -1
			default:
				rp.LeaderID, rp.LeaderEpoch, rp.HighWatermark = state.LeaderID, state.LeaderEpoch, state.HighWatermark
				rp.CurrentVoters = replicaStates(state.Voters, state.LeaderID)
				rp.Observers = replicaStates(state.Observers, state.LeaderID)
			}
			if rp.ErrorCode != 0 && r.Version >= 2 {
				msg := kerr.ErrorForCode(rp.ErrorCode).Error()
				rp.ErrorMessage = &msg
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if err == nil && r.Version >= 2 {
		for _, v := range state.Voters {
			host, portStr, serr := net.SplitHostPort(v.Addr)
			port, perr := strconv.ParseUint(portStr, 10, 16)
			if serr != nil || perr != nil {
				continue
			}
			n := kmsg.NewDescribeQuorumResponseNode()
			n.NodeID = v.ID
			l := kmsg.NewDescribeQuorumResponseNodeListener()
			l.Name, l.Host, l.Port = "CONTROLLER", host, uint16(port)
			n.Listeners = append(n.Listeners, l)
			resp.Nodes = append(resp.Nodes, n)
		}
	}
	return done(resp)
}

func replicaStates(ps []controller.ReplicaProgress, leader int32) []kmsg.DescribeQuorumResponseTopicPartitionReplicaState {
	out := make([]kmsg.DescribeQuorumResponseTopicPartitionReplicaState, 0, len(ps))
	for _, p := range ps {
		s := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
		s.ReplicaID, s.LogEndOffset = p.ID, p.LogEndOffset
		if p.ID != leader {
			if !p.LastFetch.IsZero() {
				s.LastFetchTimestamp = p.LastFetch.UnixMilli()
			}
			if !p.LastCaughtUp.IsZero() {
				s.LastCaughtUpTimestamp = p.LastCaughtUp.UnixMilli()
			}
		}
		out = append(out, s)
	}
	return out
}

// quorumChangeTimeout bounds a voter change when the request names none.
const quorumChangeTimeout = 30 * time.Second

func handleAddRaftVoter(b *Broker, ctx context.Context, req *server.Request) server.Completion {
	r := req.Body.(*kmsg.AddRaftVoterRequest)
	resp := r.ResponseKind().(*kmsg.AddRaftVoterResponse)
	var addr string
	for _, l := range r.Listeners {
		if l.Name == "CONTROLLER" || len(r.Listeners) == 1 {
			addr = net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port)))
			break
		}
	}
	code, msg := b.quorumChange(ctx, r.ClusterID, r.VoterID, r.TimeoutMillis, func(q Quorum, ctx context.Context) error {
		if addr == "" || r.Listeners[0].Host == "" {
			return kerr.InvalidRequest
		}
		return q.AddVoter(ctx, r.VoterID, addr)
	})
	resp.ErrorCode, resp.ErrorMessage = code, msg
	return done(resp)
}

func handleRemoveRaftVoter(b *Broker, ctx context.Context, req *server.Request) server.Completion {
	r := req.Body.(*kmsg.RemoveRaftVoterRequest)
	resp := r.ResponseKind().(*kmsg.RemoveRaftVoterResponse)
	code, msg := b.quorumChange(ctx, r.ClusterID, r.VoterID, 0, func(q Quorum, ctx context.Context) error {
		return q.RemoveVoter(ctx, r.VoterID)
	})
	resp.ErrorCode, resp.ErrorMessage = code, msg
	return done(resp)
}

// quorumChange runs one voter change with the checks both APIs share.
func (b *Broker) quorumChange(ctx context.Context, clusterID *string, voter int32, timeoutMs int32,
	change func(Quorum, context.Context) error) (int16, *string) {
	q, ok := b.quorum()
	var err error
	switch {
	case !ok:
		err = kerr.NotLeaderForPartition
	case clusterID != nil && *clusterID != b.image().ClusterID:
		err = kerr.InconsistentClusterID
	case voter < 0:
		err = kerr.InvalidRequest
	default:
		d := quorumChangeTimeout
		if timeoutMs > 0 {
			d = time.Duration(timeoutMs) * time.Millisecond
		}
		cctx, cancel := context.WithTimeout(ctx, d)
		err = change(q, cctx)
		cancel()
		switch {
		case errors.Is(err, controller.ErrNotController):
			err = kerr.NotLeaderForPartition
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			err = kerr.RequestTimedOut
		}
	}
	if err == nil {
		return 0, nil
	}
	code := b.errorCode(err)
	msg := err.Error()
	return code, &msg
}
