package group

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/statelog"
)

// ConsumerProtocol reports whether the KIP-848 protocol is served
// (group.coordinator.rebalance.protocols names "consumer").
func (c *Coordinator) ConsumerProtocol() bool { return !c.cfg.Consumer.Disabled }

// ConsumerHeartbeat handles a ConsumerGroupHeartbeat (KIP-848): it joins,
// heartbeats for or removes a member of a consumer group, and answers its
// epoch and, when it changed, its assignment.
func (c *Coordinator) ConsumerHeartbeat(ctx context.Context, id string, h ConsumerHeartbeat) ConsumerHeartbeatResult {
	res := ConsumerHeartbeatResult{MemberID: h.MemberID, MemberEpoch: h.MemberEpoch}
	if c.cfg.Consumer.Disabled {
		res.Err, res.Message = ErrUnsupportedVersion, "The consumer group protocol is disabled (group.coordinator.rebalance.protocols)."
		return res
	}
	if id == "" {
		res.Err, res.Message = ErrInvalidRequest, "GroupId can't be empty."
		return res
	}
	if msg, err := h.validate(c.cfg.Consumer); err != nil {
		res.Err, res.Message = err, msg
		return res
	}
	var next int64
	var log statelog.Log
	err := c.with(ctx, id, h.MemberEpoch == 0, func(g *group, now time.Time) {
		st := g.st
		if st.cg == nil {
			switch {
			case st.state != Empty:
				res.Err, res.Message = ErrGroupIDNotFound, "Group "+id+" is not a consumer group."
				return
			case h.MemberEpoch != 0:
				res.Err, res.Message = ErrGroupIDNotFound, "Consumer group "+id+" not found."
				return
			}
			st.cg = newConsumerGroup(c.cfg.Consumer)
		}
		img := imageOrEmpty(c.cfg.Image())
		// As Kafka, a change of the group's configs applies from the
		// next heartbeat on.
		st.cg.limits = c.cfg.Consumer.forGroup(img.GroupConfigs[id])
		res = st.cg.heartbeat(h, img, now)
		if c.logger.Enabled(ctx, slog.LevelDebug) {
			c.logger.Debug("consumer group heartbeat", "group", id, "member_id", res.MemberID, "epoch", h.MemberEpoch,
				"new_epoch", res.MemberEpoch, "assigned", res.Assignment != nil, "group_epoch", st.cg.epoch,
				"state", st.cg.state(), "err", res.Err)
		}
		// Answered only once what it changed is committed, as Kafka's
		// coordinator does.
		n, err := g.persistConsumer()
		if err != nil {
			res = ConsumerHeartbeatResult{Err: err, MemberID: h.MemberID, MemberEpoch: h.MemberEpoch}
			return
		}
		next, log = n, g.log
	})
	if err == nil && next > 0 {
		err = c.waitCommitted(ctx, log, next)
	}
	if err != nil {
		if errors.Is(err, ErrGroupIDNotFound) {
			return ConsumerHeartbeatResult{Err: err, Message: "Consumer group " + id + " not found.", MemberID: h.MemberID, MemberEpoch: h.MemberEpoch}
		}
		return ConsumerHeartbeatResult{Err: err, MemberID: h.MemberID, MemberEpoch: h.MemberEpoch}
	}
	return res
}

// ConsumerMemberDescription describes one member of a consumer group.
type ConsumerMemberDescription struct {
	MemberID, InstanceID, RackID, ClientID, ClientHost string
	MemberEpoch                                        int32
	Topics                                             []string
	Regex                                              string
	Assignment, Target                                 Assignment
}

// ConsumerDescription describes a consumer group (ConsumerGroupDescribe).
type ConsumerDescription struct {
	State                  string
	Epoch, AssignmentEpoch int32
	Assignor               string
	Members                []ConsumerMemberDescription
}

// ConsumerDescribe describes a consumer group: ErrGroupIDNotFound when the
// group does not exist or is a classic group with members.
func (c *Coordinator) ConsumerDescribe(ctx context.Context, id string) (ConsumerDescription, error) {
	var d ConsumerDescription
	var gerr error
	err := c.with(ctx, id, false, func(g *group, now time.Time) {
		cg := g.st.cg
		if cg == nil {
			gerr = ErrNotConsumerGroup
			return
		}
		d = ConsumerDescription{State: cg.state(), Epoch: cg.epoch, AssignmentEpoch: cg.assignmentEpoch, Assignor: cg.assignor}
		for _, m := range sortedConsumerMembers(cg) {
			d.Members = append(d.Members, ConsumerMemberDescription{MemberID: m.id, InstanceID: m.instanceID, RackID: m.rack,
				ClientID: m.clientID, ClientHost: m.clientHost, MemberEpoch: m.epoch, Topics: m.topics, Regex: m.regex,
				Assignment: copyAssignment(m.assigned), Target: copyAssignment(cg.target[m.id])})
		}
	})
	if err != nil {
		return d, err
	}
	return d, gerr
}

func sortedConsumerMembers(cg *consumerGroup) []*consumerMember {
	ms := mapValues(cg.members)
	slices.SortFunc(ms, func(a, b *consumerMember) int { return strings.Compare(a.id, b.id) })
	return ms
}

// topicID is a topic's id in the current image (zero when unknown).
func (c *Coordinator) topicID(name string) [16]byte {
	if t := imageOrEmpty(c.cfg.Image()).Topics[name]; t != nil {
		return t.ID
	}
	return [16]byte{}
}

// imageOrEmpty keeps a nil image from the callers of Image.
func imageOrEmpty(img *metadata.Image) *metadata.Image {
	if img == nil {
		return &metadata.Image{Topics: map[string]*metadata.Topic{}, TopicsByID: map[[16]byte]*metadata.Topic{}}
	}
	return img
}
