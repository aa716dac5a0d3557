package commitlog

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/record"
)

func TestLogAppendReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 4096, IndexIntervalBytes: 512}
	l := openLog(t, cfg)
	const batches = 300
	var want []int64
	for i := 0; i < batches; i++ {
		n := 1 + i%4
		info := mustAppend(t, l, makeBatch(t, n, 40, int64(1000+i)), 0)
		if info.LastOffset-info.BaseOffset != int64(n-1) {
			t.Fatalf("info %+v", info)
		}
		want = append(want, info.BaseOffset)
	}
	if l.NumSegments() < 10 {
		t.Fatalf("only %d segments", l.NumSegments())
	}
	check := func(l *Log) {
		t.Helper()
		got := readAll(t, l)
		if len(got) != len(want) {
			t.Fatalf("read %d batches, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("batch %d base %d want %d", i, got[i], want[i])
			}
		}
		// Every offset reads the batch holding it first.
		for off := int64(0); off < l.LogEndOffset(); off++ {
			res, err := l.Read(off, 1)
			if err != nil {
				t.Fatalf("Read(%d): %v", off, err)
			}
			h, err := record.Validate(res.Data)
			if err != nil || h.BaseOffset > off || h.LastOffset() < off || res.NextOffset != h.NextOffset() {
				t.Fatalf("Read(%d): one batch expected, got %+v err %v", off, h, err)
			}
		}
		if res, err := l.Read(l.LogEndOffset(), 100); err != nil || len(res.Data) != 0 {
			t.Fatalf("read at LEO: %v %d bytes", err, len(res.Data))
		}
		if _, err := l.Read(l.LogEndOffset()+1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read past LEO: %v", err)
		}
	}
	check(l)
	leo := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdown)); err != nil {
		t.Fatalf("no clean shutdown marker: %v", err)
	}
	l2 := openLog(t, cfg)
	if l2.LogEndOffset() != leo {
		t.Fatalf("LEO after reopen %d want %d", l2.LogEndOffset(), leo)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdown)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker not removed on open: %v", err)
	}
	check(l2)
	// Reads honour maxBytes but always return one batch (KIP-74).
	res, err := l2.Read(0, 1<<20)
	if err != nil || len(res.Data) > 4096 {
		t.Fatalf("read crossed a segment: %d bytes %v", len(res.Data), err)
	}
	res, err = l2.ReadUpTo(0, 1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	sp := record.Split(res.Data)
	for b, ok := sp.Next(); ok; b, ok = sp.Next() {
		h, _ := record.ParseHeader(b)
		if h.BaseOffset >= 3 {
			t.Fatalf("ReadUpTo returned batch at %d past limit 3", h.BaseOffset)
		}
	}
}

