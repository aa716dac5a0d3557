package commitlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/record"
)

// kv is one record for the compaction tests; a nil value is a tombstone.
type kv struct {
	key, value []byte
}

// appendKVs appends one batch of the records at ts.
func appendKVs(t testing.TB, l *Log, ts int64, pid int64, codec record.Codec, kvs ...kv) AppendInfo {
	t.Helper()
	rs := make([]record.Record, len(kvs))
	for i, r := range kvs {
		rs[i] = record.Record{Key: r.key, Value: r.value}
	}
	epoch, seq := int16(-1), int32(-1)
	if pid >= 0 {
		epoch, seq = 0, 0
	}
	b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: ts, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq,
		Compression: codec, Records: rs})
	if err != nil {
		t.Fatal(err)
	}
	return mustAppend(t, l, b, 0)
}

// logRecord is a record read back, with its offset.
type logRecord struct {
	offset int64
	key    string
	value  string
	tomb   bool
}

// readRecords reads the whole log as a consumer would, validating every
// batch, and returns its records in order.
func readRecords(t testing.TB, l *Log) ([]logRecord, []record.Header) {
	t.Helper()
	var out []logRecord
	var hdrs []record.Header
	off := l.LogStartOffset()
	for {
		res, err := l.Read(off, 64<<10)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if len(res.Data) == 0 {
			break
		}
		sp := record.Split(res.Data)
		for b, ok := sp.Next(); ok; b, ok = sp.Next() {
			h, err := record.Validate(b)
			if err != nil {
				t.Fatalf("batch at %d: %v", off, err)
			}
			hdrs = append(hdrs, h)
			err = record.Records(b, h, 1<<26, func(r record.Record) error {
				o := h.BaseOffset + int64(r.OffsetDelta)
				if n := len(out); n > 0 && o <= out[n-1].offset {
					return fmt.Errorf("offset %d after %d", o, out[n-1].offset)
				}
				out = append(out, logRecord{offset: o, key: string(r.Key), value: string(r.Value), tomb: r.Value == nil})
				return nil
			})
			if err != nil {
				t.Fatalf("records at %d: %v", h.BaseOffset, err)
			}
		}
		if err := sp.Err(); err != nil {
			t.Fatal(err)
		}
		if res.NextOffset <= off {
			t.Fatalf("no progress at %d", off)
		}
		off = res.NextOffset
	}
	return out, hdrs
}

func TestLogCompactKeepsLatestPerKey(t *testing.T) {
	for _, codec := range []record.Codec{record.CodecNone, record.CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			clock := newClock()
			dir := t.TempDir()
			l := openLog(t, Config{Dir: dir, SegmentBytes: 2048, Now: clock.Now})
			ts := clock.Now().UnixMilli()
			want := map[string]int64{}
			wantVal := map[string]string{}
			for i := range 400 {
				k := fmt.Sprintf("key-%d", i%10)
				v := fmt.Sprintf("value-%d", i)
				info := appendKVs(t, l, ts, -1, codec, kv{[]byte(k), []byte(v)})
				want[k], wantVal[k] = info.BaseOffset, v
			}
			leo := l.LogEndOffset()
			active := l.segments()[l.NumSegments()-1].base
			if l.NumSegments() < 5 {
				t.Fatalf("only %d segments", l.NumSegments())
			}
			before := l.Size()
			st, err := l.Compact(CompactOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.CleanPoint != active || l.Size() >= before || l.LogEndOffset() != leo || l.LogStartOffset() != 0 {
				t.Fatalf("stats %+v size %d -> %d", st, before, l.Size())
			}
			check := func(l *Log) {
				t.Helper()
				recs, _ := readRecords(t, l)
				seen := map[string]bool{}
				for _, r := range recs {
					if r.offset >= active {
						continue // the active segment is never cleaned
					}
					if want[r.key] != r.offset && r.offset < active {
						// Only the latest per key within the cleaned range stays,
						// unless a newer one sits in the active segment.
						if want[r.key] < active {
							t.Fatalf("stale record %+v kept (latest at %d)", r, want[r.key])
						}
					}
					seen[r.key] = true
				}
				for k, off := range want {
					found := false
					for _, r := range recs {
						if r.offset == off {
							found = r.key == k && r.value == wantVal[k]
						}
					}
					if !found {
						t.Fatalf("key %s latest at %d missing", k, off)
					}
				}
			}
			check(l)
			// A second pass merges the small cleaned segments.
			if _, err := l.Compact(CompactOptions{}); err != nil {
				t.Fatal(err)
			}
			check(l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2 := openLog(t, Config{Dir: dir, SegmentBytes: 2048, Now: clock.Now})
			check(l2)
			if l2.LogEndOffset() != leo || l2.CleanerState().CleanPoint != active {
				t.Fatalf("after reopen: leo %d clean point %d", l2.LogEndOffset(), l2.CleanerState().CleanPoint)
			}
		})
	}
}

