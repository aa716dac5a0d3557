package commitlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gregor-dev/gregor/internal/record"
	"github.com/gregor-dev/gregor/internal/vfs"
)

// Sentinel errors.
var (
	// ErrOffsetOutOfRange: the offset is below the log start offset or
	// above the log end offset.
	ErrOffsetOutOfRange = errors.New("commitlog: offset out of range")
	// ErrLogFailed: a write or fsync failed earlier; the log refuses
	// appends until it is reopened. It wraps the cause.
	ErrLogFailed = errors.New("commitlog: log failed")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("commitlog: log closed")
	// ErrInvalidBatch: Append was given bytes that are not one batch.
	ErrInvalidBatch = errors.New("commitlog: invalid batch")
	// ErrOffsetMismatch: a replicated batch does not start at the log end.
	ErrOffsetMismatch = errors.New("commitlog: replicated batch does not start at the log end")
)

// failure wraps the cause of a sticky failure so errors.Is matches both
// ErrLogFailed and the cause.
type failure struct{ cause error }

func (f *failure) Error() string   { return "commitlog: log failed: " + f.cause.Error() }
func (f *failure) Unwrap() []error { return []error{ErrLogFailed, f.cause} }

// AppendInfo describes an appended batch.
type AppendInfo struct {
	BaseOffset    int64
	LastOffset    int64
	LogAppendTime int64 // -1 unless the broker set the timestamps
	MaxTimestamp  int64
}

// ReadResult holds whole batches read from the log. Data is owned by the
// caller.
type ReadResult struct {
	Data []byte
	// NextOffset is the offset after the last batch in Data, or the
	// requested offset when Data is empty.
	NextOffset     int64
	LogStartOffset int64
	LogEndOffset   int64
}

// Log is one partition's log. See the package doc for its concurrency rules.
type Log struct {
	dir    string
	logger *slog.Logger

	maxBatch int  // Config.MaxBatchBytes at Open
	disk     disk // Config.FS and its fsync policy

	mu     sync.Mutex // the append lock; see the package doc
	cfg    Config
	closed bool

	epochMu sync.RWMutex
	epochs  []epochEntry

	segs     atomic.Pointer[[]*segment] // copy on write, sorted by base
	leo      atomic.Int64
	logStart atomic.Int64
	durable  atomic.Int64
	failed   atomic.Pointer[failure]

	syncMu   sync.Mutex
	syncing  bool
	syncDone chan struct{}

	// cleanMu serialises compaction passes (Compact); it is taken before
	// Log.mu and never held by the appender.
	cleanMu    sync.Mutex
	cleanPoint atomic.Int64            // first dirty offset (compaction)
	cleanHook  func(step string) error // tests: simulate a crash mid-swap
}

// Open opens (creating if needed) the log in cfg.Dir and recovers it.
func Open(cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("commitlog: empty Dir")
	}
	if err := cfg.FS.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	l := &Log{dir: cfg.Dir, cfg: cfg, maxBatch: cfg.MaxBatchBytes, disk: disk{fs: cfg.FS, noSync: cfg.UnsafeNoFsync},
		logger: cfg.Logger.With("component", "commitlog", "dir", cfg.Dir)}
	if err := l.load(); err != nil {
		l.closeSegments()
		return nil, err
	}
	return l, nil
}

func (l *Log) load() error {
	marker := filepath.Join(l.dir, cleanShutdown)
	_, err := l.disk.fs.Stat(marker)
	clean := err == nil
	if err := recoverCleaner(l.dir, l.disk, l.logger); err != nil {
		return err
	}
	bases, err := listSegments(l.disk.fs, l.dir)
	if err != nil {
		return err
	}
	var segs []*segment
	for _, b := range bases {
		s, err := openSegment(l.disk.fs, l.dir, b, false)
		if err != nil {
			for _, s := range segs {
				s.unref()
			}
			return err
		}
		segs = append(segs, s)
	}
	l.segs.Store(&segs)
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case last && !clean:
			if err := l.recoverSegment(s); err != nil {
				return err
			}
		case !s.loadIndexes():
			l.logger.Info("rebuilding index", "offset", s.base)
			if _, err := s.rebuild(false, l.cfg.IndexIntervalBytes, l.cfg.MaxBatchBytes); err != nil {
				// A closed segment was fsynced on roll: damage here is
				// not a torn tail. Keep what is readable.
				l.logger.Warn("closed segment damaged", "offset", s.base, "err", err)
			}
		}
	}
	if len(segs) == 0 {
		s, err := openSegment(l.disk.fs, l.dir, 0, true)
		if err != nil {
			return err
		}
		segs = []*segment{s}
		l.segs.Store(&segs)
		// Without this the new file's directory entry may not survive a
		// crash, and with it every batch fsynced into it.
		if err := l.disk.syncDir(l.dir); err != nil {
			return err
		}
	}
	active := segs[len(segs)-1]
	active.created = l.cfg.Now()
	leo := active.next.Load()
	l.leo.Store(leo)
	// Everything on disk at open is treated as durable after recovery.
	l.durable.Store(leo)

	start := segs[0].base
	if v, ok := readLogStart(l.disk.fs, l.dir); ok && v > start {
		start = min(v, leo)
	}
	l.logStart.Store(start)
	l.cleanPoint.Store(min(readCleanPoint(l.disk.fs, l.dir), leo))

	epochs, err := readEpochs(l.disk.fs, l.dir)
	if err != nil {
		l.logger.Warn("dropping leader epoch checkpoint", "err", err)
		epochs = nil
	}
	// Entries at or past the end belong to batches that did not survive.
	for len(epochs) > 0 && epochs[len(epochs)-1].StartOffset >= leo {
		epochs = epochs[:len(epochs)-1]
	}
	l.epochs = epochs
	if clean {
		if err := l.disk.fs.Remove(marker); err != nil {
			return err
		}
		return l.disk.syncDir(l.dir)
	}
	return nil
}

