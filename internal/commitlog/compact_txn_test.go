package commitlog

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/record"
)

// appendTxnKVs appends one transactional batch of the producer.
func appendTxnKVs(t testing.TB, l *Log, ts, pid int64, seq int32, kvs ...kv) AppendInfo {
	t.Helper()
	rs := make([]record.Record, len(kvs))
	for i, r := range kvs {
		rs[i] = record.Record{Key: r.key, Value: r.value}
	}
	b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: ts, ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq,
		Transactional: true, Records: rs})
	if err != nil {
		t.Fatal(err)
	}
	return mustAppend(t, l, b, 0)
}

// appendMarker appends a COMMIT or ABORT marker of the producer.
func appendMarker(t testing.TB, l *Log, ts, pid int64, commit bool) AppendInfo {
	t.Helper()
	typ := controlAbort
	if commit {
		typ = controlCommit
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), uint16(typ))
	b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: ts, ProducerID: pid, ProducerEpoch: 0, BaseSequence: -1,
		Transactional: true, Control: true, Records: []record.Record{{Key: key, Value: []byte{0, 0, 0, 0, 0, 0}}}})
	if err != nil {
		t.Fatal(err)
	}
	return mustAppend(t, l, b, 0)
}

// batchAt returns the header of the stored batch starting at off.
func batchAt(hdrs []record.Header, off int64) (record.Header, bool) {
	for _, h := range hdrs {
		if h.BaseOffset == off {
			return h, true
		}
	}
	return record.Header{}, false
}

func recordAt(recs []logRecord, off int64) (logRecord, bool) {
	for _, r := range recs {
		if r.offset == off {
			return r, true
		}
	}
	return logRecord{}, false
}

// TestLogCompactAbortedTxn: a committed value, then an aborted newer value
// of the same key: compaction keeps the committed one and removes the
// aborted one; the ABORT marker stays while its transaction has batches,
// is stamped with a delete horizon once it has none, and goes once the
// horizon passed and the transaction left the aborted index.
func TestLogCompactAbortedTxn(t *testing.T) {
	clock := newClock()
	l := openLog(t, Config{SegmentBytes: 1024, Now: clock.Now})
	ts := clock.Now().UnixMilli()
	committed := appendTxnKVs(t, l, ts, 5, 0, kv{[]byte("k"), []byte("committed")})
	commit1 := appendMarker(t, l, ts, 5, true)
	aborted := appendTxnKVs(t, l, ts, 5, 1, kv{[]byte("k"), []byte("aborted")})
	abortMarker := appendMarker(t, l, ts, 5, false)
	appendTxnKVs(t, l, ts, 5, 2, kv{[]byte("other"), []byte("x")})
	commit3 := appendMarker(t, l, ts, 5, true)
	for i := range 30 {
		appendKVs(t, l, ts, -1, record.CodecNone, kv{[]byte(fmt.Sprintf("filler-%d", i%5)), make([]byte, 100)})
	}
	index := []AbortedTxn{{ProducerID: 5, FirstOffset: aborted.BaseOffset, MarkerOffset: abortMarker.BaseOffset}}
	pass := func(wantDone ...int64) CompactStats {
		t.Helper()
		st, err := l.Compact(CompactOptions{DeleteRetention: time.Hour,
			Txns: &TxnState{LastStableOffset: l.LogEndOffset(), Aborted: index}})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(st.AbortedDone, wantDone) {
			t.Fatalf("aborted transactions done %v, want %v", st.AbortedDone, wantDone)
		}
		return st
	}

	st := pass()
	recs, hdrs := readRecords(t, l)
	if r, ok := recordAt(recs, committed.BaseOffset); !ok || r.value != "committed" {
		t.Fatalf("committed value of k lost: %+v %v", r, ok)
	}
	if r, ok := recordAt(recs, aborted.BaseOffset); ok {
		t.Fatalf("aborted record kept: %+v", r)
	}
	if st.AbortedRecordsRemoved != 1 {
		t.Fatalf("stats %+v", st)
	}
	for _, off := range []int64{commit1.BaseOffset, abortMarker.BaseOffset, commit3.BaseOffset} {
		if h, ok := batchAt(hdrs, off); !ok || !h.IsControl() || h.NumRecords != 1 {
			t.Fatalf("marker at %d: %+v %v", off, h, ok)
		}
	}

	// The aborted transaction has no batch left: its marker gets a horizon
	// and is reported, so the partition can drop it from its index.
	pass(abortMarker.BaseOffset)
	_, hdrs = readRecords(t, l)
	h, ok := batchAt(hdrs, abortMarker.BaseOffset)
	if horizon, set := h.DeleteHorizon(); !ok || !set || horizon != clock.Now().Add(time.Hour).UnixMilli() || h.NumRecords != 1 {
		t.Fatalf("ABORT marker after its data went: %+v (horizon %d, %v)", h, horizon, set)
	}
	if h, ok := batchAt(hdrs, commit1.BaseOffset); !ok || h.NumRecords != 1 {
		t.Fatalf("COMMIT marker of a transaction with records left: %+v %v", h, ok)
	}
	// Past the horizon but still listed in the index: kept.
	clock.Advance(2 * time.Hour)
	pass(abortMarker.BaseOffset)
	if _, hdrs = readRecords(t, l); !func() bool { _, ok := batchAt(hdrs, abortMarker.BaseOffset); return ok }() {
		t.Fatalf("ABORT marker removed while its transaction is still indexed")
	}
	index = nil
	st = pass()
	recs, hdrs = readRecords(t, l)
	if _, ok := batchAt(hdrs, abortMarker.BaseOffset); ok || st.MarkersRemoved != 1 {
		t.Fatalf("ABORT marker kept past its horizon: %+v", st)
	}
	for _, off := range []int64{commit1.BaseOffset, commit3.BaseOffset} {
		if h, ok := batchAt(hdrs, off); !ok || h.NumRecords != 1 {
			t.Fatalf("COMMIT marker at %d: %+v %v", off, h, ok)
		}
	}
	if r, ok := recordAt(recs, committed.BaseOffset); !ok || r.value != "committed" {
		t.Fatalf("committed value of k lost: %+v %v", r, ok)
	}
}

