package broker

// Fetch (key 1) v4-12, for consumers.
//
// Reads whole batches from each partition's log up to the high watermark
// (the last stable offset is the same until transactions land), honouring
// partition_max_bytes and max_bytes with Kafka's KIP-74 rule that the first
// batch of the response is returned whole even when larger. When less than
// min_bytes is available the request parks: every partition it reads wakes
// it on append, and max_wait_ms bounds the wait. No polling.
//
// Fetch sessions (KIP-227): Gregor answers every fetch in full and never
// creates a session, so it replies session id 0; a request naming a session
// it does not know gets FETCH_SESSION_ID_NOT_FOUND, which makes clients fall
// back to full fetches.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/commitlog"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/server"
)

// maxFetchWait bounds max_wait_ms: a client asking for minutes would pin a
// parked request (and its connection's queue) for that long.
const maxFetchWait = 30 * time.Second

func handleFetch(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.FetchRequest)
	if req.SessionID != 0 {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return done(resp)
	}
	if req.SessionEpoch > 0 {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
		return done(resp)
	}
	return func(ctx context.Context) kmsg.Response {
		return b.fetch(ctx, req)
	}
}

func (b *Broker) fetch(ctx context.Context, req *kmsg.FetchRequest) kmsg.Response {
	// The response carries file ranges, not bytes: the server sends the
	// record batches from the segment files with sendfile and then releases
	// the segments (server.SplicedResponse).
	wait := min(msDuration(req.MaxWaitMillis), maxFetchWait)
	deadline := time.Now().Add(wait)
	var wake chan struct{}
	var parked []*replica.Partition
	defer func() {
		for _, p := range parked {
			p.RemoveWaiter(wake)
		}
	}()
	for {
		resp, bytes, parts, failed := b.fetchOnce(req)
		if bytes >= int(req.MinBytes) || failed || wait <= 0 || ctx.Err() != nil {
			return resp
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return resp
		}
		resp.Release()
		if wake == nil {
			// Registered once; a signal between the read above and the wait
			// below stays buffered, so no append is missed.
			wake = make(chan struct{}, 1)
			for _, p := range parts {
				p.AddWaiter(wake)
				parked = append(parked, p)
			}
			// Re-read: data may have arrived before the waiters were in place.
			continue
		}
		t := time.NewTimer(remaining)
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// fetchOnce reads every requested partition once. It returns the response,
// the record bytes in it, the partitions it could read (to park on), and
// whether any partition failed (which answers at once, as Kafka does).
func (b *Broker) fetchOnce(req *kmsg.FetchRequest) (*server.SplicedResponse, int, []*replica.Partition, bool) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	out := &server.SplicedResponse{Response: resp}
	var held []*commitlog.RangeResult
	out.Release = func() {
		for _, r := range held {
			r.Release()
		}
		held = nil
	}
	img := b.image()
	maxBytes := int(req.MaxBytes)
	if req.Version < 3 || maxBytes <= 0 {
		maxBytes = 1 << 30
	}
	total := 0
	failed := false
	var parts []*replica.Partition
	resp.Topics = make([]kmsg.FetchResponseTopic, 0, len(req.Topics))
	for _, t := range req.Topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		topic := img.Topics[t.Topic]
		rt.Partitions = make([]kmsg.FetchResponseTopicPartition, 0, len(t.Partitions))
		for _, tp := range t.Partitions {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = tp.Partition
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
			rp.PreferredReadReplica = -1
			// Kafka always sends records, empty when there are none:
			// librdkafka and kafka-python fail on a null records field.
			rp.RecordBatches = []byte{}
			var p *replica.Partition
			switch {
			case topic == nil || tp.Partition < 0 || int(tp.Partition) >= len(topic.Partitions):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				if p = b.replicas.Get(t.Topic, tp.Partition); p == nil {
					rp.ErrorCode = kerr.NotLeaderForPartition.Code
				} else if err := p.CheckLeaderEpoch(tp.CurrentLeaderEpoch); err != nil {
					rp.ErrorCode = b.errorCode(err)
					p = nil
				}
			}
			if p == nil {
				failed = true
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			parts = append(parts, p)
			rp.HighWatermark = p.HighWatermark()
			rp.LastStableOffset = rp.HighWatermark
			rp.LogStartOffset = p.LogStartOffset()
			if req.IsolationLevel == 1 {
				rp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			}
			limit := min(int(tp.PartitionMaxBytes), maxBytes-total)
			if limit > 0 || total == 0 {
				rr, err := p.ReadRange(tp.FetchOffset, max(limit, 1))
				switch {
				case errors.Is(err, replica.ErrOffsetOutOfRange):
					rp.ErrorCode = kerr.OffsetOutOfRange.Code
					failed = true
				case err != nil:
					rp.ErrorCode = b.errorCode(err)
					failed = true
				case len(rr.Chunks) > 0:
					held = append(held, &rr)
					sp := server.Splice{Marker: server.NewMarker()}
					for _, c := range rr.Chunks {
						sp.Ranges = append(sp.Ranges, server.FileRange{File: c.File, Offset: c.Pos, Length: c.Len})
						total += int(c.Len)
					}
					rp.RecordBatches = sp.Marker
					out.Splices = append(out.Splices, sp)
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return out, total, parts, failed
}
