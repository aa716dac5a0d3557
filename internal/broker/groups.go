package broker

// Classic consumer groups: FindCoordinator (key 10) v0-5, OffsetCommit (8)
// v0-9, OffsetFetch (9) v0-9, JoinGroup (11) v0-9, Heartbeat (12) v0-4,
// LeaveGroup (13) v0-5, SyncGroup (14) v0-5, DescribeGroups (15) v0-5,
// ListGroups (16) v0-4, DeleteGroups (42) v0-2, OffsetDelete (47) v0.
//
// FindCoordinator answers the leader of partition
// abs(javaHashCode(group)) % partitions of __consumer_offsets, creating that
// topic (compacted, offsets.topic.num.partitions and
// offsets.topic.replication.factor) on first use; batched keys at v4+;
// transaction coordinators (key type 1): see txn.go. JoinGroup and SyncGroup park in their Completion until
// the rebalance answers them (internal/group). OffsetFetch never shows
// offsets a transaction holds pending (TxnOffsetCommit); with
// require_stable (v7+, KIP-447) a partition with such an offset answers
// UNSTABLE_OFFSET_COMMIT in its partition entry (v7: the topics of the
// response, top-level error NONE; v8+: the group's topics, group error
// NONE), offset -1, as Kafka does. OffsetFetch v8+ answers several groups. Versions above these (OffsetCommit and
// OffsetFetch v10, topic ids; ListGroups v5, group types) are KIP-848 and
// not advertised.

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/group"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/server"
)

// groupCode maps an error of a group API through the one table
// (errorCodes); a request context that ended while waiting on a group is
// COORDINATOR_NOT_AVAILABLE there (the client retries on the coordinator),
// not REQUEST_TIMED_OUT.
func (b *Broker) groupCode(err error) int16 {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return kerr.CoordinatorNotAvailable.Code
	}
	return b.errorCode(err)
}

