package broker

// ListOffsets (key 2) v0-7, OffsetForLeaderEpoch (key 23) v0-4 and
// DeleteRecords (key 21) v0-2: the partition-offset queries.
//
// ListOffsets v0 (dropped by Kafka 4, KIP-896, but still sent by old tools
// such as Burrow 1.2) is answered as Kafka 3.x's handleListOffsetRequestV0
// and UnifiedLog.legacyFetchOffsetsBefore did: from segment base offsets and
// file modification times, not from record timestamps (see listOffsetsV0).
//
// ListOffsets answers -2 (earliest: the log start offset), -1 (latest: the
// high watermark, or the last stable offset for read_committed), -3 (the
// record with the largest timestamp, KIP-734) and a timestamp (the first
// offset whose batch timestamp is at least it; -1/-1 when none is).
// OffsetForLeaderEpoch answers from the leader-epoch checkpoint (KIP-101,
// KIP-279). DeleteRecords moves the log start offset (-1: to the high
// watermark); whole segments below it are deleted.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/commitlog"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/server"
)

// partitionFor finds a partition this node leads or the error code saying
// why not (a follower's replica answers NOT_LEADER_OR_FOLLOWER).
func (b *Broker) partitionFor(img *metadata.Image, topic string, partition int32) (*replica.Partition, int16) {
	t := img.Topics[topic]
	if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	if b.replicas.Offline() != nil {
		return nil, kerr.KafkaStorageError.Code
	}
	p := b.leaderReplica(t, partition)
	if p == nil || !p.IsLeader() || !b.leaseHeld() {
		return nil, kerr.NotLeaderForPartition.Code
	}
	return p, 0
}

