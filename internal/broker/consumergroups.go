package broker

// KIP-848 consumer groups: ConsumerGroupHeartbeat (key 68) v0-1 and
// ConsumerGroupDescribe (69) v0-1. The coordinator (internal/group,
// consumer.go) assigns partitions itself; a heartbeat is answered once
// what it changed is committed. Partitions travel by topic id. With an
// authorizer, as Kafka's (KAFKA-18813): a heartbeat needs READ on the
// group and DESCRIBE on every topic it names (TOPIC_AUTHORIZATION_FAILED
// otherwise); a regex resolution its heartbeat starts keeps only the
// topics the member may describe; a described group that holds a topic
// the caller may not describe is answered TOPIC_AUTHORIZATION_FAILED.

import (
	"context"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/group"
	"github.com/gregor-dev/gregor/internal/server"
)

func handleConsumerGroupHeartbeat(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.ConsumerGroupHeartbeatRequest)
	h := group.ConsumerHeartbeat{
		Version: req.Version, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch,
		InstanceID: req.InstanceID, RackID: req.RackID,
		RebalanceTimeout: time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		Topics:           req.SubscribedTopicNames, Assignor: req.ServerAssignor,
		ClientID: sreq.ClientID, ClientHost: clientHost(sreq),
	}
	if req.RebalanceTimeoutMillis < 0 {
		h.RebalanceTimeout = -1
	}
	if req.Version >= 1 {
		h.Regex = req.SubscribedTopicRegex
	}
	if req.Topics != nil {
		h.Owned = group.Assignment{}
		for _, t := range req.Topics {
			h.Owned[t.TopicID] = append(h.Owned[t.TopicID], t.Partitions...)
		}
	}
	id := req.Group
	var denied []string
	if b.authz != nil {
		acc := b.accessOf(sreq)
		h.MayDescribe = func(topic string) bool { return acc.may(opDescribe, rtTopic, topic) }
		for _, t := range req.SubscribedTopicNames {
			if !acc.may(opDescribe, rtTopic, t) {
				denied = append(denied, t)
			}
		}
	}
	return func(ctx context.Context) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		if len(denied) > 0 {
			resp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.ErrorMessage = strPtr("Topic authorization failed for topics " + strings.Join(denied, ", "))
			return resp
		}
		res := b.groups.ConsumerHeartbeat(ctx, id, h)
		resp.ErrorCode = b.groupCode(res.Err)
		if res.Message != "" {
			resp.ErrorMessage = strPtr(res.Message)
		}
		if res.Err != nil {
			return resp
		}
		resp.MemberID = strPtr(res.MemberID)
		resp.MemberEpoch = res.MemberEpoch
		resp.HeartbeatIntervalMillis = int32(res.HeartbeatInterval.Milliseconds())
		if res.Assignment != nil {
			a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
			for _, tid := range res.Assignment.SortedTopicIDs() {
				t := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
				t.TopicID, t.Partitions = tid, res.Assignment[tid]
				a.Topics = append(a.Topics, t)
			}
			resp.Assignment = &a
		}
		return resp
	}
}

func handleConsumerGroupDescribe(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.ConsumerGroupDescribeRequest)
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	img := b.image()
	var acc *access
	if b.authz != nil {
		a := b.accessOf(sreq)
		acc = &a
	}
	toAssignment := func(a group.Assignment) kmsg.Assignment {
		out := kmsg.NewAssignment()
		for _, tid := range a.SortedTopicIDs() {
			t := kmsg.NewAssignmentTopicPartition()
			t.TopicID, t.Partitions = tid, a[tid]
			if topic := img.TopicsByID[tid]; topic != nil {
				t.Topic = topic.Name
			}
			out.TopicPartitions = append(out.TopicPartitions, t)
		}
		return out
	}
	for _, id := range req.Groups {
		g := kmsg.NewConsumerGroupDescribeResponseGroup()
		g.Group = id
		g.AuthorizedOperations = authorizedOps(req.IncludeAuthorizedOperations, allGroupOps)
		d, err := b.groups.ConsumerDescribe(ctx, id)
		if err != nil {
			g.ErrorCode = b.groupCode(err)
			if err == group.ErrNotConsumerGroup {
				g.ErrorMessage = strPtr("Group " + id + " is not a consumer group.")
			}
			resp.Groups = append(resp.Groups, g)
			continue
		}
		g.State, g.Epoch, g.AssignmentEpoch, g.AssignorName = d.State, d.Epoch, d.AssignmentEpoch, d.Assignor
		for _, m := range d.Members {
			gm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
			gm.MemberID, gm.MemberEpoch, gm.ClientID, gm.ClientHost = m.MemberID, m.MemberEpoch, m.ClientID, m.ClientHost
			if m.InstanceID != "" {
				gm.InstanceID = strPtr(m.InstanceID)
			}
			if m.RackID != "" {
				gm.RackID = strPtr(m.RackID)
			}
			gm.SubscribedTopics = append([]string{}, m.Topics...)
			if m.Regex != "" {
				gm.SubscribedTopicRegex = strPtr(m.Regex)
			}
			gm.Assignment, gm.TargetAssignment = toAssignment(m.Assignment), toAssignment(m.Target)
			gm.MemberType = 1 // consumer protocol
			g.Members = append(g.Members, gm)
		}
		if acc != nil && !acc.mayDescribeAssigned(g.Members) {
			g = kmsg.NewConsumerGroupDescribeResponseGroup()
			g.Group, g.ErrorCode = id, kerr.TopicAuthorizationFailed.Code
			g.ErrorMessage = strPtr("The group has described topic(s) that the client is not authorized to describe.")
		}
		resp.Groups = append(resp.Groups, g)
	}
	return done(resp)
}

// mayDescribeAssigned reports whether the principal may describe every
// topic the members are assigned or targeted: Kafka answers a group that
// holds one it may not as a whole refusal, so that its existence, id and
// partitions do not leak.
func (a access) mayDescribeAssigned(ms []kmsg.ConsumerGroupDescribeResponseGroupMember) bool {
	for _, m := range ms {
		for _, as := range []kmsg.Assignment{m.Assignment, m.TargetAssignment} {
			for _, t := range as.TopicPartitions {
				if t.Topic != "" && !a.may(opDescribe, rtTopic, t.Topic) { // "": deleted, nothing to leak
					return false
				}
			}
		}
	}
	return true
}