func strPtr(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func handleFindCoordinator(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID, c.Port = key, -1, -1
		switch {
		case req.CoordinatorType > 1:
			c.ErrorCode = kerr.InvalidRequest.Code
		case key == "":
			c.ErrorCode = kerr.InvalidRequest.Code
		case req.CoordinatorType == 1:
			var err error
			c.NodeID, c.Host, c.Port, err = b.txnCoordinator(ctx, key)
			c.ErrorCode = b.groupCode(err)
		default:
			var err error
			c.NodeID, c.Host, c.Port, err = b.groupCoordinator(ctx, key)
			c.ErrorCode = b.groupCode(err)
		}
		if c.ErrorCode == 0 {
			// The coordinator's endpoint of this request's listener.
			br, ok := b.image().Brokers[c.NodeID]
			if ok {
				c.Host, c.Port, ok = br.Endpoint(listenerOf(sreq))
			}
			if !ok {
				c.NodeID, c.Host, c.Port, c.ErrorCode = -1, "", -1, kerr.CoordinatorNotAvailable.Code
			}
		}
		if c.ErrorCode != 0 {
			c.ErrorMessage = strPtr(kerr.ErrorForCode(c.ErrorCode).Error())
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 && len(resp.Coordinators) == 1 {
		c := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.ErrorMessage, c.NodeID, c.Host, c.Port
		resp.Coordinators = nil
	}
	return done(resp)
}

// groupCoordinator finds (creating __consumer_offsets if needed) the broker
// leading the group's partition.
func (b *Broker) groupCoordinator(ctx context.Context, id string) (int32, string, int32, error) {
	return b.internalCoordinator(ctx, id, group.Topic, "offsets.topic.num.partitions",
		"offsets.topic.replication.factor", "", group.ErrCoordinatorNotAvailable, b.groups.Serving)
}

// internalCoordinator finds the broker leading key's partition of a
// coordinator's compacted internal topic. On first use the topic does not
// exist: as Kafka (KafkaApis.getCoordinator), its creation starts in the
// background, with the partition count and replication factor of the named
// broker properties, and the answer is unavailable at once, which clients
// retry. Waiting for the creation instead held the client's connection for
// seconds, and the heartbeats queued behind it on that connection starved
// until the group expired the member. Any failure is unavailable.
//
// The replication factor (Kafka's default 3) is capped at the registered
// brokers only on a cluster of one voter, so that a zero-config node works;
// elsewhere, as Kafka, the topic is created once enough brokers registered.
// The topic's min.insync.replicas is the broker property minISRProp
// (transaction.state.log.min.isr) capped at the replication factor, or,
// with minISRProp "", the broker default min.insync.replicas: as Kafka,
// which sets it on __transaction_state and not on __consumer_offsets, so
// that offsets stay writable with one in-sync replica of three.
func (b *Broker) internalCoordinator(_ context.Context, key, topic, partitionsProp, replicationProp, minISRProp string,
	unavailable error, serving func(partition int32) bool) (int32, string, int32, error) {
	img := b.image()
	t := img.Topics[topic]
	if t == nil {
		rf := b.brokerInt(img, replicationProp)
		if n := int64(len(img.Brokers)); b.cfg.Voters <= 1 && n >= 1 && n < rf {
			rf = n
		}
		configs := map[string]string{"cleanup.policy": "compact"}
		if minISRProp != "" {
			configs["min.insync.replicas"] = strconv.FormatInt(min(b.brokerInt(img, minISRProp), rf), 10)
		}
		b.createTopicInBackground(controller.TopicSpec{
			Name:              topic,
			NumPartitions:     int32(b.brokerInt(img, partitionsProp)),
			ReplicationFactor: int16(rf),
			Configs:           configs,
		})
		return -1, "", -1, unavailable
	}
	// Nor while this node's creation of the topic is still in flight:
	// the controller applies a new topic first and then waits (briefly)
	// for the other nodes to learn it, so this node, or the controller,
	// can name a leader that does not know yet that it leads, which
	// would answer NOT_COORDINATOR.
	if b.creating(topic) {
		return -1, "", -1, unavailable
	}
	p := metadata.PartitionFor(key, int32(len(t.Partitions)))
	if int(p) >= len(t.Partitions) {
		return -1, "", -1, unavailable
	}
	// Never name a coordinator that cannot serve yet (a partition this
	// node leads in the image but has not opened), as Metadata does.
	br, ok := img.Brokers[t.Partitions[p].Leader]
	if !ok || br.Fenced || !b.canLead(t, t.Partitions[p]) {
		return -1, "", -1, unavailable
	}
	// Nor this node while it loads the partition: clients would be
	// answered COORDINATOR_LOAD_IN_PROGRESS until it has.
	if br.NodeID == b.cfg.NodeID && serving != nil && !serving(p) {
		return -1, "", -1, unavailable
	}
	return br.NodeID, br.Host, br.Port, nil
}

func clientHost(sreq *server.Request) string {
	if sreq.Conn == nil || sreq.Conn.RemoteAddr == nil {
		return ""
	}
	host, _ := splitHostPort(sreq.Conn.RemoteAddr.String())
	return "/" + host
}

func handleJoinGroup(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.JoinGroupRequest)
	jr := group.JoinRequest{
		MemberID: req.MemberID, InstanceID: deref(req.InstanceID),
		ClientID: sreq.ClientID, ClientHost: clientHost(sreq),
		ProtocolType:         req.ProtocolType,
		SessionTimeout:       time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout:     time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		RequireKnownMemberID: req.Version >= 4,
	}
	if req.Version == 0 {
		jr.RebalanceTimeout = jr.SessionTimeout
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, group.Protocol{Name: p.Name, Metadata: append([]byte(nil), p.Metadata...)})
	}
	id := req.Group
	return func(ctx context.Context) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		res := b.groups.Join(ctx, id, jr)
		resp.ErrorCode = b.groupCode(res.Err)
		resp.MemberID = res.MemberID
		resp.Generation = res.Generation
		if res.Err == nil {
			resp.ProtocolType = strPtr(res.ProtocolType)
			resp.Protocol = strPtr(res.Protocol)
			resp.LeaderID = res.LeaderID
			resp.SkipAssignment = res.SkipAssignment && req.Version >= 9
			for _, m := range res.Members {
				rm := kmsg.NewJoinGroupResponseMember()
				rm.MemberID, rm.ProtocolMetadata = m.MemberID, m.Metadata
				if m.InstanceID != "" {
					rm.InstanceID = strPtr(m.InstanceID)
				}
				resp.Members = append(resp.Members, rm)
			}
		}
		return resp
	}
}

func handleSyncGroup(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.SyncGroupRequest)
	sr := group.SyncRequest{MemberID: req.MemberID, InstanceID: deref(req.InstanceID), Generation: req.Generation,
		ProtocolType: req.ProtocolType, Protocol: req.Protocol, Assignments: map[string][]byte{}}
	for _, a := range req.GroupAssignment {
		sr.Assignments[a.MemberID] = append([]byte(nil), a.MemberAssignment...)
	}
	id := req.Group
	return func(ctx context.Context) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		res := b.groups.Sync(ctx, id, sr)
		resp.ErrorCode = b.groupCode(res.Err)
		if res.Err == nil {
			resp.ProtocolType, resp.Protocol = strPtr(res.ProtocolType), strPtr(res.Protocol)
			resp.MemberAssignment = res.Assignment
			if resp.MemberAssignment == nil {
				resp.MemberAssignment = []byte{}
			}
		}
		return resp
	}
}