// recoverSegment validates every batch of the last segment and truncates it
// at the first torn or corrupt one.
func (l *Log) recoverSegment(s *segment) error {
	size := s.size.Load()
	end, reason := s.rebuild(true, l.cfg.IndexIntervalBytes, l.cfg.MaxBatchBytes)
	if end < size {
		l.logger.Warn("truncating torn tail", "offset", s.next.Load(), "position", end, "dropped_bytes", size-end, "err", reason)
		s.size.Store(end)
		if err := s.f.Truncate(end); err != nil {
			return err
		}
		s.alloc = end
		if err := l.disk.sync(s.f); err != nil {
			return err
		}
	}
	return nil
}

func (l *Log) segments() []*segment { return *l.segs.Load() }

func (l *Log) activeLocked() *segment {
	segs := l.segments()
	return segs[len(segs)-1]
}

func (l *Log) failLocked(err error) error {
	f := &failure{cause: err}
	l.failed.CompareAndSwap(nil, f)
	l.logger.Error("log failed", "err", err)
	return l.failed.Load()
}

// Err returns the sticky failure, if any.
func (l *Log) Err() error {
	if f := l.failed.Load(); f != nil {
		return f
	}
	return nil
}

// Append writes one batch at the log end. The caller has validated it
// (record.Validate). Append patches its base offset and partition leader
// epoch in place, and when logAppendTime > 0 its timestamps
// (record.SetLogAppendTime): batch is modified and must not be in use by
// anyone else. Append does not fsync: see Sync. A failed write makes the log
// refuse further appends (ErrLogFailed). Append does not allocate in steady
// state.
func (l *Log) Append(batch []byte, leaderEpoch int32, logAppendTime int64) (AppendInfo, error) {
	return l.append(batch, leaderEpoch, logAppendTime, false)
}

// AppendReplicated writes one batch fetched from the partition's leader at
// the log end, unchanged: its base offset, partition leader epoch and
// timestamps stay as the leader wrote them. The batch's base offset must be
// the log end offset (ErrOffsetMismatch otherwise) and its CRC must match
// (the caller has run record.Validate). The leader epoch cache learns the
// batch's epoch. Like Append it does not fsync.
func (l *Log) AppendReplicated(batch []byte) (AppendInfo, error) {
	return l.append(batch, -1, 0, true)
}

