package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records non-negative int64 values (nanoseconds here) in
// log-linear buckets, in the manner of HdrHistogram: values below
// 2^subBucketBits are exact; above that every power-of-two range is split into
// subBucketHalf equal buckets, so the relative error of any reported value is
// below 1/subBucketHalf (1.6%). The whole int64 range fits in a fixed array,
// so Record never allocates.
//
// A Histogram is not safe for concurrent use; give each goroutine its own and
// Merge them.
type Histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

const (
	subBucketBits  = 7
	subBucketCount = 1 << subBucketBits // values below this are exact
	subBucketHalf  = subBucketCount / 2
	// numBuckets covers values up to math.MaxInt64: bit length 63 gives the
	// largest shift, 63-subBucketBits, and v>>shift < subBucketCount.
	numBuckets = (63-subBucketBits)*subBucketHalf + subBucketCount
)

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < subBucketCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBucketBits // >= 1
	return shift*subBucketHalf + int(v>>shift)
}

// bucketRange returns the smallest and largest value that fall in bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subBucketCount {
		return int64(i), int64(i)
	}
	shift := i/subBucketHalf - 1
	sub := int64(i%subBucketHalf + subBucketHalf)
	lo = sub << shift
	return lo, lo + (int64(1) << shift) - 1
}

// Record adds one value; negative values count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
}

// RecordDuration adds one duration.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Merge adds all of o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Min is the smallest recorded value (0 when empty).
func (h *Histogram) Min() int64 { return h.min }

// Max is the largest recorded value, exact (0 when empty).
func (h *Histogram) Max() int64 { return h.max }

// Mean is the exact mean of the recorded values (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the value at quantile q in [0, 1]: the value of the
// ceil(q*n)-th smallest record (nearest rank), reported as the upper edge of
// its bucket clamped to [Min, Max]. It is within one bucket width (< 1.6%) of
// the exact value. An empty histogram returns 0.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			return min(max(hi, h.min), h.max)
		}
	}
	return h.max
}

// Summary condenses a latency histogram to the numbers the report shows.
type Summary struct {
	Count uint64        `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summarize returns h's summary.
func (h *Histogram) Summarize() Summary {
	return Summary{
		Count: h.n,
		Mean:  time.Duration(h.Mean()),
		P50:   time.Duration(h.Quantile(0.50)),
		P90:   time.Duration(h.Quantile(0.90)),
		P99:   time.Duration(h.Quantile(0.99)),
		P999:  time.Duration(h.Quantile(0.999)),
		Max:   time.Duration(h.max),
	}
}
