package broker

// Authorization (authorizer.class.name set): every request is checked
// against the ACLs before it is handled or forwarded, with the resources
// and operations Kafka's KafkaApis checks. A request that names several
// topics, groups or resources is refused element by element (partial.go);
// one that its principal may not make at all is refused whole, each thing
// it names answered with the authorization error of the resource that
// failed (deniedResponse). Listing
// requests (Metadata of every topic, ListGroups, ListTransactions,
// OffsetFetch of every topic) leave out what the principal may not
// describe, as Kafka does, and the authorized-operations fields report the
// principal's own operations.

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/auth"
	"github.com/gregor-dev/gregor/internal/server"
)

const (
	opRead            = kmsg.ACLOperationRead
	opWrite           = kmsg.ACLOperationWrite
	opCreate          = kmsg.ACLOperationCreate
	opDelete          = kmsg.ACLOperationDelete
	opAlter           = kmsg.ACLOperationAlter
	opDescribe        = kmsg.ACLOperationDescribe
	opClusterAction   = kmsg.ACLOperationClusterAction
	opDescribeConfigs = kmsg.ACLOperationDescribeConfigs
	opAlterConfigs    = kmsg.ACLOperationAlterConfigs
	opIdempotentWrite = kmsg.ACLOperationIdempotentWrite

	rtTopic   = kmsg.ACLResourceTypeTopic
	rtGroup   = kmsg.ACLResourceTypeGroup
	rtCluster = kmsg.ACLResourceTypeCluster
	rtTxn     = kmsg.ACLResourceTypeTransactionalId
)

// access is one request's principal and where it connects from.
type access struct {
	b         *Broker
	principal string
	host      string
}

func (b *Broker) accessOf(sreq *server.Request) access {
	a := access{b: b, principal: auth.Principal("")}
	if sreq.Conn != nil {
		a.principal = auth.Principal(sreq.Conn.User)
		if sreq.Conn.RemoteAddr != nil {
			a.host, _ = splitHostPort(sreq.Conn.RemoteAddr.String())
		}
	}
	return a
}

func (a access) may(op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	return a.b.authz.Authorize(a.b.image().ACLs, a.principal, a.host, op, rt, name)
}

func (a access) cluster(op kmsg.ACLOperation) bool { return a.may(op, rtCluster, auth.ClusterName) }

// mayWriteSomeTopic is Kafka's authorizeByResourceType(WRITE, TOPIC), which
// an idempotent producer's InitProducerId is allowed by: some topic the
// principal may write.
func (a access) mayWriteSomeTopic() bool {
	// Kafka's authorizeByResourceType asks first for a topic no ACL names
	// literally ("hardcode"): allowed by a wildcard ACL, or by
	// allow.everyone.if.no.acl.found when no ACL matches it.
	if a.b.authz.SuperUsers[a.principal] || a.may(opWrite, rtTopic, "hardcode") {
		return true
	}
	for _, acl := range a.b.image().ACLs {
		if acl.ResourceType == int8(rtTopic) && a.may(opWrite, rtTopic, acl.ResourceName) {
			return true
		}
	}
	return len(a.b.image().ACLs) == 0 && a.b.authz.AllowIfNoACL
}

// check is one thing a request needs: op on a resource, refused with code.
type check struct {
	op   kmsg.ACLOperation
	rt   kmsg.ACLResourceType
	name string
	code int16
	// orCluster also allows it with op on the cluster (CreateTopics);
	// orClusterAction with CLUSTER_ACTION on it (a replica's
	// OffsetForLeaderEpoch).
	orCluster, orClusterAction bool
	// unknown: the resource cannot be resolved here (a topic id this
	// node does not know); never allowed.
	unknown bool
}

var (
	codeTopic   = kerr.TopicAuthorizationFailed.Code
	codeGroup   = kerr.GroupAuthorizationFailed.Code
	codeCluster = kerr.ClusterAuthorizationFailed.Code
	codeTxn     = kerr.TransactionalIDAuthorizationFailed.Code
)

func topicCheck(op kmsg.ACLOperation, name string) check {
	return check{op: op, rt: rtTopic, name: name, code: codeTopic}
}

func clusterCheck(op kmsg.ACLOperation) check {
	return check{op: op, rt: rtCluster, name: auth.ClusterName, code: codeCluster}
}