func TestLogRoll(t *testing.T) {
	t.Run("bytes", func(t *testing.T) {
		l := openLog(t, Config{SegmentBytes: 1000})
		b := makeBatch(t, 1, 300, 1)
		for i := 0; i < 6; i++ {
			mustAppend(t, l, append([]byte(nil), b...), 0)
		}
		// ~370-byte batches: two per 1000-byte segment.
		if got := l.NumSegments(); got != 3 {
			t.Fatalf("%d segments, want 3", got)
		}
	})
	t.Run("time", func(t *testing.T) {
		clk := newClock()
		l := openLog(t, Config{SegmentMs: time.Hour, Now: clk.Now})
		mustAppend(t, l, makeBatch(t, 1, 10, 1), 0)
		clk.Advance(30 * time.Minute)
		mustAppend(t, l, makeBatch(t, 1, 10, 1), 0)
		if l.NumSegments() != 1 {
			t.Fatalf("rolled too early")
		}
		clk.Advance(31 * time.Minute)
		mustAppend(t, l, makeBatch(t, 1, 10, 1), 0)
		if l.NumSegments() != 2 {
			t.Fatalf("%d segments, want 2", l.NumSegments())
		}
		if got := readAll(t, l); len(got) != 3 {
			t.Fatalf("read %v", got)
		}
	})
	t.Run("index full", func(t *testing.T) {
		// segment.index.bytes 24: three offset entries or two time
		// entries (12 bytes each), then a roll. An entry every batch
		// after the first (index.interval.bytes 1), timestamps rising.
		l := openLog(t, Config{SegmentIndexBytes: 24, IndexIntervalBytes: 1})
		for i := range 12 {
			mustAppend(t, l, makeBatch(t, 1, 10, int64(1000+i)), 0)
		}
		if n := l.NumSegments(); n < 4 {
			t.Fatalf("%d segments for 12 batches with room for 2 time entries each", n)
		}
		for _, s := range l.segments() {
			if len(s.idx) > 3 || len(s.tidx) > 2 {
				t.Fatalf("segment at %d holds %d offset and %d time entries", s.base, len(s.idx), len(s.tidx))
			}
		}
		if got := readAll(t, l); len(got) != 12 {
			t.Fatalf("read %d batches", len(got))
		}
	})
	t.Run("jitter", func(t *testing.T) {
		// segment.jitter.ms: each segment rolls at segment.ms less its
		// own draw from [0, jitter). Half-way through, some of 24 logs
		// have rolled and some not (all 24 on one side: odds 2^-23);
		// at segment.ms every one has.
		clk := newClock()
		logs := make([]*Log, 24)
		for i := range logs {
			logs[i] = openLog(t, Config{SegmentMs: time.Hour, SegmentJitter: 2 * time.Hour, Now: clk.Now})
			mustAppend(t, logs[i], makeBatch(t, 1, 10, 1), 0)
		}
		rolled := func() (n int) {
			for _, l := range logs {
				mustAppend(t, l, makeBatch(t, 1, 10, 1), 0)
				if l.NumSegments() > 1 {
					n++
				}
			}
			return n
		}
		if n := rolled(); n != 0 {
			t.Fatalf("%d logs rolled with no time passed", n)
		}
		clk.Advance(30 * time.Minute)
		if n := rolled(); n == 0 || n == len(logs) {
			t.Fatalf("%d of %d logs rolled half-way through segment.ms", n, len(logs))
		}
		clk.Advance(30 * time.Minute)
		if n := rolled(); n != len(logs) {
			t.Fatalf("%d of %d logs rolled at segment.ms", n, len(logs))
		}
	})
}

func TestLogRetention(t *testing.T) {
	t.Run("bytes", func(t *testing.T) {
		l := openLog(t, Config{SegmentBytes: 1000, RetentionBytes: 2000, RetentionMs: -1})
		for i := 0; i < 20; i++ {
			mustAppend(t, l, makeBatch(t, 1, 300, 1), 0)
		}
		n, err := l.EnforceRetention()
		if err != nil || n == 0 {
			t.Fatalf("deleted %d: %v", n, err)
		}
		// Kafka deletes a segment only if the log stays at or above
		// retention.bytes without it.
		if l.Size() < 2000 || l.Size() > 2000+1000 {
			t.Fatalf("size %d after retention", l.Size())
		}
		segs := l.segments()
		if l.LogStartOffset() != segs[0].base {
			t.Fatalf("log start %d, first segment %d", l.LogStartOffset(), segs[0].base)
		}
		if _, err := l.Read(0, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read below start: %v", err)
		}
		if got := readAll(t, l); got[0] != l.LogStartOffset() {
			t.Fatalf("first batch %d", got[0])
		}
	})
	t.Run("time", func(t *testing.T) {
		clk := newClock()
		l := openLog(t, Config{SegmentBytes: 1000, RetentionMs: time.Hour, Now: clk.Now})
		now := clk.Now().UnixMilli()
		for i := 0; i < 6; i++ { // three segments, old timestamps
			mustAppend(t, l, makeBatch(t, 1, 300, now-2*time.Hour.Milliseconds()), 0)
		}
		for i := 0; i < 4; i++ { // two fresh segments, the last active
			mustAppend(t, l, makeBatch(t, 1, 300, now), 0)
		}
		n, err := l.EnforceRetention()
		if err != nil || n != 3 {
			t.Fatalf("deleted %d, want 3: %v", n, err)
		}
		if l.LogStartOffset() != 6 {
			t.Fatalf("log start %d want 6", l.LogStartOffset())
		}
		clk.Advance(3 * time.Hour)
		n, err = l.EnforceRetention()
		if err != nil || n != 1 || l.NumSegments() != 1 {
			t.Fatalf("active segment must stay: deleted %d, %d left, %v", n, l.NumSegments(), err)
		}
	})
}