func (l *Log) append(batch []byte, leaderEpoch int32, logAppendTime int64, replicated bool) (AppendInfo, error) {
	h, err := record.ParseHeader(batch)
	if err != nil || h.Size() != len(batch) || h.LastOffsetDelta < 0 {
		return AppendInfo{}, ErrInvalidBatch
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return AppendInfo{}, ErrClosed
	}
	if f := l.failed.Load(); f != nil {
		return AppendInfo{}, f
	}
	base := l.leo.Load()
	if replicated && h.BaseOffset != base {
		return AppendInfo{}, fmt.Errorf("%w: batch at %d, log end at %d", ErrOffsetMismatch, h.BaseOffset, base)
	}
	seg := l.activeLocked()
	if l.shouldRollLocked(seg, int64(len(batch)), base+int64(h.LastOffsetDelta)) {
		if seg, err = l.rollLocked(base); err != nil {
			return AppendInfo{}, l.failLocked(err)
		}
	}
	if replicated {
		leaderEpoch = h.PartitionLeaderEpoch
	} else {
		record.SetBaseOffset(batch, base)
		record.SetPartitionLeaderEpoch(batch, leaderEpoch)
		h.BaseOffset = base
		h.PartitionLeaderEpoch = leaderEpoch
	}
	info := AppendInfo{BaseOffset: base, LastOffset: h.LastOffset(), LogAppendTime: -1}
	if logAppendTime > 0 {
		record.SetLogAppendTime(batch, logAppendTime)
		h.MaxTimestamp = logAppendTime
		info.LogAppendTime = logAppendTime
	}
	info.MaxTimestamp = h.MaxTimestamp

	pos := seg.size.Load()
	if pos == 0 {
		seg.created = l.cfg.Now()
	}
	end := pos + int64(len(batch))
	// Whatever Preallocate says now: it may have been on when a fill began.
	seg.awaitFill(end)
	if _, err := seg.f.WriteAt(batch, pos); err != nil {
		return AppendInfo{}, l.failLocked(err)
	}
	seg.trackBatch(h, pos, l.cfg.IndexIntervalBytes)
	// Publish: size before the end offset, so a reader that sees the new
	// end offset also sees the bytes.
	seg.size.Store(end)
	seg.next.Store(info.LastOffset + 1)
	l.leo.Store(info.LastOffset + 1)
	if l.cfg.Preallocate && !l.disk.noSync {
		seg.preallocate(end, l.cfg.SegmentBytes, l)
	}

	if leaderEpoch >= 0 && leaderEpoch > l.LatestEpoch() {
		l.epochMu.Lock()
		l.epochs = append(l.epochs, epochEntry{Epoch: leaderEpoch, StartOffset: base})
		es := l.epochs
		l.epochMu.Unlock()
		if err := writeEpochs(l.disk, l.dir, es); err != nil {
			return info, l.failLocked(err)
		}
	}
	return info, nil
}

// rollJitterLocked is seg's share of segment.jitter.ms, drawn the first
// time it is asked for, as Kafka draws one per segment: so that partitions
// created together do not all roll by time at once.
func (l *Log) rollJitterLocked(seg *segment) time.Duration {
	if !seg.jitterDrawn {
		seg.jitterDrawn = true
		if span := min(l.cfg.SegmentJitter, l.cfg.SegmentMs); span > 0 {
			seg.rollJitter = rand.N(span)
		}
	}
	return seg.rollJitter
}

func (l *Log) shouldRollLocked(seg *segment, n, lastOffset int64) bool {
	size := seg.size.Load()
	if size == 0 {
		return false
	}
	switch {
	case size+n > l.cfg.SegmentBytes:
		return true
	case l.cfg.Now().Sub(seg.created) >= l.cfg.SegmentMs-l.rollJitterLocked(seg):
		return true
	case seg.indexFull(l.cfg.SegmentIndexBytes):
		// As Kafka, a full index rolls the segment (segment.index.bytes).
		return true
	case lastOffset-seg.base > math.MaxInt32:
		// Relative offsets in the index are 32 bits.
		return true
	}
	return false
}

// rollLocked closes the active segment (fsync, index files) and starts a new
// one at base.
func (l *Log) rollLocked(base int64) (*segment, error) {
	old := l.activeLocked()
	if err := old.trim(); err != nil {
		return nil, err
	}
	if err := l.disk.sync(old.f); err != nil {
		return nil, err
	}
	l.advanceDurable(old.next.Load())
	if err := old.writeIndexes(l.disk); err != nil {
		return nil, err
	}
	s, err := openSegment(l.disk.fs, l.dir, base, true)
	if err != nil {
		return nil, err
	}
	if err := l.disk.syncDir(l.dir); err != nil {
		s.unref()
		return nil, err
	}
	s.created = l.cfg.Now()
	segs := append(append([]*segment(nil), l.segments()...), s)
	l.segs.Store(&segs)
	l.logger.Debug("rolled segment", "offset", base)
	return s, nil
}

func (l *Log) advanceDurable(off int64) {
	for {
		d := l.durable.Load()
		if off <= d || l.durable.CompareAndSwap(d, off) {
			return
		}
	}
}

// Sync makes everything appended before the call durable. Concurrent calls
// share fsyncs (group commit): a caller arriving while an fsync is in flight
// waits for it, then for the next one, which covers everything appended
// before that caller arrived, unless an fsync already did.
func (l *Log) Sync() error { return l.sync(false) }

// syncFill fsyncs after a preallocation fill (segment.preallocate) even when
// every record is already durable: the fill's zeros are not records. A
// failure fails the log like any fsync's, since it may have lost records'
// pages too.
func (l *Log) syncFill() { _ = l.sync(true) }

// sync is Sync; force makes it run an fsync that starts after the call.
func (l *Log) sync(force bool) error {
	target := l.leo.Load()
	for {
		if f := l.failed.Load(); f != nil {
			return f
		}
		if !force && l.durable.Load() >= target {
			return nil
		}
		l.syncMu.Lock()
		if l.syncing {
			ch := l.syncDone
			l.syncMu.Unlock()
			<-ch
			continue
		}
		l.syncing = true
		l.syncDone = make(chan struct{})
		l.syncMu.Unlock()

		err := l.syncOnce()

		l.syncMu.Lock()
		l.syncing = false
		close(l.syncDone)
		l.syncMu.Unlock()
		return err
	}
}

