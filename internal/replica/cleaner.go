package replica

import (
	"context"
	"errors"
	"math"
	"sort"
	"time"

	"github.com/gregor-dev/gregor/internal/commitlog"
)

// The log cleaner: Kafka's scheduling policy over commitlog.Log.Compact.
// One goroutine per node (started by Manager.Run) wakes every
// log.cleaner.backoff.ms, picks the compacted partitions whose dirty ratio
// (bytes of closed segments past the clean point over bytes of all closed
// segments) is at least min.cleanable.dirty.ratio, or whose oldest dirty
// record is older than max.compaction.lag.ms, and compacts them one at a
// time, dirtiest first. Compaction never touches the active segment and
// respects min.compaction.lag.ms and delete.retention.ms (see Log.Compact).
// Transactions: a pass never cleans past the partition's last stable
// offset (only bytes below it count as dirty), it removes the records of
// the transactions in the aborted index, and the transactions it reports
// with nothing left are dropped from that index (dropAborted) before a
// later pass may remove their ABORT markers.

// DefaultCleanerBackoff is log.cleaner.backoff.ms.
const DefaultCleanerBackoff = 15 * time.Second

type cleanCandidate struct {
	p      *Partition
	ratio  float64
	forced bool
}

// cleanerCandidates returns the partitions due for compaction at now, the
// dirtiest first (forced ones, past max.compaction.lag.ms, before all).
func (m *Manager) cleanerCandidates(now time.Time) []cleanCandidate {
	var out []cleanCandidate
	for _, p := range m.All() {
		cfg := p.Config()
		if !cfg.Compact {
			continue
		}
		st := p.log.CleanerStateBelow(p.LastStableOffset())
		if st.DirtyBytes == 0 {
			continue
		}
		forced := cfg.MaxCompactionLagMs > 0 && cfg.MaxCompactionLagMs < math.MaxInt64 && st.FirstDirtyTimestamp >= 0 &&
			now.UnixMilli()-st.FirstDirtyTimestamp > cfg.MaxCompactionLagMs
		if r := st.DirtyRatio(); forced || r >= cfg.MinCleanableDirtyRatio {
			out = append(out, cleanCandidate{p: p, ratio: r, forced: forced})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].forced != out[j].forced {
			return out[i].forced
		}
		return out[i].ratio > out[j].ratio
	})
	return out
}

// CleanNow runs one cleaner pass now and returns the number of partitions
// compacted.
func (m *Manager) CleanNow(ctx context.Context) int {
	n := 0
	for _, c := range m.cleanerCandidates(time.Now()) {
		if ctx.Err() != nil {
			return n
		}
		if c.p.compact() {
			n++
		}
	}
	return n
}

// SetCleanerBackoff changes log.cleaner.backoff.ms (a dynamic broker
// config in Kafka too): the wait under way starts again with the new
// length.
func (m *Manager) SetCleanerBackoff(d time.Duration) {
	if d > 0 && m.cleanerBackoff.Swap(int64(d)) != int64(d) {
		select {
		case m.cleanerWake <- struct{}{}:
		default:
		}
	}
}

func (m *Manager) runCleaner(ctx context.Context) {
	for {
		backoff := m.cfg.CleanerBackoff
		if d := m.cleanerBackoff.Load(); d > 0 {
			backoff = time.Duration(d)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-m.cleanerWake:
			t.Stop()
		case <-t.C:
			m.CleanNow(ctx)
		}
	}
}

// compact runs one compaction pass over the partition's log.
func (p *Partition) compact() bool {
	cfg := p.Config()
	txns := p.cleanerTxnState()
	st, err := p.log.Compact(commitlog.CompactOptions{
		DeleteRetention:  msDuration(cfg.DeleteRetentionMs),
		MinCompactionLag: msDuration(cfg.MinCompactionLagMs),
		Txns:             &txns,
	})
	if len(st.AbortedDone) > 0 {
		p.dropAborted(st.AbortedDone)
	}
	switch {
	case errors.Is(err, commitlog.ErrClosed):
		return false
	case err != nil:
		p.logger.Warn("compaction failed", "topic", p.Topic, "partition", p.Index, "err", err)
		return false
	}
	p.logger.Info("compacted partition", "topic", p.Topic, "partition", p.Index, "segments", st.Segments,
		"bytes_read", st.BytesRead, "bytes_written", st.BytesWritten, "offset", st.CleanPoint,
		"aborted_records_removed", st.AbortedRecordsRemoved, "markers_removed", st.MarkersRemoved)
	return true
}

// dropAborted removes from the aborted-transaction index the transactions
// (by ABORT marker offset) that compaction found without any batch left, as
// Kafka leaves them out of a cleaned segment's transaction index. The file
// is rewritten first and memory changed only once it is durable: a later
// pass removes a marker only when its transaction is no longer listed in
// memory, so no index entry on disk can outlive its marker (a stale entry
// would make read_committed consumers drop that producer's later
// transactions).
func (p *Partition) dropAborted(markers []int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return
	}
	gone := make(map[int64]bool, len(markers))
	for _, m := range markers {
		gone[m] = true
	}
	p.txnMu.RLock()
	kept := make([]abortedEntry, 0, len(p.aborted))
	var b []byte
	for _, e := range p.aborted {
		if !gone[e.LastOffset] {
			kept = append(kept, e)
			b = e.encode(b)
		}
	}
	p.txnMu.RUnlock()
	if err := writeFileAtomic(p.fs, p.txnIndexPath(), b); err != nil {
		p.logger.Warn("aborted transaction index rewrite failed", "topic", p.Topic, "partition", p.Index, "err", err)
		return
	}
	p.txnMu.Lock()
	p.aborted = kept
	p.txnMu.Unlock()
}

// msDuration converts a millisecond config to a Duration, saturating.
func msDuration(ms int64) time.Duration {
	if ms <= 0 {
		return 0
	}
	if ms > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}