func TestLogSetLogStartOffset(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Config{Dir: dir, SegmentBytes: 1000})
	for i := 0; i < 10; i++ {
		mustAppend(t, l, makeBatch(t, 2, 300, 1), 0)
	}
	before := l.NumSegments()
	if err := l.SetLogStartOffset(7); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 7 || l.NumSegments() >= before {
		t.Fatalf("start %d, segments %d -> %d", l.LogStartOffset(), before, l.NumSegments())
	}
	if err := l.SetLogStartOffset(l.LogEndOffset() + 1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("beyond LEO: %v", err)
	}
	res, err := l.Read(7, 1)
	if err != nil || len(res.Data) == 0 {
		t.Fatalf("read at start: %v", err)
	}
	crash(l)
	l2 := openLog(t, Config{Dir: dir, SegmentBytes: 1000})
	if l2.LogStartOffset() != 7 {
		t.Fatalf("log start not persisted: %d", l2.LogStartOffset())
	}
}

func TestLogTruncateToAndEpochs(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Config{Dir: dir, SegmentBytes: 1000})
	// epoch 0: offsets 0-9, epoch 2: 10-19, epoch 5: 20-29 (2 records per batch).
	for i := 0; i < 15; i++ {
		epoch := int32([]int{0, 2, 5}[i/5])
		mustAppend(t, l, makeBatch(t, 2, 200, 1), epoch)
	}
	cases := []struct {
		req       int32
		wantEpoch int32
		wantEnd   int64
	}{
		{0, 0, 10}, {1, 0, 10}, {2, 2, 20}, {4, 2, 20}, {5, 5, 30}, {6, -1, -1}, {-1, -1, -1},
	}
	for _, c := range cases {
		e, off := l.EndOffsetForEpoch(c.req)
		if e != c.wantEpoch || off != c.wantEnd {
			t.Fatalf("EndOffsetForEpoch(%d) = %d,%d want %d,%d", c.req, e, off, c.wantEpoch, c.wantEnd)
		}
	}
	if err := l.TruncateTo(15); err != nil { // mid batch 14-15: cut at 14
		t.Fatal(err)
	}
	if l.LogEndOffset() != 14 || l.LatestEpoch() != 2 {
		t.Fatalf("after truncate LEO %d epoch %d", l.LogEndOffset(), l.LatestEpoch())
	}
	if e, off := l.EndOffsetForEpoch(2); e != 2 || off != 14 {
		t.Fatalf("EndOffsetForEpoch(2) after truncate = %d,%d", e, off)
	}
	if got := readAll(t, l); len(got) != 7 || got[6] != 12 {
		t.Fatalf("batches after truncate %v", got)
	}
	info := mustAppend(t, l, makeBatch(t, 1, 10, 1), 7)
	if info.BaseOffset != 14 {
		t.Fatalf("append after truncate at %d", info.BaseOffset)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, Config{Dir: dir, SegmentBytes: 1000})
	if l2.LogEndOffset() != 15 || l2.LatestEpoch() != 7 {
		t.Fatalf("reopen LEO %d epoch %d", l2.LogEndOffset(), l2.LatestEpoch())
	}
	if e, off := l2.EndOffsetForEpoch(5); e != 2 || off != 14 {
		t.Fatalf("EndOffsetForEpoch(5) = %d,%d", e, off)
	}
	// Truncating below the start resets the log.
	if err := l2.SetLogStartOffset(4); err != nil {
		t.Fatal(err)
	}
	if err := l2.TruncateTo(2); err != nil {
		t.Fatal(err)
	}
	if l2.LogEndOffset() != 2 || l2.LogStartOffset() != 2 || l2.NumSegments() != 1 {
		t.Fatalf("reset: LEO %d start %d segs %d", l2.LogEndOffset(), l2.LogStartOffset(), l2.NumSegments())
	}
}

