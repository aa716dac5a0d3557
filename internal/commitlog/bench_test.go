package commitlog

import (
	"testing"
)

func BenchmarkAppend(b *testing.B) {
	l := openLog(b, Config{})
	batch := makeBatch(b, 1, 1024-100, 1)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(batch, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	l := openLog(b, Config{SegmentBytes: 8 << 20})
	batch := makeBatch(b, 1, 1024-100, 1)
	for i := 0; i < 10000; i++ {
		mustAppend(b, l, batch, 0)
	}
	b.ReportAllocs()
	off := int64(0)
	for b.Loop() {
		res, err := l.Read(off, 64<<10)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(res.Data)))
		off = res.NextOffset
		if off >= l.LogEndOffset() {
			off = 0
		}
	}
}

func BenchmarkIndexLookup(b *testing.B) {
	l := openLog(b, Config{IndexIntervalBytes: 1})
	batch := makeBatch(b, 1, 10, 1)
	for i := 0; i < 100000; i++ {
		mustAppend(b, l, batch, 0)
	}
	s := l.activeLocked()
	b.ReportAllocs()
	off := int64(0)
	for b.Loop() {
		s.lookup(off)
		off = (off + 7919) % 100000
	}
}
