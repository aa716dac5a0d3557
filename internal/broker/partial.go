package broker

import (
	"context"
	"reflect"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/server"
)

// Partial refusal: as Kafka's KafkaApis, a request that names several
// topics (groups, config resources, coordinator keys) is refused element
// by element. (A consumer's Fetch is refused partition by partition by the
// fetch itself, so that its session keeps the refused partitions: see
// fetchDeniedTopics.) The elements the principal may not use are taken out of the
// request before it is handled, and their answers (deniedResponse of a
// request holding only them) are appended to the answer to the rest: a
// produce to an allowed and a forbidden topic writes the allowed one.
// What the whole request depends on (a transactional id, a group, the
// cluster) still refuses it whole, as in Kafka, and so does a request of
// which nothing is allowed.

// split divides s into the elements ok accepts and the others, in order.
func split[T any](s []T, ok func(T) bool) (yes, no []T) {
	for _, e := range s {
		if ok(e) {
			yes = append(yes, e)
		} else {
			no = append(no, e)
		}
	}
	return yes, no
}

// keep is the part of s that ok accepts, in place.
func keep[T any](s []T, ok func(T) bool) []T {
	kept := s[:0]
	for _, e := range s {
		if ok(e) {
			kept = append(kept, e)
		}
	}
	return kept
}

// allows reports whether the principal passes c.
func (a access) allows(c check) bool {
	if c.unknown {
		return false
	}
	return a.may(c.op, c.rt, c.name) || (c.orCluster && a.cluster(c.op)) || (c.orClusterAction && a.cluster(opClusterAction))
}

