package commitlog

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
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
func (l *Log) CleanerState() CleanerState {
	st := CleanerState{CleanPoint: l.cleanPoint.Load(), FirstDirtyTimestamp: -1}
	segs := l.segments()
	if len(segs) == 0 {
		return st
	}
	for _, s := range segs[:len(segs)-1] {
		if s.base < st.CleanPoint {
			st.CleanBytes += s.size.Load()
			continue
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
// MinCompactionLag. For every key it keeps only the record with the highest
// offset in that range; records without a key are dropped; tombstones go as
// CompactOptions.DeleteRetention says. Offsets never change: rewritten
// batches keep their base offset and lastOffsetDelta (record.Filter). A
// batch left empty is dropped unless it is the last batch of its producer id
// in the range (kept empty, so idempotent-producer state survives); control
// batches are kept. Consecutive segments are merged into one while their
// sizes sum to at most SegmentBytes.
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

	// Pass 1: the latest offset of every key, and each producer's last batch.
	latest := make(map[string]int64)
	lastOfProducer := make(map[int64]int64)
	for _, s := range cleanable {
		st.Segments++
		st.BytesRead += s.size.Load()
		var ferr error
		_, err := s.walkBatches(0, s.size.Load(), true, l.maxBatch, func(_ int64, h record.Header, b []byte) bool {
			if h.ProducerID >= 0 {
				lastOfProducer[h.ProducerID] = h.BaseOffset
			}
			if h.IsControl() {
				return true
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

	// Pass 2: rewrite group by group.
	tombCutoff := opts.Now.Add(-opts.DeleteRetention).UnixMilli()
	for i := 0; i < len(cleanable); {
		j := i + 1
		size := cleanable[i].size.Load()
		for j < len(cleanable) && size+cleanable[j].size.Load() <= segBytes &&
			cleanable[j].next.Load()-1-cleanable[i].base <= math.MaxInt32 {
			size += cleanable[j].size.Load()
			j++
		}
		// The group covers the offsets up to the next segment's base.
		written, err := l.cleanGroup(cleanable[i:j], segs[j].base, latest, lastOfProducer, tombCutoff, interval, &st)
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
func (l *Log) cleanGroup(group []*segment, end int64, latest map[string]int64, lastOfProducer map[int64]int64, tombCutoff int64, interval int, st *CompactStats) (int64, error) {
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
	var buf []byte
	for _, s := range group {
		expired := s.maxTs.Load() < tombCutoff
		var ferr error
		_, err := s.walkBatches(0, s.size.Load(), true, l.maxBatch, func(_ int64, h record.Header, b []byte) bool {
			out := b
			if !h.IsControl() {
				var kept int
				buf, kept, ferr = record.Filter(buf[:0], b, h, l.maxUncompressed(), func(off int64, r record.Record) bool {
					switch {
					case r.Key == nil:
						return false
					case latest[string(r.Key)] != off:
						return false
					case r.Value == nil && expired:
						st.TombstonesRemoved++
						return false
					}
					st.RecordsRetained++
					return true
				})
				if ferr != nil {
					return false
				}
				out = buf
				if kept != int(h.NumRecords) {
					changed = true
				}
				if kept == 0 && (h.ProducerID < 0 || lastOfProducer[h.ProducerID] != h.BaseOffset) {
					changed = true
					return true // drop the empty batch
				}
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