// refused returns the answer to a request its principal may not make
// (whole, nil when it may), or, for a request refused element by element
// (partial.go), the answers of the elements it took out of the request.
func (a access) refused(sreq *server.Request) (whole kmsg.Response, denied []kmsg.Response) {
	checks, code := a.checks(sreq.Body)
	if code != 0 {
		return deniedResponse(sreq.Body, code), nil
	}
	for _, c := range checks {
		if a.allows(c) {
			continue
		}
		if denied, ok := a.prune(sreq.Body); ok {
			if emptied(sreq.Body) {
				resp := sreq.Body.ResponseKind()
				resp.SetVersion(sreq.Body.GetVersion())
				return mergeDenied(resp, denied), nil
			}
			return nil, denied
		}
		resp := deniedResponse(sreq.Body, c.code)
		if r, ok := resp.(*kmsg.AddPartitionsToTxnResponse); ok && c.code == codeTopic {
			a.notAttempted(r)
		}
		return resp, nil
	}
	return nil, nil
}

// checks lists what a request needs, as Kafka's KafkaApis checks it; a
// non-zero code refuses it outright.
func (a access) checks(body kmsg.Request) (cs []check, code int16) {
	topics := func(op kmsg.ACLOperation, names ...string) {
		for _, n := range names {
			cs = append(cs, topicCheck(op, n))
		}
	}
	txnID := func(id string) { cs = append(cs, check{op: opWrite, rt: rtTxn, name: id, code: codeTxn}) }
	groupCheck := func(op kmsg.ACLOperation, id string) {
		cs = append(cs, check{op: op, rt: rtGroup, name: id, code: codeGroup})
	}
	img := a.b.image()
	switch r := body.(type) {
	case *kmsg.ProduceRequest:
		if r.TransactionID != nil {
			txnID(*r.TransactionID)
		}
		for _, t := range r.Topics {
			topics(opWrite, t.Topic)
		}
	case *kmsg.FetchRequest:
		if r.ReplicaID >= 0 {
			cs = append(cs, check{op: opClusterAction, rt: rtCluster, name: auth.ClusterName, code: codeTopic})
		}
		// A consumer's topics are checked by the fetch itself
		// (fetchDeniedTopics), partition by partition of its session.
	case *kmsg.ListOffsetsRequest:
		for _, t := range r.Topics {
			topics(opDescribe, t.Topic)
		}
	case *kmsg.MetadataRequest:
		// Filtered instead (filtered).
	case *kmsg.OffsetCommitRequest:
		groupCheck(opRead, r.Group)
		for _, t := range r.Topics {
			topics(opRead, t.Topic)
		}
	case *kmsg.OffsetFetchRequest:
		if len(r.Groups) == 0 {
			groupCheck(opDescribe, r.Group)
			for _, t := range r.Topics {
				topics(opDescribe, t.Topic)
			}
		}
		for _, g := range r.Groups {
			groupCheck(opDescribe, g.Group)
			for _, t := range g.Topics {
				topics(opDescribe, t.Topic)
			}
		}
	case *kmsg.FindCoordinatorRequest:
		keys := r.CoordinatorKeys
		if r.Version < 4 {
			keys = []string{r.CoordinatorKey}
		}
		for _, k := range keys {
			if r.CoordinatorType == 1 {
				cs = append(cs, check{op: opDescribe, rt: rtTxn, name: k, code: codeTxn})
			} else {
				groupCheck(opDescribe, k)
			}
		}
	case *kmsg.JoinGroupRequest:
		groupCheck(opRead, r.Group)
	case *kmsg.HeartbeatRequest:
		groupCheck(opRead, r.Group)
	case *kmsg.LeaveGroupRequest:
		groupCheck(opRead, r.Group)
	case *kmsg.SyncGroupRequest:
		groupCheck(opRead, r.Group)
	case *kmsg.DescribeGroupsRequest:
		for _, g := range r.Groups {
			groupCheck(opDescribe, g)
		}
	case *kmsg.ConsumerGroupHeartbeatRequest:
		// Its subscribed topics are checked by the heartbeat itself:
		// their refusal is the response's top-level error.
		groupCheck(opRead, r.Group)
	case *kmsg.ConsumerGroupDescribeRequest:
		for _, g := range r.Groups {
			groupCheck(opDescribe, g)
		}
	case *kmsg.ListGroupsRequest:
		// Filtered instead.
	case *kmsg.CreateTopicsRequest:
		for _, t := range r.Topics {
			c := topicCheck(opCreate, t.Topic)
			c.orCluster = true
			cs = append(cs, c)
		}
	case *kmsg.DeleteTopicsRequest:
		topics(opDelete, r.TopicNames...)
		for _, t := range r.Topics {
			switch tt := img.TopicByID(t.TopicID); {
			case t.Topic != nil:
				topics(opDelete, *t.Topic)
			case tt != nil:
				topics(opDelete, tt.Name)
			default:
				// An id this node does not know: answered
				// UNKNOWN_TOPIC_ID without forwarding (prune).
				cs = append(cs, check{op: opDelete, rt: rtTopic, code: kerr.UnknownTopicID.Code, unknown: true})
			}
		}
	case *kmsg.DeleteRecordsRequest:
		for _, t := range r.Topics {
			topics(opDelete, t.Topic)
		}
	case *kmsg.InitProducerIDRequest:
		if r.TransactionalID != nil {
			txnID(*r.TransactionalID)
		} else if !a.cluster(opIdempotentWrite) && !a.mayWriteSomeTopic() {
			return nil, codeCluster
		}
	case *kmsg.OffsetForLeaderEpochRequest:
		// Kafka: CLUSTER_ACTION on the cluster, or DESCRIBE on each topic,
		// whoever asks.
		for _, t := range r.Topics {
			c := topicCheck(opDescribe, t.Topic)
			c.orClusterAction = true
			cs = append(cs, c)
		}
	case *kmsg.AddPartitionsToTxnRequest:
		if r.Version >= 4 { // between brokers
			cs = append(cs, clusterCheck(opClusterAction))
			break
		}
		txnID(r.TransactionalID)
		for _, t := range r.Topics {
			topics(opWrite, t.Topic)
		}
	case *kmsg.AddOffsetsToTxnRequest:
		txnID(r.TransactionalID)
		groupCheck(opRead, r.Group)
	case *kmsg.EndTxnRequest:
		txnID(r.TransactionalID)
	case *kmsg.WriteTxnMarkersRequest:
		cs = append(cs, clusterCheck(opClusterAction))
	case *kmsg.TxnOffsetCommitRequest:
		txnID(r.TransactionalID)
		groupCheck(opRead, r.Group)
		for _, t := range r.Topics {
			topics(opRead, t.Topic)
		}
	case *kmsg.DescribeACLsRequest:
		cs = append(cs, clusterCheck(opDescribe))
	case *kmsg.CreateACLsRequest, *kmsg.DeleteACLsRequest, *kmsg.ElectLeadersRequest, *kmsg.AlterPartitionAssignmentsRequest,
		*kmsg.AlterUserSCRAMCredentialsRequest, *kmsg.UpdateFeaturesRequest, *kmsg.UnregisterBrokerRequest,
		*kmsg.AddRaftVoterRequest, *kmsg.RemoveRaftVoterRequest:
		cs = append(cs, clusterCheck(opAlter))
	case *kmsg.DescribeLogDirsRequest, *kmsg.ListPartitionReassignmentsRequest, *kmsg.DescribeUserSCRAMCredentialsRequest,
		*kmsg.DescribeQuorumRequest:
		cs = append(cs, clusterCheck(opDescribe))
	case *kmsg.DescribeClusterRequest:
		// Kafka authorizes nothing here: the authorized operations say
		// what the principal may do (filtered).
	case *kmsg.DescribeClientQuotasRequest:
		cs = append(cs, clusterCheck(opDescribeConfigs))
	case *kmsg.AlterClientQuotasRequest:
		cs = append(cs, clusterCheck(opAlterConfigs))
	case *kmsg.DescribeConfigsRequest:
		for _, res := range r.Resources {
			cs = append(cs, configCheck(opDescribeConfigs, res.ResourceType, res.ResourceName))
		}
	case *kmsg.AlterConfigsRequest:
		for _, res := range r.Resources {
			cs = append(cs, configCheck(opAlterConfigs, res.ResourceType, res.ResourceName))
		}
	case *kmsg.IncrementalAlterConfigsRequest:
		for _, res := range r.Resources {
			cs = append(cs, configCheck(opAlterConfigs, res.ResourceType, res.ResourceName))
		}
	case *kmsg.CreatePartitionsRequest:
		for _, t := range r.Topics {
			topics(opAlter, t.Topic)
		}
	case *kmsg.DeleteGroupsRequest:
		for _, g := range r.Groups {
			groupCheck(opDelete, g)
		}
	case *kmsg.OffsetDeleteRequest:
		groupCheck(opDelete, r.Group)
		for _, t := range r.Topics {
			topics(opRead, t.Topic)
		}
	case *kmsg.DescribeProducersRequest:
		for _, t := range r.Topics {
			topics(opRead, t.Topic)
		}
	case *kmsg.DescribeTransactionsRequest:
		for _, id := range r.TransactionalIDs {
			cs = append(cs, check{op: opDescribe, rt: rtTxn, name: id, code: codeTxn})
		}
	case *kmsg.ListTransactionsRequest:
		// Filtered instead.
	case *kmsg.DescribeTopicPartitionsRequest:
		// Filtered by the handler, before it pages.
	default:
		// An API this table does not know is refused: a new API must
		// say what it needs before an authorizer lets it through.
		return nil, codeCluster
	}
	return cs, 0
}

