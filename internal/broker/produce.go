package broker

// Produce (key 0) v3-11: record batch v2 only.
//
// Handle does the ordered part: for each partition it validates the single
// batch over its raw bytes (sizes, magic, CRC-32C, record framing, no control
// batches from clients, a producer id on transactional batches), checks
// idempotent-producer sequence and epoch (a transactional batch also opens
// its producer's transaction on the partition, pinning the last stable
// offset until the coordinator's marker), and appends the bytes with base offset and leader epoch patched in place. The
// Completion does the waiting: acks=all returns only once every appended
// batch is fsynced (group commit shares fsyncs), acks=1 returns at once,
// acks=0 sends no response. A retried idempotent batch is answered with its
// original offsets and is not written again.

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/record"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/server"
)

// maxUncompressedBatch caps what one compressed batch may expand to while its
// records are validated: a decompression bomb stops here instead of
// exhausting memory.
const maxUncompressedBatch = 64 << 20

// decompressSlots is how many compressed batches are validated at once across
// the node: with maxUncompressedBatch it caps decompression memory at 256 MiB
// however many clients send bombs.
const decompressSlots = 4

var (
	errMultipleBatches   = errors.New("broker: a v2 produce must carry exactly one record batch per partition")
	errNoRecords         = errors.New("broker: produce carries no record batch")
	errControlFromClient = errors.New("broker: clients may not write control batches")
	// errNullKeyCompacted: Kafka refuses keyless records for compacted
	// topics ("Compacted topic cannot accept message without key").
	errNullKeyCompacted = errors.New("broker: compacted topic cannot accept a record without key")
	errTxnNoProducer    = errors.New("broker: a transactional batch must carry a producer id")
)

type pendingDurable struct {
	p      *replica.Partition
	offset int64
	resp   *kmsg.ProduceResponseTopicPartition
}

func handleProduce(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	img := b.image()
	validAcks := req.Acks == 0 || req.Acks == 1 || req.Acks == -1
	var waits []pendingDurable
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i, t := range req.Topics {
		rt := &resp.Topics[i]
		*rt = kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		topic := img.Topics[t.Topic]
		for j, tp := range t.Partitions {
			rp := &rt.Partitions[j]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition = tp.Partition
			rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = -1, -1, -1
			var err error
			switch {
			case !validAcks:
				rp.ErrorCode = kerr.InvalidRequiredAcks.Code
				continue
			case topic == nil || tp.Partition < 0 || int(tp.Partition) >= len(topic.Partitions):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			p := b.replicas.Get(t.Topic, tp.Partition)
			if p == nil {
				err = replica.ErrNotLeader
			}
			var res replica.AppendResult
			if err == nil {
				res, err = b.appendBatch(p, tp.Records, req.Acks)
			}
			if err != nil {
				rp.ErrorCode = b.produceErrorCode(err)
				if req.Version >= 8 {
					rp.ErrorMessage = errorMessage(err)
				}
				continue
			}
			rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = res.BaseOffset, res.LogAppendTime, res.LogStartOffset
			if req.Acks == -1 {
				waits = append(waits, pendingDurable{p: p, offset: res.LastOffset + 1, resp: rp})
			}
		}
	}
	if req.Acks == 0 {
		// The client reads no response; durability still follows the flush policy.
		return nil
	}
	if len(waits) == 0 {
		return done(resp)
	}
	// A timeout shorter than an fsync would fail writes that are in fact
	// durable a moment later; wait at least a second.
	timeout := max(msDuration(req.TimeoutMillis), time.Second)
	return func(ctx context.Context) kmsg.Response {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		// Partitions are separate files: their fsyncs run side by side so a
		// request spanning many partitions waits for the slowest, not the sum.
		// Each WaitDurable joins that partition's group commit.
		var wg sync.WaitGroup
		for i := range waits {
			w := &waits[i]
			wait := func() {
				if err := w.p.WaitDurable(ctx, w.offset); err != nil {
					w.resp.ErrorCode = b.produceErrorCode(err)
					w.resp.BaseOffset = -1
				}
			}
			if len(waits) == 1 {
				wait()
			} else {
				wg.Go(wait)
			}
		}
		wg.Wait()
		return resp
	}
}

// appendBatch validates the raw batch and appends it. It decodes nothing
// beyond the header and walks records without allocating.
func (b *Broker) appendBatch(p *replica.Partition, records []byte, acks int16) (replica.AppendResult, error) {
	if len(records) == 0 {
		return replica.AppendResult{}, errNoRecords
	}
	if len(records) >= record.HeaderSize {
		if n := int64(record.LengthOverhead) + int64(int32(be32(records[8:]))); n > 0 && n < int64(len(records)) {
			return replica.AppendResult{}, errMultipleBatches
		}
	}
	h, err := record.ValidateProduce(records)
	if err != nil {
		return replica.AppendResult{}, err
	}
	if int64(len(records)) > p.Config().MaxMessageBytes {
		return replica.AppendResult{}, replica.ErrMessageTooLarge
	}
	if h.IsControl() {
		return replica.AppendResult{}, errControlFromClient
	}
	if h.IsTransactional() && h.ProducerID < 0 {
		return replica.AppendResult{}, errTxnNoProducer
	}
	compact := p.Config().Compact
	if h.Compression() != record.CodecNone {
		// Each compressed batch may expand to maxUncompressedBatch while it is
		// checked; the slots bound what all connections together can hold.
		b.decompressSlots <- struct{}{}
		err := record.ValidateRecords(records, h, maxUncompressedBatch)
		if err == nil && compact {
			err = checkKeys(records, h)
		}
		<-b.decompressSlots
		if err != nil {
			return replica.AppendResult{}, err
		}
	} else if err := record.ValidateRecords(records, h, maxUncompressedBatch); err != nil {
		return replica.AppendResult{}, err
	} else if compact {
		if err := checkKeys(records, h); err != nil {
			return replica.AppendResult{}, err
		}
	}
	return p.Append(records, h, acks)
}

// checkKeys refuses a batch for a compacted topic holding a record without
// a key (the batch has passed ValidateRecords).
func checkKeys(batch []byte, h record.Header) error {
	return record.Records(batch, h, maxUncompressedBatch, func(r record.Record) error {
		if r.Key == nil {
			return errNullKeyCompacted
		}
		return nil
	})
}

func (b *Broker) produceErrorCode(err error) int16 {
	switch {
	case errors.Is(err, errMultipleBatches), errors.Is(err, errNoRecords), errors.Is(err, errControlFromClient),
		errors.Is(err, errNullKeyCompacted), errors.Is(err, errTxnNoProducer):
		return kerr.InvalidRecord.Code
	}
	return b.errorCode(err)
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func msDuration(ms int32) time.Duration {
	if ms < 0 {
		ms = 0
	}
	return time.Duration(ms) * time.Millisecond
}
