package broker

// Fetch (key 1) v4-12, for consumers and follower replicas.
//
// A fetch with replica_id >= 0 comes from a follower (readForFollower): its
// fetch offset is recorded as that replica's log end (it may move the high
// watermark and wake acks=all produces), records are read up to the log
// end rather than the high watermark, and a last fetched epoch (v12) the
// leader's log does not end the same way is answered with the diverging
// epoch. Only the leader serves fetches: a follower answers
// NOT_LEADER_OR_FOLLOWER.
//
// Reads whole batches from each partition's log up to the high watermark
// (read_uncommitted, isolation_level 0) or up to the last stable offset, the
// first offset of the earliest open transaction (read_committed, 1): no
// batch at or past it is returned. Every response carries the LSO. A
// read_committed response also lists in aborted_transactions the aborted
// transactions overlapping the fetched range (Kafka's rule: marker offset
// >= fetch offset and first offset < the offset after the fetched data), so
// that the consumer drops their records; control batches are sent like any
// batch and an LSO change makes a fetch session include the partition.
// Honouring
// partition_max_bytes and max_bytes with Kafka's KIP-74 rule that the first
// batch of the response is returned whole even when larger. When less than
// min_bytes is available the request parks: every partition it reads wakes
// it on append, and max_wait_ms bounds the wait. No polling. Record bytes are
// never copied: the response names file ranges that the server sends with
// sendfile (server.SplicedResponse).
//
// Fetch sessions (KIP-227, v7+; fetchsession.go has the cache): session
// epoch -1 is a sessionless full fetch and closes the session it names;
// epoch 0 is a full fetch that closes the session it names and opens a new
// one when the cache has room (answering its id, else 0); a positive epoch
// is an incremental fetch of the named session: unknown ids get
// FETCH_SESSION_ID_NOT_FOUND and a wrong epoch INVALID_FETCH_SESSION_EPOCH
// (top-level, no partitions); otherwise the listed partitions are added or
// updated, forgotten_topics_data removed, every partition of the session is
// read (and parked on), and the response carries only the partitions with
// records, an error, or a high watermark, last stable offset or log start
// offset that changed since the session's last response. A full response
// carries every requested partition. v4-6 have no sessions.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/commitlog"
	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/quota"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/server"
)

// maxFetchWait bounds max_wait_ms: a client asking for minutes would pin a
// parked request (and its connection's queue) for that long.
const maxFetchWait = 30 * time.Second

// Session epochs with a meaning of their own (Kafka's FetchMetadata).
const (
	finalEpoch   = -1 // sessionless full fetch; closes the named session
	initialEpoch = 0  // full fetch opening a new session
)

func handleFetch(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.FetchRequest)
	denied := fetchDenied(ctx)
	return func(ctx context.Context) kmsg.Response {
		return b.fetch(ctx, req, userOf(sreq), sreq.ClientID, denied)
	}
}

// fetchDeniedKey carries, in the context Handle passes to handleFetch, the
// topics a consumer's fetch may not read (access.go).
type fetchDeniedKey struct{}

// fetchDenied is the set of topics the fetch of ctx may not read (nil: no
// authorizer, or every topic allowed).
func fetchDenied(ctx context.Context) map[string]bool {
	d, _ := ctx.Value(fetchDeniedKey{}).(map[string]bool)
	return d
}