// configCheck is DescribeConfigs' or AlterConfigs' check of one resource:
// a topic's, a group's, or the cluster's for a broker or broker logger.
func configCheck(op kmsg.ACLOperation, typ kmsg.ConfigResourceType, name string) check {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		return topicCheck(op, name)
	case kmsg.ConfigResourceTypeGroupConfig:
		return check{op: op, rt: rtGroup, name: name, code: codeGroup}
	}
	return clusterCheck(op)
}

// opsMask is a principal's authorized operations on a resource, out of
// all, as the bit field Kafka answers (bit i set: operation i allowed).
func (a access) opsMask(rt kmsg.ACLResourceType, name string, all int32) int32 {
	if all == authorizedOpsUnset {
		return all
	}
	var out int32
	for op := range 31 {
		if all&(1<<op) != 0 && a.may(kmsg.ACLOperation(op), rt, name) {
			out |= 1 << op
		}
	}
	return out
}

// handle runs a request the principal may make (run handles it) and
// filters a listing request's answer: what the principal may not describe
// is left out, and the authorized operations are its own.
func (a access) handle(sreq *server.Request, run func() server.Completion) server.Completion {
	var next server.Completion
	if _, ok := sreq.Body.(*kmsg.MetadataRequest); !ok {
		next = run() // Metadata runs once its topics are filtered
	}
	switch req := sreq.Body.(type) {
	case *kmsg.MetadataRequest:
		var denied []kmsg.MetadataRequestTopic
		if req.Topics != nil {
			allowed := req.Topics[:0:0]
			img := a.b.image()
			for _, t := range req.Topics {
				name := ""
				if t.TopicID != [16]byte{} { // by id when one is given, as handleMetadata
					if tt := img.TopicByID(t.TopicID); tt != nil {
						name = tt.Name
					}
				} else if t.Topic != nil {
					name = *t.Topic
				}
				exists := img.Topic(name) != nil
				switch {
				case name != "" && !a.may(opDescribe, rtTopic, name):
					denied = append(denied, t)
				case name != "" && !exists && a.b.autoCreates(req, img) && !a.cluster(opCreate) && !a.may(opCreate, rtTopic, name):
					denied = append(denied, t) // Kafka: it may not create it
				default:
					allowed = append(allowed, t)
				}
			}
			if len(allowed) == 0 && len(req.Topics) > 0 && req.Version == 0 {
				// v0 reads an empty list as every topic: answer only the refusals.
				return func(context.Context) kmsg.Response {
					resp := req.ResponseKind().(*kmsg.MetadataResponse)
					resp.Brokers = a.b.metadataBrokers(a.b.image(), listenerOf(sreq))
					return a.deniedTopics(resp, denied)
				}
			}
			req.Topics = allowed
		}
		next = run()
		return func(ctx context.Context) kmsg.Response {
			resp, ok := next(ctx).(*kmsg.MetadataResponse)
			if !ok {
				return resp
			}
			kept := resp.Topics[:0]
			for _, t := range resp.Topics {
				if t.Topic == nil || a.may(opDescribe, rtTopic, *t.Topic) {
					if t.Topic != nil {
						t.AuthorizedOperations = a.opsMask(rtTopic, *t.Topic, t.AuthorizedOperations)
					}
					kept = append(kept, t)
				}
			}
			resp.Topics = kept
			resp.AuthorizedOperations = a.opsMask(rtCluster, auth.ClusterName, resp.AuthorizedOperations)
			return a.deniedTopics(resp, denied)
		}
	case *kmsg.ListGroupsRequest:
		if a.cluster(opDescribe) {
			return next
		}
		return func(ctx context.Context) kmsg.Response {
			resp, ok := next(ctx).(*kmsg.ListGroupsResponse)
			if !ok {
				return resp
			}
			resp.Groups = keep(resp.Groups, func(g kmsg.ListGroupsResponseGroup) bool { return a.may(opDescribe, rtGroup, g.Group) })
			return resp
		}
	case *kmsg.ListTransactionsRequest:
		return func(ctx context.Context) kmsg.Response {
			resp, ok := next(ctx).(*kmsg.ListTransactionsResponse)
			if !ok {
				return resp
			}
			resp.TransactionStates = keep(resp.TransactionStates, func(s kmsg.ListTransactionsResponseTransactionState) bool {
				return a.may(opDescribe, rtTxn, s.TransactionalID)
			})
			return resp
		}
	case *kmsg.OffsetFetchRequest:
		return func(ctx context.Context) kmsg.Response {
			resp, ok := next(ctx).(*kmsg.OffsetFetchResponse)
			if !ok {
				return resp
			}
			resp.Topics = keep(resp.Topics, func(t kmsg.OffsetFetchResponseTopic) bool { return a.may(opDescribe, rtTopic, t.Topic) })
			for i := range resp.Groups {
				resp.Groups[i].Topics = keep(resp.Groups[i].Topics, func(t kmsg.OffsetFetchResponseGroupTopic) bool {
					return a.may(opDescribe, rtTopic, t.Topic)
				})
			}
			return resp
		}
	case *kmsg.DescribeGroupsRequest:
		return func(ctx context.Context) kmsg.Response {
			resp, ok := next(ctx).(*kmsg.DescribeGroupsResponse)
			if ok {
				for i := range resp.Groups {
					g := &resp.Groups[i]
					g.AuthorizedOperations = a.opsMask(rtGroup, g.Group, g.AuthorizedOperations)
				}
			}
			return resp
		}
	case *kmsg.DescribeTransactionsRequest:
		return func(ctx context.Context) kmsg.Response {
			resp, ok := next(ctx).(*kmsg.DescribeTransactionsResponse)
			if ok {
				for i := range resp.TransactionStates {
					s := &resp.TransactionStates[i]
					s.Topics = keep(s.Topics, func(t kmsg.DescribeTransactionsResponseTransactionStateTopic) bool {
						return a.may(opDescribe, rtTopic, t.Topic)
					})
				}
			}
			return resp
		}
	case *kmsg.CreateTopicsRequest:
		// A created topic's configs are shown only with DESCRIBE_CONFIGS.
		return func(ctx context.Context) kmsg.Response {
			resp, ok := next(ctx).(*kmsg.CreateTopicsResponse)
			if ok {
				for i := range resp.Topics {
					t := &resp.Topics[i]
					if t.ErrorCode == 0 && !a.may(opDescribeConfigs, rtTopic, t.Topic) {
						t.ConfigErrorCode, t.Configs = codeTopic, nil
					}
				}
			}
			return resp
		}
	case *kmsg.DescribeClusterRequest:
		return func(ctx context.Context) kmsg.Response {
			resp, ok := next(ctx).(*kmsg.DescribeClusterResponse)
			if ok {
				resp.ClusterAuthorizedOperations = a.opsMask(rtCluster, auth.ClusterName, resp.ClusterAuthorizedOperations)
			}
			return resp
		}
	}
	return next
}

