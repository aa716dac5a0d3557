package group

// Transactional offset commits (TxnOffsetCommit, KIP-98).
//
// A transactional producer's offsets are held here as pending, per producer
// id, and become the group's committed offsets only when the transaction
// coordinator completes the transaction with a commit (CompleteTxn); an
// abort discards them. Pending offsets live in memory only and are written
// to __consumer_offsets as ordinary offset commit records when the
// transaction commits (Kafka instead writes them transactionally and lets
// the commit marker expose them). Trade-off: a crash after the transaction
// coordinator logged PrepareCommit but before CompleteTxn wrote the offsets
// loses them (the produced records are committed by the markers the
// coordinator rewrites at load, the consumer re-reads from the previous
// committed offset: at-least-once for that window, not exactly-once).

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/gregor-dev/gregor/internal/replica"
)

// txnPending is the pending transactional offsets of one producer id.
type txnPending struct {
	epoch  int16
	groups map[string]map[TopicPartition]Offset
}

// CommitTxnOffsets validates a TxnOffsetCommit (member and generation when
// given, partitions, metadata size) and stores the offsets as pending for
// producer pid. It returns an error per partition (nil: accepted).
func (c *Coordinator) CommitTxnOffsets(ctx context.Context, id, memberID, instanceID string, generation int32,
	pid int64, epoch int16, offsets map[TopicPartition]Offset) (map[TopicPartition]error, error) {
	out := make(map[TopicPartition]error, len(offsets))
	accepted := map[TopicPartition]Offset{}
	err := c.with(ctx, id, true, func(g *group, now time.Time) {
		var gerr error
		if generation >= 0 || memberID != "" || instanceID != "" {
			if _, err := g.st.checkMember(memberID, instanceID, generation); err != nil {
				gerr = err
			}
		}
		for tp, o := range offsets {
			switch {
			case gerr != nil:
				out[tp] = gerr
			case tp.Partition < 0 || tp.Partition >= c.cfg.PartitionCount(tp.Topic):
				out[tp] = ErrUnknownTopicOrPartition
			case len(o.Metadata) > c.cfg.MaxOffsetMetadataBytes:
				out[tp] = ErrOffsetMetadataTooLarge
			default:
				o.CommitTimestamp = now.UnixMilli()
				accepted[tp] = o
				out[tp] = nil
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if len(accepted) == 0 {
		return out, nil
	}
	c.txnMu.Lock()
	defer c.txnMu.Unlock()
	if c.txnPending == nil {
		c.txnPending = map[int64]*txnPending{}
	}
	p := c.txnPending[pid]
	if p == nil || p.epoch != epoch {
		p = &txnPending{epoch: epoch, groups: map[string]map[TopicPartition]Offset{}}
		c.txnPending[pid] = p
	}
	if p.groups[id] == nil {
		p.groups[id] = map[TopicPartition]Offset{}
	}
	for tp, o := range accepted {
		p.groups[id][tp] = o
	}
	return out, nil
}

// HasPendingTxnOffsets reports whether a transaction holds uncommitted
// offsets of group id on tp (OffsetFetch require_stable).
func (c *Coordinator) HasPendingTxnOffsets(id string, tp TopicPartition) bool {
	c.txnMu.Lock()
	defer c.txnMu.Unlock()
	for _, p := range c.txnPending {
		if _, ok := p.groups[id][tp]; ok {
			return true
		}
	}
	return false
}

// CompleteTxn ends producer pid's transaction for its pending offsets: on
// commit they are written as committed offsets (durable on return), on abort
// they are dropped. A producer without pending offsets is a no-op.
func (c *Coordinator) CompleteTxn(ctx context.Context, pid int64, commit bool) error {
	c.txnMu.Lock()
	p := c.txnPending[pid]
	if p == nil || !commit {
		delete(c.txnPending, pid)
		c.txnMu.Unlock()
		return nil
	}
	c.txnMu.Unlock()
	// The offsets stay pending until they are the group's committed ones:
	// an OffsetFetch with require_stable in between must not read the
	// offsets from before the transaction as stable.
	defer func() {
		c.txnMu.Lock()
		if c.txnPending[pid] == p {
			delete(c.txnPending, pid)
		}
		c.txnMu.Unlock()
	}()
	ids := make([]string, 0, len(p.groups))
	for id := range p.groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var errs []error
	for _, id := range ids {
		offs := p.groups[id]
		var next int64
		var part int32
		err := c.with(ctx, id, true, func(g *group, now time.Time) {
			kvs := make([]replica.KeyValue, 0, len(offs))
			for tp, o := range offs {
				kvs = append(kvs, replica.KeyValue{Key: offsetKey(id, tp), Value: offsetValue(o)})
			}
			n, err := c.appendRecords(g.partition, kvs...)
			if err != nil {
				errs = append(errs, err)
				return
			}
			for tp, o := range offs {
				g.offsets[tp] = o
			}
			next, part = n, g.partition
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if next > 0 {
			if err := c.waitDurable(ctx, part, next); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
