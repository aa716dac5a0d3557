package commitlog

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gregor-dev/gregor/internal/record"
	"github.com/gregor-dev/gregor/internal/vfs"
)

// Temporary files of the cleaner (see the package doc, "Compaction").
const (
	cleanedExt     = ".cleaned"
	swapExt        = ".swap"
	cleanPointFile = "cleaner-offset-checkpoint"
)

// CompactOptions are the inputs of one compaction pass. The scheduling
// policy (dirty ratio, max.compaction.lag.ms) lives in package replica.
type CompactOptions struct {
	// Now is the clock for the lag and tombstone rules; zero means
	// Config.Now.
	Now time.Time
	// DeleteRetention is delete.retention.ms: a tombstone is dropped only
	// when the largest timestamp of the segment holding it is older than
	// Now - DeleteRetention.
	DeleteRetention time.Duration
	// MinCompactionLag is min.compaction.lag.ms: the pass stops at the first
	// closed segment whose largest timestamp is newer than Now -
	// MinCompactionLag.
	MinCompactionLag time.Duration
	// Txns is what the partition knows of the log's transactions (package
	// replica owns it); nil for a log that has none.
	Txns *TxnState
}

// TxnState is the transaction state of a log that a compaction pass must
// respect (Kafka's LogCleaner with CleanedTransactionMetadata).
type TxnState struct {
	// LastStableOffset bounds the pass: a segment is cleaned only when all
	// its offsets are below it, as Kafka never cleans past the first
	// unstable offset (an open transaction may still be aborted).
	LastStableOffset int64
	// Aborted lists the aborted transactions of the log (any order). Their
	// records never count as the latest of their key and are removed; an
	// ABORT marker is never removed while its transaction is listed here.
	Aborted []AbortedTxn
}

// AbortedTxn is one aborted transaction: the producer's records from
// FirstOffset up to its ABORT marker at MarkerOffset.
type AbortedTxn struct {
	ProducerID, FirstOffset, MarkerOffset int64
}

// CompactStats reports one compaction pass.
type CompactStats struct {
	Segments          int   // closed segments read
	Groups            int   // segments written (each replaces a group of old ones)
	BytesRead         int64 // size of the segments read
	BytesWritten      int64 // size of the segments written
	RecordsRead       int64
	RecordsRetained   int64
	TombstonesRemoved int64
	CleanPoint        int64 // the first dirty offset after the pass
	// AbortedRecordsRemoved counts records of aborted transactions removed.
	AbortedRecordsRemoved int64
	// MarkersRemoved counts transaction markers removed.
	MarkersRemoved int64
	// AbortedDone lists the ABORT marker offsets of listed aborted
	// transactions (TxnState.Aborted) that have no batch left in the log:
	// the partition drops them from its aborted-transaction index, after
	// which a later pass may remove the marker (Kafka leaves them out of the
	// cleaned segment's transaction index).
	AbortedDone []int64
}

// CleanerState describes how dirty the closed segments of a log are.
type CleanerState struct {
	// CleanPoint is the offset the last compaction pass reached: closed
	// segments starting at or after it are dirty.
	CleanPoint int64
	CleanBytes int64
	DirtyBytes int64
	// FirstDirtyTimestamp is the max timestamp of the first batch of the
	// first dirty segment (-1 when nothing is dirty).
	FirstDirtyTimestamp int64
}

// DirtyRatio is DirtyBytes over the bytes of the closed segments.
func (c CleanerState) DirtyRatio() float64 {
	if c.CleanBytes+c.DirtyBytes == 0 {
		return 0
	}
	return float64(c.DirtyBytes) / float64(c.CleanBytes+c.DirtyBytes)
}

// CleanerState returns the clean and dirty bytes of the closed segments.
func (l *Log) CleanerState() CleanerState { return l.CleanerStateBelow(math.MaxInt64) }