// deniedTopics adds a TOPIC_AUTHORIZATION_FAILED entry per topic asked
// for, named as it was asked for: a topic asked for by id keeps its name
// unsaid, as Kafka answers it.
func (a access) deniedTopics(resp *kmsg.MetadataResponse, asked []kmsg.MetadataRequestTopic) kmsg.Response {
	for _, rt := range asked {
		t := kmsg.NewMetadataResponseTopic()
		t.Topic, t.TopicID = rt.Topic, rt.TopicID
		t.ErrorCode = codeTopic
		t.AuthorizedOperations = math.MinInt32
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}

// fetchDeniedTopics is the set of topics a consumer's fetch names, or
// reads from its session, that the principal may not read (nil: none). The
// fetch answers their partitions TOPIC_AUTHORIZATION_FAILED and keeps them
// in its session, as Kafka, which authorizes the fetch context's
// partitions on every request.
func (a access) fetchDeniedTopics(r *kmsg.FetchRequest) map[string]bool {
	if r.ReplicaID >= 0 {
		return nil
	}
	var denied map[string]bool
	seen := map[string]bool{}
	check := func(topic string) {
		if seen[topic] {
			return
		}
		seen[topic] = true
		if !a.may(opRead, rtTopic, topic) {
			if denied == nil {
				denied = map[string]bool{}
			}
			denied[topic] = true
		}
	}
	for _, t := range r.Topics {
		check(t.Topic)
	}
	if r.SessionID != 0 && r.SessionEpoch > 0 {
		for _, k := range a.b.sessions.partitions(r.SessionID) {
			check(k.topic)
		}
	}
	return denied
}