func handleHeartbeat(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.HeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = b.groupCode(b.groups.Heartbeat(ctx, req.Group, req.MemberID, deref(req.InstanceID), req.Generation))
	return done(resp)
}

func handleLeaveGroup(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.LeaveGroupRequest)
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	var ms []group.MemberLeave
	if req.Version < 3 {
		ms = []group.MemberLeave{{MemberID: req.MemberID}}
	} else {
		for _, m := range req.Members {
			ms = append(ms, group.MemberLeave{MemberID: m.MemberID, InstanceID: deref(m.InstanceID)})
		}
	}
	errs, err := b.groups.Leave(ctx, req.Group, ms)
	if err != nil {
		resp.ErrorCode = b.groupCode(err)
		return done(resp)
	}
	if req.Version < 3 {
		resp.ErrorCode = b.groupCode(errs[0])
		return done(resp)
	}
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, b.groupCode(errs[i])
		resp.Members = append(resp.Members, rm)
	}
	return done(resp)
}

func handleOffsetCommit(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.OffsetCommitRequest)
	offs := map[group.TopicPartition]group.Offset{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			epoch := int32(-1)
			if req.Version >= 6 {
				epoch = p.LeaderEpoch
			}
			offs[group.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = group.Offset{Offset: p.Offset, LeaderEpoch: epoch, Metadata: deref(p.Metadata)}
		}
	}
	gen, member := req.Generation, req.MemberID
	if req.Version == 0 {
		gen = -1
	}
	return func(ctx context.Context) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		res, err := b.groups.Commit(ctx, req.Group, member, deref(req.InstanceID), gen, req.Version, offs)
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				if err != nil {
					rp.ErrorCode = b.groupCode(err)
				} else {
					rp.ErrorCode = b.groupCode(res[group.TopicPartition{Topic: t.Topic, Partition: p.Partition}])
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}

// fetchGroupOffsets answers one group of an OffsetFetch: topics nil means
// every committed offset.
func (b *Broker) fetchGroupOffsets(ctx context.Context, id, memberID string, epoch int32, topics map[string][]int32, all, requireStable bool) ([]kmsg.OffsetFetchResponseGroupTopic, error) {
	if !b.leaseHeld() {
		// Possibly deposed, as for Fetch: another node may lead the
		// group's partition and have taken newer commits, so the
		// offsets held here may be stale. The chaos suite read an
		// older committed offset from an isolated coordinator after a
		// newer commit had been answered by its successor.
		return nil, group.ErrNotCoordinator
	}
	var tps []group.TopicPartition
	if !all {
		tps = []group.TopicPartition{}
		for t, ps := range topics {
			for _, p := range ps {
				tps = append(tps, group.TopicPartition{Topic: t, Partition: p})
			}
		}
	}
	offs, unstable, err := b.groups.FetchOffsetsAs(ctx, id, memberID, epoch, tps, requireStable)
	if err != nil {
		return nil, err
	}
	byTopic := map[string][]kmsg.OffsetFetchResponseGroupTopicPartition{}
	var order []string
	add := func(tp group.TopicPartition) {
		rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = tp.Partition, -1, -1, strPtr("")
		if o, ok := offs[tp]; ok {
			rp.Offset, rp.LeaderEpoch, rp.Metadata = o.Offset, o.LeaderEpoch, strPtr(o.Metadata)
		} else if unstable[tp] {
			rp.ErrorCode = kerr.UnstableOffsetCommit.Code
		}
		if _, ok := byTopic[tp.Topic]; !ok {
			order = append(order, tp.Topic)
		}
		byTopic[tp.Topic] = append(byTopic[tp.Topic], rp)
	}
	if all {
		for tp := range offs {
			add(tp)
		}
		for tp := range unstable {
			add(tp)
		}
	} else {
		for _, tp := range tps {
			add(tp)
		}
	}
	var out []kmsg.OffsetFetchResponseGroupTopic
	for _, t := range order {
		rt := kmsg.NewOffsetFetchResponseGroupTopic()
		rt.Topic, rt.Partitions = t, byTopic[t]
		out = append(out, rt)
	}
	return out, nil
}

