package commitlog

import "testing"

// Benchmarks the storage engineer's bench_test.go does not cover: the
// zero-copy read path (ReadRange, file ranges for sendfile), reads bounded by
// the high watermark as the fetch path issues them (ReadUpTo), and appends
// that wait for their own fsync (acks=all with flush.messages=1).

func BenchmarkReadRange(b *testing.B) {
	l := openLog(b, Config{SegmentBytes: 8 << 20})
	batch := makeBatch(b, 1, 1024-100, 1)
	for range 10000 {
		mustAppend(b, l, batch, 0)
	}
	leo := l.LogEndOffset()
	b.ReportAllocs()
	off := int64(0)
	for b.Loop() {
		res, err := l.ReadRange(off, 64<<10, leo)
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for _, c := range res.Chunks {
			n += c.Len
		}
		b.SetBytes(n)
		off = res.NextOffset
		res.Release()
		if off >= leo {
			off = 0
		}
	}
}

func BenchmarkReadUpToTail(b *testing.B) {
	// A consumer at the tail: each read returns the one newest batch.
	l := openLog(b, Config{})
	batch := makeBatch(b, 1, 1024-100, 1)
	for range 1000 {
		mustAppend(b, l, batch, 0)
	}
	leo := l.LogEndOffset()
	b.ReportAllocs()
	for b.Loop() {
		res, err := l.ReadUpTo(leo-1, 1<<20, leo)
		if err != nil || len(res.Data) == 0 {
			b.Fatalf("read: %d bytes, %v", len(res.Data), err)
		}
	}
}

// BenchmarkAppendSync is the floor of an acks=all produce: one append and
// its fdatasync; the Preallocate variant appends over zeros written ahead.
func BenchmarkAppendSync(b *testing.B) {
	b.Run("grow", func(b *testing.B) { benchAppendSync(b, false) })
	b.Run("preallocate", func(b *testing.B) { benchAppendSync(b, true) })
}

func benchAppendSync(b *testing.B, prealloc bool) {
	l := openLogFsync(b, Config{Preallocate: prealloc})
	batch := makeBatch(b, 1, 1024-100, 1)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(batch, 0, 0); err != nil {
			b.Fatal(err)
		}
		if err := l.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}