func TestLogTimestamps(t *testing.T) {
	l := openLog(t, Config{SegmentBytes: 2000, IndexIntervalBytes: 300})
	// Batch i has records at 1000+10i, 1000+10i+1, 1000+10i+2.
	for i := 0; i < 40; i++ {
		mustAppend(t, l, makeBatch(t, 3, 50, int64(1000+10*i)), 0)
	}
	cases := []struct {
		ts, off, gotTs int64
		found          bool
	}{
		{0, 0, 1000, true},
		{1000, 0, 1000, true},
		{1001, 1, 1001, true},
		{1003, 3, 1010, true},
		{1250, 75, 1250, true},
		{1392, 119, 1392, true},
		{1393, -1, -1, false},
	}
	for _, c := range cases {
		off, ts, found := l.OffsetForTimestamp(c.ts)
		if off != c.off || ts != c.gotTs || found != c.found {
			t.Fatalf("OffsetForTimestamp(%d) = %d,%d,%v want %d,%d,%v", c.ts, off, ts, found, c.off, c.gotTs, c.found)
		}
	}
	if ts, off := l.MaxTimestamp(); ts != 1392 || off != 119 {
		t.Fatalf("MaxTimestamp = %d,%d", ts, off)
	}
	info, err := l.Append(makeBatch(t, 2, 5, 1), 0, 5000)
	if err != nil || info.LogAppendTime != 5000 || info.MaxTimestamp != 5000 {
		t.Fatalf("log append time: %+v %v", info, err)
	}
	if off, ts, _ := l.OffsetForTimestamp(2000); off != 120 || ts != 5000 {
		t.Fatalf("log-append-time lookup %d %d", off, ts)
	}
	// Every record of a LogAppendTime batch has its time: the first.
	if ts, off := l.MaxTimestamp(); ts != 5000 || off != 120 {
		t.Fatalf("MaxTimestamp after a log-append-time batch = %d,%d, want 5000,120", ts, off)
	}
}

// TestLogMaxTimestampNamesTheRecord (ListOffsets MAX_TIMESTAMP, as Kafka
// since KAFKA-16310): the offset of the first record with the largest
// timestamp, not the last offset of its batch. librdkafka's 0081_admin
// produces timestamps +100, +400, +250 and expects offset 1.
func TestLogMaxTimestampNamesTheRecord(t *testing.T) {
	l := openLog(t, Config{})
	batch := func(base int64, deltas ...int64) []byte {
		rs := make([]record.Record, len(deltas))
		for i, d := range deltas {
			rs[i] = record.Record{Key: []byte{'k'}, Value: []byte{'v'}, TimestampDelta: d}
		}
		b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: base, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Records: rs})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mustAppend(t, l, batch(1000, 100, 400, 250), 0)
	if ts, off := l.MaxTimestamp(); ts != 1400 || off != 1 {
		t.Fatalf("MaxTimestamp = %d,%d, want 1400,1", ts, off)
	}
	// A later batch with the same maximum leaves the first record named;
	// a larger one, in the middle of its batch, names that record.
	mustAppend(t, l, batch(1400, 0, -5), 0)
	if ts, off := l.MaxTimestamp(); ts != 1400 || off != 1 {
		t.Fatalf("after an equal maximum: MaxTimestamp = %d,%d, want 1400,1", ts, off)
	}
	mustAppend(t, l, batch(2000, 0, 7, 7, 3), 0)
	if ts, off := l.MaxTimestamp(); ts != 2007 || off != 6 {
		t.Fatalf("MaxTimestamp = %d,%d, want 2007,6", ts, off)
	}
}