func (l *Log) syncOnce() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	seg := l.activeLocked()
	ok := seg.tryRef()
	end := l.leo.Load()
	l.mu.Unlock()
	if !ok {
		return ErrClosed
	}
	defer seg.unref()
	if err := l.disk.syncData(seg.f); err != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.failLocked(err)
	}
	l.advanceDurable(end)
	return nil
}

// DurableOffset returns the first offset not known to be fsynced.
func (l *Log) DurableOffset() int64 { return min(l.durable.Load(), l.leo.Load()) }

// LogEndOffset returns the offset the next appended batch will get.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// LogStartOffset returns the first readable offset.
func (l *Log) LogStartOffset() int64 { return l.logStart.Load() }

// LatestEpoch returns the latest leader epoch recorded, or -1.
func (l *Log) LatestEpoch() int32 {
	l.epochMu.RLock()
	defer l.epochMu.RUnlock()
	if n := len(l.epochs); n > 0 {
		return l.epochs[n-1].Epoch
	}
	return -1
}

// AssignEpoch records that leader epoch starts at the log end, as a new
// leader does on election (Kafka's maybeAssignEpochStartOffset): without it
// the previous epoch would seem to run on to the log end until the first
// append, and a returning old leader asking for that epoch's end would not
// learn that its own tail diverged. Entries the new one supersedes (an epoch
// not older, or a start not lower) are dropped. A no-op when epoch is
// already the latest.
func (l *Log) AssignEpoch(epoch int32) error {
	if epoch < 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if f := l.failed.Load(); f != nil {
		return f
	}
	start := l.leo.Load()
	l.epochMu.Lock()
	if n := len(l.epochs); n > 0 && l.epochs[n-1].Epoch == epoch {
		l.epochMu.Unlock()
		return nil
	}
	es := slices.DeleteFunc(slices.Clone(l.epochs), func(e epochEntry) bool {
		return e.Epoch >= epoch || e.StartOffset >= start
	})
	es = append(es, epochEntry{Epoch: epoch, StartOffset: start})
	l.epochs = es
	l.epochMu.Unlock()
	if err := writeEpochs(l.disk, l.dir, es); err != nil {
		return l.failLocked(err)
	}
	return nil
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch (KIP-101/279): the largest
// epoch <= epoch and the start offset of the next higher epoch, or the log
// end offset when epoch is the latest; (-1, -1) when unknown.
func (l *Log) EndOffsetForEpoch(epoch int32) (leaderEpoch int32, endOffset int64) {
	l.epochMu.RLock()
	defer l.epochMu.RUnlock()
	return endOffsetFor(l.epochs, epoch, l.leo.Load())
}

// Read returns whole batches starting with the one holding offset; see
// ReadUpTo.
func (l *Log) Read(offset int64, maxBytes int) (ReadResult, error) {
	return l.ReadUpTo(offset, maxBytes, math.MaxInt64)
}

// ReadUpTo returns whole batches starting with the one holding offset, and
// stopping before any batch whose base offset is >= limitOffset or the log
// end offset at the time of the call. At least one whole batch is returned
// even if it is larger than maxBytes (KIP-74); more batches only while the
// total stays within maxBytes. Reads stay within one segment. It fails with
// ErrOffsetOutOfRange when offset is outside [LogStartOffset,
// LogEndOffset]; offset == LogEndOffset gives an empty result. It never
// blocks the appender.
func (l *Log) ReadUpTo(offset int64, maxBytes int, limitOffset int64) (ReadResult, error) {
	for {
		leo := l.leo.Load()
		start := l.logStart.Load()
		res := ReadResult{NextOffset: offset, LogStartOffset: start, LogEndOffset: leo}
		if offset < start || offset > leo {
			return res, ErrOffsetOutOfRange
		}
		limit := min(limitOffset, leo)
		if offset >= limit {
			return res, nil
		}
		segs := l.segments()
		if len(segs) == 0 {
			return res, ErrClosed
		}
		i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
		if i < 0 {
			continue // raced with retention moving the start
		}
		retry := false
		for ; i < len(segs); i++ {
			s := segs[i]
			if s.base >= limit {
				break
			}
			if !s.tryRef() {
				retry = true
				break
			}
			data, next, err := s.read(offset, maxBytes, limit)
			s.unref()
			if err != nil {
				return res, err
			}
			if len(data) > 0 {
				res.Data, res.NextOffset = data, next
				return res, nil
			}
		}
		if !retry {
			return res, nil
		}
	}
}

// read returns the batches of this segment from the one holding offset,
// bounded as ReadUpTo describes. Empty when the segment holds nothing at or
// after offset below limit.
func (s *segment) read(offset int64, maxBytes int, limit int64) ([]byte, int64, error) {
	pos, first, err := s.find(offset, limit)
	if err != nil || first == 0 {
		return nil, 0, err
	}
	end := s.size.Load()
	want := max(int64(first), min(int64(maxBytes), end-pos))
	buf := make([]byte, want)
	n, _ := s.readAt(buf, pos)
	buf = buf[:n]
	// Keep whole batches below the limit.
	p, next := 0, offset
	for p+record.HeaderSize <= len(buf) {
		h, _ := record.ParseHeader(buf[p:])
		if h.BaseOffset >= limit || h.BatchLength < record.HeaderSize-record.LengthOverhead || p+h.Size() > len(buf) {
			break
		}
		p += h.Size()
		next = h.NextOffset()
	}
	return buf[:p], next, nil
}

// find returns the position and size of the first batch whose last offset
// is >= offset, or size 0 when there is none below limit.
func (s *segment) find(offset, limit int64) (int64, int, error) {
	pos := s.lookup(offset)
	end := s.size.Load()
	hdr := make([]byte, record.HeaderSize)
	for pos+record.HeaderSize <= end {
		n, _ := s.readAt(hdr, pos)
		if n < record.HeaderSize {
			return 0, 0, nil // truncated under us
		}
		h, _ := record.ParseHeader(hdr)
		if h.BaseOffset >= limit {
			return 0, 0, nil
		}
		if h.BatchLength < record.HeaderSize-record.LengthOverhead {
			return 0, 0, fmt.Errorf("commitlog: corrupt batch at %s position %d", s.path, pos)
		}
		if h.LastOffset() >= offset {
			return pos, h.Size(), nil
		}
		pos += int64(h.Size())
	}
	return 0, 0, nil
}

// Chunk is a byte range of a segment file, for zero-copy sends with a
// positional sendfile. File must not be read with its shared offset. File
// is nil when Config.FS has no operating-system files (vfs.OSFile, an
// in-memory FS of tests): the caller then copies the range out of Reader,
// which is the same file.
type Chunk struct {
	File   *os.File
	Reader io.ReaderAt
	Pos    int64
	Len    int64
}

// RangeResult is the result of ReadRange. Release must be called once the
// chunks have been sent; until then the segment file stays open even if
// retention deletes it.
type RangeResult struct {
	Chunks     []Chunk
	NextOffset int64
	seg        *segment
}

// Len is how many bytes the chunks hold.
func (r *RangeResult) Len() int64 {
	var n int64
	for _, c := range r.Chunks {
		n += c.Len
	}
	return n
}

// Release drops the segment reference held by the result.
func (r *RangeResult) Release() {
	if r.seg != nil {
		r.seg.unref()
		r.seg = nil
	}
}

// ReadRange is ReadUpTo returning file ranges instead of bytes.
func (l *Log) ReadRange(offset int64, maxBytes int, limitOffset int64) (RangeResult, error) {
	for {
		leo := l.leo.Load()
		res := RangeResult{NextOffset: offset}
		if offset < l.logStart.Load() || offset > leo {
			return res, ErrOffsetOutOfRange
		}
		limit := min(limitOffset, leo)
		if offset >= limit {
			return res, nil
		}
		segs := l.segments()
		if len(segs) == 0 {
			return res, ErrClosed
		}
		i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
		if i < 0 {
			continue // raced with retention moving the start
		}
		retry := false
		for ; i < len(segs) && segs[i].base < limit; i++ {
			s := segs[i]
			if !s.tryRef() {
				retry = true
				break
			}
			pos, first, err := s.find(offset, limit)
			if err != nil {
				s.unref()
				return res, err
			}
			if first == 0 {
				s.unref()
				continue
			}
			end, next, err := s.extent(pos, first, maxBytes, limit)
			if err != nil {
				s.unref()
				return res, err
			}
			res.Chunks = []Chunk{{File: vfs.OSFile(s.f), Reader: s.f, Pos: pos, Len: end - pos}}
			res.NextOffset, res.seg = next, s
			return res, nil
		}
		if !retry {
			return res, nil
		}
	}
}

// extent walks batch headers from pos (whose batch is first bytes long) and
// returns the end position and next offset of the batches to send.
func (s *segment) extent(pos int64, first, maxBytes int, limit int64) (int64, int64, error) {
	size := s.size.Load()
	hdr := make([]byte, record.HeaderSize)
	end := pos
	next := int64(0)
	// Jump with the sparse index over whole batches that fit: its entries
	// are batch starts, so only the last few KiB need header reads, not every
	// batch of a large fetch.
	if jpos, jrel, ok := s.jump(pos, pos+int64(maxBytes), limit-s.base, size); ok {
		end, next = jpos, s.base+jrel
	}
	for end+record.HeaderSize <= size {
		if n, _ := s.readAt(hdr, end); n < record.HeaderSize {
			break
		}
		h, _ := record.ParseHeader(hdr)
		if h.BaseOffset >= limit || h.BatchLength < record.HeaderSize-record.LengthOverhead || end+int64(h.Size()) > size {
			break
		}
		if end > pos && end+int64(h.Size())-pos > int64(maxBytes) {
			break
		}
		end += int64(h.Size())
		next = h.NextOffset()
	}
	if end == pos {
		return 0, 0, fmt.Errorf("commitlog: batch at %s position %d vanished", s.path, pos)
	}
	return end, next, nil
}

// jump returns the last index entry that starts a batch after pos and at or
// before maxPos, below relLimit, and inside size.
func (s *segment) jump(pos, maxPos, relLimit, size int64) (int64, int64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := sort.Search(len(s.idx), func(i int) bool { return int64(s.idx[i].pos) > maxPos }) - 1
	for ; i >= 0; i-- {
		e := s.idx[i]
		if int64(e.pos) <= pos {
			return 0, 0, false
		}
		if int64(e.rel) < relLimit && int64(e.pos) < size {
			return int64(e.pos), int64(e.rel), true
		}
	}
	return 0, 0, false
}

// ScanBatches calls fn with each batch from the one holding from to the log
// end. The slice is valid only during the call. An error from fn stops the
// scan and is returned.
func (l *Log) ScanBatches(from int64, fn func(b []byte) error) error {
	off := max(from, l.LogStartOffset())
	for {
		res, err := l.Read(off, 1<<20)
		if err != nil {
			return err
		}
		if len(res.Data) == 0 {
			return nil
		}
		sp := record.Split(res.Data)
		for b, ok := sp.Next(); ok; b, ok = sp.Next() {
			if err := fn(b); err != nil {
				return err
			}
		}
		if err := sp.Err(); err != nil {
			return err
		}
		off = res.NextOffset
	}
}

// OffsetForTimestamp returns the first offset whose record timestamp is
// >= ts, with that timestamp (ListOffsets by time).
func (l *Log) OffsetForTimestamp(ts int64) (offset int64, timestamp int64, found bool) {
	for _, s := range l.segments() {
		if s.maxTs.Load() < ts {
			continue
		}
		from := max(s.timeLookup(ts), l.LogStartOffset())
		errStop := errors.New("stop")
		_ = l.ScanBatches(from, func(b []byte) error {
			h, err := record.ParseHeader(b)
			if err != nil || h.MaxTimestamp < ts {
				return nil
			}
			if h.TimestampType() == record.LogAppendTime {
				offset, timestamp, found = max(h.BaseOffset, from), h.MaxTimestamp, true
				return errStop
			}
			_ = record.Records(b, h, l.maxUncompressed(), func(r record.Record) error {
				rts := h.BaseTimestamp + r.TimestampDelta
				o := h.BaseOffset + int64(r.OffsetDelta)
				if rts >= ts && o >= from {
					offset, timestamp, found = o, rts, true
					return errStop
				}
				return nil
			})
			if found {
				return errStop
			}
			return nil
		})
		if found {
			return offset, timestamp, true
		}
	}
	return -1, -1, false
}

// maxUncompressed caps decompression when a path must look at records.
func (l *Log) maxUncompressed() int { return max(l.maxBatch, 64<<20) }

// MaxTimestamp returns the largest timestamp in the log and the offset of
// the first record that carries it (ListOffsets MAX_TIMESTAMP), or (-1, -1)
// when the log has no timestamps. As Kafka since 3.8 (KAFKA-16310): the
// record's own offset, not its batch's last, and in a batch with
// LogAppendTime, whose records all carry the batch's time, the first.
func (l *Log) MaxTimestamp() (ts int64, offset int64) {
	ts, offset = -1, -1
	start := l.LogStartOffset()
	for _, s := range l.segments() {
		if t := s.maxTs.Load(); t > ts && s.offMaxTs.Load() >= start {
			ts, offset = t, s.offMaxTs.Load()
		}
	}
	if offset < 0 {
		return ts, offset
	}
	// offset is the last of the first batch holding ts; find the record.
	errStop := errors.New("stop")
	batchLast := offset
	_ = l.ScanBatches(batchLast, func(b []byte) error {
		h, err := record.ParseHeader(b)
		if err != nil || h.LastOffset() != batchLast || h.MaxTimestamp != ts {
			return errStop // not the batch the segment noted: keep its last offset
		}
		if h.TimestampType() == record.LogAppendTime {
			offset = max(h.BaseOffset, start)
			return errStop
		}
		_ = record.Records(b, h, l.maxUncompressed(), func(r record.Record) error {
			if o := h.BaseOffset + int64(r.OffsetDelta); h.BaseTimestamp+r.TimestampDelta == ts && o >= start {
				offset = o
				return errStop
			}
			return nil
		})
		return errStop
	})
	return ts, offset
}

// SetLogStartOffset moves the log start offset forward (DeleteRecords),
// persists it and deletes the segments entirely below it (never the active
// one).
func (l *Log) SetLogStartOffset(off int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if off > l.leo.Load() {
		return ErrOffsetOutOfRange
	}
	if off <= l.logStart.Load() {
		return nil
	}
	return l.moveStartLocked(off)
}

func (l *Log) moveStartLocked(off int64) error {
	if err := writeLogStart(l.disk, l.dir, off); err != nil {
		return l.failLocked(err)
	}
	l.logStart.Store(off)
	segs := l.segments()
	n := 0
	for n < len(segs)-1 && segs[n+1].base <= off {
		n++
	}
	if err := l.dropFirstLocked(n); err != nil {
		return err
	}
	l.epochMu.Lock()
	// Kafka's truncateFromStart: epochs wholly below off go, the one
	// holding off now starts there.
	i := 0
	for i+1 < len(l.epochs) && l.epochs[i+1].StartOffset <= off {
		i++
	}
	changed := len(l.epochs) > 0 && l.epochs[i].StartOffset < off
	if changed {
		es := append([]epochEntry(nil), l.epochs[i:]...)
		es[0].StartOffset = off
		l.epochs = es
	}
	es := l.epochs
	l.epochMu.Unlock()
	if changed {
		if err := writeEpochs(l.disk, l.dir, es); err != nil {
			return l.failLocked(err)
		}
	}
	return nil
}

// dropFirstLocked removes the n oldest segments.
func (l *Log) dropFirstLocked(n int) error {
	if n == 0 {
		return nil
	}
	segs := l.segments()
	rest := append([]*segment(nil), segs[n:]...)
	l.segs.Store(&rest)
	var firstErr error
	for _, s := range segs[:n] {
		if err := s.remove(); err != nil && firstErr == nil {
			firstErr = err
		}
		l.logger.Debug("deleted segment", "offset", s.base)
	}
	return firstErr
}

// EnforceRetention deletes the oldest segments whose max timestamp is older
// than RetentionMs, then more while the log exceeds RetentionBytes; never
// the active segment. The log start offset moves to the first remaining
// segment.
func (l *Log) EnforceRetention() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	segs := l.segments()
	n := 0
	if l.cfg.RetentionMs > 0 {
		cutoff := l.cfg.Now().Add(-l.cfg.RetentionMs).UnixMilli()
		for n < len(segs)-1 && segs[n].retentionTime() < cutoff {
			n++
		}
	}
	if l.cfg.RetentionBytes >= 0 {
		var total int64
		for _, s := range segs {
			total += s.size.Load()
		}
		for _, s := range segs[:n] {
			total -= s.size.Load()
		}
		for n < len(segs)-1 && total-segs[n].size.Load() >= l.cfg.RetentionBytes {
			total -= segs[n].size.Load()
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	newStart := max(segs[n].base, l.logStart.Load())
	if err := l.moveStartLocked(newStart); err != nil {
		return 0, err
	}
	l.logger.Info("retention deleted segments", "count", n, "offset", newStart)
	return n, nil
}

// TruncateTo removes every batch holding offsets >= off (follower
// divergence, KIP-101). A batch straddling off goes whole, so the new log
// end offset is that batch's base offset. The leader epoch cache is cut to
// match, even when no batch goes (off at or past the log end): a replica
// elected leader that appended nothing before it was deposed keeps an entry
// starting at its log end, and a follower that kept it would send that
// epoch as its last fetched one forever and never stop diverging (Kafka's
// UnifiedLog.truncateTo does the same).
func (l *Log) TruncateTo(off int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if f := l.failed.Load(); f != nil {
		return f
	}
	if leo := l.leo.Load(); off >= leo {
		return l.truncateEpochsLocked(leo)
	}
	if off < l.logStart.Load() {
		return l.resetLocked(off)
	}
	segs := l.segments()
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > off }) - 1
	if i < 0 {
		i = 0
	}
	s := segs[i]
	kept := append([]*segment(nil), segs[:i+1]...)
	l.segs.Store(&kept)
	for _, d := range segs[i+1:] {
		if err := d.remove(); err != nil {
			return l.failLocked(err)
		}
	}
	pos, first, err := s.find(off, math.MaxInt64)
	if err != nil {
		return l.failLocked(err)
	}
	if first > 0 {
		if err := s.truncate(pos, l.cfg.IndexIntervalBytes, l.cfg.MaxBatchBytes); err != nil {
			return l.failLocked(err)
		}
	}
	s.created = l.cfg.Now()
	leo := s.next.Load()
	l.leo.Store(leo)
	if l.cleanPoint.Load() > leo {
		l.cleanPoint.Store(leo)
	}
	if l.durable.Load() > leo {
		l.durable.Store(leo)
	}
	return l.truncateEpochsLocked(leo)
}

