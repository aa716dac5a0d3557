package commitlog

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/gregor-dev/gregor/internal/record"
	"github.com/gregor-dev/gregor/internal/vfs"
)

// writeCrashed appends n two-record batches and abandons the log without a
// clean shutdown. It returns the end position of each batch in the last
// segment file and the path of that file.
func writeCrashed(t *testing.T, dir string, n int) (ends []int64, path string) {
	t.Helper()
	l := openLog(t, Config{Dir: dir, IndexIntervalBytes: 256})
	for i := 0; i < n; i++ {
		mustAppend(t, l, makeBatch(t, 2, 100, int64(i)), 1)
		ends = append(ends, l.activeLocked().size.Load())
	}
	path = l.activeLocked().path
	crash(l)
	return ends, path
}

func TestLogCrashRecovery(t *testing.T) {
	const n = 20
	cases := []struct {
		name string
		// damage changes the file and returns how many batches survive.
		damage func(t *testing.T, path string, ends []int64) int
	}{
		{"intact", func(t *testing.T, path string, ends []int64) int { return n }},
		{"torn mid batch", func(t *testing.T, path string, ends []int64) int {
			must(t, os.Truncate(path, ends[n-2]+30))
			return n - 1
		}},
		{"torn mid header", func(t *testing.T, path string, ends []int64) int {
			must(t, os.Truncate(path, ends[n-3]+5))
			return n - 2
		}},
		{"garbage appended", func(t *testing.T, path string, ends []int64) int {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, err = f.Write([]byte("this is not a record batch at all, just junk bytes............"))
			must(t, err)
			must(t, f.Close())
			return n
		}},
		{"zero filled tail", func(t *testing.T, path string, ends []int64) int {
			must(t, os.Truncate(path, ends[n-1]+4096))
			return n
		}},
		{"flipped byte in last batch", func(t *testing.T, path string, ends []int64) int {
			flipByte(t, path, ends[n-1]-10)
			return n - 1
		}},
		{"flipped crc in middle batch", func(t *testing.T, path string, ends []int64) int {
			flipByte(t, path, ends[9]+17)
			return 10
		}},
		{"huge length", func(t *testing.T, path string, ends []int64) int {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			must(t, err)
			_, err = f.WriteAt([]byte{0x7f, 0xff, 0xff, 0xff}, ends[14]+8)
			must(t, err)
			must(t, f.Close())
			return 15
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ends, path := writeCrashed(t, dir, n)
			keep := c.damage(t, path, ends)
			l := openLog(t, Config{Dir: dir, IndexIntervalBytes: 256})
			if got, want := l.LogEndOffset(), int64(2*keep); got != want {
				t.Fatalf("LEO %d want %d", got, want)
			}
			if fi, _ := os.Stat(path); fi.Size() != ends[keep-1] {
				t.Fatalf("file size %d want %d", fi.Size(), ends[keep-1])
			}
			if got := readAll(t, l); len(got) != keep {
				t.Fatalf("%d batches readable, want %d", len(got), keep)
			}
			info := mustAppend(t, l, makeBatch(t, 1, 10, 1), 2)
			if info.BaseOffset != int64(2*keep) {
				t.Fatalf("append after recovery at %d", info.BaseOffset)
			}
			if e, end := l.EndOffsetForEpoch(1); e != 1 || end != int64(2*keep) {
				t.Fatalf("epoch 1 ends at %d,%d", e, end)
			}
			if got := readAll(t, l); len(got) != keep+1 {
				t.Fatalf("%d batches after append", len(got))
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, pos int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	b := []byte{0}
	_, err = f.ReadAt(b, pos)
	must(t, err)
	b[0] ^= 0x40
	_, err = f.WriteAt(b, pos)
	must(t, err)
}

func TestLogIndexRebuild(t *testing.T) {
	damages := map[string]func(t *testing.T, path string){
		"missing":    func(t *testing.T, path string) { must(t, os.Remove(path)) },
		"odd size":   func(t *testing.T, path string) { must(t, os.WriteFile(path, []byte{1, 2, 3}, 0o644)) },
		"past end":   func(t *testing.T, path string) { must(t, os.WriteFile(path, []byte{0, 0, 0, 1, 0x7f, 0, 0, 0}, 0o644)) },
		"wrong rel":  func(t *testing.T, path string) { must(t, os.WriteFile(path, []byte{0, 0, 0, 3, 0, 0, 0, 0}, 0o644)) },
		"truncated":  func(t *testing.T, path string) { must(t, os.Truncate(path, 0)) },
		"time index": func(t *testing.T, path string) { must(t, os.Remove(path[:len(path)-len(indexExt)]+timeIndexExt)) },
	}
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Dir: dir, SegmentBytes: 3000, IndexIntervalBytes: 300}
			l := openLog(t, cfg)
			for i := 0; i < 40; i++ {
				mustAppend(t, l, makeBatch(t, 1, 150, int64(100+i)), 0)
			}
			leo := l.LogEndOffset()
			must(t, l.Close())
			for _, s := range []int64{0} {
				damage(t, segmentPath(dir, s, indexExt))
			}
			damage(t, segmentPath(dir, l2LastBase(t, dir), indexExt))
			l2 := openLog(t, cfg)
			if l2.LogEndOffset() != leo {
				t.Fatalf("LEO %d want %d", l2.LogEndOffset(), leo)
			}
			for off := int64(0); off < leo; off++ {
				res, err := l2.Read(off, 1)
				must(t, err)
				h, err := record.Validate(res.Data)
				if err != nil || h.BaseOffset != off {
					t.Fatalf("Read(%d) got %d: %v", off, h.BaseOffset, err)
				}
			}
			if ts, _ := l2.MaxTimestamp(); ts != 139 {
				t.Fatalf("max timestamp %d", ts)
			}
		})
	}
}

