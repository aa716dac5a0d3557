package broker

// DescribeTopicPartitions (key 75), v0 (KIP-966): Metadata's topic and
// partition part, paged. The Java admin client (3.8+) describes topics
// with it when the broker offers it.
//
// As Kafka's DescribeTopicPartitionsRequestHandler: the topics named (all
// of them when none is) from the cursor's topic on, sorted by name, are
// answered until the request's partition limit (capped by
// max.request.partition.size.limit, at least 1) is used up; the answer's
// cursor then names the topic and partition to ask for next. A topic the
// principal may not describe is left out of an all-topics answer and
// answered TOPIC_AUTHORIZATION_FAILED (with no id) when named; an unknown
// named topic is UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION for an
// invalid name). A cursor whose topic is not among those named, or whose
// partition is negative, makes the request invalid. Eligible leader
// replicas (KIP-966's ELR) are not kept by Gregor, as Kafka 4.0 keeps none
// by default: both lists are empty.

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/server"
)

func handleDescribeTopicPartitions(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DescribeTopicPartitionsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeTopicPartitionsResponse)
	img := b.image()
	mayDescribe := func(string) bool { return true }
	ops := func(string) int32 { return allTopicOps }
	if b.authz != nil {
		a := b.accessOf(sreq)
		mayDescribe = func(name string) bool { return a.may(opDescribe, rtTopic, name) }
		ops = func(name string) int32 { return a.opsMask(rtTopic, name, allTopicOps) }
	}

	all := len(req.Topics) == 0
	from, fromPartition := "", int32(0)
	if req.Cursor != nil {
		from, fromPartition = req.Cursor.Topic, req.Cursor.Partition
	}
	seen := map[string]bool{}
	var names []string
	add := func(name string) {
		if name >= from && !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	if all {
		for name := range img.Topics {
			add(name)
		}
	} else {
		for _, t := range req.Topics {
			add(t.Topic)
		}
	}
	if req.Cursor != nil && (fromPartition < 0 || !all && !seen[from]) {
		for _, t := range req.Topics {
			rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
			rt.Topic = kmsg.StringPtr(t.Topic)
			rt.ErrorCode = kerr.InvalidRequest.Code
			resp.Topics = append(resp.Topics, rt)
		}
		return done(resp)
	}
	sort.Strings(names)

	remaining := int(max(min(b.brokerInt(img, "max.request.partition.size.limit"), int64(req.ResponsePartitionLimit)), 1))
	var denied []kmsg.DescribeTopicPartitionsResponseTopic
	for _, name := range names {
		if !mayDescribe(name) {
			if !all {
				rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
				rt.Topic = kmsg.StringPtr(name)
				rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
				denied = append(denied, rt)
			}
			continue
		}
		if remaining == 0 {
			// The previous topic ended exactly at the limit: the
			// next answer starts at this one.
			resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: name}
			break
		}
		t := img.Topics[name]
		if t == nil {
			if !all {
				rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
				rt.Topic = kmsg.StringPtr(name)
				rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
				if validateTopicName(name) != nil {
					rt.ErrorCode = kerr.InvalidTopicException.Code
				}
				rt.IsInternal = isInternalTopic(name)
				resp.Topics = append(resp.Topics, rt)
			}
			continue
		}
		start := 0
		if name == from {
			start = int(fromPartition)
		}
		end := min(len(t.Partitions), start+remaining)
		mt := b.metadataTopic(img, t, false)
		rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
		rt.Topic, rt.TopicID, rt.IsInternal = kmsg.StringPtr(name), t.ID, mt.IsInternal
		rt.AuthorizedOperations = ops(name)
		for _, mp := range mt.Partitions[min(start, end):end] {
			rp := kmsg.NewDescribeTopicPartitionsResponseTopicPartition()
			rp.Partition, rp.LeaderID, rp.LeaderEpoch = mp.Partition, mp.Leader, mp.LeaderEpoch
			rp.Replicas, rp.ISR, rp.OfflineReplicas = mp.Replicas, mp.ISR, mp.OfflineReplicas
			rp.EligibleLeaderReplicas, rp.LastKnownELR = []int32{}, []int32{}
			if rp.OfflineReplicas == nil {
				rp.OfflineReplicas = []int32{}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
		if end < len(t.Partitions) {
			resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: name, Partition: int32(end)}
			break
		}
		remaining -= end - min(start, end)
	}
	resp.Topics = append(resp.Topics, denied...)
	return done(resp)
}
