package txn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gregor-dev/gregor/internal/replica"
)

// Transaction markers (KIP-98): ending a transaction writes a COMMIT or
// ABORT control batch on every partition of the transaction, wherever it
// is led. Config.WriteMarkers delivers them (the node sends WriteTxnMarkers
// to each partition's leader, this node included); this file decides what
// to do with each partition's outcome, as Kafka's
// TransactionMarkerRequestCompletionHandler does:
//
//   - written: done;
//   - ErrPartitionGone (the topic or partition was deleted, or cannot hold
//     markers): nothing to mark, done;
//   - ErrMarkerFenced (the partition knows a newer producer epoch or
//     coordinator epoch): a newer coordinator owns the transaction; this one
//     stops without completing it;
//   - anything else (no leader, leader moved, not enough replicas, a
//     timeout, a broker unreachable): retried after markerRetryBackoff, for
//     the partitions still missing their marker, with the leaders of the
//     metadata at that time, as long as this node still leads the
//     transactional id's partition at the epoch the markers carry.
//
// Only when every partition has its marker is CompleteCommit or
// CompleteAbort written. A request whose deadline passes first answers an
// error and leaves the transaction prepared; the ids left so are retried
// every markerRetryInterval (completeStuck) until they complete, so the
// producer's retried EndTxn (CONCURRENT_TRANSACTIONS meanwhile) finds the
// transaction complete.

// Errors a MarkerWriter reports for one partition.
var (
	// ErrMarkerFenced: the partition refused the marker for an older
	// producer epoch or transaction coordinator epoch.
	ErrMarkerFenced = errors.New("txn: transaction marker fenced by a newer producer or coordinator epoch")
	// ErrPartitionGone: the partition does not exist any more.
	ErrPartitionGone = errors.New("txn: partition no longer exists")
)

// Marker is the end marker of one transaction, to be written on each of
// Partitions.
type Marker struct {
	ProducerID    int64
	ProducerEpoch int16
	Commit        bool
	// CoordinatorEpoch is the leader epoch of the transactional id's
	// __transaction_state partition on this node: partitions refuse markers
	// of an older one.
	CoordinatorEpoch int32
	Partitions       []TopicPartition
}

// MarkerWriter writes m on each of its partitions and reports each one's
// outcome (nil: the marker is on every in-sync replica); a partition left
// out of the map is retried. It must return once ctx ends.
type MarkerWriter func(ctx context.Context, m Marker) map[TopicPartition]error

const (
	// markerRetryBackoff is the pause before the markers that failed are
	// sent again (Kafka's retry.backoff.ms for its marker channel).
	markerRetryBackoff = 100 * time.Millisecond
	// markerRetryInterval is how often the transactions whose end outlived
	// a request's deadline are taken up again, and markerRetryTimeout how
	// long one such attempt may hold the transactional id.
	markerRetryInterval = time.Second
	markerRetryTimeout  = 10 * time.Second
)

// markerState is the coordinator's list of transactions left prepared by a
// failed end (stuck), retried by completeStuck. mu is taken on an id's
// actor and never held while waiting on one.
type markerState struct {
	mu    sync.Mutex
	stuck map[*entry]struct{}
	// retryTimeout bounds one background attempt (0: markerRetryTimeout;
	// tests shorten it).
	retryTimeout time.Duration
}