// TestLogCompactCommitMarkerLifecycle: once every record of a committed
// transaction is superseded, its COMMIT marker gets a delete horizon and
// goes after it, unless it is its producer's last batch (then it stays,
// emptied, for the producer's epoch).
func TestLogCompactCommitMarkerLifecycle(t *testing.T) {
	clock := newClock()
	l := openLog(t, Config{SegmentBytes: 1024, Now: clock.Now})
	ts := clock.Now().UnixMilli()
	appendTxnKVs(t, l, ts, 8, 0, kv{[]byte("k"), []byte("old")})
	m1 := appendMarker(t, l, ts, 8, true)
	last := appendTxnKVs(t, l, ts, 8, 1, kv{[]byte("j"), []byte("v")})
	m2 := appendMarker(t, l, ts, 8, true)
	for i := range 30 {
		appendKVs(t, l, ts, -1, record.CodecNone, kv{[]byte("k"), make([]byte, 100+i)})
	}
	opts := func() CompactOptions {
		return CompactOptions{Txns: &TxnState{LastStableOffset: l.LogEndOffset()}}
	}
	for range 2 {
		if _, err := l.Compact(opts()); err != nil {
			t.Fatal(err)
		}
	}
	_, hdrs := readRecords(t, l)
	h, ok := batchAt(hdrs, m1.BaseOffset)
	if _, set := h.DeleteHorizon(); !ok || !set {
		t.Fatalf("COMMIT marker of a superseded transaction: %+v %v", h, ok)
	}
	clock.Advance(time.Millisecond)
	st, err := l.Compact(opts())
	if err != nil {
		t.Fatal(err)
	}
	_, hdrs = readRecords(t, l)
	if _, ok := batchAt(hdrs, m1.BaseOffset); ok || st.MarkersRemoved != 1 {
		t.Fatalf("COMMIT marker kept past its horizon: %+v", st)
	}
	if h, ok := batchAt(hdrs, last.BaseOffset); !ok || h.NumRecords != 1 {
		t.Fatalf("live transactional record: %+v %v", h, ok)
	}
	if h, ok := batchAt(hdrs, m2.BaseOffset); !ok || h.NumRecords != 1 {
		t.Fatalf("COMMIT marker of a live transaction: %+v %v", h, ok)
	}
}

// TestLogCompactStopsAtLastStableOffset: no segment holding an offset at or
// past the last stable offset is cleaned, so an open transaction and
// everything after it stay as written.
func TestLogCompactStopsAtLastStableOffset(t *testing.T) {
	l := openLog(t, Config{SegmentBytes: 1024})
	for i := range 20 {
		appendKVs(t, l, 1, -1, record.CodecNone, kv{[]byte("k"), []byte(fmt.Sprintf("before-%03d-%0100d", i, 0))})
	}
	open := appendTxnKVs(t, l, 1, 7, 0, kv{[]byte("k"), []byte("open")})
	for i := range 20 {
		appendKVs(t, l, 1, -1, record.CodecNone, kv{[]byte("k"), []byte(fmt.Sprintf("after-%03d-%0100d", i, 0))})
	}
	before, _ := readRecords(t, l)
	lso := open.BaseOffset
	if st := l.CleanerStateBelow(lso); st.DirtyBytes == 0 || st.DirtyBytes >= l.CleanerState().DirtyBytes {
		t.Fatalf("cleanable dirty bytes below the LSO: %+v of %+v", st, l.CleanerState())
	}
	st, err := l.Compact(CompactOptions{Txns: &TxnState{LastStableOffset: lso}})
	if err != nil {
		t.Fatal(err)
	}
	if st.CleanPoint == 0 || st.CleanPoint > lso {
		t.Fatalf("clean point %d with the last stable offset at %d", st.CleanPoint, lso)
	}
	if d := l.CleanerStateBelow(lso).DirtyBytes; d != 0 {
		t.Fatalf("%d cleanable dirty bytes left below the LSO", d)
	}
	after, _ := readRecords(t, l)
	below := 0
	for _, r := range after {
		if r.offset < st.CleanPoint {
			below++
		}
	}
	if below != 1 {
		t.Fatalf("%d records of k below the clean point, want 1", below)
	}
	for _, r := range before {
		if r.offset < st.CleanPoint {
			continue
		}
		if g, ok := recordAt(after, r.offset); !ok || g != r {
			t.Fatalf("record %+v at or past the LSO segment changed: %+v %v", r, g, ok)
		}
	}
	// Once the transaction is over, the same log compacts past it.
	appendMarker(t, l, 1, 7, true)
	for range 10 {
		appendKVs(t, l, 1, -1, record.CodecNone, kv{[]byte("k"), make([]byte, 100)})
	}
	if _, err := l.Compact(CompactOptions{Txns: &TxnState{LastStableOffset: l.LogEndOffset()}}); err != nil {
		t.Fatal(err)
	}
	after, _ = readRecords(t, l)
	if _, ok := recordAt(after, open.BaseOffset); ok {
		t.Fatalf("superseded record of the committed transaction kept")
	}
}
