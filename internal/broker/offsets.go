package broker

// ListOffsets (key 2) v1-7, OffsetForLeaderEpoch (key 23) v0-4 and
// DeleteRecords (key 21) v0-2: the partition-offset queries.
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

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/server"
)

// partitionFor finds a hosted partition or the error code saying why not.
func (b *Broker) partitionFor(img *metadata.Image, topic string, partition int32) (*replica.Partition, int16) {
	t := img.Topics[topic]
	if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	p := b.replicas.Get(topic, partition)
	if p == nil {
		return nil, kerr.NotLeaderForPartition.Code
	}
	return p, 0
}

func handleListOffsets(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	img := b.image()
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
			switch ts := tp.Timestamp; {
			case ts == -2:
				rp.Offset = p.LogStartOffset()
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
				}
			}
			if req.Version == 0 && rp.Offset >= 0 {
				rp.OldStyleOffsets = []int64{rp.Offset}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return done(resp)
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
