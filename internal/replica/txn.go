package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/gregor-dev/gregor/internal/commitlog"
	"github.com/gregor-dev/gregor/internal/record"
)

// The partition side of transactions (KIP-98).
//
// A transactional batch opens (or continues) its producer's transaction on
// the partition: the producer's CurrentTxnFirstOffset is the first offset of
// that transaction, and the smallest of them over all producers pins the
// last stable offset (LSO). An end-transaction marker (a control batch
// written by AppendTxnMarker for the transaction coordinator) closes it. An
// aborted transaction is remembered as {producer id, first offset, marker
// offset} in the aborted-transaction index, in memory and in the
// append-only file aborted.txnindex, so that read_committed fetches can tell
// consumers which records to drop.

// AbortedTxn is one aborted transaction overlapping a fetched range.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
}

// abortedEntry is one aborted transaction: LastOffset is its ABORT marker.
type abortedEntry struct {
	ProducerID, FirstOffset, LastOffset int64
}

// Control record types of an end-transaction marker (the key's second int16).
const (
	markerAbort  int16 = 0
	markerCommit int16 = 1
)

// txnIndexFile is the aborted-transaction index of a partition. Format: a
// sequence of entries, each pid int64 | firstOffset int64 | lastOffset int64
// | crc32c uint32 over the 24 bytes before, big endian, in marker order. A
// file that is missing, has a partial entry or a bad CRC is rebuilt from the
// log by scanning its control batches.
const (
	txnIndexFile     = "aborted.txnindex"
	txnIndexEntryLen = 28
)

var errBadTxnIndex = errors.New("replica: corrupt aborted transaction index")

func (e abortedEntry) encode(dst []byte) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.ProducerID))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.FirstOffset))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.LastOffset))
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func decodeTxnIndex(b []byte) ([]abortedEntry, error) {
	if len(b)%txnIndexEntryLen != 0 {
		return nil, errBadTxnIndex
	}
	out := make([]abortedEntry, 0, len(b)/txnIndexEntryLen)
	for ; len(b) > 0; b = b[txnIndexEntryLen:] {
		if crc32.Checksum(b[:24], castagnoli) != binary.BigEndian.Uint32(b[24:]) {
			return nil, errBadTxnIndex
		}
		e := abortedEntry{
			ProducerID:  int64(binary.BigEndian.Uint64(b)),
			FirstOffset: int64(binary.BigEndian.Uint64(b[8:])),
			LastOffset:  int64(binary.BigEndian.Uint64(b[16:])),
		}
		if e.FirstOffset < 0 || e.LastOffset < e.FirstOffset ||
			(len(out) > 0 && e.LastOffset <= out[len(out)-1].LastOffset) {
			return nil, errBadTxnIndex
		}
		out = append(out, e)
	}
	return out, nil
}

func (p *Partition) txnIndexPath() string { return filepath.Join(p.dir, txnIndexFile) }

// markerBatch builds an end-transaction marker control batch.
func markerBatch(pid int64, epoch int16, commit bool, coordinatorEpoch int32, now int64) ([]byte, record.Header, error) {
	typ := markerAbort
	if commit {
		typ = markerCommit
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), uint16(typ))
	val := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), uint32(coordinatorEpoch))
	b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: now, ProducerID: pid, ProducerEpoch: epoch,
		BaseSequence: -1, Transactional: true, Control: true, Records: []record.Record{{Key: key, Value: val}}})
	if err != nil {
		return nil, record.Header{}, err
	}
	h, err := record.ParseHeader(b)
	return b, h, err
}

// markerType reads the type of a control batch's marker; ok is false for a
// control record that is not an end-transaction marker.
func markerType(b []byte, h record.Header) (commit, ok bool) {
	commit, _, ok = markerInfo(b, h)
	return commit, ok
}