// CleanerStateBelow is CleanerState counting as dirty only the segments a
// pass bounded by uncleanable (TxnState.LastStableOffset) may clean, as
// Kafka's dirty ratio counts only cleanable bytes: a partition held back
// by an open transaction is not picked again and again for nothing.
func (l *Log) CleanerStateBelow(uncleanable int64) CleanerState {
	st := CleanerState{CleanPoint: l.cleanPoint.Load(), FirstDirtyTimestamp: -1}
	segs := l.segments()
	if len(segs) == 0 {
		return st
	}
	for i, s := range segs[:len(segs)-1] {
		if s.base < st.CleanPoint {
			st.CleanBytes += s.size.Load()
			continue
		}
		if segs[i+1].base > uncleanable {
			break
		}
		st.DirtyBytes += s.size.Load()
		if st.FirstDirtyTimestamp < 0 && s.size.Load() >= record.HeaderSize && s.tryRef() {
			hdr := make([]byte, record.HeaderSize)
			if n, _ := s.readAt(hdr, 0); n == record.HeaderSize {
				if h, err := record.ParseHeader(hdr); err == nil {
					st.FirstDirtyTimestamp = h.MaxTimestamp
				}
			}
			s.unref()
		}
	}
	return st
}

// Compact runs one compaction pass (Kafka's log cleaner) over the closed
// segments, never the active one, stopping at the first segment newer than
// MinCompactionLag or holding an offset at or past Txns.LastStableOffset.
// For every key it keeps only the record with the highest offset in that
// range outside aborted transactions; records without a key and records of
// aborted transactions are dropped; tombstones go as
// CompactOptions.DeleteRetention says, and transaction markers as the
// package doc says. Offsets never change: rewritten batches keep their base
// offset and lastOffsetDelta (record.Filter). A batch left empty is dropped
// unless it is its producer's last data batch in the range, or a marker
// after it (kept empty, so idempotent-producer state and epoch survive).
// Consecutive segments are merged into one while their sizes sum to at most
// SegmentBytes.
//
// Each group of segments is replaced atomically with the crash-safe
// .cleaned/.swap protocol of the package doc. Readers holding references
// on the old segments keep reading them. Appends are not blocked while the
// pass reads and writes; the swap itself takes the append lock. At most one
// pass runs at a time. A failure after the swap point makes the log's error
// sticky (Open completes the swap).
func (l *Log) Compact(opts CompactOptions) (CompactStats, error) {
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	if opts.Now.IsZero() {
		opts.Now = l.cfg.Now()
	}
	l.mu.Lock()
	closed, segBytes := l.closed, l.cfg.SegmentBytes
	interval := l.cfg.IndexIntervalBytes
	l.mu.Unlock()
	if closed {
		return CompactStats{}, ErrClosed
	}
	if err := l.Err(); err != nil {
		return CompactStats{}, err
	}
	st := CompactStats{CleanPoint: l.cleanPoint.Load()}

	segs := l.segments()
	n := 0
	lagCutoff := opts.Now.Add(-opts.MinCompactionLag).UnixMilli()
	for n < len(segs)-1 {
		if opts.MinCompactionLag > 0 && segs[n].maxTs.Load() > lagCutoff {
			break
		}
		if opts.Txns != nil && segs[n+1].base > opts.Txns.LastStableOffset {
			break // segs[n] holds an offset at or past the last stable offset
		}
		n++
	}
	if n == 0 {
		return st, nil
	}
	cleanable := segs[:n]
	for i, s := range cleanable {
		if !s.tryRef() {
			for _, r := range cleanable[:i] {
				r.unref()
			}
			return st, nil // raced with retention: try again next pass
		}
	}
	defer func() {
		for _, s := range cleanable {
			s.unref()
		}
	}()

	// Pass 1: the latest offset of every key outside aborted transactions,
	// and each producer's last data batch and last marker.
	latest := make(map[string]int64)
	last := make(map[int64]producerLast)
	tr := newTxnTracker(opts.Txns)
	for _, s := range cleanable {
		st.Segments++
		st.BytesRead += s.size.Load()
		var ferr error
		_, err := s.walkBatches(0, s.size.Load(), true, l.maxBatch, func(_ int64, h record.Header, b []byte) bool {
			if h.ProducerID >= 0 {
				pl, ok := last[h.ProducerID]
				if !ok {
					pl = producerLast{data: -1, marker: -1}
				}
				if h.IsControl() {
					pl.marker = h.BaseOffset
				} else {
					pl.data = h.BaseOffset
				}
				last[h.ProducerID] = pl
			}
			if h.IsControl() {
				tr.onMarker(h, b, l.maxUncompressed())
				return true
			}
			if tr.onData(h) {
				st.RecordsRead += int64(h.NumRecords)
				return true // an aborted transaction's records are never the latest
			}
			ferr = record.Records(b, h, l.maxUncompressed(), func(r record.Record) error {
				st.RecordsRead++
				if r.Key != nil {
					latest[string(r.Key)] = h.BaseOffset + int64(r.OffsetDelta)
				}
				return nil
			})
			return ferr == nil
		})
		if err == nil {
			err = ferr
		}
		if err != nil {
			return st, fmt.Errorf("commitlog: compact: read segment %d: %w", s.base, err)
		}
	}

	// Pass 2: rewrite group by group, following the transactions again from
	// the start (the tracker carries across groups).
	cl := cleaner{
		latest:     latest,
		last:       last,
		txns:       newTxnTracker(opts.Txns),
		tombCutoff: opts.Now.Add(-opts.DeleteRetention).UnixMilli(),
		now:        opts.Now.UnixMilli(),
		horizon:    addMs(opts.Now.UnixMilli(), opts.DeleteRetention),
		stats:      &st,
	}
	for i := 0; i < len(cleanable); {
		j := i + 1
		size := cleanable[i].size.Load()
		for j < len(cleanable) && size+cleanable[j].size.Load() <= segBytes &&
			cleanable[j].next.Load()-1-cleanable[i].base <= math.MaxInt32 {
			size += cleanable[j].size.Load()
			j++
		}
		// The group covers the offsets up to the next segment's base.
		written, err := l.cleanGroup(cleanable[i:j], segs[j].base, &cl, interval)
		if errors.Is(err, errCompactRaced) {
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			if closed {
				return st, ErrClosed
			}
			return st, nil // the next pass starts over
		}
		if err != nil {
			return st, err
		}
		if written >= 0 {
			st.Groups++
			st.BytesWritten += written
		}
		i = j
	}
	point := segs[n].base
	if err := l.disk.writeFileAtomic(filepath.Join(l.dir, cleanPointFile), []byte(strconv.FormatInt(point, 10)+"\n")); err != nil {
		return st, err
	}
	l.cleanPoint.Store(point)
	st.CleanPoint = point
	l.logger.Debug("compacted", "segments", st.Segments, "bytes_read", st.BytesRead, "bytes_written", st.BytesWritten, "offset", point)
	return st, nil
}