// resetLocked empties the log and restarts it at off.
func (l *Log) resetLocked(off int64) error {
	segs := l.segments()
	l.segs.Store(&[]*segment{})
	for _, s := range segs {
		if err := s.remove(); err != nil {
			return l.failLocked(err)
		}
	}
	s, err := openSegment(l.disk.fs, l.dir, off, true)
	if err != nil {
		return l.failLocked(err)
	}
	s.created = l.cfg.Now()
	l.segs.Store(&[]*segment{s})
	if err := l.disk.syncDir(l.dir); err != nil {
		return l.failLocked(err)
	}
	l.leo.Store(off)
	l.durable.Store(off)
	l.cleanPoint.Store(min(l.cleanPoint.Load(), off))
	if err := writeLogStart(l.disk, l.dir, off); err != nil {
		return l.failLocked(err)
	}
	l.logStart.Store(off)
	return l.truncateEpochsLocked(off)
}

func (l *Log) truncateEpochsLocked(leo int64) error {
	l.epochMu.Lock()
	n := len(l.epochs)
	for n > 0 && l.epochs[n-1].StartOffset >= leo {
		n--
	}
	changed := n != len(l.epochs)
	l.epochs = append([]epochEntry(nil), l.epochs[:n]...)
	es := l.epochs
	l.epochMu.Unlock()
	if changed {
		if err := writeEpochs(l.disk, l.dir, es); err != nil {
			return l.failLocked(err)
		}
	}
	return nil
}