// prune takes out of body the elements its principal may not use and
// returns their answers; ok is false, and body untouched, when the request
// is to be refused whole instead (see above).
func (a access) prune(body kmsg.Request) (denied []kmsg.Response, ok bool) {
	img := a.b.image()
	topic := func(op kmsg.ACLOperation) func(name string) bool {
		return func(name string) bool { return a.may(op, rtTopic, name) }
	}
	groupOK := func(op kmsg.ACLOperation, g string) bool { return a.may(op, rtGroup, g) }
	txnOK := func(id string) bool { return a.may(opWrite, rtTxn, id) }
	// cut answers the elements in no (of a copy of the request holding
	// only them) with code; it fails when nothing, or everything, is cut.
	cut := func(yes, no int, answer func() kmsg.Request, code int16) bool {
		if yes == 0 || no == 0 {
			return false
		}
		denied = append(denied, deniedResponse(answer(), code))
		return true
	}
	switch r := body.(type) {
	case *kmsg.ProduceRequest:
		if r.TransactionID != nil && !txnOK(*r.TransactionID) {
			return nil, false
		}
		write := topic(opWrite)
		yes, no := split(r.Topics, func(t kmsg.ProduceRequestTopic) bool { return write(t.Topic) })
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.Topics = no; return &d }, codeTopic) {
			return nil, false
		}
		r.Topics = yes
	case *kmsg.ListOffsetsRequest:
		describe := topic(opDescribe)
		yes, no := split(r.Topics, func(t kmsg.ListOffsetsRequestTopic) bool { return describe(t.Topic) })
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.Topics = no; return &d }, codeTopic) {
			return nil, false
		}
		r.Topics = yes
	case *kmsg.OffsetCommitRequest:
		if !groupOK(opRead, r.Group) {
			return nil, false
		}
		read := topic(opRead)
		yes, no := split(r.Topics, func(t kmsg.OffsetCommitRequestTopic) bool { return read(t.Topic) })
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.Topics = no; return &d }, codeTopic) {
			return nil, false
		}
		r.Topics = yes
	case *kmsg.TxnOffsetCommitRequest:
		if !txnOK(r.TransactionalID) || !groupOK(opRead, r.Group) {
			return nil, false
		}
		read := topic(opRead)
		yes, no := split(r.Topics, func(t kmsg.TxnOffsetCommitRequestTopic) bool { return read(t.Topic) })
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.Topics = no; return &d }, codeTopic) {
			return nil, false
		}
		r.Topics = yes
	case *kmsg.OffsetFetchRequest:
		if len(r.Groups) > 0 {
			// v8+: groups one by one, and the topics of an allowed
			// group one by one: its refused topics are answered
			// inside its own answer (mergeDenied merges by group).
			describe := topic(opDescribe)
			yes, no := split(r.Groups, func(g kmsg.OffsetFetchRequestGroup) bool { return groupOK(opDescribe, g.Group) })
			if len(yes) == 0 {
				return nil, false
			}
			var refusedTopics []kmsg.OffsetFetchRequestGroup // allowed groups, with their refused topics
			for i := range yes {
				g := &yes[i]
				if g.Topics == nil { // every topic: filtered after (handle)
					continue
				}
				kept, refused := split(g.Topics, func(t kmsg.OffsetFetchRequestGroupTopic) bool { return describe(t.Topic) })
				if len(refused) > 0 {
					refusedTopics = append(refusedTopics, kmsg.OffsetFetchRequestGroup{Group: g.Group, Topics: refused})
					g.Topics = append([]kmsg.OffsetFetchRequestGroupTopic{}, kept...) // non-nil: not "every topic"
				}
			}
			if len(no) == 0 && len(refusedTopics) == 0 {
				return nil, false
			}
			if len(no) > 0 {
				// A refused group is answered without its topics, as Kafka.
				bare := make([]kmsg.OffsetFetchRequestGroup, len(no))
				for i, g := range no {
					bare[i] = kmsg.OffsetFetchRequestGroup{Group: g.Group}
				}
				denied = append(denied, deniedResponse(&kmsg.OffsetFetchRequest{Version: r.Version, Groups: bare}, codeGroup))
			}
			if len(refusedTopics) > 0 {
				denied = append(denied, deniedResponse(&kmsg.OffsetFetchRequest{Version: r.Version, Groups: refusedTopics}, codeTopic))
			}
			r.Groups = yes
			break
		}
		if !groupOK(opDescribe, r.Group) {
			return nil, false
		}
		describe := topic(opDescribe)
		yes, no := split(r.Topics, func(t kmsg.OffsetFetchRequestTopic) bool { return describe(t.Topic) })
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.Topics = no; return &d }, codeTopic) {
			return nil, false
		}
		r.Topics = yes
	case *kmsg.FindCoordinatorRequest:
		if r.Version < 4 {
			return nil, false
		}
		rt, code := rtGroup, codeGroup
		if r.CoordinatorType == 1 {
			rt, code = rtTxn, codeTxn
		}
		yes, no := split(r.CoordinatorKeys, func(k string) bool { return a.may(opDescribe, rt, k) })
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.CoordinatorKeys = no; return &d }, code) {
			return nil, false
		}
		r.CoordinatorKeys = yes
	case *kmsg.DescribeGroupsRequest:
		yes, no := split(r.Groups, func(g string) bool { return groupOK(opDescribe, g) })
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.Groups = no; return &d }, codeGroup) {
			return nil, false
		}
		r.Groups = yes
	case *kmsg.DeleteGroupsRequest:
		yes, no := split(r.Groups, func(g string) bool { return groupOK(opDelete, g) })
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.Groups = no; return &d }, codeGroup) {
			return nil, false
		}
		r.Groups = yes
	case *kmsg.OffsetDeleteRequest:
		if !groupOK(opDelete, r.Group) {
			return nil, false
		}
		read := topic(opRead)
		yes, no := split(r.Topics, func(t kmsg.OffsetDeleteRequestTopic) bool { return read(t.Topic) })
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.Topics = no; return &d }, codeTopic) {
			return nil, false
		}
		r.Topics = yes
	case *kmsg.CreateTopicsRequest:
		create := func(t kmsg.CreateTopicsRequestTopic) bool {
			c := topicCheck(opCreate, t.Topic)
			c.orCluster = true
			return a.allows(c)
		}
		yes, no := split(r.Topics, create)
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.Topics = no; return &d }, codeTopic) {
			return nil, false
		}
		r.Topics = yes
	case *kmsg.DeleteTopicsRequest:
		del := topic(opDelete)
		if len(r.Topics) > 0 {
			// By name or id. An id this node does not know is answered
			// UNKNOWN_TOPIC_ID here, as Kafka answers it: it is not
			// forwarded, since the controller, which may know it,
			// authorizes nothing.
			known, unknown := split(r.Topics, func(t kmsg.DeleteTopicsRequestTopic) bool {
				return t.Topic != nil || img.TopicByID(t.TopicID) != nil
			})
			yes, no := split(known, func(t kmsg.DeleteTopicsRequestTopic) bool {
				if t.Topic != nil {
					return del(*t.Topic)
				}
				return del(img.TopicByID(t.TopicID).Name)
			})
			if len(yes) == 0 && len(unknown) == 0 {
				return nil, false
			}
			if len(no) > 0 {
				denied = append(denied, deniedResponse(&kmsg.DeleteTopicsRequest{Version: r.Version, Topics: no}, codeTopic))
			}
			if len(unknown) > 0 {
				denied = append(denied, deniedResponse(&kmsg.DeleteTopicsRequest{Version: r.Version, Topics: unknown}, kerr.UnknownTopicID.Code))
			}
			r.Topics = yes
			break
		}
		yes, no := split(r.TopicNames, del)
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.TopicNames = no; return &d }, codeTopic) {
			return nil, false
		}
		r.TopicNames = yes
	case *kmsg.DeleteRecordsRequest:
		del := topic(opDelete)
		yes, no := split(r.Topics, func(t kmsg.DeleteRecordsRequestTopic) bool { return del(t.Topic) })
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.Topics = no; return &d }, codeTopic) {
			return nil, false
		}
		r.Topics = yes
	case *kmsg.CreatePartitionsRequest:
		alter := topic(opAlter)
		yes, no := split(r.Topics, func(t kmsg.CreatePartitionsRequestTopic) bool { return alter(t.Topic) })
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.Topics = no; return &d }, codeTopic) {
			return nil, false
		}
		r.Topics = yes
	case *kmsg.OffsetForLeaderEpochRequest:
		yes, no := split(r.Topics, func(t kmsg.OffsetForLeaderEpochRequestTopic) bool {
			c := topicCheck(opDescribe, t.Topic)
			c.orClusterAction = true
			return a.allows(c)
		})
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.Topics = no; return &d }, codeTopic) {
			return nil, false
		}
		r.Topics = yes
	case *kmsg.DescribeProducersRequest:
		read := topic(opRead)
		yes, no := split(r.Topics, func(t kmsg.DescribeProducersRequestTopic) bool { return read(t.Topic) })
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.Topics = no; return &d }, codeTopic) {
			return nil, false
		}
		r.Topics = yes
	case *kmsg.DescribeTransactionsRequest:
		yes, no := split(r.TransactionalIDs, func(id string) bool { return a.may(opDescribe, rtTxn, id) })
		if !cut(len(yes), len(no), func() kmsg.Request { d := *r; d.TransactionalIDs = no; return &d }, codeTxn) {
			return nil, false
		}
		r.TransactionalIDs = yes
	case *kmsg.DescribeConfigsRequest:
		return pruneConfigs(a, &r.Resources, func(no []kmsg.DescribeConfigsRequestResource) kmsg.Request {
			d := *r
			d.Resources = no
			return &d
		}, func(res kmsg.DescribeConfigsRequestResource) check {
			return configCheck(opDescribeConfigs, res.ResourceType, res.ResourceName)
		})
	case *kmsg.AlterConfigsRequest:
		return pruneConfigs(a, &r.Resources, func(no []kmsg.AlterConfigsRequestResource) kmsg.Request {
			d := *r
			d.Resources = no
			return &d
		}, func(res kmsg.AlterConfigsRequestResource) check {
			return configCheck(opAlterConfigs, res.ResourceType, res.ResourceName)
		})
	case *kmsg.IncrementalAlterConfigsRequest:
		return pruneConfigs(a, &r.Resources, func(no []kmsg.IncrementalAlterConfigsRequestResource) kmsg.Request {
			d := *r
			d.Resources = no
			return &d
		}, func(res kmsg.IncrementalAlterConfigsRequestResource) check {
			return configCheck(opAlterConfigs, res.ResourceType, res.ResourceName)
		})
	default:
		return nil, false
	}
	return denied, true
}

