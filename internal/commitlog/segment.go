package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gregor-dev/gregor/internal/record"
	"github.com/gregor-dev/gregor/internal/vfs"
)

const (
	logExt       = ".log"
	indexExt     = ".index"
	timeIndexExt = ".timeindex"
	indexEntry   = 8
	timeEntry    = 12
)

type offsetEntry struct {
	rel uint32 // batch base offset - segment base
	pos uint32 // byte position of the batch
}

type timeIndexEntry struct {
	ts  int64
	rel uint32
}

// segment is one .log file and its in-memory indexes.
//
// Readers use size, next, maxTs, the file (ReadAt) and the indexes under
// mu.RLock; everything else belongs to the appender (Log.mu).
type segment struct {
	base int64
	path string // .log path
	fs   vfs.FS
	f    vfs.File
	osf  *os.File // vfs.OSFile(f): reads call it directly (see readAt)

	size     atomic.Int64 // bytes readers may read
	next     atomic.Int64 // offset after the last batch (base when empty)
	maxTs    atomic.Int64 // largest batch max timestamp (-1 none)
	offMaxTs atomic.Int64 // last offset of the batch holding maxTs
	refs     atomic.Int32 // the log's reference + in-flight readers

	// Appender-only state (Log.mu).
	created time.Time // wall clock of the first append (segment.ms)
	// rollJitter is subtracted from segment.ms for this segment, drawn
	// once from [0, min(segment.jitter.ms, segment.ms)) (jitterDrawn).
	rollJitter      time.Duration
	jitterDrawn     bool
	bytesSinceIndex int

	// Preallocation (Config.Preallocate): a background fill writes zeros
	// ahead of the appends (see preallocate). fillMu guards alloc, fillFrom,
	// fillDone and noFill; the fill writes without it, and Log.mu is never
	// taken under it.
	fillMu sync.Mutex
	// alloc is how far the file may run past size: the bytes in
	// [size, alloc) are zeros (or holes), not data.
	alloc    int64
	fillFrom int64          // first byte the running fill writes
	fillDone chan struct{}  // non-nil while a fill runs; closed when it has written
	noFill   bool           // a fill failed (a full disk): appends grow the file
	fills    sync.WaitGroup // running fills, up to the end of their fsync

	mu   sync.RWMutex
	idx  []offsetEntry
	tidx []timeIndexEntry
}

func segmentPath(dir string, base int64, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, ext))
}

func parseSegmentName(name string) (int64, bool) {
	if len(name) != 20+len(logExt) || filepath.Ext(name) != logExt {
		return 0, false
	}
	base, err := strconv.ParseInt(name[:20], 10, 64)
	if err != nil || base < 0 {
		return 0, false
	}
	return base, true
}