// markerInfo reads a control batch's end-transaction marker: its type and
// the coordinator epoch in its value (version int16 | coordinator epoch
// int32; -1 when the value is too short to hold one).
func markerInfo(b []byte, h record.Header) (commit bool, coordinatorEpoch int32, ok bool) {
	coordinatorEpoch = -1
	_ = record.Records(b, h, 1<<20, func(r record.Record) error {
		if len(r.Key) >= 4 && !ok {
			switch int16(binary.BigEndian.Uint16(r.Key[2:])) {
			case markerCommit:
				commit, ok = true, true
			case markerAbort:
				ok = true
			}
			if ok && len(r.Value) >= 6 {
				coordinatorEpoch = int32(binary.BigEndian.Uint32(r.Value[2:]))
			}
		}
		return nil
	})
	return commit, coordinatorEpoch, ok
}

// endedTxn is a transaction ended by the marker at MarkerOffset; FirstOffset
// pins the last stable offset until the high watermark passes the marker.
type endedTxn struct {
	FirstOffset, MarkerOffset int64
}

// AppendTxnMarker appends an end-transaction marker (COMMIT when commit,
// else ABORT) for the producer, ends its ongoing transaction on this
// partition and moves the last stable offset. It returns the marker's offset
// once the marker (and, for an abort, its index entry) is durable on this
// node; WaitReplicated(offset+1) waits for the ISR, as the acks=all append
// of Kafka's WriteTxnMarkers. An epoch older than the producer's current
// one fails with ErrInvalidProducerEpoch; a coordinator epoch older than
// the one of the producer's last marker here (a deposed transaction
// coordinator, Kafka keeps it in the producer state) fails with
// ErrCoordinatorFenced; an ISR below min.insync.replicas, with
// ErrNotEnoughReplicas. A marker for a producer with no ongoing transaction
// is still written.
//
// The order follows Kafka's append of a completed transaction (txn index
// append, completeTxn, then the LSO moves only once the high watermark
// passes the marker):
//
//  1. under the append lock, the marker is written, the transaction ended
//     in the producer state but kept as an endedTxn that still pins the
//     LSO, and an ABORT is added to the in-memory index (so no fetch can
//     see the LSO past the aborted records without the abort listed) and
//     appended to aborted.txnindex and fsynced (so no producer snapshot
//     taken past the marker can lose the entry in a crash);
//  2. without the lock, the marker is fsynced (group commit);
//  3. under the lock again, the high watermark moves past the marker, which
//     resolves the endedTxn and moves the LSO.
//
// A failed write or fsync of the marker makes the log's failure sticky and
// leaves the high watermark and the LSO where they were: the transaction's
// records stay invisible to read_committed fetches.
func (p *Partition) AppendTxnMarker(producerID int64, producerEpoch int16, commit bool, coordinatorEpoch int32) (int64, error) {
	batch, _, err := markerBatch(producerID, producerEpoch, commit, coordinatorEpoch, time.Now().UnixMilli())
	if err != nil {
		return -1, err
	}
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return -1, ErrClosed
	}
	if err := p.log.Err(); err != nil {
		p.mu.Unlock()
		return -1, err
	}
	if p.follower.Load() {
		p.mu.Unlock()
		return -1, ErrNotLeader
	}
	e := p.mu.producers[producerID]
	if e != nil && producerEpoch < e.Epoch && e.Epoch != noEpoch {
		p.mu.Unlock()
		return -1, ErrInvalidProducerEpoch
	}
	if e != nil && coordinatorEpoch < e.CoordinatorEpoch {
		p.mu.Unlock()
		return -1, ErrCoordinatorFenced
	}
	if int64(p.isrSize.Load()) < p.cfg.Load().MinInsyncReplicas {
		p.mu.Unlock()
		return -1, ErrNotEnoughReplicas
	}
	info, err := p.log.Append(batch, p.leaderEpoch.Load(), 0)
	if err != nil {
		p.mu.Unlock()
		return -1, err
	}
	first := p.mu.producers.endTxn(producerID, producerEpoch, coordinatorEpoch)
	p.clearVerificationLocked(producerID) // a verification from before the marker is stale
	if first >= 0 {
		p.mu.ended = append(p.mu.ended, endedTxn{FirstOffset: first, MarkerOffset: info.BaseOffset})
		if !commit {
			ent := abortedEntry{ProducerID: producerID, FirstOffset: first, LastOffset: info.BaseOffset}
			p.addAborted(ent)
			if err := p.appendTxnIndexLocked(ent); err != nil {
				p.logger.Error("aborted transaction index write failed; it is rebuilt at the next start",
					"topic", p.Topic, "partition", p.Index, "err", err)
				p.fs.Remove(p.txnIndexPath())
			}
		}
	}
	// The ended transaction keeps the LSO where it was: its first offset
	// was the earliest open one or a later one.
	p.updateFirstUnstableLocked()
	p.maybeSnapshotLocked()
	if err := p.syncThenPublishLocked(info.LastOffset + 1); err != nil {
		return -1, err
	}
	return info.BaseOffset, nil
}

