package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBenchBucketRangeCoversOnce(t *testing.T) {
	// Every bucket's range starts right after the previous one ends, and a
	// value maps back to the bucket whose range holds it.
	var prevHi int64 = -1
	for i := range numBuckets {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if hi < lo {
			t.Fatalf("bucket %d: hi %d < lo %d", i, hi, lo)
		}
		for _, v := range []int64{lo, hi, lo + (hi-lo)/2} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		prevHi = hi
		if hi == math.MaxInt64 {
			if i != numBuckets-1 {
				t.Fatalf("int64 range ends at bucket %d of %d", i, numBuckets)
			}
			return
		}
	}
	t.Fatalf("buckets end at %d, before MaxInt64", prevHi)
}

// reference is the nearest-rank quantile of a sorted slice.
func reference(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = max(rank, 1)
	return sorted[rank-1]
}

func TestBenchHistogramQuantilesMatchSortedReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	tests := []struct {
		name string
		n    int
		gen  func() int64
	}{
		{"small exact", 1000, func() int64 { return r.Int64N(subBucketCount) }},
		{"uniform ms", 20000, func() int64 { return r.Int64N(int64(10 * time.Millisecond)) }},
		{"lognormal", 50000, func() int64 { return int64(math.Exp(r.NormFloat64()*1.5 + 13)) }},
		{"heavy tail", 50000, func() int64 {
			if r.IntN(1000) == 0 {
				return int64(time.Second) + r.Int64N(int64(time.Second))
			}
			return 100_000 + r.Int64N(50_000)
		}},
		{"single value", 10, func() int64 { return 123456789 }},
		{"one record", 1, func() int64 { return 42 }},
		{"huge", 1000, func() int64 { return math.MaxInt64 - r.Int64N(1<<40) }},
	}
	quantiles := []float64{0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 0.9999, 1}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			vals := make([]int64, tc.n)
			for i := range vals {
				vals[i] = tc.gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			if h.Count() != uint64(tc.n) || h.Min() != vals[0] || h.Max() != vals[len(vals)-1] {
				t.Fatalf("count/min/max = %d/%d/%d, want %d/%d/%d", h.Count(), h.Min(), h.Max(), tc.n, vals[0], vals[len(vals)-1])
			}
			for _, q := range quantiles {
				want := reference(vals, q)
				got := h.Quantile(q)
				// The histogram reports the upper edge of the bucket holding
				// the reference value: never below it, and above it by
				// less than one bucket width.
				lo, hi := bucketRange(bucketOf(want))
				if got < want || got > hi {
					t.Fatalf("q=%v: got %d, want %d (bucket [%d,%d])", q, got, want, lo, hi)
				}
				if rel := float64(got-want) / float64(max(want, 1)); rel > 1.0/subBucketHalf {
					t.Fatalf("q=%v: relative error %v > %v", q, rel, 1.0/subBucketHalf)
				}
			}
		})
	}
}

func TestBenchHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for i := range int64(10000) {
		v := i * i
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	if a.counts != all.counts || a.n != all.n || a.min != all.min || a.max != all.max || a.sum != all.sum {
		t.Fatalf("merged histogram differs from the one that saw every value")
	}
	var empty Histogram
	a.Merge(&empty)
	if a.n != all.n {
		t.Fatalf("merging an empty histogram changed the count")
	}
	if s := empty.Summarize(); s != (Summary{}) {
		t.Fatalf("empty summary = %+v", s)
	}
}

func TestBenchHistogramNegativeIsZero(t *testing.T) {
	var h Histogram
	h.Record(-5)
	if h.Min() != 0 || h.Quantile(1) != 0 {
		t.Fatalf("negative value not clamped: min %d q1 %d", h.Min(), h.Quantile(1))
	}
}

func TestBenchHistogramRecordDoesNotAllocate(t *testing.T) {
	var h Histogram
	n := testing.AllocsPerRun(1000, func() { h.Record(123456) })
	if n != 0 {
		t.Fatalf("%v allocs per Record", n)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	v := int64(1)
	for b.Loop() {
		h.Record(v)
		v = v*3 + 1
		if v > 1<<40 {
			v = 1
		}
	}
}