// pruneConfigs is prune for the config requests, whose resources are
// refused with the code of their kind (a topic's or the cluster's).
func pruneConfigs[T any](a access, resources *[]T, only func([]T) kmsg.Request, checkOf func(T) check) ([]kmsg.Response, bool) {
	yes, no := split(*resources, func(res T) bool { return a.allows(checkOf(res)) })
	if len(yes) == 0 || len(no) == 0 {
		return nil, false
	}
	var denied []kmsg.Response
	byCode := map[int16][]T{}
	var codes []int16
	for _, res := range no {
		c := checkOf(res).code
		if byCode[c] == nil {
			codes = append(codes, c)
		}
		byCode[c] = append(byCode[c], res)
	}
	for _, c := range codes {
		denied = append(denied, deniedResponse(only(byCode[c]), c))
	}
	*resources = yes
	return denied, true
}

// emptied reports whether prune left nothing of body to handle (only
// DeleteTopics, whose unknown ids are answered without the handler).
func emptied(body kmsg.Request) bool {
	r, ok := body.(*kmsg.DeleteTopicsRequest)
	return ok && len(r.Topics) == 0 && len(r.TopicNames) == 0
}

// withDenied appends the answers of the pruned elements to the answer to
// the rest. A Produce with acks=0 gets no answer (its handler wrote it
// already and answers nil): as Kafka, its connection is closed, which
// tells the client.
func withDenied(sreq *server.Request, next server.Completion, denied []kmsg.Response) server.Completion {
	if p, ok := sreq.Body.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
		if sreq.Close != nil {
			sreq.Close()
		}
		return next
	}
	return func(ctx context.Context) kmsg.Response {
		return mergeDenied(next(ctx), denied)
	}
}