func handleOffsetFetch(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group = rg.Group
			topics := map[string][]int32{}
			for _, t := range rg.Topics {
				topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
			}
			epoch := int32(-1) // v9+ names the member of a consumer group
			if req.Version >= 9 {
				epoch = rg.MemberEpoch
			}
			ts, err := b.fetchGroupOffsets(ctx, rg.Group, deref(rg.MemberID), epoch, topics, rg.Topics == nil, req.RequireStable)
			g.ErrorCode, g.Topics = b.groupCode(err), ts
			resp.Groups = append(resp.Groups, g)
		}
		return done(resp)
	}
	topics := map[string][]int32{}
	for _, t := range req.Topics {
		topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
	}
	ts, err := b.fetchGroupOffsets(ctx, req.Group, "", -1, topics, req.Topics == nil && req.Version >= 2, req.Version >= 7 && req.RequireStable)
	if err != nil {
		code := b.groupCode(err)
		resp.ErrorCode = code
		for _, t := range req.Topics { // v0-1 carry errors per partition only
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = p, -1, -1, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return done(resp)
	}
	for _, t := range ts {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return done(resp)
}

func handleDescribeGroups(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		g := kmsg.NewDescribeGroupsResponseGroup()
		g.Group = id
		g.AuthorizedOperations = authorizedOps(req.IncludeAuthorizedOperations, allGroupOps)
		d, err := b.groups.Describe(ctx, id)
		if err != nil {
			g.ErrorCode = b.groupCode(err)
			g.State = "Dead"
			resp.Groups = append(resp.Groups, g)
			continue
		}
		if d.Missing || d.Consumer {
			// A KIP-848 group is described by ConsumerGroupDescribe.
			// Kafka answers it, and a group it does not have, Dead
			// with no error below v6 and GROUP_ID_NOT_FOUND from v6
			// (KIP-1043).
			g.State = "Dead"
			if req.Version >= 6 {
				g.State, g.ErrorCode = "", kerr.GroupIDNotFound.Code
				if d.Consumer {
					g.ErrorMessage = strPtr("Group " + id + " is not a classic group.")
				} else {
					g.ErrorMessage = strPtr("Group " + id + " not found.")
				}
			}
			resp.Groups = append(resp.Groups, g)
			continue
		}
		g.State, g.ProtocolType, g.Protocol = d.State, d.ProtocolType, d.Protocol
		for _, m := range d.Members {
			gm := kmsg.NewDescribeGroupsResponseGroupMember()
			gm.MemberID, gm.ClientID, gm.ClientHost = m.MemberID, m.ClientID, m.ClientHost
			if m.InstanceID != "" {
				gm.InstanceID = strPtr(m.InstanceID)
			}
			gm.ProtocolMetadata, gm.MemberAssignment = m.Metadata, m.Assignment
			if gm.ProtocolMetadata == nil {
				gm.ProtocolMetadata = []byte{}
			}
			if gm.MemberAssignment == nil {
				gm.MemberAssignment = []byte{}
			}
			g.Members = append(g.Members, gm)
		}
		resp.Groups = append(resp.Groups, g)
	}
	return done(resp)
}

func handleListGroups(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	// Both filters compare case-insensitively, as Kafka 4's coordinator
	// does.
	states := map[string]bool{}
	for _, s := range req.StatesFilter {
		states[strings.ToLower(strings.TrimSpace(s))] = true
	}
	types := map[string]bool{}
	for _, t := range req.TypesFilter {
		types[strings.ToLower(strings.TrimSpace(t))] = true
	}
	for _, l := range b.groups.List(ctx) {
		if len(states) > 0 && !states[strings.ToLower(l.State)] {
			continue
		}
		if len(types) > 0 && !types[l.Type] {
			continue
		}
		g := kmsg.NewListGroupsResponseGroup()
		g.Group, g.ProtocolType, g.GroupState, g.GroupType = l.ID, l.ProtocolType, l.State, l.Type
		resp.Groups = append(resp.Groups, g)
	}
	return done(resp)
}

func handleDeleteGroups(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		g := kmsg.NewDeleteGroupsResponseGroup()
		g.Group = id
		g.ErrorCode = b.groupCode(b.groups.Delete(ctx, id))
		resp.Groups = append(resp.Groups, g)
	}
	return done(resp)
}

func handleOffsetDelete(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.OffsetDeleteRequest)
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	var tps []group.TopicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tps = append(tps, group.TopicPartition{Topic: t.Topic, Partition: p.Partition})
		}
	}
	res, err := b.groups.DeleteOffsets(ctx, req.Group, tps)
	if err != nil {
		resp.ErrorCode = b.groupCode(err)
		return done(resp)
	}
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = b.groupCode(res[group.TopicPartition{Topic: t.Topic, Partition: p.Partition}])
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return done(resp)
}