func TestLogCompactTombstones(t *testing.T) {
	clock := newClock()
	l := openLog(t, Config{SegmentBytes: 1024, Now: clock.Now})
	ts := clock.Now().UnixMilli()
	appendKVs(t, l, ts, -1, record.CodecNone, kv{[]byte("a"), []byte("1")}, kv{[]byte("b"), []byte("1")})
	tomb := appendKVs(t, l, ts, -1, record.CodecNone, kv{[]byte("a"), nil})
	for i := range 40 {
		appendKVs(t, l, ts, -1, record.CodecNone, kv{[]byte(fmt.Sprintf("filler-%d", i%5)), make([]byte, 100)})
	}
	has := func(off int64) (bool, bool) {
		recs, _ := readRecords(t, l)
		for _, r := range recs {
			if r.offset == off {
				return true, r.tomb
			}
		}
		return false, false
	}
	opts := CompactOptions{DeleteRetention: time.Hour}
	if _, err := l.Compact(opts); err != nil {
		t.Fatal(err)
	}
	if ok, isTomb := has(tomb.BaseOffset); !ok || !isTomb {
		t.Fatalf("tombstone at %d gone before delete.retention.ms", tomb.BaseOffset)
	}
	if ok, _ := has(0); ok {
		t.Fatalf("value under the tombstone kept")
	}
	clock.Advance(2 * time.Hour)
	st, err := l.Compact(opts)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := has(tomb.BaseOffset); ok || st.TombstonesRemoved != 1 {
		t.Fatalf("tombstone kept after delete.retention.ms: %+v", st)
	}
	if ok, _ := has(1); !ok {
		t.Fatalf("key b lost")
	}
}

func TestLogCompactMinLag(t *testing.T) {
	clock := newClock()
	l := openLog(t, Config{SegmentBytes: 1024, Now: clock.Now})
	for i := range 60 {
		appendKVs(t, l, clock.Now().UnixMilli(), -1, record.CodecNone, kv{[]byte("k"), make([]byte, 100)})
		if i == 30 {
			clock.Advance(time.Hour)
		}
	}
	st, err := l.Compact(CompactOptions{MinCompactionLag: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := readRecords(t, l)
	if st.Segments == 0 || st.CleanPoint > 31 || len(recs) < 29 {
		t.Fatalf("min lag not respected: %+v, %d records", st, len(recs))
	}
}

func TestLogCompactKeepsProducerLastBatchEmpty(t *testing.T) {
	l := openLog(t, Config{SegmentBytes: 1024})
	first := appendKVs(t, l, 1, 42, record.CodecNone, kv{[]byte("x"), []byte("old")}, kv{[]byte("y"), []byte("old")})
	last := appendKVs(t, l, 1, 42, record.CodecNone, kv{[]byte("x"), []byte("mid")})
	for range 30 {
		appendKVs(t, l, 1, -1, record.CodecNone, kv{[]byte("x"), make([]byte, 100)})
	}
	if _, err := l.Compact(CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	_, hdrs := readRecords(t, l)
	var gotFirst, gotLast *record.Header
	for i := range hdrs {
		switch hdrs[i].BaseOffset {
		case first.BaseOffset:
			gotFirst = &hdrs[i]
		case last.BaseOffset:
			gotLast = &hdrs[i]
		}
	}
	if gotFirst == nil || gotFirst.NumRecords != 1 || gotFirst.LastOffsetDelta != 1 {
		t.Fatalf("first batch: %+v", gotFirst)
	}
	if gotLast == nil || gotLast.NumRecords != 0 || gotLast.ProducerID != 42 || gotLast.LastOffsetDelta != 0 {
		t.Fatalf("producer's last batch not kept empty: %+v", gotLast)
	}
}

// TestLogCompactDifferential compares random workloads against a naive
// reference: key -> last record.
func TestLogCompactDifferential(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			clock := newClock()
			dir := t.TempDir()
			cfg := Config{Dir: dir, SegmentBytes: int64(600 + rng.IntN(3000)), Now: clock.Now}
			l := openLog(t, cfg)
			type ref struct {
				offset int64
				value  string
				tomb   bool
			}
			all := map[int64]logRecord{}
			nkeys := 1 + rng.IntN(30)
			for round := range 4 {
				for range 100 + rng.IntN(200) {
					n := 1 + rng.IntN(4)
					kvs := make([]kv, n)
					for i := range kvs {
						k := fmt.Sprintf("k%d", rng.IntN(nkeys))
						v := []byte(fmt.Sprintf("v%d-%d", round, rng.IntN(1000)))
						if rng.IntN(10) == 0 {
							v = nil
						}
						kvs[i] = kv{[]byte(k), v}
					}
					codec := record.Codec(rng.IntN(5))
					info := appendKVs(t, l, clock.Now().UnixMilli(), -1, codec, kvs...)
					for i, r := range kvs {
						all[info.BaseOffset+int64(i)] = logRecord{offset: info.BaseOffset + int64(i), key: string(r.key), value: string(r.value), tomb: r.value == nil}
					}
				}
				if _, err := l.Compact(CompactOptions{DeleteRetention: time.Hour}); err != nil {
					t.Fatal(err)
				}
				if rng.IntN(2) == 0 {
					if err := l.Close(); err != nil {
						t.Fatal(err)
					}
					l = openLog(t, cfg)
				}
				// Reference: every key's latest record below the clean point
				// survives at its offset; everything at or after it is intact.
				point := l.CleanerState().CleanPoint
				latest := map[string]ref{}
				for off := int64(0); off < point; off++ {
					r := all[off]
					latest[r.key] = ref{offset: off, value: r.value, tomb: r.tomb}
				}
				recs, _ := readRecords(t, l)
				got := map[int64]logRecord{}
				for _, r := range recs {
					got[r.offset] = r
				}
				for off := point; off < l.LogEndOffset(); off++ {
					if got[off] != all[off] {
						t.Fatalf("round %d: dirty offset %d: %+v want %+v", round, off, got[off], all[off])
					}
				}
				for k, want := range latest {
					if g, ok := got[want.offset]; !ok || g.key != k || g.value != want.value {
						t.Fatalf("round %d: key %s: got %+v want %+v", round, k, g, want)
					}
				}
				for off, r := range got {
					if off < point && latest[r.key].offset != off {
						t.Fatalf("round %d: superseded record %+v kept", round, r)
					}
				}
			}
		})
	}
}