func l2LastBase(t *testing.T, dir string) int64 {
	bases, err := listSegments(vfs.Default, dir)
	must(t, err)
	return bases[len(bases)-1]
}

func TestLogCleanShutdownSkipsScan(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Config{Dir: dir})
	for i := 0; i < 5; i++ {
		mustAppend(t, l, makeBatch(t, 1, 50, 1), 0)
	}
	path := l.activeLocked().path
	size := l.activeLocked().size.Load()
	must(t, l.Close())
	// Damage the CRC region of the last batch: a clean open must not scan.
	flipByte(t, path, size-5)
	l2 := openLog(t, Config{Dir: dir})
	if l2.LogEndOffset() != 5 {
		t.Fatalf("clean open scanned and truncated: LEO %d", l2.LogEndOffset())
	}
	crash(l2)
	l3 := openLog(t, Config{Dir: dir})
	if l3.LogEndOffset() != 4 {
		t.Fatalf("unclean open kept a corrupt batch: LEO %d", l3.LogEndOffset())
	}
}

// TestLogIndexLookupDifferential checks the sparse index lookup plus the
// header scan against a naive scan of every batch.
func TestLogIndexLookupDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, interval := range []int{1, 100, 1000, 4096, 1 << 20} {
		l := openLog(t, Config{IndexIntervalBytes: interval})
		type batch struct{ base, last, pos int64 }
		var all []batch
		for i := 0; i < 300; i++ {
			pos := l.activeLocked().size.Load()
			info := mustAppend(t, l, makeBatch(t, 1+rng.IntN(5), rng.IntN(400), 1), 0)
			all = append(all, batch{info.BaseOffset, info.LastOffset, pos})
		}
		s := l.activeLocked()
		for off := int64(0); off < l.LogEndOffset(); off++ {
			i := sort.Search(len(all), func(i int) bool { return all[i].last >= off })
			p := s.lookup(off)
			if p > all[i].pos {
				t.Fatalf("interval %d: lookup(%d)=%d past the batch at %d", interval, off, p, all[i].pos)
			}
			pos, size, err := s.find(off, 1<<62)
			if err != nil || pos != all[i].pos || int64(size) == 0 {
				t.Fatalf("interval %d: find(%d)=%d,%d,%v want %d", interval, off, pos, size, err, all[i].pos)
			}
		}
	}
}

func FuzzRecovery(f *testing.F) {
	var seed []byte
	for i := 0; i < 3; i++ {
		b := makeBatch(f, 2, 20, int64(i))
		record.SetBaseOffset(b, int64(2*i))
		seed = append(seed, b...)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-7])
	f.Add(append(append([]byte(nil), seed...), 1, 2, 3))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "00000000000000000000.log"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(Config{Dir: dir, IndexIntervalBytes: 64, UnsafeNoFsync: true})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		kept, _ := os.ReadFile(filepath.Join(dir, "00000000000000000000.log"))
		if len(kept) > len(data) || string(kept) != string(data[:len(kept)]) {
			t.Fatalf("recovery changed bytes it kept")
		}
		next := int64(0)
		sp := record.Split(kept)
		for b, ok := sp.Next(); ok; b, ok = sp.Next() {
			h, err := record.Validate(b)
			if err != nil {
				t.Fatalf("kept an invalid batch: %v", err)
			}
			if h.BaseOffset < next {
				t.Fatalf("kept a batch going backwards")
			}
			next = h.NextOffset()
		}
		if sp.Err() != nil {
			t.Fatalf("kept a torn tail: %v", sp.Err())
		}
		if l.LogEndOffset() != next {
			t.Fatalf("LEO %d, batches end at %d", l.LogEndOffset(), next)
		}
		if _, err := l.Append(makeBatch(t, 1, 1, 1), 0, 0); err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
	})
}
