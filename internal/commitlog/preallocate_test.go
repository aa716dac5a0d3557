package commitlog

import (
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/gregor-dev/gregor/internal/vfs"
)

func fileLen(t *testing.T, fs vfs.FS, path string) int64 {
	t.Helper()
	fi, err := fs.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// settle waits for the active segment's preallocation fill, and its fsync,
// and returns how far its file runs (alloc).
func settle(l *Log) int64 {
	segs := l.segments()
	s := segs[len(segs)-1]
	s.fills.Wait()
	s.fillMu.Lock()
	defer s.fillMu.Unlock()
	return s.alloc
}

// checkZeroTail checks that the file holds only zeros past the batches.
func checkZeroTail(t *testing.T, fs vfs.FS, s *segment) {
	t.Helper()
	f, err := fs.Open(s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := fileLen(t, fs, s.path) - s.size.Load()
	tail := make([]byte, n)
	if _, err := f.ReadAt(tail, s.size.Load()); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	for i, b := range tail {
		if b != 0 {
			t.Fatalf("byte %d past the batches is %#x, want only zeros", s.size.Load()+int64(i), b)
		}
	}
}

// checkLog reads the whole log back and checks it holds exactly the batches
// with the given base offsets and that no read sees past the log end.
func checkLog(t *testing.T, l *Log, bases []int64) {
	t.Helper()
	got := readAll(t, l)
	if len(got) != len(bases) {
		t.Fatalf("read %d batches %v, want %v", len(got), got, bases)
	}
	for i := range got {
		if got[i] != bases[i] {
			t.Fatalf("batch %d at offset %d, want %d", i, got[i], bases[i])
		}
	}
	res, err := l.Read(l.LogEndOffset(), 1<<20)
	if err != nil || len(res.Data) != 0 {
		t.Fatalf("read at the log end: %d bytes, %v; want none", len(res.Data), err)
	}
}

// TestPreallocate: with Config.Preallocate the active segment's file holds
// written zeros ahead of the batches, readers see only the batches, and a
// roll and Close cut every file to its batches.
func TestPreallocate(t *testing.T) {
	mem := vfs.NewMemFS()
	cfg := Config{Dir: "/data/t-0", FS: mem, Preallocate: true, SegmentBytes: 64 << 10}
	l := openLogFsync(t, cfg)
	var bases []int64
	for i := range 3 {
		bases = append(bases, mustAppend(t, l, makeBatch(t, 2, 100, int64(i)), 0).BaseOffset)
	}
	// A 64 KiB segment has no room for preallocGap: the fill starts at the
	// log end and runs to segment.bytes.
	settle(l)
	active := l.segments()[0]
	if n := fileLen(t, mem, active.path); n != cfg.SegmentBytes {
		t.Fatalf("active segment file is %d bytes, want it filled to segment.bytes %d", n, cfg.SegmentBytes)
	}
	checkZeroTail(t, mem, active)
	if l.Size() >= cfg.SegmentBytes {
		t.Fatalf("Size %d counts the reserved tail", l.Size())
	}
	checkLog(t, l, bases)
	// Fill past segment.bytes: the closed segment is cut to its batches.
	for l.NumSegments() < 3 {
		bases = append(bases, mustAppend(t, l, makeBatch(t, 10, 1000, 5), 0).BaseOffset)
	}
	segs := l.segments()
	for _, s := range segs[:len(segs)-1] {
		if n := fileLen(t, mem, s.path); n != s.size.Load() {
			t.Fatalf("closed segment %d: file %d bytes, batches %d", s.base, n, s.size.Load())
		}
	}
	checkLog(t, l, bases)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	last := segs[len(segs)-1]
	if n := fileLen(t, mem, last.path); n != last.size.Load() {
		t.Fatalf("after Close the active segment file is %d bytes, batches %d", n, last.size.Load())
	}
	r := openLogFsync(t, cfg)
	checkLog(t, r, bases)
	bases = append(bases, mustAppend(t, r, makeBatch(t, 1, 10, 9), 0).BaseOffset)
	checkLog(t, r, bases)
}

// TestPreallocateAppendsRaceFills: appends that reach a running fill wait
// for it, so no zero lands on a batch. Batches of 100-400 KiB into 6 MiB
// segments meet fills at every distance: behind the gap, inside it, at a
// segment's end, and across rolls; a config change turns preallocation off
// and on midway, while a fill may still run. Every batch reads back whole
// and every file past its batches holds zeros.
func TestPreallocateAppendsRaceFills(t *testing.T) {
	mem := vfs.NewMemFS()
	cfg := Config{Dir: "/data/t-0", FS: mem, Preallocate: true, SegmentBytes: 6 << 20}
	l := openLogFsync(t, cfg)
	rng := rand.New(rand.NewPCG(7, 7))
	var bases []int64
	for i := range 120 {
		if i == 40 || i == 80 {
			c := cfg
			c.Preallocate = i == 80
			l.SetConfig(c)
		}
		b := makeBatch(t, 1+rng.IntN(4), 25<<10+rng.IntN(75<<10), int64(i))
		bases = append(bases, mustAppend(t, l, b, 0).BaseOffset)
	}
	if l.NumSegments() < 3 {
		t.Fatalf("%d segments, want rolls", l.NumSegments())
	}
	settle(l)
	checkLog(t, l, bases)
	for _, s := range l.segments() {
		checkZeroTail(t, mem, s)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	crash(l)
	r := openLogFsync(t, Config{Dir: cfg.Dir, FS: mem.CrashClone(), Preallocate: true, SegmentBytes: cfg.SegmentBytes})
	checkLog(t, r, bases)
}

// TestPreallocateCrash: power loss with a preallocated segment. What was
// fsynced survives, the reserved zeros after it are not taken for data (the
// recovered log end is the synced one, the file is cut there) and the log
// appends on; also after a roll, and after a truncation of the tail.
func TestPreallocateCrash(t *testing.T) {
	for _, tc := range []struct {
		name     string
		segBytes int64
		truncate bool
	}{
		{"one segment", 0, false},
		{"after a roll", 4 << 10, false},
		{"after a truncation", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMemFS()
			cfg := Config{Dir: "/data/t-0", FS: mem, Preallocate: true, SegmentBytes: tc.segBytes}
			l := openLogFsync(t, cfg)
			var bases []int64
			for i := range 8 {
				bases = append(bases, mustAppend(t, l, makeBatch(t, 3, 300, int64(i)), 0).BaseOffset)
			}
			if tc.segBytes > 0 && l.NumSegments() < 2 {
				t.Fatalf("%d segments, want a roll", l.NumSegments())
			}
			if tc.truncate {
				if err := l.TruncateTo(bases[5]); err != nil {
					t.Fatal(err)
				}
				bases = bases[:5]
				bases = append(bases, mustAppend(t, l, makeBatch(t, 2, 50, 6), 0).BaseOffset)
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			segs := l.segments()
			active := segs[len(segs)-1]
			if alloc := settle(l); alloc <= active.size.Load() {
				t.Fatalf("active segment not preallocated: alloc %d, size %d", alloc, active.size.Load())
			}
			// A fill's fsync would make the next batch durable too.
			noFill := cfg
			noFill.Preallocate = false
			l.SetConfig(noFill)
			synced := l.LogEndOffset()
			mustAppend(t, l, makeBatch(t, 1, 100, 9), 0) // not synced: lost

			cfg.FS = mem.CrashClone()
			r := openLogFsync(t, cfg)
			if got := r.LogEndOffset(); got != synced {
				t.Fatalf("log end after the crash %d, want the synced %d", got, synced)
			}
			checkLog(t, r, bases)
			rs := r.segments()
			ra := rs[len(rs)-1]
			if n := fileLen(t, cfg.FS, ra.path); n != ra.size.Load() {
				t.Fatalf("recovered active segment: file %d bytes, batches %d (zero tail kept)", n, ra.size.Load())
			}
			bases = append(bases, mustAppend(t, r, makeBatch(t, 1, 100, 10), 0).BaseOffset)
			if err := r.Sync(); err != nil {
				t.Fatal(err)
			}
			// A second crash right after: the new batch follows the old ones.
			cfg.FS = cfg.FS.(*vfs.MemFS).CrashClone()
			r2 := openLogFsync(t, cfg)
			checkLog(t, r2, bases)
		})
	}
}

// TestPreallocateOS: on the operating system's filesystem the zeros ahead
// of the batches are written blocks, not a reservation (fallocate) or a hole,
// so an append over them changes no file metadata; the zero-copy range of a
// read stops at the log end, and recovery cuts the zeros.
func TestPreallocateOS(t *testing.T) {
	dir := t.TempDir()
	l := openLogFsync(t, Config{Dir: dir, Preallocate: true})
	var bases []int64
	for i := range 4 {
		bases = append(bases, mustAppend(t, l, makeBatch(t, 5, 200, int64(i)), 0).BaseOffset)
	}
	alloc := settle(l)
	path := filepath.Join(dir, "00000000000000000000.log")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// The first append started a fill preallocGap past its end.
	if fi.Size() != alloc || alloc < preallocGap+preallocChunk {
		t.Fatalf("file %d bytes, alloc %d: want at least %d filled", fi.Size(), alloc, preallocGap+preallocChunk)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 < preallocChunk {
		t.Fatalf("file holds %d bytes of blocks: the zeros are a hole, not written", st.Blocks*512)
	}
	checkLog(t, l, bases)
	rr, err := l.ReadRange(0, 1<<30, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	var sent int64
	for _, c := range rr.Chunks {
		sent += c.Len
	}
	rr.Release()
	if sent != l.Size() || rr.NextOffset != l.LogEndOffset() {
		t.Fatalf("zero-copy range: %d bytes up to offset %d, want %d bytes up to %d", sent, rr.NextOffset, l.Size(), l.LogEndOffset())
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	crash(l)
	r := openLogFsync(t, Config{Dir: dir, Preallocate: true})
	checkLog(t, r, bases)
	if fi, _ := os.Stat(path); fi.Size() != r.Size() {
		t.Fatalf("after recovery the file is %d bytes, batches %d", fi.Size(), r.Size())
	}
}

// TestPreallocateFillFails: a fill whose write fails (a full disk) leaves
// the log appending as before, without preallocation, and the half-written
// zeros it left past the batches are cut at Close and at recovery.
func TestPreallocateFillFails(t *testing.T) {
	fs := vfs.NewFaultFS(vfs.NewMemFS())
	cfg := Config{Dir: "/data/t-0", FS: fs, Preallocate: true}
	l := openLogFsync(t, cfg)
	// The append's own write runs; the fill's first write fails.
	flt := fs.Add(&vfs.Fault{Op: vfs.OpWrite, Match: vfs.Suffix(".log"), Skip: 1, Fail: true, Err: syscall.ENOSPC})
	bases := []int64{mustAppend(t, l, makeBatch(t, 2, 100, 1), 0).BaseOffset}
	alloc := settle(l)
	select {
	case <-flt.Hit():
	default:
		t.Fatal("no fill wrote after the append")
	}
	fs.Clear(flt)
	seg := l.segments()[0]
	if n := fileLen(t, fs, seg.path); n <= seg.size.Load() || alloc < n {
		t.Fatalf("file %d bytes after the failed fill, batches %d, alloc %d: want a torn zero tail within alloc", n, seg.size.Load(), alloc)
	}
	for i := range 20 {
		bases = append(bases, mustAppend(t, l, makeBatch(t, 3, 2000, int64(i)), 0).BaseOffset)
	}
	if got := settle(l); got != alloc {
		t.Fatalf("a fill ran after one failed: alloc %d, was %d", got, alloc)
	}
	checkLog(t, l, bases)
	checkZeroTail(t, fs, seg)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := fileLen(t, fs, seg.path); n != seg.size.Load() {
		t.Fatalf("after Close the file is %d bytes, batches %d", n, seg.size.Load())
	}
	r := openLogFsync(t, cfg)
	checkLog(t, r, bases)
}