// listSegments returns the base offsets of the .log files in dir, sorted.
func listSegments(fs vfs.FS, dir string) ([]int64, error) {
	ents, err := fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		if filepath.Ext(e.Name()) == ".tmp" {
			_ = fs.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		if base, ok := parseSegmentName(e.Name()); ok {
			bases = append(bases, base)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

func openSegment(fs vfs.FS, dir string, base int64, create bool) (*segment, error) {
	path := segmentPath(dir, base, logExt)
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_EXCL
	}
	f, err := fs.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &segment{base: base, path: path, fs: fs, f: f, osf: vfs.OSFile(f)}
	s.size.Store(fi.Size())
	s.alloc = fi.Size()
	s.next.Store(base)
	s.maxTs.Store(-1)
	s.offMaxTs.Store(-1)
	s.refs.Store(1)
	return s, nil
}

// readAt reads from the segment file at off. The read paths pass small
// buffers on their stack; a call through the vfs.File interface would move
// them to the heap (escape analysis cannot see through it), so the
// operating-system file is called directly and other files get a copy.
func (s *segment) readAt(b []byte, off int64) (int, error) {
	if s.osf != nil {
		return s.osf.ReadAt(b, off)
	}
	return readAtCopy(s.f, b, off)
}

// readAtCopy reads through a heap buffer so that b does not escape.
func readAtCopy(f vfs.File, b []byte, off int64) (int, error) {
	tmp := make([]byte, len(b))
	n, err := f.ReadAt(tmp, off)
	copy(b, tmp[:n])
	return n, err
}

// tryRef takes a reader reference; false if the segment is already released.
func (s *segment) tryRef() bool {
	for {
		r := s.refs.Load()
		if r <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// unref drops a reference, closing the file with the last one.
func (s *segment) unref() {
	if s.refs.Add(-1) == 0 {
		_ = s.f.Close()
	}
}

// remove unlinks the segment's files and drops the log's reference.
func (s *segment) remove() error {
	err := s.fs.Remove(s.path)
	for _, ext := range []string{indexExt, timeIndexExt} {
		if e := s.fs.Remove(s.indexPath(ext)); e != nil && !errors.Is(e, os.ErrNotExist) && err == nil {
			err = e
		}
	}
	s.unref()
	return err
}

func (s *segment) indexPath(ext string) string {
	return s.path[:len(s.path)-len(logExt)] + ext
}

// lookup returns the position of the last indexed batch whose base offset is
// <= off (0 when none).
func (s *segment) lookup(off int64) int64 {
	rel := off - s.base
	if rel <= 0 {
		return 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	// First entry with rel > target, minus one.
	i := sort.Search(len(s.idx), func(i int) bool { return int64(s.idx[i].rel) > rel })
	if i == 0 {
		return 0
	}
	return int64(s.idx[i-1].pos)
}

// timeLookup returns an offset from which a scan for the first batch with a
// timestamp >= ts may start: every batch before it has smaller timestamps.
func (s *segment) timeLookup(ts int64) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	// Last entry with timestamp < ts: all offsets up to it are below ts.
	i := sort.Search(len(s.tidx), func(i int) bool { return s.tidx[i].ts >= ts })
	if i == 0 {
		return s.base
	}
	return s.base + int64(s.tidx[i-1].rel)
}

// indexFull reports whether the offset or the time index holds as many
// entries as maxBytes allows (Kafka's isFull, segment.index.bytes).
func (s *segment) indexFull(maxBytes int) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.idx) >= maxBytes/indexEntry || len(s.tidx) >= maxBytes/timeEntry
}

// trackBatch updates the indexes for a batch appended at pos (appender only).
func (s *segment) trackBatch(h record.Header, pos int64, interval int) {
	last := h.LastOffset()
	if h.MaxTimestamp > s.maxTs.Load() {
		s.maxTs.Store(h.MaxTimestamp)
		s.offMaxTs.Store(last)
	}
	if s.bytesSinceIndex >= interval {
		s.mu.Lock()
		s.idx = append(s.idx, offsetEntry{rel: uint32(h.BaseOffset - s.base), pos: uint32(pos)})
		s.appendTimeEntryLocked()
		s.mu.Unlock()
		s.bytesSinceIndex = 0
	}
	s.bytesSinceIndex += h.Size()
}

// appendTimeEntryLocked adds the current max timestamp if it grew.
func (s *segment) appendTimeEntryLocked() {
	ts := s.maxTs.Load()
	if ts < 0 {
		return
	}
	if n := len(s.tidx); n > 0 && s.tidx[n-1].ts >= ts {
		return
	}
	s.tidx = append(s.tidx, timeIndexEntry{ts: ts, rel: uint32(s.offMaxTs.Load() - s.base)})
}

// walkBatches reads batches from start to end. In full mode every batch is
// read whole and checked with record.Validate; otherwise only headers are
// read. fn receives the position, header and (full mode) bytes, valid during
// the call. It returns the position where the walk stopped and, when it
// stopped early, why.
func (s *segment) walkBatches(start, end int64, full bool, maxBatch int, fn func(pos int64, h record.Header, b []byte) bool) (int64, error) {
	const window = 1 << 20
	var buf []byte
	var bufStart int64
	fill := func(pos int64, n int) ([]byte, error) {
		if pos >= bufStart && pos+int64(n) <= bufStart+int64(len(buf)) {
			return buf[pos-bufStart : pos-bufStart+int64(n)], nil
		}
		want := max(n, window)
		if rem := end - pos; int64(want) > rem {
			want = int(rem)
		}
		if want < n {
			return nil, io.ErrUnexpectedEOF
		}
		if cap(buf) < want {
			buf = make([]byte, want)
		}
		buf = buf[:want]
		m, err := s.readAt(buf, pos)
		buf, bufStart = buf[:m], pos
		if m < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return buf[:n], nil
	}
	pos := start
	for pos < end {
		hb, err := fill(pos, record.HeaderSize)
		if err != nil {
			return pos, fmt.Errorf("torn batch header: %w", err)
		}
		h, _ := record.ParseHeader(hb)
		size := int64(h.BatchLength) + record.LengthOverhead
		if h.BatchLength < record.HeaderSize-record.LengthOverhead || size > int64(maxBatch) || size > end-pos {
			return pos, fmt.Errorf("bad batch length %d at position %d", h.BatchLength, pos)
		}
		var b []byte
		if full {
			if b, err = fill(pos, int(size)); err != nil {
				return pos, fmt.Errorf("torn batch: %w", err)
			}
			if _, err := record.Validate(b); err != nil {
				return pos, err
			}
		}
		if !fn(pos, h, b) {
			return pos, nil
		}
		pos += size
	}
	return pos, nil
}

// rebuild scans the segment (validating when full) from position 0,
// rebuilding indexes, next offset and max timestamp. It returns the position
// of the end of the last good batch and the reason the scan stopped early.
func (s *segment) rebuild(full bool, interval, maxBatch int) (int64, error) {
	s.mu.Lock()
	s.idx, s.tidx = s.idx[:0], s.tidx[:0]
	s.mu.Unlock()
	s.bytesSinceIndex = 0
	s.maxTs.Store(-1)
	s.offMaxTs.Store(-1)
	next := s.base
	end, err := s.walkBatches(0, s.size.Load(), full, maxBatch, func(pos int64, h record.Header, _ []byte) bool {
		if h.BaseOffset < next || h.LastOffset() < h.BaseOffset || h.LastOffset()-s.base > 1<<32-2 {
			return false // offsets must increase within the segment
		}
		s.trackBatch(h, pos, interval)
		next = h.NextOffset()
		return true
	})
	if err == nil && end < s.size.Load() {
		err = fmt.Errorf("offsets go backwards at position %d", end)
	}
	s.next.Store(next)
	s.mu.Lock()
	s.appendTimeEntryLocked()
	s.mu.Unlock()
	return end, err
}

// loadIndexes reads the index files of a closed segment and checks them
// against the .log; false means they must be rebuilt.
func (s *segment) loadIndexes() bool {
	ib, err := s.fs.ReadFile(s.indexPath(indexExt))
	if err != nil || len(ib)%indexEntry != 0 {
		return false
	}
	tb, err := s.fs.ReadFile(s.indexPath(timeIndexExt))
	if err != nil || len(tb)%timeEntry != 0 {
		return false
	}
	size := s.size.Load()
	idx := make([]offsetEntry, 0, len(ib)/indexEntry)
	for i := 0; i < len(ib); i += indexEntry {
		e := offsetEntry{rel: binary.BigEndian.Uint32(ib[i:]), pos: binary.BigEndian.Uint32(ib[i+4:])}
		if int64(e.pos) >= size {
			return false
		}
		if n := len(idx); n > 0 && (e.rel <= idx[n-1].rel || e.pos <= idx[n-1].pos) {
			return false
		}
		idx = append(idx, e)
	}
	tidx := make([]timeIndexEntry, 0, len(tb)/timeEntry)
	for i := 0; i < len(tb); i += timeEntry {
		e := timeIndexEntry{ts: int64(binary.BigEndian.Uint64(tb[i:])), rel: binary.BigEndian.Uint32(tb[i+8:])}
		if n := len(tidx); n > 0 && (e.ts <= tidx[n-1].ts || e.rel < tidx[n-1].rel) {
			return false
		}
		tidx = append(tidx, e)
	}
	if size > 0 && len(tidx) == 0 {
		return false
	}
	// Find the next offset from the last index point; this also checks the
	// last entry points at a batch with the offset it claims.
	start := int64(0)
	if n := len(idx); n > 0 {
		start = int64(idx[n-1].pos)
	}
	next := s.base
	ok := true
	first := true
	end, err := s.walkBatches(start, size, false, DefaultMaxBatchBytes, func(_ int64, h record.Header, _ []byte) bool {
		if first && len(idx) > 0 && h.BaseOffset != s.base+int64(idx[len(idx)-1].rel) {
			ok = false
			return false
		}
		first = false
		next = h.NextOffset()
		return true
	})
	if !ok || err != nil || end != size {
		return false
	}
	s.mu.Lock()
	s.idx, s.tidx = idx, tidx
	s.mu.Unlock()
	s.next.Store(next)
	if n := len(tidx); n > 0 {
		s.maxTs.Store(tidx[n-1].ts)
		s.offMaxTs.Store(s.base + int64(tidx[n-1].rel))
	}
	return true
}

// writeIndexes persists both index files (tmp, fsync, rename).
func (s *segment) writeIndexes(d disk) error {
	s.mu.Lock()
	s.appendTimeEntryLocked()
	ib := make([]byte, 0, len(s.idx)*indexEntry)
	for _, e := range s.idx {
		ib = binary.BigEndian.AppendUint32(ib, e.rel)
		ib = binary.BigEndian.AppendUint32(ib, e.pos)
	}
	tb := make([]byte, 0, len(s.tidx)*timeEntry)
	for _, e := range s.tidx {
		tb = binary.BigEndian.AppendUint64(tb, uint64(e.ts))
		tb = binary.BigEndian.AppendUint32(tb, e.rel)
	}
	s.mu.Unlock()
	if err := d.writeFileAtomic(s.indexPath(indexExt), ib); err != nil {
		return err
	}
	return d.writeFileAtomic(s.indexPath(timeIndexExt), tb)
}

// truncate cuts the segment at pos (a batch boundary) and rebuilds its
// indexes, next offset and max timestamp (appender only).
func (s *segment) truncate(pos int64, interval, maxBatch int) error {
	s.awaitFill(math.MaxInt64)
	s.size.Store(pos)
	if err := s.f.Truncate(pos); err != nil {
		return err
	}
	s.fillMu.Lock()
	s.alloc = pos
	s.fillMu.Unlock()
	_, err := s.rebuild(false, interval, maxBatch)
	return err
}

// Preallocation writes real zeros ahead of the appends rather than
// fallocate'ing: fallocate leaves unwritten extents, and the first write
// into one converts it, which the next fdatasync must journal as it would a
// growing file. Overwriting zeros that are already on disk changes no
// metadata, so the fdatasync after such an append flushes data alone, about
// half the time of an append's on ext4 (docs/performance.md). The zeros
// cost a second write of every byte, off the acknowledgement's path.
const (
	// preallocChunk is what one background fill writes.
	preallocChunk = PreallocateStep / 2
	// preallocGap is left unfilled past the log end when a fill starts
	// from behind the appends, so that the next appends do not wait for it.
	preallocGap = 1 << 20
)

// zeros is what a fill writes, preallocChunk bytes in a few calls.
var zeros = make([]byte, 256<<10)

// awaitFill waits until no fill is writing at or below end, so that zeros
// never land on data: the appender calls it before every write, and before
// cutting the file (end = math.MaxInt64).
func (s *segment) awaitFill(end int64) {
	s.fillMu.Lock()
	for s.fillDone != nil && end > s.fillFrom {
		ch := s.fillDone
		s.fillMu.Unlock()
		<-ch
		s.fillMu.Lock()
	}
	s.fillMu.Unlock()
}

// preallocate starts a background fill when fewer than PreallocateStep bytes
// of zeros lie past end, the log end after an append (appender only). The
// fill writes [from, to), from preallocGap past end where the segment has
// room, to at most limit (segment.bytes); it publishes alloc and then calls
// l.syncFill, whose fsync puts the zeros' blocks and the file's new length
// on disk before the appends that overwrite them ask for an fdatasync.
func (s *segment) preallocate(end, limit int64, l *Log) {
	s.fillMu.Lock()
	defer s.fillMu.Unlock()
	if s.fillDone != nil || s.noFill || s.alloc >= end+PreallocateStep {
		return
	}
	from := max(s.alloc, end+preallocGap)
	if from >= limit {
		// Near the end of the segment: fill right after the log end (the
		// next append waits for the fill).
		from = max(s.alloc, end)
	}
	to := min(from+preallocChunk, limit)
	if from >= to || !s.tryRef() {
		return
	}
	done := make(chan struct{})
	s.fillFrom, s.fillDone = from, done
	s.fills.Go(func() {
		defer s.unref()
		var err error
		for off := from; off < to && err == nil; off += int64(len(zeros)) {
			_, err = s.f.WriteAt(zeros[:min(to-off, int64(len(zeros)))], off)
		}
		s.fillMu.Lock()
		// Even a failed fill may have lengthened the file: trim cuts it.
		s.alloc = max(s.alloc, to)
		s.noFill = s.noFill || err != nil
		s.fillDone = nil
		close(done)
		s.fillMu.Unlock()
		if err == nil {
			l.syncFill()
		}
	})
}

// trim cuts a preallocated zero tail off the file, so that a closed segment
// (or the active one at Close) is exactly its batches on disk (appender only).
func (s *segment) trim() error {
	// No fill runs after this wait until the appender starts one.
	s.awaitFill(math.MaxInt64)
	size := s.size.Load()
	s.fillMu.Lock()
	alloc := s.alloc
	s.fillMu.Unlock()
	if alloc <= size {
		return nil
	}
	if err := s.f.Truncate(size); err != nil {
		return err
	}
	s.fillMu.Lock()
	s.alloc = size
	s.fillMu.Unlock()
	return nil
}

// disk is the log's filesystem (Config.FS) with its fsync policy: every
// fsync is skipped under Config.UnsafeNoFsync.
type disk struct {
	fs     vfs.FS
	noSync bool
}

func (d disk) sync(f vfs.File) error {
	if d.noSync {
		return nil
	}
	return f.Sync()
}

// syncData flushes a segment's data (and the metadata needed to read it).
func (d disk) syncData(f vfs.File) error {
	if d.noSync {
		return nil
	}
	return f.SyncData()
}

func (d disk) syncDir(dir string) error {
	if d.noSync {
		return nil
	}
	return d.fs.SyncDir(dir)
}

// writeFileAtomic writes data to path through a fsynced temporary file, a
// rename and an fsync of the directory: without the last a crash can bring
// the old file back (an older leader-epoch checkpoint, whose lost entries
// would answer OffsetForLeaderEpoch wrongly, or an older log start).
func (d disk) writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := d.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = d.sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = d.fs.Remove(tmp)
		return err
	}
	if err := d.fs.Rename(tmp, path); err != nil {
		return err
	}
	return d.syncDir(filepath.Dir(path))
}

// retentionTime is the segment's max timestamp in milliseconds, or its file
// modification time when no batch carries a timestamp.
func (s *segment) retentionTime() int64 {
	if ts := s.maxTs.Load(); ts >= 0 {
		return ts
	}
	fi, err := s.f.Stat()
	if err != nil {
		return math.MaxInt64 // keep what we cannot date
	}
	return fi.ModTime().UnixMilli()
}
