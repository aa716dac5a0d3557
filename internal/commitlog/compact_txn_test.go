package commitlog

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
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

// TestLogCompactDifferentialTxn compares random workloads of plain records
// and transactions of a few producers (committed, aborted, still open)
// against a naive model, with the aborted index kept as package replica
// does (entries dropped when a pass reports them done):
//   - at and after the clean point the log is as written;
//   - below it, no record of an aborted transaction survives, and of the
//     others exactly the latest per key does;
//   - a marker stays while its transaction has a batch left, and an ABORT
//     marker while its transaction is indexed;
//   - a read_committed consumer of the whole log, given the index, ends
//     with every key at its latest committed value.
func TestLogCompactDifferentialTxn(t *testing.T) {
	type txn struct {
		pid, first, marker int64
		commit             bool
	}
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 11))
			clock := newClock()
			cfg := Config{Dir: t.TempDir(), SegmentBytes: int64(500 + rng.IntN(2000)), Now: clock.Now}
			l := openLog(t, cfg)
			all := map[int64]logRecord{} // data records as written
			ofTxn := map[int64]*txn{}    // data offset -> its transaction (nil: plain)
			markers := map[int64]*txn{}
			open := map[int64]*txn{}
			seq := map[int64]int32{}
			var index []AbortedTxn
			nkeys := 1 + rng.IntN(20)
			randKVs := func(round int) []kv {
				kvs := make([]kv, 1+rng.IntN(3))
				for i := range kvs {
					kvs[i] = kv{[]byte(fmt.Sprintf("k%d", rng.IntN(nkeys))), []byte(fmt.Sprintf("v%d-%d", round, rng.IntN(1000)))}
				}
				return kvs
			}
			note := func(info AppendInfo, kvs []kv, tx *txn) {
				for i, r := range kvs {
					off := info.BaseOffset + int64(i)
					all[off] = logRecord{offset: off, key: string(r.key), value: string(r.value)}
					ofTxn[off] = tx
				}
			}
			for round := range 5 {
				for range 100 + rng.IntN(200) {
					ts := clock.Now().UnixMilli()
					if rng.IntN(10) < 4 {
						kvs := randKVs(round)
						note(appendKVs(t, l, ts, -1, record.CodecNone, kvs...), kvs, nil)
						continue
					}
					pid := int64(1 + rng.IntN(3))
					tx := open[pid]
					if tx != nil && rng.IntN(3) == 0 {
						tx.commit = rng.IntN(2) == 0
						tx.marker = appendMarker(t, l, ts, pid, tx.commit).BaseOffset
						markers[tx.marker] = tx
						delete(open, pid)
						if !tx.commit {
							index = append(index, AbortedTxn{ProducerID: pid, FirstOffset: tx.first, MarkerOffset: tx.marker})
						}
						continue
					}
					kvs := randKVs(round)
					info := appendTxnKVs(t, l, ts, pid, seq[pid], kvs...)
					seq[pid] += int32(len(kvs))
					if tx == nil {
						tx = &txn{pid: pid, first: info.BaseOffset, marker: -1}
						open[pid] = tx
					}
					note(info, kvs, tx)
				}
				lso := l.LogEndOffset()
				for _, tx := range open {
					lso = min(lso, tx.first)
				}
				retention := time.Duration(rng.IntN(2)) * time.Hour
				st, err := l.Compact(CompactOptions{DeleteRetention: retention, Txns: &TxnState{LastStableOffset: lso, Aborted: index}})
				if err != nil {
					t.Fatal(err)
				}
				index = slices.DeleteFunc(index, func(a AbortedTxn) bool { return slices.Contains(st.AbortedDone, a.MarkerOffset) })
				clock.Advance(time.Duration(rng.IntN(90)) * time.Minute)
				if rng.IntN(2) == 0 {
					if err := l.Close(); err != nil {
						t.Fatal(err)
					}
					l = openLog(t, cfg)
				}

				point := l.CleanerState().CleanPoint
				if point > lso {
					t.Fatalf("round %d: clean point %d past the last stable offset %d", round, point, lso)
				}
				aborted := func(off int64) bool { tx := ofTxn[off]; return tx != nil && tx.marker >= 0 && !tx.commit }
				recs, hdrs := readRecords(t, l)
				got := map[int64]logRecord{}
				for _, r := range recs {
					if markers[r.offset] == nil {
						got[r.offset] = r
					}
				}
				for off, want := range all {
					if off >= point && got[off] != want {
						t.Fatalf("round %d: offset %d past the clean point %d: %+v want %+v", round, off, point, got[off], want)
					}
				}
				latest := map[string]int64{}
				for off := int64(0); off < point; off++ {
					if r, ok := all[off]; ok && !aborted(off) {
						latest[r.key] = off
					}
				}
				for off, r := range got {
					switch {
					case off >= point:
					case aborted(off):
						t.Fatalf("round %d: aborted record %+v kept", round, r)
					case latest[r.key] != off:
						t.Fatalf("round %d: superseded record %+v kept (latest at %d)", round, r, latest[r.key])
					}
				}
				for k, off := range latest {
					if _, ok := got[off]; !ok {
						t.Fatalf("round %d: latest record of %s at %d lost", round, k, off)
					}
				}
				// Markers.
				present := map[int64]record.Header{}
				for _, h := range hdrs {
					present[h.BaseOffset] = h
				}
				indexed := map[int64]bool{}
				for _, a := range index {
					indexed[a.MarkerOffset] = true
				}
				for _, h := range hdrs {
					if h.IsControl() {
						continue
					}
					if tx := ofTxn[h.BaseOffset]; tx != nil && tx.marker >= 0 {
						if m, ok := present[tx.marker]; !ok || m.NumRecords != 1 {
							t.Fatalf("round %d: marker at %d gone while batch %d of its transaction is left", round, tx.marker, h.BaseOffset)
						}
					}
				}
				for m := range indexed {
					if h, ok := present[m]; !ok || h.NumRecords != 1 {
						t.Fatalf("round %d: ABORT marker at %d gone while indexed", round, m)
					}
				}
				// A read_committed consumer, as Kafka's clients read: the
				// aborted list by first offset, a producer's batches
				// dropped from its aborted transaction's first offset to
				// its ABORT marker.
				byFirst := slices.Clone(index)
				slices.SortFunc(byFirst, func(a, b AbortedTxn) int { return int(a.FirstOffset - b.FirstOffset) })
				dropping := map[int64]bool{}
				view := map[string]string{}
				ri := 0
				for _, h := range hdrs {
					if h.BaseOffset >= lso {
						break
					}
					for len(byFirst) > 0 && byFirst[0].FirstOffset <= h.LastOffset() {
						dropping[byFirst[0].ProducerID] = true
						byFirst = byFirst[1:]
					}
					for ri < len(recs) && recs[ri].offset < h.BaseOffset {
						ri++
					}
					if h.IsControl() {
						if tx := markers[h.BaseOffset]; tx != nil && !tx.commit {
							delete(dropping, h.ProducerID)
						}
						continue
					}
					for ; ri < len(recs) && recs[ri].offset <= h.LastOffset(); ri++ {
						if !(h.IsTransactional() && dropping[h.ProducerID]) && recs[ri].offset < lso {
							view[recs[ri].key] = recs[ri].value
						}
					}
				}
				want := map[string]string{}
				for off := int64(0); off < lso; off++ {
					if r, ok := all[off]; ok && !aborted(off) {
						want[r.key] = r.value
					}
				}
				if fmt.Sprint(view) != fmt.Sprint(want) {
					t.Fatalf("round %d: read_committed view\n%v\nwant\n%v", round, view, want)
				}
			}
		})
	}
}