// writeMarkers writes the end marker of the prepared transaction m on all
// of its partitions, with coordinator epoch coordEpoch, retrying as the
// file comment says, until each has it or ctx ends. leads reports whether
// this node still coordinates m's id at coordEpoch; once it does not, the
// retries stop (ErrNotCoordinator). It runs with the id held.
func (c *Coordinator) writeMarkers(ctx context.Context, m Metadata, coordEpoch int32, leads func() bool) error {
	if !leads() {
		return ErrNotCoordinator
	}
	commit := m.State == PrepareCommit
	write := c.cfg.WriteMarkers
	if write == nil {
		write = c.writeLocalMarkers
	}
	mk := Marker{ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch, Commit: commit,
		CoordinatorEpoch: coordEpoch, Partitions: m.SortedPartitions()}
	for attempt := 1; len(mk.Partitions) > 0; attempt++ {
		res := write(ctx, mk)
		var retry []TopicPartition
		var last error
		for _, tp := range mk.Partitions {
			err, answered := res[tp]
			switch {
			case !answered:
				retry, last = append(retry, tp), fmt.Errorf("txn: no answer for the marker on %s-%d", tp.Topic, tp.Partition)
			case err == nil:
			case errors.Is(err, ErrPartitionGone):
				c.logger.Warn("transaction marker skipped: partition gone", "transactional_id", m.ID,
					"topic", tp.Topic, "partition", tp.Partition)
			case errors.Is(err, ErrMarkerFenced):
				return fmt.Errorf("txn: marker on %s-%d: %w", tp.Topic, tp.Partition, err)
			default:
				retry, last = append(retry, tp), fmt.Errorf("txn: marker on %s-%d: %w", tp.Topic, tp.Partition, err)
			}
		}
		if len(retry) == 0 {
			return nil
		}
		// Markers of an epoch this node no longer leads at would be
		// fenced anyway: the new coordinator completes the transaction.
		if !leads() {
			return fmt.Errorf("%w: %w", ErrNotCoordinator, last)
		}
		c.logger.Debug("retrying transaction markers", "transactional_id", m.ID, "partitions", len(retry),
			"attempt", attempt, "err", last)
		mk.Partitions = retry
		t := time.NewTimer(markerRetryBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (%w)", ctx.Err(), last)
		case <-c.stopc:
			t.Stop()
			return fmt.Errorf("%w (%w)", ErrClosed, last)
		case <-t.C:
		}
	}
	return nil
}

// writeLocalMarkers is the MarkerWriter without Config.WriteMarkers: the
// partitions this node leads get their marker (and Config.MarkerWritten),
// the others are skipped (a coordinator of a single node, and tests).
func (c *Coordinator) writeLocalMarkers(ctx context.Context, m Marker) map[TopicPartition]error {
	out := make(map[TopicPartition]error, len(m.Partitions))
	for _, tp := range m.Partitions {
		part := c.cfg.Partition(tp.Topic, tp.Partition)
		if part == nil {
			out[tp] = ErrPartitionGone
			continue
		}
		if _, err := part.AppendTxnMarker(m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch); err != nil {
			if errors.Is(err, replica.ErrInvalidProducerEpoch) || errors.Is(err, replica.ErrCoordinatorFenced) {
				err = fmt.Errorf("%w: %w", ErrMarkerFenced, err)
			}
			out[tp] = err
			continue
		}
		out[tp] = c.cfg.MarkerWritten(ctx, tp, m.ProducerID, m.Commit)
	}
	return out
}

// noteStuck records that e's end failed short of its completion. It runs
// on e's actor.
func (c *Coordinator) noteStuck(e *entry) {
	c.markers.mu.Lock()
	defer c.markers.mu.Unlock()
	if c.markers.stuck == nil {
		c.markers.stuck = map[*entry]struct{}{}
	}
	c.markers.stuck[e] = struct{}{}
}

// completeStuck finishes the transactions a failed end left prepared: the
// markers again, then Complete*, on the id's actor when it is idle (a busy
// id is left for the next round). An id no longer prepared here (completed
// by a retry of its producer, removed, or moved to another coordinator) is
// forgotten.
func (c *Coordinator) completeStuck() {
	c.markers.mu.Lock()
	es := make([]*entry, 0, len(c.markers.stuck))
	for e := range c.markers.stuck {
		es = append(es, e)
	}
	c.markers.mu.Unlock()
	for _, e := range es {
		done := e.stopped()
		e.tryDo(func() {
			if e.m.State != PrepareCommit && e.m.State != PrepareAbort || !c.leadsAt(e) {
				done = true
				return
			}
			d := c.markers.retryTimeout
			if d <= 0 {
				d = markerRetryTimeout
			}
			ctx, cancel := context.WithTimeout(c.ctx, d)
			err := c.finish(ctx, e)
			cancel()
			done = err == nil || errors.Is(err, ErrMarkerFenced) || errors.Is(err, ErrNotCoordinator)
			if err != nil {
				c.logger.Info("completing a prepared transaction failed; retrying", "transactional_id", e.m.ID, "err", err)
			}
		})
		if done {
			c.markers.mu.Lock()
			delete(c.markers.stuck, e)
			c.markers.mu.Unlock()
		}
	}
}

// leadsAt reports whether this node still coordinates e's partition under
// the leader epoch e's Log was made for (the epoch its markers carry).
func (c *Coordinator) leadsAt(e *entry) bool {
	if e.stopped() {
		return false
	}
	c.mu.Lock()
	l := c.mu.active[e.partition]
	c.mu.Unlock()
	return l != nil && l.Epoch() == e.log.Epoch()
}
