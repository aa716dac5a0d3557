package group

// Transactional offset commits (TxnOffsetCommit, KIP-98 and KIP-447), as
// Kafka's group coordinator does them.
//
// A TxnOffsetCommit is written to __consumer_offsets at once, as a
// transactional batch of the producer (producer id and epoch, the
// transactional attribute), and the offsets are held as pending, per
// producer id, by the group. AddOffsetsToTxn made the group's
// __consumer_offsets partition part of the transaction, so the transaction
// coordinator writes its COMMIT or ABORT marker there like on every other
// partition of the transaction; once that marker is appended it calls
// CompleteTxn, which makes the pending offsets the group's committed offsets
// (commit) or drops them (abort). A replay of the partition does the same
// from the log: transactional offset records become pending, a marker
// completes them (Kafka's GroupMetadataManager, pendingTransactionalOffsetCommits
// and handleTxnCompletion; OffsetMetadataManager.replayEndTransactionMarker
// in Kafka 4). Nothing lives only in memory, so a crash anywhere between the
// TxnOffsetCommit and the end of the transaction leaves the outcome to the
// marker: the transaction coordinator rewrites the markers of a prepared
// transaction when it loads.
//
// When a plain commit and a transactional one of the same partition meet,
// the one written later to the log wins (Offset.record), whatever order
// the transaction completes in, so that compaction of the log cannot change
// the outcome of a replay.

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/gregor-dev/gregor/internal/statelog"
)

// CommitTxnOffsets handles a TxnOffsetCommit: it validates the member and
// generation (validateTxnOffsetCommit), the partitions and the metadata
// size, writes the accepted offsets as a transactional batch of producer
// pid/epoch and holds them as pending until the transaction's marker. It
// returns an error per partition (nil: written and durable).
func (c *Coordinator) CommitTxnOffsets(ctx context.Context, id, memberID, instanceID string, generation int32,
	pid int64, epoch int16, offsets map[TopicPartition]Offset) (map[TopicPartition]error, error) {
	return c.commitTxnOffsets(ctx, nil, id, memberID, instanceID, generation, pid, epoch, offsets)
}

// CommitVerifiedTxnOffsets is CommitTxnOffsets for a transaction verified
// with a coordinator on another broker: the write carries guard, the
// __consumer_offsets partition's verification guard taken before the
// verification (statelog.Batch.Guard), so that offsets are not written
// after an end marker the verification did not see.
func (c *Coordinator) CommitVerifiedTxnOffsets(ctx context.Context, guard uint64, id, memberID, instanceID string, generation int32,
	pid int64, epoch int16, offsets map[TopicPartition]Offset) (map[TopicPartition]error, error) {
	return c.commitTxnOffsets(ctx, &guard, id, memberID, instanceID, generation, pid, epoch, offsets)
}