// TestLogReadRange is differential: the zero-copy ranges (which jump with
// the sparse index) must cover exactly the bytes the copying read returns,
// for every start offset, size limit and high-watermark limit.
func TestLogReadRange(t *testing.T) {
	l := openLog(t, Config{SegmentBytes: 4000, IndexIntervalBytes: 256})
	for i := 0; i < 30; i++ {
		mustAppend(t, l, makeBatch(t, 1+i%3, 100+7*i, 1), 0)
	}
	leo := l.LogEndOffset()
	for off := int64(0); off < leo; off++ {
		for _, maxBytes := range []int{1, 100, 600, 1000, 3000, 1 << 20} {
			for _, limit := range []int64{math.MaxInt64, leo - 5, off + 2} {
				rr, err := l.ReadRange(off, maxBytes, limit)
				if err != nil {
					t.Fatalf("ReadRange(%d, %d, %d): %v", off, maxBytes, limit, err)
				}
				var got []byte
				for _, c := range rr.Chunks {
					buf := make([]byte, c.Len)
					if _, err := c.File.ReadAt(buf, c.Pos); err != nil {
						t.Fatal(err)
					}
					got = append(got, buf...)
				}
				rr.Release()
				res, err := l.ReadUpTo(off, maxBytes, limit)
				if err != nil || string(res.Data) != string(got) || res.NextOffset != rr.NextOffset {
					t.Fatalf("ReadRange(%d, %d, %d) and ReadUpTo disagree: %d vs %d bytes, next %d vs %d (%v)",
						off, maxBytes, limit, len(got), len(res.Data), rr.NextOffset, res.NextOffset, err)
				}
			}
		}
	}
}

func TestLogReadDuringRetention(t *testing.T) {
	l := openLog(t, Config{SegmentBytes: 1000, RetentionBytes: 1})
	for i := 0; i < 10; i++ {
		mustAppend(t, l, makeBatch(t, 1, 300, 1), 0)
	}
	rr, err := l.ReadRange(0, 1000, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	// The deleted segment's file stays readable until Release.
	buf := make([]byte, rr.Chunks[0].Len)
	if _, err := rr.Chunks[0].File.ReadAt(buf, rr.Chunks[0].Pos); err != nil {
		t.Fatalf("read of deleted segment: %v", err)
	}
	if _, err := record.Validate(buf[:len(buf)]); err != nil {
		if sp := record.Split(buf); sp.Err() != nil {
			t.Fatal(err)
		}
	}
	rr.Release()
	if _, err := l.Read(0, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start after retention: %v", err)
	}
}

func TestLogConcurrentReaders(t *testing.T) {
	l := openLog(t, Config{SegmentBytes: 8000, RetentionBytes: 30000, IndexIntervalBytes: 500})
	const total = 600
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 4)
	for r := 0; r < 3; r++ {
		wg.Go(func() {
			off := int64(0)
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := l.Read(off, 2000)
				if errors.Is(err, ErrOffsetOutOfRange) {
					off = l.LogStartOffset()
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				sp := record.Split(res.Data)
				for b, ok := sp.Next(); ok; b, ok = sp.Next() {
					if _, err := record.Validate(b); err != nil {
						errc <- err
						return
					}
				}
				if len(res.Data) > 0 {
					off = res.NextOffset
				} else if off >= total {
					off = 0
				}
			}
		})
	}
	wg.Go(func() {
		for i := 0; i < total; i++ {
			if _, err := l.Append(makeBatch(t, 1, 100, 1), 0, 0); err != nil {
				errc <- err
				return
			}
			if i%50 == 0 {
				if _, err := l.EnforceRetention(); err != nil {
					errc <- err
					return
				}
			}
		}
		close(stop)
	})
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}

