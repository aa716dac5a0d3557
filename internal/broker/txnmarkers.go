package broker

// WriteTxnMarkers (key 27) v0-1: the request a transaction coordinator
// sends to the leaders of a transaction's partitions to end it there (KIP-98).
// As Kafka's KafkaApis.handleWriteTxnMarkersRequest, each marker is appended
// as a COMMIT or ABORT control batch with acks=all semantics: refused below
// min.insync.replicas (NOT_ENOUGH_REPLICAS), answered once the high watermark
// passed it (every ISR member has it on disk), NOT_ENOUGH_REPLICAS_AFTER_APPEND
// when the ISR shrank meanwhile, REQUEST_TIMED_OUT when the request timeout
// passed first. The partition checks the producer epoch
// (INVALID_PRODUCER_EPOCH) and the coordinator epoch it keeps in the producer
// state (TRANSACTION_COORDINATOR_FENCED: a deposed coordinator). A partition
// this node does not host is UNKNOWN_TOPIC_OR_PARTITION, one it follows
// NOT_LEADER_OR_FOLLOWER; the coordinator retries both after a metadata
// change. A marker on __consumer_offsets is then applied by this node's group
// coordinator (Kafka's onTransactionCompleted): the transactional offsets it
// holds for the producer become committed or are dropped.
//
// The node's transaction coordinator reaches partitions led here through
// WriteTxnMarkers in process, and partitions led elsewhere through the same
// request over the inter-broker client, so both take this one path.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/group"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/server"
)

func handleWriteTxnMarkers(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.WriteTxnMarkersRequest)
	return func(ctx context.Context) kmsg.Response {
		ctx, cancel := requestTimeout(ctx, 0)
		defer cancel()
		return b.WriteTxnMarkers(ctx, req)
	}
}

// WriteTxnMarkers writes the markers of req on the partitions this node
// leads and answers as the WriteTxnMarkers API does (see the file comment).
// Every marker is appended before any is waited for, so the waits for the
// high watermarks overlap.
func (b *Broker) WriteTxnMarkers(ctx context.Context, req *kmsg.WriteTxnMarkersRequest) *kmsg.WriteTxnMarkersResponse {
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	type appended struct {
		code *int16
		p    *replica.Partition
		next int64
		pid  int64
		ok   bool // commit
	}
	var waits []appended
	resp.Markers = make([]kmsg.WriteTxnMarkersResponseMarker, len(req.Markers))
	for i, m := range req.Markers {
		rm := &resp.Markers[i]
		rm.ProducerID = m.ProducerID
		rm.Topics = make([]kmsg.WriteTxnMarkersResponseMarkerTopic, len(m.Topics))
		for j, t := range m.Topics {
			rt := &rm.Topics[j]
			rt.Topic = t.Topic
			rt.Partitions = make([]kmsg.WriteTxnMarkersResponseMarkerTopicPartition, len(t.Partitions))
			for k, part := range t.Partitions {
				rp := &rt.Partitions[k]
				rp.Partition = part
				p := b.replicas.Get(t.Topic, part)
				if p == nil {
					rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
					continue
				}
				off, err := p.AppendTxnMarker(m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch)
				if err != nil {
					rp.ErrorCode = b.errorCode(err)
					continue
				}
				waits = append(waits, appended{code: &rp.ErrorCode, p: p, next: off + 1, pid: m.ProducerID, ok: m.Committed})
			}
		}
	}
	for _, w := range waits {
		if err := w.p.WaitReplicated(ctx, w.next); err != nil {
			*w.code = b.errorCode(err)
			continue
		}
		if w.p.Topic != group.Topic || b.groups == nil {
			continue
		}
		if err := b.groups.CompleteTxn(ctx, w.p.Index, w.pid, w.ok); err != nil {
			// The marker is in the log, where a reload of the partition
			// meets it; the coordinator's retry applies it again (a no-op
			// for what was applied).
			b.logger.Warn("applying a transaction marker to group offsets failed", "partition", w.p.Index,
				"producer_id", w.pid, "err", err)
			*w.code = kerr.UnknownServerError.Code
		}
	}
	return resp
}