func (c *Coordinator) commitTxnOffsets(ctx context.Context, guard *uint64, id, memberID, instanceID string, generation int32,
	pid int64, epoch int16, offsets map[TopicPartition]Offset) (map[TopicPartition]error, error) {
	out := make(map[TopicPartition]error, len(offsets))
	var next int64
	var log statelog.Log
	run := func(g *group, now time.Time) {
		gerr := g.st.validateTxnOffsetCommit(memberID, instanceID, generation)
		var kvs []statelog.KeyValue
		var ok []TopicPartition
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
				offsets[tp] = o
				kvs = append(kvs, statelog.KeyValue{Key: offsetKey(id, tp), Value: offsetValue(o)})
				ok = append(ok, tp)
			}
		}
		if len(kvs) == 0 {
			return
		}
		n, err := c.appendTxnRecords(g, pid, epoch, guard, kvs...)
		if err != nil {
			for _, tp := range ok {
				out[tp] = err
			}
			return
		}
		base := n - int64(len(kvs))
		for i, tp := range ok {
			o := offsets[tp]
			o.record = base + int64(i)
			addPending(g.pending, pid, tp, o)
			out[tp] = nil
		}
		c.notePending(pid, id, g.partition)
		next, log = n, g.log
	}
	err := c.with(ctx, id, false, run)
	if errors.Is(err, ErrGroupIDNotFound) {
		// As Kafka: a commit without a generation makes a simple group;
		// one that names a generation of a group that does not exist is
		// from a generation that is gone.
		if generation >= 0 {
			for tp := range offsets {
				out[tp] = ErrIllegalGeneration
			}
			return out, nil
		}
		err = c.with(ctx, id, true, run)
	}
	if err != nil {
		return nil, err
	}
	if next > 0 {
		if err := c.waitCommitted(ctx, log, next); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CompleteTxn applies the end-transaction marker (COMMIT when commit, else
// ABORT) of producer pid that the transaction coordinator has appended to
// __consumer_offsets partition partition: every group of that partition
// holding offsets pending for pid commits them or drops them. A partition
// still loading is waited for (its replay may have read the log before the
// marker); one not led here is left alone: whoever loads it replays the
// marker. Applying a marker twice is harmless (nothing is pending the
// second time).
func (c *Coordinator) CompleteTxn(ctx context.Context, partition int32, pid int64, commit bool) error {
	if _, err := c.owner.WaitLoaded(ctx, partition); err != nil {
		if errors.Is(err, statelog.ErrNotLeader) {
			return nil
		}
		return logErr(err)
	}
	c.txnMu.Lock()
	var ids []string
	for id, p := range c.txnGroups[pid] {
		if p == partition {
			ids = append(ids, id)
		}
	}
	c.txnMu.Unlock()
	sort.Strings(ids)
	var errs []error
	for _, id := range ids {
		err := c.with(ctx, id, false, func(g *group, now time.Time) {
			completeTxn(g.offsets, g.pending, pid, commit)
		})
		if err != nil && !errors.Is(err, ErrGroupIDNotFound) {
			errs = append(errs, err)
			continue
		}
		c.forgetPending(pid, id)
	}
	return errors.Join(errs...)
}

// validateTxnOffsetCommit checks a TxnOffsetCommit's member against the
// group, as Kafka's ClassicGroup.validateOffsetCommit does for a
// transactional commit (KIP-447): without a generation an Empty group
// accepts it; otherwise, when the request names a generation, a member or
// an instance, the static instance must map to the member
// (UNKNOWN_MEMBER_ID when the instance is unknown, FENCED_INSTANCE_ID when
// it maps to another member), the member must exist (UNKNOWN_MEMBER_ID) and
// the generation must be the group's (ILLEGAL_GENERATION). A request
// without any of them (v0-v2) is accepted whatever the group's state, and
// unlike OffsetCommit a rebalance in progress does not refuse it.
func (g *groupState) validateTxnOffsetCommit(memberID, instanceID string, generation int32) error {
	if g.cg != nil {
		return g.cg.validateTxnCommit(memberID, instanceID, generation)
	}
	if generation < 0 && g.state == Empty {
		return nil
	}
	if generation < 0 && memberID == "" && instanceID == "" {
		return nil
	}
	if instanceID != "" {
		cur, ok := g.static[instanceID]
		if !ok {
			return ErrUnknownMemberID
		}
		if cur != memberID {
			return ErrFencedInstanceID
		}
	}
	if g.members[memberID] == nil {
		return ErrUnknownMemberID
	}
	if generation != g.generation {
		return ErrIllegalGeneration
	}
	return nil
}

// appendTxnRecords writes offset records as a transactional batch of pid.
func (c *Coordinator) appendTxnRecords(g *group, pid int64, epoch int16, guard *uint64, kvs ...statelog.KeyValue) (int64, error) {
	next, err := g.log.Append(statelog.Batch{Now: c.now(), ProducerID: pid, ProducerEpoch: epoch, Records: kvs, Guard: guard})
	if err == nil {
		g.written = next
	}
	return next, logErr(err)
}

// notePending records that group id (of partition p) holds offsets pending
// for producer pid, so that the marker finds it.
func (c *Coordinator) notePending(pid int64, id string, p int32) {
	c.txnMu.Lock()
	defer c.txnMu.Unlock()
	if c.txnGroups == nil {
		c.txnGroups = map[int64]map[string]int32{}
	}
	if c.txnGroups[pid] == nil {
		c.txnGroups[pid] = map[string]int32{}
	}
	c.txnGroups[pid][id] = p
}

func (c *Coordinator) forgetPending(pid int64, id string) {
	c.txnMu.Lock()
	defer c.txnMu.Unlock()
	delete(c.txnGroups[pid], id)
	if len(c.txnGroups[pid]) == 0 {
		delete(c.txnGroups, pid)
	}
}

// The functions below are shared by the live path (on the group's actor)
// and the replay, so that both reach the same state from the same log.

// addPending holds o for tp as pending for producer pid.
func addPending(pending map[int64]map[TopicPartition]Offset, pid int64, tp TopicPartition, o Offset) {
	if pending[pid] == nil {
		pending[pid] = map[TopicPartition]Offset{}
	}
	pending[pid][tp] = o
}

// completeTxn applies pid's marker: on commit each pending offset becomes
// committed unless a commit written later to the log is there.
func completeTxn(committed map[TopicPartition]Offset, pending map[int64]map[TopicPartition]Offset, pid int64, commit bool) {
	offs := pending[pid]
	delete(pending, pid)
	if !commit {
		return
	}
	for tp, o := range offs {
		if cur, ok := committed[tp]; !ok || o.record > cur.record {
			committed[tp] = o
		}
	}
}

// dropPendingPartition applies an offset tombstone to the pending offsets:
// as in Kafka, it removes tp from every open transaction of the group.
func dropPendingPartition(pending map[int64]map[TopicPartition]Offset, tp TopicPartition) {
	for pid, offs := range pending {
		delete(offs, tp)
		if len(offs) == 0 {
			delete(pending, pid)
		}
	}
}

// hasPending reports whether a transaction holds an offset of tp.
func hasPending(pending map[int64]map[TopicPartition]Offset, tp TopicPartition) bool {
	for _, offs := range pending {
		if _, ok := offs[tp]; ok {
			return true
		}
	}
	return false
}
