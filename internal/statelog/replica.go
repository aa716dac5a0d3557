package statelog

import (
	"context"
	"errors"
	"fmt"

	"github.com/gregor-dev/gregor/internal/commitlog"
	"github.com/gregor-dev/gregor/internal/replica"
)

// Replica is the Log over a replica partition this node leads, for the
// leadership it had when the Log was made: the leader epoch from which the
// node has led without a break (replica.Partition.LedSince). A leader epoch
// bumped while the node stays leader (a reassignment that drops a
// follower, an ISR-preserving change) keeps the Log working, as Kafka keeps
// a coordinator loaded across such a bump; a node deposed and elected
// again gets a new Log, and its coordinator reloads.
type Replica struct {
	p     *replica.Partition
	epoch int32
}

// NewReplica makes the Log of p for its current leadership, nil when this
// node does not lead p.
func NewReplica(p *replica.Partition) *Replica {
	if p == nil {
		return nil
	}
	e := p.LedSince()
	if e < 0 {
		return nil
	}
	return &Replica{p: p, epoch: e}
}

// Epoch implements Log: the epoch the leadership began in, which is also
// the coordinator epoch fencing transaction markers (it only grows from
// one leadership to the next).
func (r *Replica) Epoch() int32 { return r.epoch }

// current reports whether this node still leads the partition without a
// break since r's epoch.
func (r *Replica) current() bool { return r.p.LedSince() == r.epoch }

// Append implements Log. It refuses the batch with ErrNotEnoughReplicas when
// the ISR is below min.insync.replicas (as an acks=all produce).
func (r *Replica) Append(b Batch) (int64, error) {
	if !r.current() {
		return 0, ErrNotLeader
	}
	kvs := make([]replica.KeyValue, len(b.Records))
	for i, kv := range b.Records {
		kvs[i] = replica.KeyValue{Key: kv.Key, Value: kv.Value}
	}
	var next int64
	var err error
	if b.ProducerID >= 0 && b.Guard != nil {
		next, err = r.p.AppendTxnKeyValuesVerified(b.Now, b.ProducerID, b.ProducerEpoch, replica.VerificationGuard(*b.Guard), kvs...)
	} else if b.ProducerID >= 0 {
		next, err = r.p.AppendTxnKeyValues(b.Now, b.ProducerID, b.ProducerEpoch, kvs...)
	} else {
		next, err = r.p.AppendKeyValues(b.Now, kvs...)
	}
	return next, mapErr(err)
}

// WaitCommitted implements Log: the leader's own fsync, then the high
// watermark (every ISR member has it on disk).
func (r *Replica) WaitCommitted(ctx context.Context, next int64) error {
	return r.wait(ctx, next, r.p.WaitReplicatedInEpoch)
}

// WaitReadable implements Log: WaitCommitted without the
// min.insync.replicas check.
func (r *Replica) WaitReadable(ctx context.Context, next int64) error {
	return r.wait(ctx, next, r.p.WaitHighWatermarkInEpoch)
}

func (r *Replica) wait(ctx context.Context, next int64, replicated func(context.Context, int64, int32) error) error {
	if !r.current() {
		return ErrNotLeader
	}
	if err := r.p.WaitDurable(ctx, next); err != nil {
		return mapErr(err)
	}
	// Only while this node has led without a break since r's epoch: a
	// deposed leader's high watermark may pass next over records a new
	// leader wrote at the same offsets.
	if err := replicated(ctx, next, r.epoch); err != nil {
		return mapErr(err)
	}
	if !r.current() {
		return ErrNotLeader
	}
	return nil
}

// Scan implements Log.
func (r *Replica) Scan(fn func(Record) error) (int64, error) {
	end, err := r.p.ScanStateLogToEnd(func(sr replica.StateRecord) error {
		return fn(Record{Offset: sr.Offset, ProducerID: sr.ProducerID, ProducerEpoch: sr.ProducerEpoch,
			Transactional: sr.Transactional, Marker: sr.Marker, Commit: sr.Commit, Key: sr.Key, Value: sr.Value})
	})
	return end, mapErr(err)
}

// mapErr translates the replica's errors to the Log's, keeping the cause.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, replica.ErrNotLeader), errors.Is(err, replica.ErrClosed):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, replica.ErrNotEnoughReplicas), errors.Is(err, replica.ErrNotEnoughReplicasAfterAppend):
		return fmt.Errorf("%w: %w", ErrNotEnoughReplicas, err)
	case errors.Is(err, commitlog.ErrLogFailed):
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	return err
}