// fetch answers a fetch request. Session bookkeeping happens here, in the
// Completion, so that pipelined requests of one connection see each other's
// session changes in order.
//
// A consumer over its fetch quota is answered at once with no records and
// the throttle time, as Kafka answers (without opening a session, and
// without moving an open one's state, so the next fetch sends what this
// one did not); one within it counts the response's record bytes. A
// follower's fetches count against no client quota.
//
// A partition of a topic in denied (ones the principal may not read) is
// answered TOPIC_AUTHORIZATION_FAILED and not read, as Kafka answers it;
// it stays in the fetch session, so it is answered so on every incremental
// fetch, and read once the principal may.
func (b *Broker) fetch(ctx context.Context, req *kmsg.FetchRequest, user, clientID string, denied map[string]bool) kmsg.Response {
	sessionID, epoch := req.SessionID, req.SessionEpoch
	if req.Version < 7 {
		sessionID, epoch = 0, finalEpoch
	}
	consumer := req.ReplicaID < 0
	var throttle time.Duration
	if consumer {
		throttle = b.quotas.Throttle(quota.Fetch, user, clientID)
		// As Kafka, a consumer with a quota fetches at most what the
		// quota allows over its window from a quiet start: more would be
		// throttled for certain, and for long.
		if most, ok := b.quotas.MaxInWindow(quota.Fetch, user, clientID); ok && float64(req.MaxBytes) > most {
			req.MaxBytes = int32(max(most, 1))
			req.MinBytes = min(req.MinBytes, req.MaxBytes)
		}
	}
	throttled := func(sessionID int32) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.Topics = []kmsg.FetchResponseTopic{}
		resp.SessionID, resp.ThrottleMillis = sessionID, throttleMillis(throttle)
		return resp
	}
	count := func(resp *server.SplicedResponse, res *fetchResult) *server.SplicedResponse {
		if consumer {
			if t := b.quotas.Record(quota.Fetch, user, clientID, res.total); t > 0 {
				resp.Response.(*kmsg.FetchResponse).ThrottleMillis = throttleMillis(t)
			}
		}
		return resp
	}
	if epoch == finalEpoch || epoch == initialEpoch {
		if sessionID != 0 {
			b.sessions.remove(sessionID)
		}
		if throttle > 0 {
			return throttled(0)
		}
		parts := requestPartitions(req)
		res := b.read(ctx, req, parts, denied)
		resp := res.response(req, parts, nil)
		if epoch == initialEpoch {
			resp.Response.(*kmsg.FetchResponse).SessionID = b.sessions.create(parts, res.sent(parts))
		}
		return count(resp, res)
	}
	var forgotten []fetchKey
	for _, t := range req.ForgottenTopics {
		for _, p := range t.Partitions {
			forgotten = append(forgotten, fetchKey{t.Topic, p})
		}
	}
	sess, parts, serr := b.sessions.update(sessionID, epoch, requestPartitions(req), forgotten)
	switch serr {
	case sessionNotFound, sessionBadEpoch:
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		if serr == sessionBadEpoch {
			resp.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
		}
		return resp
	}
	if sess == nil {
		// Every partition was forgotten: the session is closed and the
		// request answered sessionless (Kafka's SessionlessFetchContext).
		if throttle > 0 {
			return throttled(0)
		}
		parts = requestPartitions(req)
		res := b.read(ctx, req, parts, denied)
		return count(res.response(req, parts, nil), res)
	}
	if throttle > 0 {
		return throttled(sessionID)
	}
	res := b.read(ctx, req, parts, denied)
	include := b.sessions.respond(sess, res.sent(parts))
	resp := res.response(req, parts, include)
	resp.Response.(*kmsg.FetchResponse).SessionID = sessionID
	return count(resp, res)
}

// requestPartitions lists the partitions a request names, in request order.
func requestPartitions(req *kmsg.FetchRequest) []fetchPartition {
	var out []fetchPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			out = append(out, fetchPartition{
				fetchKey:         fetchKey{t.Topic, p.Partition},
				topicID:          t.TopicID,
				fetchOffset:      p.FetchOffset,
				maxBytes:         p.PartitionMaxBytes,
				logStartOffset:   p.LogStartOffset,
				leaderEpoch:      p.CurrentLeaderEpoch,
				lastFetchedEpoch: p.LastFetchedEpoch,
			})
		}
	}
	return out
}

