package broker

import (
	"slices"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/commitlog"
)

// TestLegacyOffsetsBefore checks the v0 walk by file modification time, which
// a live node cannot set: Kafka's legacyFetchOffsetsBefore picks the last
// segment modified at or before the timestamp and walks back from there.
func TestLegacyOffsetsBefore(t *testing.T) {
	at := func(ms int64) time.Time { return time.UnixMilli(ms) }
	now := at(10_000)
	segs := []commitlog.SegmentInfo{
		{BaseOffset: 0, Size: 100, LastModified: at(1000)},
		{BaseOffset: 40, Size: 100, LastModified: at(2000)},
		{BaseOffset: 90, Size: 100, LastModified: at(3000)},
	}
	emptyActive := append(slices.Clone(segs), commitlog.SegmentInfo{BaseOffset: 120, LastModified: at(4000)})
	for _, tc := range []struct {
		name     string
		segs     []commitlog.SegmentInfo
		logStart int64
		ts       int64
		maxNum   int
		want     []int64
	}{
		{"latest adds the log end", segs, 0, -1, 10, []int64{120, 90, 40, 0}},
		{"empty active segment adds nothing", emptyActive, 0, -1, 10, []int64{120, 90, 40, 0}},
		{"earliest", segs, 0, -2, 10, []int64{0}},
		{"earliest local", segs, 0, -4, 10, []int64{0}},
		{"log start raises the first base", segs, 25, -2, 1, []int64{25}},
		{"between two segments", segs, 0, 2500, 10, []int64{40, 0}},
		{"exactly a segment's mtime", segs, 0, 2000, 1, []int64{40}},
		{"before everything", segs, 0, 999, 10, nil},
		{"after everything but now", segs, 0, 5000, 2, []int64{90, 40}},
		{"at now", segs, 0, 10_000, 1, []int64{120}},
		{"missing file dates to zero", []commitlog.SegmentInfo{{BaseOffset: 0, Size: 1}}, 0, 0, 5, []int64{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := legacyOffsetsBefore(tc.segs, tc.logStart, 120, now, tc.ts, tc.maxNum)
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLegacyOffsetsConsumerView checks Kafka's clamp for consumers: offsets
// above the high watermark collapse into the high watermark.
func TestLegacyOffsetsConsumerView(t *testing.T) {
	for _, tc := range []struct {
		in   []int64
		hw   int64
		want []int64
	}{
		{[]int64{120, 90, 40}, 120, []int64{120, 90, 40}},
		{[]int64{120, 90, 40}, 100, []int64{100, 90, 40}},
		{[]int64{120, 90, 40}, 50, []int64{50, 40}},
		{[]int64{120}, 0, []int64{0}},
		{nil, 5, nil},
	} {
		if got := belowHighWatermark(tc.in, tc.hw); !slices.Equal(got, tc.want) {
			t.Errorf("belowHighWatermark(%v, %d) = %v, want %v", tc.in, tc.hw, got, tc.want)
		}
	}
}