// cleanGroup writes the retained batches of group into one new segment and
// swaps it in. It returns the new segment's size, or -1 when the group was a
// single segment that needed no change (nothing written).
func (l *Log) cleanGroup(group []*segment, end int64, cl *cleaner, interval int) (int64, error) {
	base := group[0].base
	cleaned := cleanName(l.dir, base, end, cleanedExt)
	f, err := l.disk.fs.OpenFile(cleaned, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	abort := func(err error) (int64, error) {
		_ = f.Close()
		_ = l.disk.fs.Remove(cleaned)
		return 0, err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	var size int64
	changed := len(group) > 1
	for _, s := range group {
		expired := s.maxTs.Load() < cl.tombCutoff
		var ferr error
		_, err := s.walkBatches(0, s.size.Load(), true, l.maxBatch, func(_ int64, h record.Header, b []byte) bool {
			var out []byte
			var rewritten bool
			out, rewritten, ferr = cl.batch(h, b, expired, l.maxUncompressed())
			if ferr != nil {
				return false
			}
			changed = changed || rewritten
			if out == nil {
				return true // the batch goes
			}
			if _, ferr = w.Write(out); ferr != nil {
				return false
			}
			size += int64(len(out))
			return true
		})
		if err == nil {
			err = ferr
		}
		if err != nil {
			return abort(fmt.Errorf("commitlog: compact segment %d: %w", s.base, err))
		}
	}
	if !changed {
		_, _ = abort(nil)
		return -1, nil
	}
	if err := w.Flush(); err != nil {
		return abort(err)
	}
	if err := l.disk.sync(f); err != nil {
		return abort(err)
	}
	ns := &segment{base: base, path: segmentPath(l.dir, base, logExt), f: f}
	ns.size.Store(size)
	ns.next.Store(base)
	ns.maxTs.Store(-1)
	ns.offMaxTs.Store(-1)
	ns.refs.Store(1)
	if _, err := ns.rebuild(false, interval, l.maxBatch); err != nil {
		return abort(fmt.Errorf("commitlog: compact: cleaned segment %d: %w", base, err))
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.segments()
	at := -1
	for i, s := range cur {
		if s == group[0] {
			at = i
			break
		}
	}
	if l.closed || l.failed.Load() != nil || at < 0 || at+len(group) >= len(cur) {
		return abort(errCompactRaced)
	}
	for k, s := range group {
		if cur[at+k] != s {
			return abort(errCompactRaced)
		}
	}
	if err := l.cleanStep("cleaned"); err != nil {
		_ = f.Close()
		return 0, err
	}
	// The swap point: once the .swap name is durable, Open completes the swap.
	swap := cleanName(l.dir, base, end, swapExt)
	if err := l.disk.fs.Rename(cleaned, swap); err != nil {
		return abort(err)
	}
	if err := l.disk.syncDir(l.dir); err != nil {
		_ = f.Close()
		return 0, l.failLocked(err)
	}
	if err := l.cleanStep("swap"); err != nil {
		_ = f.Close()
		return 0, err
	}
	for k, s := range group {
		for _, ext := range []string{logExt, indexExt, timeIndexExt} {
			if err := l.disk.fs.Remove(segmentPath(l.dir, s.base, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
				_ = f.Close()
				return 0, l.failLocked(err)
			}
		}
		if k == 0 {
			if err := l.cleanStep("removed-first"); err != nil {
				_ = f.Close()
				return 0, err
			}
		}
	}
	if err := l.disk.fs.Rename(swap, ns.path); err != nil {
		_ = f.Close()
		return 0, l.failLocked(err)
	}
	if err := l.cleanStep("renamed"); err != nil {
		_ = f.Close()
		return 0, err
	}
	if err := ns.writeIndexes(l.disk); err != nil {
		_ = f.Close()
		return 0, l.failLocked(err)
	}
	if err := l.disk.syncDir(l.dir); err != nil {
		_ = f.Close()
		return 0, l.failLocked(err)
	}
	next := make([]*segment, 0, len(cur)-len(group)+1)
	next = append(append(append(next, cur[:at]...), ns), cur[at+len(group):]...)
	l.segs.Store(&next)
	for _, s := range group {
		s.unref() // the log's reference; the files are already unlinked
	}
	return size, nil
}

// errCompactRaced: retention, truncation or Close changed the segments
// while a group was being cleaned; the pass stops and the next one retries.
var errCompactRaced = errors.New("commitlog: compaction raced with a segment change")

// cleanStep calls the test hook at a step of the swap protocol; an error
// simulates a crash there (the caller returns at once, leaving the files).
func (l *Log) cleanStep(step string) error {
	if l.cleanHook == nil {
		return nil
	}
	return l.cleanHook(step)
}

func cleanName(dir string, base, end int64, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d-%020d%s", base, end, ext))
}

// parseCleanName parses "<base>-<end><ext>".
func parseCleanName(name, ext string) (base, end int64, ok bool) {
	stem, found := strings.CutSuffix(name, ext)
	if !found || len(stem) != 41 || stem[20] != '-' {
		return 0, 0, false
	}
	b, err1 := strconv.ParseInt(stem[:20], 10, 64)
	e, err2 := strconv.ParseInt(stem[21:], 10, 64)
	if err1 != nil || err2 != nil || b < 0 || e < b {
		return 0, 0, false
	}
	return b, e, true
}

// recoverCleaner finishes or rolls back a compaction interrupted by a crash
// (see the package doc): a .cleaned file never reached the swap point and is
// removed; a .swap file did, so the segments it replaces are removed and it
// becomes the segment.
func recoverCleaner(dir string, d disk, logger interface{ Warn(string, ...any) }) error {
	ents, err := d.fs.ReadDir(dir)
	if err != nil {
		return err
	}
	changed := false
	for _, e := range ents {
		name := e.Name()
		if _, _, ok := parseCleanName(name, cleanedExt); ok {
			logger.Warn("removing unfinished compaction output", "file", name)
			if err := d.fs.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
			changed = true
		}
	}
	for _, e := range ents {
		name := e.Name()
		base, end, ok := parseCleanName(name, swapExt)
		if !ok {
			continue
		}
		logger.Warn("completing interrupted compaction swap", "file", name)
		bases, err := listSegments(d.fs, dir)
		if err != nil {
			return err
		}
		for _, b := range bases {
			if b < base || b >= end {
				continue
			}
			for _, ext := range []string{logExt, indexExt, timeIndexExt} {
				if err := d.fs.Remove(segmentPath(dir, b, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
		}
		for _, ext := range []string{indexExt, timeIndexExt} {
			if err := d.fs.Remove(segmentPath(dir, base, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if err := d.fs.Rename(filepath.Join(dir, name), segmentPath(dir, base, logExt)); err != nil {
			return err
		}
		changed = true
	}
	if changed {
		return d.syncDir(dir)
	}
	return nil
}

func readCleanPoint(fs vfs.FS, dir string) int64 {
	b, err := fs.ReadFile(filepath.Join(dir, cleanPointFile))
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// producerLast is where a producer's last data batch and last marker start
// in the range being cleaned (-1: none).
type producerLast struct{ data, marker int64 }

// cleaner decides, batch by batch in offset order, what pass 2 of Compact
// keeps; it is Kafka's Cleaner.cleanInto filter.
type cleaner struct {
	latest     map[string]int64 // key -> offset of its latest record outside aborted transactions
	last       map[int64]producerLast
	txns       *txnTracker
	tombCutoff int64 // segments with a max timestamp below it lose their tombstones
	now        int64 // ms
	horizon    int64 // delete horizon given to a marker whose transaction is gone
	stats      *CompactStats
	buf        []byte
}

// keepEmpty reports whether the batch must stay, emptied if need be, to
// keep its producer's state replayable (Kafka's isBatchLastRecordOfProducer):
// a producer's last data batch carries its last sequence, and a marker after
// it its latest epoch.
func (c *cleaner) keepEmpty(h record.Header) bool {
	if h.ProducerID < 0 {
		return false
	}
	pl := c.last[h.ProducerID]
	if h.IsControl() {
		return pl.marker == h.BaseOffset && pl.marker > pl.data
	}
	return pl.data == h.BaseOffset
}

// empty returns the batch without records, or nil when it can go.
func (c *cleaner) empty(h record.Header, b []byte, maxUncompressed int) ([]byte, error) {
	if !c.keepEmpty(h) {
		return nil, nil
	}
	var err error
	c.buf, _, err = record.Filter(c.buf[:0], b, h, maxUncompressed, func(int64, record.Record) bool { return false })
	return c.buf, err
}

// batch returns what replaces the batch b in the cleaned segment (nil: it
// goes) and whether that differs from b. The returned slice is valid until
// the next call.
func (c *cleaner) batch(h record.Header, b []byte, expired bool, maxUncompressed int) ([]byte, bool, error) {
	if h.IsControl() {
		return c.marker(h, b, maxUncompressed)
	}
	if c.txns.onData(h) {
		// An aborted transaction's batch goes whole (Kafka: BatchRetention.DELETE).
		if h.NumRecords == 0 && c.keepEmpty(h) {
			return b, false, nil
		}
		c.stats.AbortedRecordsRemoved += int64(h.NumRecords)
		out, err := c.empty(h, b, maxUncompressed)
		return out, true, err
	}
	var kept int
	var err error
	c.buf, kept, err = record.Filter(c.buf[:0], b, h, maxUncompressed, func(off int64, r record.Record) bool {
		switch {
		case r.Key == nil:
			return false
		case c.latest[string(r.Key)] != off:
			return false
		case r.Value == nil && expired:
			c.stats.TombstonesRemoved++
			return false
		}
		c.stats.RecordsRetained++
		return true
	})
	if err != nil {
		return nil, false, err
	}
	if kept == 0 && !c.keepEmpty(h) {
		return nil, true, nil
	}
	return c.buf, kept != int(h.NumRecords), nil
}

// marker handles a control batch as Kafka's cleaner does (KIP-98,
// KIP-534): a transaction marker stays while any batch of its transaction
// is left before it; once none is, it is stamped with a delete horizon of
// now + delete.retention.ms, and the first pass after the horizon removes it
// (an ABORT marker only once its transaction has left the partition's
// aborted-transaction index, so that no index entry outlives its marker).
func (c *cleaner) marker(h record.Header, b []byte, maxUncompressed int) ([]byte, bool, error) {
	done, listed := c.txns.onMarker(h, b, maxUncompressed)
	if listed && done {
		c.stats.AbortedDone = append(c.stats.AbortedDone, h.BaseOffset)
	}
	if h.NumRecords == 0 {
		// Emptied by an earlier pass: it stays only for its producer's state.
		if c.keepEmpty(h) {
			return b, false, nil
		}
		return nil, true, nil
	}
	if !done {
		return b, false, nil
	}
	horizon, ok := h.DeleteHorizon()
	switch {
	case !ok:
		var err error
		c.buf, err = record.SetDeleteHorizon(c.buf[:0], b, h, c.horizon, maxUncompressed)
		return c.buf, true, err
	case horizon <= c.now && !listed:
		c.stats.MarkersRemoved++
		out, err := c.empty(h, b, maxUncompressed)
		return out, true, err
	}
	return b, false, nil
}

// addMs returns ms + d in milliseconds, saturating.
func addMs(ms int64, d time.Duration) int64 {
	dm := d.Milliseconds()
	if dm > math.MaxInt64-ms {
		return math.MaxInt64
	}
	return ms + dm
}

// txnTracker follows transactions through a walk of the log in offset
// order; it is Kafka's CleanedTransactionMetadata. Aborted transactions are
// taken from TxnState.Aborted as the walk reaches their first offset; a
// transactional data batch of a producer with an aborted transaction under
// way belongs to it, any other transactional batch to a transaction that
// committed (the pass never reaches an open one: it stops at the last
// stable offset).
type txnTracker struct {
	aborted   []AbortedTxn // by first offset; aborted[next:] not reached yet
	next      int
	listed    map[int64]bool           // ABORT marker offsets of aborted
	abortedOn map[int64]*abortedInWalk // producer id -> its aborted transaction under way
	committed map[int64]bool           // producers with a committed transaction's batch since their last marker
}

type abortedInWalk struct {
	txn  AbortedTxn
	seen bool // a batch of it was walked
}

func newTxnTracker(txns *TxnState) *txnTracker {
	t := &txnTracker{listed: map[int64]bool{}, abortedOn: map[int64]*abortedInWalk{}, committed: map[int64]bool{}}
	if txns != nil {
		t.aborted = slices.Clone(txns.Aborted)
		slices.SortFunc(t.aborted, func(a, b AbortedTxn) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
		for _, a := range t.aborted {
			t.listed[a.MarkerOffset] = true
		}
	}
	return t
}

func (t *txnTracker) reach(offset int64) {
	for t.next < len(t.aborted) && t.aborted[t.next].FirstOffset <= offset {
		a := t.aborted[t.next]
		t.next++
		if t.abortedOn[a.ProducerID] == nil {
			t.abortedOn[a.ProducerID] = &abortedInWalk{txn: a}
		}
	}
}

// onData notes a data batch and reports whether it belongs to an aborted
// transaction.
func (t *txnTracker) onData(h record.Header) bool {
	t.reach(h.LastOffset())
	if !h.IsTransactional() || h.ProducerID < 0 {
		return false
	}
	if a := t.abortedOn[h.ProducerID]; a != nil {
		a.seen = true
		return true
	}
	t.committed[h.ProducerID] = true
	return false
}

// onMarker notes a control batch. done reports that it is an end
// transaction marker with no batch of its transaction walked before it
// (or an emptied control batch); listed that it is the marker of a listed
// aborted transaction.
func (t *txnTracker) onMarker(h record.Header, b []byte, maxUncompressed int) (done, listed bool) {
	t.reach(h.LastOffset())
	if h.NumRecords == 0 {
		return true, t.listed[h.BaseOffset]
	}
	typ := int16(-1)
	_ = record.Records(b, h, maxUncompressed, func(r record.Record) error {
		if typ < 0 && len(r.Key) >= 4 {
			typ = int16(binary.BigEndian.Uint16(r.Key[2:]))
		}
		return nil
	})
	switch typ {
	case controlAbort:
		a := t.abortedOn[h.ProducerID]
		delete(t.abortedOn, h.ProducerID)
		return a == nil || !a.seen, t.listed[h.BaseOffset]
	case controlCommit:
		seen := t.committed[h.ProducerID]
		delete(t.committed, h.ProducerID)
		return !seen, false
	}
	return false, false // another control record type: kept
}

// Control record types of an end-transaction marker (the key's second int16).
const (
	controlAbort  int16 = 0
	controlCommit int16 = 1
)