// SetConfig applies the dynamic settings of cfg: SegmentBytes, SegmentMs,
// SegmentJitter (for segments not yet checked for a roll), RetentionBytes,
// RetentionMs, IndexIntervalBytes and Preallocate (from the next append
// on). Others are ignored.
func (l *Log) SetConfig(cfg Config) {
	cfg = cfg.withDefaults()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg.SegmentBytes = cfg.SegmentBytes
	l.cfg.SegmentMs = cfg.SegmentMs
	l.cfg.SegmentJitter = cfg.SegmentJitter
	l.cfg.SegmentIndexBytes = cfg.SegmentIndexBytes
	l.cfg.RetentionBytes = cfg.RetentionBytes
	l.cfg.RetentionMs = cfg.RetentionMs
	l.cfg.IndexIntervalBytes = cfg.IndexIntervalBytes
	l.cfg.Preallocate = cfg.Preallocate
}

// Size returns the bytes held in all segments.
func (l *Log) Size() int64 {
	var n int64
	for _, s := range l.segments() {
		n += s.size.Load()
	}
	return n
}

// NumSegments returns the number of segments.
func (l *Log) NumSegments() int { return len(l.segments()) }

// SegmentInfo describes one segment: what ListOffsets v0 answers from.
type SegmentInfo struct {
	BaseOffset   int64
	Size         int64
	LastModified time.Time // the .log file's modification time
}

