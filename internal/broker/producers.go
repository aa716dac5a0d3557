package broker

// InitProducerId (key 22) v0-4 and DescribeProducers (key 61) v0.
//
// InitProducerId hands an idempotent producer a fresh producer id with epoch 0
// from blocks recorded in the metadata log, so no id is ever handed out twice,
// across restarts too. Kafka does the same for a non-transactional producer
// that asks again with its old id (KIP-360). Transactional ids are answered
// by the transaction coordinator (txn.go).
// DescribeProducers lists each partition's active idempotent producers.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/server"
)

func handleInitProducerID(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		return func(ctx context.Context) kmsg.Response {
			ctx, cancel := requestTimeout(ctx, 0)
			defer cancel()
			b.initTransactional(ctx, req, resp)
			return resp
		}
	}
	ctx, cancel := requestTimeout(ctx, 0)
	defer cancel()
	id, err := b.producerIDs.Next(ctx)
	if err != nil {
		resp.ErrorCode = b.errorCode(err)
		return done(resp)
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return done(resp)
}

func handleDescribeProducers(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DescribeProducersRequest)
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	img := b.image()
	for _, t := range req.Topics {
		rt := kmsg.NewDescribeProducersResponseTopic()
		rt.Topic = t.Topic
		for _, part := range t.Partitions {
			rp := kmsg.NewDescribeProducersResponseTopicPartition()
			rp.Partition = part
			p, code := b.partitionFor(img, t.Topic, part)
			if p == nil {
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			for _, ps := range p.Producers() {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID = ps.ProducerID
				ap.ProducerEpoch = int32(ps.ProducerEpoch)
				ap.LastSequence = ps.LastSequence
				ap.LastTimestamp = ps.LastTimestamp
				ap.CoordinatorEpoch = -1
				ap.CurrentTxnStartOffset = ps.CurrentTxnStartOffset
				rp.ActiveProducers = append(rp.ActiveProducers, ap)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return done(resp)
}
