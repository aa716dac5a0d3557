package replica

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gregor-dev/gregor/internal/record"
)

// Producer-state snapshots are files named <offset>.snapshot in the partition
// directory, like Kafka's: the state of every producer after all records below
// offset. Recovery loads the newest snapshot at or below the log end and
// replays the batches after it. Only the newest two are kept.
const snapshotSuffix = ".snapshot"

func (p *Partition) snapshots() []int64 {
	ents, _ := p.fs.ReadDir(p.dir)
	var offs []int64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, snapshotSuffix) {
			continue
		}
		off, err := strconv.ParseInt(strings.TrimSuffix(name, snapshotSuffix), 10, 64)
		if err == nil {
			offs = append(offs, off)
		}
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	return offs
}

func (p *Partition) snapshotPath(off int64) string {
	return filepath.Join(p.dir, fmt.Sprintf("%020d%s", off, snapshotSuffix))
}

func (p *Partition) writeSnapshotLocked() {
	leo := p.log.LogEndOffset()
	if err := writeFileAtomic(p.fs, p.snapshotPath(leo), p.mu.producers.encode(leo)); err != nil {
		p.logger.Warn("producer snapshot failed", "topic", p.Topic, "partition", p.Index, "err", err)
		return
	}
	offs := p.snapshots()
	for i := 0; i+2 < len(offs); i++ {
		p.fs.Remove(p.snapshotPath(offs[i]))
	}
}

// loadProducerState rebuilds idempotence state: the newest usable snapshot,
// then a replay of the log after it. A snapshot beyond the log end (the log
// was truncated by recovery) is ignored.
func (p *Partition) loadProducerState() error {
	leo := p.log.LogEndOffset()
	from := p.log.LogStartOffset()
	offs := p.snapshots()
	for i := len(offs) - 1; i >= 0; i-- {
		if offs[i] > leo {
			p.fs.Remove(p.snapshotPath(offs[i]))
			continue
		}
		b, err := p.fs.ReadFile(p.snapshotPath(offs[i]))
		if err != nil {
			continue
		}
		ps, off, err := decodeProducerSnapshot(b)
		if err != nil {
			p.logger.Warn("ignoring corrupt producer snapshot", "topic", p.Topic, "partition", p.Index, "offset", offs[i])
			continue
		}
		p.mu.producers = ps
		from = max(off, from)
		break
	}
	replayedAborts := false
	err := p.log.ScanBatches(from, func(b []byte) error {
		h, err := record.ParseHeader(b)
		if err != nil {
			return err
		}
		if p.replayBatchLocked(b, h) {
			replayedAborts = true
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replica: replay producer state of %s-%d: %w", p.Topic, p.Index, err)
	}
	if replayedAborts {
		if err := p.rewriteTxnIndexLocked(); err != nil {
			return err
		}
	}
	return nil
}

// replayBatchLocked applies one batch already in the log to the producer
// state (recovery, and a follower's replicated appends): sequences,
// transactions opened by transactional batches and ended by markers. It
// reports whether an ABORT marker added an aborted transaction to the
// in-memory index.
func (p *Partition) replayBatchLocked(b []byte, h record.Header) bool {
	if h.ProducerID < 0 {
		return false
	}
	if h.IsControl() {
		// An end-transaction marker closes the producer's transaction;
		// an ABORT the index lacks (crash before its entry) is added.
		commit, coordEpoch, ok := markerInfo(b, h)
		if !ok {
			return false
		}
		if first := p.mu.producers.endTxn(h.ProducerID, h.ProducerEpoch, coordEpoch); first >= 0 && !commit {
			return p.addAborted(abortedEntry{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.BaseOffset})
		}
		return false
	}
	p.mu.producers.record(h.ProducerID, h.ProducerEpoch, batchMeta{
		FirstSeq: h.BaseSequence, LastSeq: lastSequence(h.BaseSequence, h.LastOffsetDelta),
		FirstOffset: h.BaseOffset, LastOffset: h.BaseOffset + int64(h.LastOffsetDelta), Timestamp: h.MaxTimestamp,
	})
	if h.IsTransactional() {
		p.mu.producers.beginTxn(h.ProducerID, h.BaseOffset)
	}
	return false
}