// Segments describes the segments, oldest first. A segment deleted while
// this runs (retention, compaction swap) reports the zero LastModified.
func (l *Log) Segments() []SegmentInfo {
	segs := l.segments()
	out := make([]SegmentInfo, len(segs))
	for i, s := range segs {
		out[i] = SegmentInfo{BaseOffset: s.base, Size: s.size.Load()}
		// By path, not by s.f: the file may be closed by a concurrent swap.
		if fi, err := l.disk.fs.Stat(s.path); err == nil {
			out[i].LastModified = fi.ModTime()
		}
	}
	return out
}

// Close fsyncs the active segment, writes its index files and the clean
// shutdown marker, and closes the files (after in-flight reads finish).
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var err error
	if l.failed.Load() == nil {
		s := l.activeLocked()
		err = s.trim()
		if err == nil {
			err = l.disk.sync(s.f)
		}
		if err == nil {
			err = s.writeIndexes(l.disk)
		}
		if err == nil {
			err = l.disk.writeFileAtomic(filepath.Join(l.dir, cleanShutdown), nil)
		}
		if err == nil {
			l.advanceDurable(l.leo.Load())
		}
	} else {
		err = l.failed.Load()
	}
	l.closeSegments()
	return err
}

func (l *Log) closeSegments() {
	p := l.segs.Load()
	if p == nil {
		return
	}
	for _, s := range *p {
		s.unref()
	}
	l.segs.Store(&[]*segment{})
}

// Delete closes the log and removes its directory (topic deletion).
func (l *Log) Delete() error {
	_ = l.Close()
	return l.disk.fs.RemoveAll(l.dir)
}