// mergeDenied appends the elements of each denied answer's arrays to
// resp's arrays of the same name, and returns resp. An element naming
// what an element of resp already names (an OffsetFetch group whose
// refused topics are added to its answer) is merged into it instead.
func mergeDenied(resp kmsg.Response, denied []kmsg.Response) kmsg.Response {
	inner := resp
	if s, ok := resp.(*server.SplicedResponse); ok {
		inner = s.Response // batches sent from files: the denied elements follow them
	}
	if inner == nil {
		return resp
	}
	rv := reflect.ValueOf(inner).Elem()
	for _, d := range denied {
		dv := reflect.ValueOf(d).Elem()
		if dv.Type() != rv.Type() {
			continue // cannot happen: both answer the same request
		}
		mergeArrays(rv, dv)
	}
	return resp
}

// mergeArrays appends the elements of src's arrays to dst's (both structs of
// one type), merging an element into the one of dst with the same name.
func mergeArrays(dst, src reflect.Value) {
	for i := range src.NumField() {
		f := src.Field(i)
		if f.Kind() != reflect.Slice || f.Len() == 0 || !src.Type().Field(i).IsExported() || f.Type().Elem().Kind() != reflect.Struct {
			continue
		}
		d := dst.Field(i)
		for j := range f.Len() {
			e := f.Index(j)
			if k := elementName(e); k != "" {
				if match := findNamed(d, k); match.IsValid() {
					mergeArrays(match, e)
					continue
				}
			}
			d = reflect.Append(d, e)
		}
		dst.Field(i).Set(d)
	}
}

// elementName is the group an element names ("" for any other element:
// topics and resources are never both allowed and refused).
func elementName(e reflect.Value) string {
	if g := e.FieldByName("Group"); g.IsValid() && g.Kind() == reflect.String {
		return g.String()
	}
	return ""
}

// findNamed is the element of slice s that names group k, or the zero Value.
func findNamed(s reflect.Value, k string) reflect.Value {
	for i := range s.Len() {
		if elementName(s.Index(i)) == k {
			return s.Index(i)
		}
	}
	return reflect.Value{}
}

// notAttempted is Kafka's answer to an AddPartitionsToTxn (v3 and below)
// that names a topic the principal may not write: the refused topics get
// TOPIC_AUTHORIZATION_FAILED and the others OPERATION_NOT_ATTEMPTED,
// since the transaction takes all of its partitions or none.
func (a access) notAttempted(resp *kmsg.AddPartitionsToTxnResponse) {
	img := a.b.image()
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if !a.may(opWrite, rtTopic, t.Topic) {
			continue
		}
		code := kerr.OperationNotAttempted.Code
		if img.Topic(t.Topic) == nil {
			code = kerr.UnknownTopicOrPartition.Code // as Kafka: unknown before not attempted
		}
		for j := range t.Partitions {
			t.Partitions[j].ErrorCode = code
		}
	}
}