// read reads parts until min_bytes are available, max_wait passes, a
// partition fails or ctx ends. While waiting it is parked on the partitions,
// which wake it on append.
func (b *Broker) read(ctx context.Context, req *kmsg.FetchRequest, parts []fetchPartition, denied map[string]bool) *fetchResult {
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
		res := b.readOnce(req, parts, denied)
		if res.total >= int(req.MinBytes) || res.failed || wait <= 0 || ctx.Err() != nil {
			return res
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return res
		}
		res.release()
		if wake == nil {
			// Registered once; a signal between the read above and the wait
			// below stays buffered, so no append is missed.
			wake = make(chan struct{}, 1)
			for _, p := range res.readable {
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

// fetchResult is one read of a list of partitions.
type fetchResult struct {
	parts    []kmsg.FetchResponseTopicPartition // aligned with the partitions read
	splices  []*server.Splice                   // per partition, nil without records
	bytes    []int                              // record bytes per partition
	held     []*commitlog.RangeResult
	total    int
	readable []*replica.Partition // to park on
	failed   bool                 // a partition failed: answer at once, as Kafka does
}

func (r *fetchResult) release() {
	for _, h := range r.held {
		h.Release()
	}
	r.held = nil
}

// sent summarises the read of parts for the session cache.
func (r *fetchResult) sent(parts []fetchPartition) []sentPartition {
	out := make([]sentPartition, len(r.parts))
	for i := range r.parts {
		rp := &r.parts[i]
		out[i] = sentPartition{key: parts[i].fetchKey, errorCode: rp.ErrorCode, highWatermark: rp.HighWatermark,
			lastStableOffset: rp.LastStableOffset, logStartOffset: rp.LogStartOffset, recordBytes: r.bytes[i]}
	}
	return out
}

// readOnce reads every partition once.
func (b *Broker) readOnce(req *kmsg.FetchRequest, parts []fetchPartition, denied map[string]bool) *fetchResult {
	res := &fetchResult{
		parts:   make([]kmsg.FetchResponseTopicPartition, len(parts)),
		splices: make([]*server.Splice, len(parts)),
		bytes:   make([]int, len(parts)),
	}
	img := b.image()
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = 1 << 30
	}
	for i, fp := range parts {
		rp := &res.parts[i]
		*rp = kmsg.NewFetchResponseTopicPartition()
		rp.Partition = fp.partition
		rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
		rp.PreferredReadReplica = -1
		// Kafka always sends records, empty when there are none:
		// librdkafka and kafka-python fail on a null records field.
		rp.RecordBatches = []byte{}
		if denied[fp.topic] {
			// Not read, and no reason to answer at once: the
			// partitions it may read wait for min_bytes as usual.
			rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			continue
		}
		topic := img.Topics[fp.topic]
		var p *replica.Partition
		switch {
		case topic == nil || fp.partition < 0 || int(fp.partition) >= len(topic.Partitions):
			rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case b.replicas.Offline() != nil:
			// Kafka's offline log directory: clients and followers
			// retry elsewhere once the controller moved leadership.
			rp.ErrorCode = kerr.KafkaStorageError.Code
		default:
			if p = b.leaderReplica(topic, fp.partition); p == nil {
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
			} else if err := p.CheckLeaderEpoch(fp.leaderEpoch); err != nil {
				rp.ErrorCode = b.errorCode(err)
				p = nil
			} else if !p.IsLeader() {
				// Reads are served by the leader only (no KIP-392
				// follower fetching).
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
				p = nil
			} else if !b.leaseHeld() {
				// Possibly deposed: its high watermark may be stale,
				// and a follower must not copy from it either.
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
				p = nil
			} else if req.Version < 10 && p.Config().Compression == "zstd" {
				// As Kafka: a fetch older than zstd (KIP-110)
				// may not read a topic that stores zstd.
				rp.ErrorCode = kerr.UnsupportedCompressionType.Code
				p = nil
			}
		}
		if p == nil {
			res.failed = true
			continue
		}
		res.readable = append(res.readable, p)
		if req.ReplicaID >= 0 {
			b.readForFollower(req, fp, p, rp, res, i, maxBytes)
			continue
		}
		// The LSO is read before the high watermark so that LSO <= HW in
		// the response even when appends and markers race with the read.
		committed := req.IsolationLevel == 1
		rp.LastStableOffset = p.LastStableOffset()
		rp.HighWatermark = max(p.HighWatermark(), rp.LastStableOffset)
		rp.LogStartOffset = p.LogStartOffset()
		if committed {
			rp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
		}
		limit := min(int(fp.maxBytes), maxBytes-res.total)
		if limit <= 0 && res.total > 0 {
			continue
		}
		var rr commitlog.RangeResult
		var err error
		if committed {
			rr, err = p.ReadRangeCommitted(fp.fetchOffset, max(limit, 1))
		} else {
			rr, err = p.ReadRange(fp.fetchOffset, max(limit, 1))
		}
		if err == nil {
			rr = res.fit(rr, limit, fp.fetchOffset)
		}
		if committed && err == nil && len(rr.Chunks) > 0 {
			for _, a := range p.AbortedTransactions(fp.fetchOffset, rr.NextOffset) {
				at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
				rp.AbortedTransactions = append(rp.AbortedTransactions, at)
			}
		}
		switch {
		case errors.Is(err, replica.ErrOffsetOutOfRange):
			rp.ErrorCode = kerr.OffsetOutOfRange.Code
			res.failed = true
		case err != nil:
			rp.ErrorCode = b.errorCode(err)
			res.failed = true
		case len(rr.Chunks) > 0:
			res.attach(i, rp, &rr)
		}
	}
	if len(denied) > 0 && len(res.readable) == 0 {
		res.failed = true // nothing it may read: nothing to wait for (Kafka answers at once)
	}
	return res
}

// fit applies Kafka's size rule (KIP-74) to a partition's read: a read
// returns at least one whole batch, however large, so that a consumer makes
// progress, but only the first partition of a response that returns records
// may go over the limits that way. A later partition whose next batch does
// not fit in limit (its max bytes, or what is left of the response's)
// returns no records this time; the fetch session moves it ahead of the
// partitions that did return records.
func (res *fetchResult) fit(rr commitlog.RangeResult, limit int, offset int64) commitlog.RangeResult {
	if res.total == 0 || rr.Len() <= int64(limit) {
		return rr
	}
	rr.Release()
	return commitlog.RangeResult{NextOffset: offset}
}

// attach makes partition i's answer the file ranges rr read: held open
// until the response is written, sent with sendfile in place of rp's
// records.
func (res *fetchResult) attach(i int, rp *kmsg.FetchResponseTopicPartition, rr *commitlog.RangeResult) {
	if rr.Chunks[0].File == nil {
		// A log on an in-memory filesystem (crash tests): no descriptor
		// to sendfile from, so the bytes are copied into the response.
		var buf []byte
		for _, c := range rr.Chunks {
			b := make([]byte, c.Len)
			n, _ := c.Reader.ReadAt(b, c.Pos)
			buf = append(buf, b[:n]...)
		}
		rr.Release()
		rp.RecordBatches = buf
		res.bytes[i] += len(buf)
		res.total += len(buf)
		return
	}
	res.held = append(res.held, rr)
	sp := &server.Splice{Marker: server.NewMarker()}
	for _, c := range rr.Chunks {
		sp.Ranges = append(sp.Ranges, server.FileRange{File: c.File, Offset: c.Pos, Length: c.Len})
		res.bytes[i] += int(c.Len)
	}
	res.total += res.bytes[i]
	rp.RecordBatches = sp.Marker
	res.splices[i] = sp
}

// readForFollower is readOnce's part for one partition of a follower's
// fetch (replica_id >= 0): a last fetched epoch (v12+) that the leader's
// log does not end the same way gets the diverging epoch and no records;
// otherwise the fetch offset is the follower's fsynced log end, recorded
// before the read so that the high watermark the response carries already
// counts it (an offset past the leader's log end is OFFSET_OUT_OF_RANGE and
// not recorded); records are read up to the log end, not the high
// watermark.
func (b *Broker) readForFollower(req *kmsg.FetchRequest, fp fetchPartition, p *replica.Partition, rp *kmsg.FetchResponseTopicPartition, res *fetchResult, i, maxBytes int) {
	if req.Version >= 12 && fp.lastFetchedEpoch >= 0 {
		epoch, end := p.EndOffsetForEpoch(fp.lastFetchedEpoch)
		if epoch < fp.lastFetchedEpoch || end < fp.fetchOffset {
			// Not recorded as the follower's log end: its tail differs.
			rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset = epoch, end
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = p.HighWatermark(), p.LastStableOffset(), p.LogStartOffset()
			res.failed = true // answer at once: the follower must truncate
			return
		}
	}
	if err := p.UpdateFollower(req.ReplicaID, fp.fetchOffset); err != nil {
		rp.ErrorCode = b.errorCode(err)
		res.failed = true
		return
	}
	rp.HighWatermark = p.HighWatermark()
	rp.LastStableOffset = p.LastStableOffset()
	rp.LogStartOffset = p.LogStartOffset()
	// Kafka's leader-side replication throttle: a follower out of the ISR
	// catching up on a partition the topic's
	// leader.replication.throttled.replicas names on this broker gets no
	// records while the throttled bytes' rate is over
	// leader.replication.throttled.rate.
	throttled := config.Throttled(p.Config().LeaderThrottled, fp.partition, b.cfg.NodeID) && !p.InISR(req.ReplicaID)
	if throttled && b.leaderThrottle.Exceeded(b.brokerInt(b.image(), "leader.replication.throttled.rate")) {
		return
	}
	if throttled {
		defer func() { b.leaderThrottle.Record(res.bytes[i]) }()
	}
	limit := min(int(fp.maxBytes), maxBytes-res.total)
	if limit <= 0 && res.total > 0 {
		return
	}
	rr, err := p.ReadRangeForFollower(fp.fetchOffset, max(limit, 1))
	if err == nil {
		rr = res.fit(rr, limit, fp.fetchOffset)
	}
	switch {
	case err != nil:
		rp.ErrorCode = b.errorCode(err)
		res.failed = true
	case len(rr.Chunks) > 0:
		res.attach(i, rp, &rr)
	}
}

// response builds the spliced response of the partitions read, keeping those
// include allows (all when include is nil). Partitions are grouped by topic
// in order of first appearance; splices follow in encoding order. The
// response owns the held segment ranges from here on.
func (r *fetchResult) response(req *kmsg.FetchRequest, parts []fetchPartition, include []bool) *server.SplicedResponse {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	held := r.held
	r.held = nil
	out := &server.SplicedResponse{Response: resp, Release: func() {
		for _, h := range held {
			h.Release()
		}
		held = nil
	}}
	// groups[i] lists the indexes of parts in resp.Topics[i].
	var groups [][]int
	topicAt := make(map[string]int)
	for i, fp := range parts {
		if include != nil && !include[i] {
			continue
		}
		ti, ok := topicAt[fp.topic]
		if !ok {
			ti = len(resp.Topics)
			topicAt[fp.topic] = ti
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = fp.topic, fp.topicID
			resp.Topics = append(resp.Topics, rt)
			groups = append(groups, nil)
		}
		resp.Topics[ti].Partitions = append(resp.Topics[ti].Partitions, r.parts[i])
		groups[ti] = append(groups[ti], i)
	}
	if resp.Topics == nil {
		resp.Topics = []kmsg.FetchResponseTopic{}
	}
	for _, g := range groups {
		for _, i := range g {
			if r.splices[i] != nil {
				out.Splices = append(out.Splices, *r.splices[i])
			}
		}
	}
	return out
}