// appendTxnIndexLocked appends one entry to the index file and fsyncs it.
func (p *Partition) appendTxnIndexLocked(e abortedEntry) error {
	f, err := p.fs.OpenFile(p.txnIndexPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(e.encode(nil)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// addAborted inserts e into the in-memory index unless an entry with its
// marker offset is there; it reports whether it was added.
func (p *Partition) addAborted(e abortedEntry) bool {
	p.txnMu.Lock()
	defer p.txnMu.Unlock()
	i := sort.Search(len(p.aborted), func(i int) bool { return p.aborted[i].LastOffset >= e.LastOffset })
	if i < len(p.aborted) && p.aborted[i].LastOffset == e.LastOffset {
		return false
	}
	p.aborted = append(p.aborted, abortedEntry{})
	copy(p.aborted[i+1:], p.aborted[i:])
	p.aborted[i] = e
	return true
}

// LastStableOffset is the first offset of the earliest transaction still
// open on the partition, or the high watermark when none is (or when that
// offset is past it).
func (p *Partition) LastStableOffset() int64 {
	hw := p.highWatermark.Load()
	if fu := p.firstUnstable.Load(); fu >= 0 && fu < hw {
		return fu
	}
	return hw
}

// AbortedTransactions lists the aborted transactions overlapping [from, to):
// those whose marker is at or after from and whose first offset is before
// to, oldest marker first (read_committed fetches).
func (p *Partition) AbortedTransactions(from, to int64) []AbortedTxn {
	p.txnMu.RLock()
	defer p.txnMu.RUnlock()
	var out []AbortedTxn
	i := sort.Search(len(p.aborted), func(i int) bool { return p.aborted[i].LastOffset >= from })
	for ; i < len(p.aborted); i++ {
		if e := p.aborted[i]; e.FirstOffset < to {
			out = append(out, AbortedTxn{ProducerID: e.ProducerID, FirstOffset: e.FirstOffset})
		}
	}
	return out
}

// cleanerTxnState is what a compaction pass must know of the partition's
// transactions: the last stable offset and the aborted transactions, read
// together under the append lock so that no transaction can end between the
// two reads (its records would then lie below the bound yet not be listed
// as aborted).
func (p *Partition) cleanerTxnState() commitlog.TxnState {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := commitlog.TxnState{LastStableOffset: p.LastStableOffset()}
	p.txnMu.RLock()
	defer p.txnMu.RUnlock()
	st.Aborted = make([]commitlog.AbortedTxn, len(p.aborted))
	for i, e := range p.aborted {
		st.Aborted[i] = commitlog.AbortedTxn{ProducerID: e.ProducerID, FirstOffset: e.FirstOffset, MarkerOffset: e.LastOffset}
	}
	return st
}

// updateFirstUnstableLocked recomputes the first offset of the earliest
// transaction not yet decided below the high watermark (-1: none): the open
// ones in the producer state and the ended ones whose marker the high
// watermark has not passed.
func (p *Partition) updateFirstUnstableLocked() {
	fu := int64(-1)
	for _, e := range p.mu.producers {
		if o := e.CurrentTxnFirstOffset; o >= 0 && (fu < 0 || o < fu) {
			fu = o
		}
	}
	for _, t := range p.mu.ended {
		if fu < 0 || t.FirstOffset < fu {
			fu = t.FirstOffset
		}
	}
	p.firstUnstable.Store(fu)
}

// beginTxn notes a transactional batch at offset: it opens the producer's
// transaction unless one is open already.
func (ps producerStates) beginTxn(pid int64, offset int64) {
	if e := ps[pid]; e != nil && e.CurrentTxnFirstOffset < 0 {
		e.CurrentTxnFirstOffset = offset
	}
}

// endTxn applies an end-transaction marker: the producer's transaction (if
// any) ends, a newer epoch becomes current and the marker's coordinator
// epoch is remembered (never moving back: a replicated or replayed marker
// of an older coordinator is kept, as Kafka only warns about it). It returns
// the first offset of the ended transaction, -1 when none was open.
func (ps producerStates) endTxn(pid int64, epoch int16, coordinatorEpoch int32) int64 {
	e := ps[pid]
	if e == nil {
		ps[pid] = &producerEntry{Epoch: epoch, CurrentTxnFirstOffset: -1, CoordinatorEpoch: coordinatorEpoch}
		return -1
	}
	e.CoordinatorEpoch = max(e.CoordinatorEpoch, coordinatorEpoch)
	first := e.CurrentTxnFirstOffset
	e.CurrentTxnFirstOffset = -1
	if epoch > e.Epoch {
		e.Epoch = epoch
		e.Batches = e.Batches[:0]
	}
	return first
}

// loadTxnIndex loads the aborted-transaction index, rebuilding it from the
// log when it is missing or corrupt. Entries at or past the log end (their
// marker was lost by recovery) or below the log start are dropped.
func (p *Partition) loadTxnIndex() error {
	b, err := p.fs.ReadFile(p.txnIndexPath())
	var ents []abortedEntry
	if err == nil {
		ents, err = decodeTxnIndex(b)
	}
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			p.logger.Warn("rebuilding aborted transaction index", "topic", p.Topic, "partition", p.Index, "err", err)
		}
		if ents, err = p.scanAborted(); err != nil {
			return err
		}
	}
	leo, start := p.log.LogEndOffset(), p.log.LogStartOffset()
	kept := ents[:0]
	for _, e := range ents {
		if e.LastOffset < leo && e.LastOffset >= start {
			kept = append(kept, e)
		}
	}
	p.aborted = kept
	return p.rewriteTxnIndexLocked()
}

// scanAborted rebuilds the aborted transactions from the log: transactional
// batches open a transaction, ABORT markers list it.
func (p *Partition) scanAborted() ([]abortedEntry, error) {
	open := make(map[int64]int64)
	var out []abortedEntry
	err := p.log.ScanBatches(p.log.LogStartOffset(), func(b []byte) error {
		h, err := record.ParseHeader(b)
		if err != nil {
			return err
		}
		if h.ProducerID < 0 || !h.IsTransactional() {
			return nil
		}
		if !h.IsControl() {
			if _, ok := open[h.ProducerID]; !ok {
				open[h.ProducerID] = h.BaseOffset
			}
			return nil
		}
		commit, ok := markerType(b, h)
		if !ok {
			return nil
		}
		if first, ok := open[h.ProducerID]; ok {
			delete(open, h.ProducerID)
			if !commit {
				out = append(out, abortedEntry{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.BaseOffset})
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("replica: rebuild aborted transactions of %s-%d: %w", p.Topic, p.Index, err)
	}
	return out, nil
}

// rewriteTxnIndexLocked replaces the index file with the in-memory entries.
func (p *Partition) rewriteTxnIndexLocked() error {
	p.txnMu.RLock()
	var b []byte
	for _, e := range p.aborted {
		b = e.encode(b)
	}
	p.txnMu.RUnlock()
	return writeFileAtomic(p.fs, p.txnIndexPath(), b)
}

// trimAborted drops the aborted transactions whose marker is below the log
// start offset (retention, DeleteRecords), in memory and on disk.
func (p *Partition) trimAborted() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return
	}
	start := p.log.LogStartOffset()
	p.txnMu.Lock()
	i := sort.Search(len(p.aborted), func(i int) bool { return p.aborted[i].LastOffset >= start })
	if i > 0 {
		p.aborted = append([]abortedEntry(nil), p.aborted[i:]...)
	}
	p.txnMu.Unlock()
	if i > 0 {
		if err := p.rewriteTxnIndexLocked(); err != nil {
			p.logger.Warn("aborted transaction index rewrite failed", "topic", p.Topic, "partition", p.Index, "err", err)
		}
	}
}