func handleListOffsets(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	img := b.image()
	if req.Version == 0 {
		listOffsetsV0(b, img, req, resp)
		return done(resp)
	}
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		for _, tp := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = tp.Partition
			rp.Timestamp, rp.Offset, rp.LeaderEpoch = -1, -1, -1
			p, code := b.partitionFor(img, t.Topic, tp.Partition)
			if p == nil {
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			if err := p.CheckLeaderEpoch(tp.CurrentLeaderEpoch); err != nil {
				rp.ErrorCode = b.errorCode(err)
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			rp.LeaderEpoch = p.LeaderEpoch()
			// A new leader whose high watermark has not caught up yet could
			// answer "latest" (or a timestamp past what it can serve) below
			// an answer its predecessor gave: Kafka's OFFSET_NOT_AVAILABLE.
			lagging := p.HighWatermarkLagging()
			switch ts := tp.Timestamp; {
			case ts == -2:
				rp.Offset = p.LogStartOffset()
			case ts == -1 && lagging:
				rp.ErrorCode = kerr.OffsetNotAvailable.Code
			case ts == -1 && req.IsolationLevel == 1:
				rp.Offset = p.LastStableOffset()
			case ts == -1:
				rp.Offset = p.HighWatermark()
			case ts == -3:
				if mts, off := p.MaxTimestamp(); off >= 0 {
					rp.Timestamp, rp.Offset = mts, off
				}
			case ts < 0:
				rp.ErrorCode = kerr.UnsupportedVersion.Code
			default:
				visible := p.HighWatermark()
				if req.IsolationLevel == 1 {
					visible = p.LastStableOffset()
				}
				if off, bts, ok := p.OffsetForTimestamp(ts); ok && off < visible {
					rp.Offset, rp.Timestamp = off, bts
				} else if lagging {
					rp.ErrorCode = kerr.OffsetNotAvailable.Code
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return done(resp)
}

// listOffsetsV0 answers the v0 form: per partition up to max_num_offsets
// offsets, descending, in old_style_offsets.
func listOffsetsV0(b *Broker, img *metadata.Image, req *kmsg.ListOffsetsRequest, resp *kmsg.ListOffsetsResponse) {
	now := time.Now()
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		for _, tp := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = tp.Partition
			p, code := b.partitionFor(img, t.Topic, tp.Partition)
			switch {
			case p != nil && tp.MaxNumOffsets < 0:
				// Kafka sizes its answer array with max_num_offsets and
				// fails with NegativeArraySizeException, which the
				// handler turns into UNKNOWN_SERVER_ERROR.
				rp.ErrorCode = kerr.UnknownServerError.Code
			case p != nil:
				offs := legacyOffsetsBefore(p.Segments(), p.LogStartOffset(), p.LogEndOffset(), now, tp.Timestamp, int(tp.MaxNumOffsets))
				if req.ReplicaID == -1 {
					offs = belowHighWatermark(offs, p.HighWatermark())
				}
				rp.OldStyleOffsets = offs
			default:
				rp.ErrorCode = code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
}

// legacyOffsetsBefore is Kafka's legacyFetchOffsetsBefore. Each segment
// stands for (max(base offset, log start), file mtime), and a non-empty active
// segment adds (log end, now). Latest (-1) starts from the last entry,
// earliest (-2, and -4, earliest local) from the first, any other value from
// the last entry modified at or before it (so a negative one such as -3
// finds none). From there it walks back at most maxNum entries and answers
// their offsets in descending order.
func legacyOffsetsBefore(segs []commitlog.SegmentInfo, logStart, logEnd int64, now time.Time, ts int64, maxNum int) []int64 {
	type entry struct{ offset, mtime int64 }
	entries := make([]entry, 0, len(segs)+1)
	for _, s := range segs {
		var mtime int64 // Java's File.lastModified is 0 for a missing file
		if !s.LastModified.IsZero() {
			mtime = s.LastModified.UnixMilli()
		}
		entries = append(entries, entry{max(s.BaseOffset, logStart), mtime})
	}
	if len(segs) == 0 || segs[len(segs)-1].Size > 0 {
		entries = append(entries, entry{logEnd, now.UnixMilli()})
	}
	start := -1
	switch ts {
	case -1:
		start = len(entries) - 1
	case -2, -4:
		start = 0
	default:
		for start = len(entries) - 1; start >= 0 && entries[start].mtime > ts; start-- {
		}
	}
	// Entries ascend by offset, so walking back gives Kafka's descending
	// order. n is bounded by the segment count, whatever the request asked.
	n := min(maxNum, start+1)
	out := make([]int64, 0, max(n, 0))
	for i := 0; i < n; i++ {
		out = append(out, entries[start-i].offset)
	}
	return out
}

// belowHighWatermark is Kafka's consumer view of the legacy answer: offsets
// above the high watermark are replaced by the high watermark.
func belowHighWatermark(offs []int64, hw int64) []int64 {
	i := 0
	for i < len(offs) && offs[i] > hw {
		i++
	}
	if i == 0 {
		return offs
	}
	return append([]int64{hw}, offs[i:]...)
}

func handleOffsetForLeaderEpoch(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	img := b.image()
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		for _, tp := range t.Partitions {
			rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition = tp.Partition
			rp.LeaderEpoch, rp.EndOffset = -1, -1
			p, code := b.partitionFor(img, t.Topic, tp.Partition)
			if p == nil {
				rp.ErrorCode = code
			} else if err := p.CheckLeaderEpoch(tp.CurrentLeaderEpoch); err != nil {
				rp.ErrorCode = b.errorCode(err)
			} else {
				rp.LeaderEpoch, rp.EndOffset = p.EndOffsetForEpoch(tp.LeaderEpoch)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return done(resp)
}

func handleDeleteRecords(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	img := b.image()
	for _, t := range req.Topics {
		rt := kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		for _, tp := range t.Partitions {
			rp := kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition = tp.Partition
			rp.LowWatermark = -1
			p, code := b.partitionFor(img, t.Topic, tp.Partition)
			if p == nil {
				rp.ErrorCode = code
			} else if low, err := p.DeleteRecordsBefore(tp.Offset); err != nil {
				rp.ErrorCode = b.errorCode(err)
			} else {
				rp.LowWatermark = low
				b.logger.Info("deleted records", "topic", t.Topic, "partition", tp.Partition, "offset", low)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return done(resp)
}