func TestLogGroupCommitSync(t *testing.T) {
	l := openLogFsync(t, Config{})
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 20; i++ {
				info, err := l.Append(makeBatch(t, 1, 100, 1), 0, 0)
				if err == nil {
					err = l.Sync()
				}
				if err == nil && l.DurableOffset() <= info.LastOffset {
					err = errors.New("Sync returned before the append was durable")
				}
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if l.DurableOffset() != l.LogEndOffset() {
		t.Fatalf("durable %d LEO %d", l.DurableOffset(), l.LogEndOffset())
	}
}

func TestLogStickyWriteError(t *testing.T) {
	l := openLog(t, Config{})
	mustAppend(t, l, makeBatch(t, 1, 10, 1), 0)
	l.activeLocked().f.Close() // the next write fails
	if _, err := l.Append(makeBatch(t, 1, 10, 1), 0, 0); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("first failing append: %v", err)
	}
	if _, err := l.Append(makeBatch(t, 1, 10, 1), 0, 0); !errors.Is(err, ErrLogFailed) || !errors.Is(err, os.ErrClosed) {
		t.Fatalf("failure not sticky: %v", err)
	}
	if l.LogEndOffset() != 1 {
		t.Fatalf("LEO moved on failure: %d", l.LogEndOffset())
	}
}

func TestLogAppendAllocs(t *testing.T) {
	l := openLog(t, Config{SegmentBytes: 1 << 30})
	b := makeBatch(t, 1, 1000, 1)
	for i := 0; i < 100; i++ { // warm up index slices
		mustAppend(t, l, b, 0)
	}
	allocs := testing.AllocsPerRun(500, func() {
		if _, err := l.Append(b, 0, 0); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Append allocates %v times per call", allocs)
	}
}

// TestLogAssignEpoch: a new leader's epoch starts at the log end before any
// append, so the previous epoch ends there; the entry survives a reopen, an
// append in that epoch adds none, and an epoch assigned at the start offset
// of an older one replaces it.
func TestLogAssignEpoch(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Config{Dir: dir, SegmentBytes: 1000})
	if err := l.AssignEpoch(0); err != nil { // empty log: {0 at 0}
		t.Fatal(err)
	}
	if err := l.AssignEpoch(1); err != nil { // replaces {0 at 0}: same start
		t.Fatal(err)
	}
	if e, off := l.EndOffsetForEpoch(0); e != 0 || off != 0 {
		t.Fatalf("EndOffsetForEpoch(0) after epoch 1 took offset 0 = %d,%d, want 0,0", e, off)
	}
	for range 3 {
		mustAppend(t, l, makeBatch(t, 2, 50, 1), 1)
	}
	if err := l.AssignEpoch(3); err != nil {
		t.Fatal(err)
	}
	if e, off := l.EndOffsetForEpoch(1); e != 1 || off != 6 {
		t.Fatalf("EndOffsetForEpoch(1) = %d,%d, want 1,6 (where epoch 3 starts)", e, off)
	}
	if e, off := l.EndOffsetForEpoch(3); e != 3 || off != 6 {
		t.Fatalf("EndOffsetForEpoch(3) before any append = %d,%d, want 3,6", e, off)
	}
	mustAppend(t, l, makeBatch(t, 2, 50, 1), 3)
	if err := l.AssignEpoch(3); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, Config{Dir: dir, SegmentBytes: 1000})
	if e, off := l2.EndOffsetForEpoch(2); e != 1 || off != 6 {
		t.Fatalf("reopened: EndOffsetForEpoch(2) = %d,%d, want 1,6", e, off)
	}
	if e, off := l2.EndOffsetForEpoch(3); e != 3 || off != 8 {
		t.Fatalf("reopened: EndOffsetForEpoch(3) = %d,%d, want 3,8", e, off)
	}
}