func TestLogCompactCrashAtEachStep(t *testing.T) {
	for _, step := range []string{"cleaned", "swap", "removed-first", "renamed"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Dir: dir, SegmentBytes: 1024}
			l := openLog(t, cfg)
			for i := range 200 {
				appendKVs(t, l, 1, -1, record.CodecNone, kv{[]byte(fmt.Sprintf("k%d", i%7)), []byte(fmt.Sprintf("v%d", i))})
			}
			// The reference: a clean compaction of an identical copy.
			ref := openLog(t, Config{SegmentBytes: 1024})
			for i := range 200 {
				appendKVs(t, ref, 1, -1, record.CodecNone, kv{[]byte(fmt.Sprintf("k%d", i%7)), []byte(fmt.Sprintf("v%d", i))})
			}
			before, _ := readRecords(t, l)
			if _, err := ref.Compact(CompactOptions{}); err != nil {
				t.Fatal(err)
			}
			after, _ := readRecords(t, ref)

			errCrash := errors.New("crash")
			l.cleanHook = func(s string) error {
				if s == step {
					return errCrash
				}
				return nil
			}
			if _, err := l.Compact(CompactOptions{}); !errors.Is(err, errCrash) {
				t.Fatalf("Compact: %v", err)
			}
			crash(l)
			l2 := openLog(t, cfg)
			got, _ := readRecords(t, l2)
			// The first group is either wholly before or wholly after.
			latest := func(rs []logRecord) map[string]logRecord {
				m := map[string]logRecord{}
				for _, r := range rs {
					m[r.key] = r
				}
				return m
			}
			if fmt.Sprint(latest(got)) != fmt.Sprint(latest(before)) {
				t.Fatalf("latest values changed:\n%v\n%v", latest(got), latest(before))
			}
			seen := map[int64]logRecord{}
			for _, r := range before {
				seen[r.offset] = r
			}
			for _, r := range got {
				if seen[r.offset] != r {
					t.Fatalf("record %+v not in the original log", r)
				}
			}
			// Finishing the pass gives the same log as an uninterrupted one.
			if _, err := l2.Compact(CompactOptions{}); err != nil {
				t.Fatal(err)
			}
			got, _ = readRecords(t, l2)
			if fmt.Sprint(got) != fmt.Sprint(after) {
				t.Fatalf("after recovery and a full pass:\n%v\nwant\n%v", got, after)
			}
			if l2.LogEndOffset() != 200 {
				t.Fatalf("leo %d", l2.LogEndOffset())
			}
		})
	}
}

func TestLogCompactConcurrentReaders(t *testing.T) {
	l := openLog(t, Config{SegmentBytes: 2048})
	for i := range 300 {
		appendKVs(t, l, 1, -1, record.CodecNone, kv{[]byte(fmt.Sprintf("k%d", i%5)), []byte(fmt.Sprintf("v%d", i))})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				off := int64(0)
				for off < l.LogEndOffset() {
					rr, err := l.ReadRange(off, 4096, l.LogEndOffset())
					if err != nil {
						errs <- err
						return
					}
					for _, c := range rr.Chunks {
						buf := make([]byte, c.Len)
						if _, err := c.File.ReadAt(buf, c.Pos); err != nil {
							errs <- err
						}
						sp := record.Split(buf)
						for b, ok := sp.Next(); ok; b, ok = sp.Next() {
							if _, err := record.Validate(b); err != nil {
								errs <- err
							}
						}
					}
					rr.Release()
					off = rr.NextOffset
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 300 {
			appendKVs(t, l, 1, -1, record.CodecNone, kv{[]byte(fmt.Sprintf("k%d", i%5)), []byte("new")})
		}
	})
	for range 5 {
		if _, err := l.Compact(CompactOptions{}); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
