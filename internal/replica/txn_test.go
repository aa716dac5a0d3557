package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/record"
)

func txnBatch(t *testing.T, pid int64, epoch int16, seq int32, n int) ([]byte, record.Header) {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{Value: []byte("t")}
	}
	b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: time.Now().UnixMilli(), ProducerID: pid,
		ProducerEpoch: epoch, BaseSequence: seq, Transactional: true, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	h, err := record.ValidateProduce(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

func openTestPartition(t *testing.T, dir string) *Partition {
	t.Helper()
	var id [16]byte
	id[0] = 7
	p, err := openPartition(nil, dir, "t", 0, id, testConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustAppend(t *testing.T, p *Partition, b []byte, h record.Header) AppendResult {
	t.Helper()
	res, err := p.Append(b, h, 1)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func mustMarker(t *testing.T, p *Partition, pid int64, epoch int16, commit bool) int64 {
	t.Helper()
	off, err := p.AppendTxnMarker(pid, epoch, commit, 3)
	if err != nil {
		t.Fatal(err)
	}
	return off
}

// batchesOf splits read data into headers.
func batchesOf(t *testing.T, data []byte) []record.Header {
	t.Helper()
	var out []record.Header
	sp := record.Split(data)
	for b, ok := sp.Next(); ok; b, ok = sp.Next() {
		h, err := record.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

// interleaved writes: A (pid 1) txn at 0-1, C (pid 3, idempotent only) at 2,
// B (pid 2) txn at 3, A's COMMIT at 4, B's ABORT at 5, A txn again at 6.
func interleaved(t *testing.T, p *Partition) {
	t.Helper()
	steps := []struct {
		name    string
		do      func()
		lso, hw int64
	}{
		{"A opens", func() { b, h := txnBatch(t, 1, 0, 0, 2); mustAppend(t, p, b, h) }, 0, 2},
		{"C writes outside transactions", func() { b, h := idempotentBatch(t, 3, 0, 0, 1); mustAppend(t, p, b, h) }, 0, 3},
		{"B opens", func() { b, h := txnBatch(t, 2, 0, 0, 1); mustAppend(t, p, b, h) }, 0, 4},
		{"A commits", func() {
			if off := mustMarker(t, p, 1, 0, true); off != 4 {
				t.Fatalf("commit marker at %d, want 4", off)
			}
		}, 3, 5},
		{"B aborts", func() {
			if off := mustMarker(t, p, 2, 0, false); off != 5 {
				t.Fatalf("abort marker at %d, want 5", off)
			}
		}, 6, 6},
		{"A opens again", func() { b, h := txnBatch(t, 1, 0, 2, 1); mustAppend(t, p, b, h) }, 6, 7},
	}
	for _, s := range steps {
		s.do()
		if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != s.lso || hw != s.hw {
			t.Fatalf("after %s: LSO %d HW %d, want %d %d", s.name, lso, hw, s.lso, s.hw)
		}
	}
}

func TestReplicaTxnInterleavedProducers(t *testing.T) {
	p := openTestPartition(t, t.TempDir())
	defer p.close()
	interleaved(t, p)

	t.Run("aborted transactions", func(t *testing.T) {
		cases := []struct {
			from, to int64
			want     []AbortedTxn
		}{
			{0, 7, []AbortedTxn{{ProducerID: 2, FirstOffset: 3}}},
			{5, 6, []AbortedTxn{{ProducerID: 2, FirstOffset: 3}}},
			{0, 3, nil}, // ends before the transaction's first offset
			{6, 7, nil}, // starts after its marker
		}
		for _, c := range cases {
			if got := p.AbortedTransactions(c.from, c.to); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("AbortedTransactions(%d, %d) = %v, want %v", c.from, c.to, got, c.want)
			}
		}
	})
	t.Run("read committed stops at the LSO", func(t *testing.T) {
		data, err := p.ReadCommitted(0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		hs := batchesOf(t, data)
		if len(hs) != 5 || hs[len(hs)-1].NextOffset() != 6 {
			t.Fatalf("read_committed read %d batches ending at %d, want 5 ending at 6", len(hs), hs[len(hs)-1].NextOffset())
		}
		if data, err := p.ReadCommitted(6, 1<<20); err != nil || len(data) != 0 {
			t.Fatalf("read_committed at the LSO = %d bytes, %v; want none", len(data), err)
		}
		if data, err := p.Read(6, 1<<20); err != nil || len(batchesOf(t, data)) != 1 {
			t.Fatalf("read_uncommitted at the LSO = %d bytes, %v; want the open batch", len(data), err)
		}
		rr, err := p.ReadRangeCommitted(6, 1<<20)
		if err != nil || len(rr.Chunks) != 0 {
			t.Fatalf("ReadRangeCommitted at the LSO = %d chunks, %v", len(rr.Chunks), err)
		}
		rr.Release()
	})
	t.Run("marker format", func(t *testing.T) {
		data, err := p.Read(5, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		hs := batchesOf(t, data)
		h := hs[0]
		if !h.IsControl() || !h.IsTransactional() || h.ProducerID != 2 || h.NumRecords != 1 || h.BaseOffset != 5 {
			t.Fatalf("marker header = %+v", h)
		}
		commit, ok := markerType(data[:h.Size()], h)
		if !ok || commit {
			t.Fatalf("marker type commit=%v ok=%v, want abort", commit, ok)
		}
		err = record.Records(data[:h.Size()], h, 1<<20, func(r record.Record) error {
			if !reflect.DeepEqual(r.Key, []byte{0, 0, 0, 0}) || !reflect.DeepEqual(r.Value, []byte{0, 0, 0, 0, 0, 3}) {
				t.Fatalf("marker key %x value %x", r.Key, r.Value)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fenced epoch", func(t *testing.T) {
		b, h := txnBatch(t, 4, 5, 0, 1)
		mustAppend(t, p, b, h)
		if _, err := p.AppendTxnMarker(4, 4, false, 3); !errors.Is(err, ErrInvalidProducerEpoch) {
			t.Fatalf("marker with an older epoch = %v, want ErrInvalidProducerEpoch", err)
		}
		if lso := p.LastStableOffset(); lso != 6 {
			t.Fatalf("LSO after a fenced marker = %d, want 6", lso)
		}
		// A newer epoch (the coordinator's bump on abort) ends it.
		mustMarker(t, p, 4, 6, false)
		b, h = txnBatch(t, 4, 5, 1, 1)
		if _, err := p.Append(b, h, 1); !errors.Is(err, ErrInvalidProducerEpoch) {
			t.Fatalf("batch of the fenced epoch = %v, want ErrInvalidProducerEpoch", err)
		}
	})
	t.Run("marker without a transaction", func(t *testing.T) {
		before := len(p.AbortedTransactions(0, 1<<62))
		leo := p.LogEndOffset()
		if off := mustMarker(t, p, 99, 0, false); off != leo {
			t.Fatalf("marker at %d, want %d", off, leo)
		}
		if after := len(p.AbortedTransactions(0, 1<<62)); after != before {
			t.Fatalf("a marker without a transaction added an aborted transaction (%d -> %d)", before, after)
		}
	})
}

// TestReplicaTxnSurvivesRestart checks that an open transaction keeps the
// LSO pinned and the aborted index is intact after restart, however the
// state is recovered.
func TestReplicaTxnSurvivesRestart(t *testing.T) {
	wantAborted := []AbortedTxn{{ProducerID: 2, FirstOffset: 3}}
	cases := []struct {
		name    string
		prepare func(t *testing.T, p *Partition) // after the log is closed
		clean   bool
	}{
		{name: "clean close", clean: true},
		{name: "replay without snapshot", prepare: func(t *testing.T, p *Partition) {
			for _, off := range p.snapshots() {
				if err := os.Remove(p.snapshotPath(off)); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{name: "missing index", clean: true, prepare: func(t *testing.T, p *Partition) {
			if err := os.Remove(p.txnIndexPath()); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "corrupt index", clean: true, prepare: func(t *testing.T, p *Partition) {
			b, err := os.ReadFile(p.txnIndexPath())
			if err != nil || len(b) != txnIndexEntryLen {
				t.Fatalf("index %d bytes, %v", len(b), err)
			}
			b[10] ^= 1
			if err := os.WriteFile(p.txnIndexPath(), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "torn index entry", clean: true, prepare: func(t *testing.T, p *Partition) {
			f, err := os.OpenFile(p.txnIndexPath(), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte{1, 2, 3})
			f.Close()
		}},
		{name: "index lost its entry, no snapshot", prepare: func(t *testing.T, p *Partition) {
			if err := os.WriteFile(p.txnIndexPath(), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, off := range p.snapshots() {
				os.Remove(p.snapshotPath(off))
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := openTestPartition(t, dir)
			interleaved(t, p)
			if c.clean {
				if err := p.close(); err != nil {
					t.Fatal(err)
				}
			} else {
				p.log.Close()
			}
			if c.prepare != nil {
				c.prepare(t, p)
			}
			p = openTestPartition(t, dir)
			defer p.close()
			if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != 6 || hw != 7 {
				t.Fatalf("after restart LSO %d HW %d, want 6 7", lso, hw)
			}
			if got := p.AbortedTransactions(0, 100); !reflect.DeepEqual(got, wantAborted) {
				t.Fatalf("aborted after restart = %v, want %v", got, wantAborted)
			}
			b, err := os.ReadFile(p.txnIndexPath())
			if err != nil || len(b) != txnIndexEntryLen {
				t.Fatalf("index file after restart: %d bytes, %v; want one entry", len(b), err)
			}
			// The open transaction still ends with its marker.
			mustMarker(t, p, 1, 0, true)
			if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != 8 || hw != 8 {
				t.Fatalf("after the commit LSO %d HW %d, want 8 8", lso, hw)
			}
		})
	}
}

func TestReplicaTxnIndexTrimmedByDeleteRecords(t *testing.T) {
	p := openTestPartition(t, t.TempDir())
	defer p.close()
	interleaved(t, p)
	mustMarker(t, p, 1, 0, false) // A's second transaction aborts at 7: {1, 6, 7}
	if got := len(p.AbortedTransactions(0, 100)); got != 2 {
		t.Fatalf("%d aborted transactions, want 2", got)
	}
	if _, err := p.DeleteRecordsBefore(6); err != nil {
		t.Fatal(err)
	}
	want := []AbortedTxn{{ProducerID: 1, FirstOffset: 6}}
	if got := p.AbortedTransactions(0, 100); !reflect.DeepEqual(got, want) {
		t.Fatalf("after DeleteRecords aborted = %v, want %v", got, want)
	}
	b, err := os.ReadFile(p.txnIndexPath())
	if err != nil {
		t.Fatal(err)
	}
	ents, err := decodeTxnIndex(b)
	if err != nil || len(ents) != 1 || ents[0].LastOffset != 7 {
		t.Fatalf("index file after DeleteRecords = %v, %v", ents, err)
	}
}

func TestReplicaTxnSnapshotFormats(t *testing.T) {
	ps := make(producerStates)
	ps.record(3, 2, batchMeta{FirstSeq: 0, LastSeq: 9, FirstOffset: 100, LastOffset: 109, Timestamp: 55})
	ps.beginTxn(3, 100)
	ps.record(4, 0, batchMeta{FirstSeq: 0, LastSeq: 0, FirstOffset: 110, LastOffset: 110, Timestamp: 56})
	ps.endTxn(4, 0, 6)
	enc := ps.encode(111)
	got, off, err := decodeProducerSnapshot(enc)
	if err != nil || off != 111 || got[3].CurrentTxnFirstOffset != 100 || got[4].CurrentTxnFirstOffset != -1 ||
		got[3].CoordinatorEpoch != -1 || got[4].CoordinatorEpoch != 6 {
		t.Fatalf("GPS3 decode = %+v %d %v", got, off, err)
	}

	// A GPS2 snapshot (no coordinator epoch) still loads: GPS3 without
	// the four bytes after each entry's txnFirstOffset.
	body := enc[:len(enc)-4]
	v2 := append([]byte("GPS2"), body[4:16]...)
	r := body[16:]
	for range 2 {
		n := int(r[8+2+8+8+4])
		v2 = append(v2, r[:8+2+8+8]...)
		v2 = append(v2, r[8+2+8+8+4:8+2+8+8+4+1+n*32]...)
		r = r[8+2+8+8+4+1+n*32:]
	}
	v2 = binary.BigEndian.AppendUint32(v2, crc32.Checksum(v2, castagnoli))
	got, off, err = decodeProducerSnapshot(v2)
	if err != nil || off != 111 || got[3].CurrentTxnFirstOffset != 100 || got[4].CoordinatorEpoch != -1 ||
		got[3].Batches[0].LastOffset != 109 {
		t.Fatalf("GPS2 decode = %+v %d %v", got, off, err)
	}

	// A GPS1 snapshot (no transaction field) still loads.
	v1 := []byte("GPS1")
	v1 = binary.BigEndian.AppendUint64(v1, 111)
	v1 = binary.BigEndian.AppendUint32(v1, 1)
	v1 = binary.BigEndian.AppendUint64(v1, 3)
	v1 = binary.BigEndian.AppendUint16(v1, 2)
	v1 = binary.BigEndian.AppendUint64(v1, 55)
	v1 = append(v1, 1)
	for _, x := range []uint32{0, 9} {
		v1 = binary.BigEndian.AppendUint32(v1, x)
	}
	for _, x := range []uint64{100, 109, 55} {
		v1 = binary.BigEndian.AppendUint64(v1, x)
	}
	v1 = binary.BigEndian.AppendUint32(v1, crc32.Checksum(v1, castagnoli))
	got, off, err = decodeProducerSnapshot(v1)
	if err != nil || off != 111 || got[3].Epoch != 2 || got[3].Batches[0].LastOffset != 109 || got[3].CurrentTxnFirstOffset != -1 {
		t.Fatalf("GPS1 decode = %+v %d %v", got, off, err)
	}
}

// TestReplicaTxnMarkerCoordinatorFenced: as Kafka's ProducerAppendInfo, a
// marker whose transaction coordinator epoch is older than that of the
// producer's last marker on the partition is refused (a deposed
// coordinator), and the epoch survives a restart, from the producer
// snapshot and from a replay of the log.
func TestReplicaTxnMarkerCoordinatorFenced(t *testing.T) {
	for _, replay := range []bool{false, true} {
		t.Run(fmt.Sprintf("replay=%v", replay), func(t *testing.T) {
			dir := t.TempDir()
			p := openTestPartition(t, dir)
			b, h := txnBatch(t, 1, 0, 0, 2)
			mustAppend(t, p, b, h)
			if _, err := p.AppendTxnMarker(1, 0, true, 5); err != nil {
				t.Fatal(err)
			}
			if _, err := p.AppendTxnMarker(1, 0, false, 4); !errors.Is(err, ErrCoordinatorFenced) {
				t.Fatalf("marker of coordinator epoch 4 after 5: %v, want ErrCoordinatorFenced", err)
			}
			leo := p.LogEndOffset()
			if err := p.close(); err != nil {
				t.Fatal(err)
			}
			if replay {
				for _, off := range p.snapshots() {
					if err := os.Remove(p.snapshotPath(off)); err != nil {
						t.Fatal(err)
					}
				}
			}
			p = openTestPartition(t, dir)
			defer p.close()
			if got := p.LogEndOffset(); got != leo {
				t.Fatalf("log end %d after reopening, want %d", got, leo)
			}
			if _, err := p.AppendTxnMarker(1, 0, false, 4); !errors.Is(err, ErrCoordinatorFenced) {
				t.Fatalf("after reopening, marker of coordinator epoch 4: %v, want ErrCoordinatorFenced", err)
			}
			if _, err := p.AppendTxnMarker(1, 0, false, 5); err != nil {
				t.Fatalf("marker of the current coordinator epoch: %v", err)
			}
			// Another producer has no coordinator epoch yet.
			if _, err := p.AppendTxnMarker(2, 0, false, 0); err != nil {
				t.Fatalf("marker of another producer: %v", err)
			}
		})
	}
}

func TestReplicaTxnIndexDecode(t *testing.T) {
	good := abortedEntry{1, 2, 3}.encode(abortedEntry{4, 0, 1}.encode(nil))
	cases := []struct {
		name string
		b    []byte
		n    int
		bad  bool
	}{
		{name: "empty", b: nil},
		{name: "two entries", b: good, n: 2},
		{name: "partial entry", b: good[:len(good)-1], bad: true},
		{name: "bad crc", b: append(append([]byte(nil), good[:27]...), good[27]^1), bad: true},
		{name: "out of order", b: abortedEntry{4, 0, 1}.encode(abortedEntry{1, 2, 3}.encode(nil)), bad: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ents, err := decodeTxnIndex(c.b)
			if (err != nil) != c.bad || (!c.bad && len(ents) != c.n) {
				t.Fatalf("decode = %v, %v", ents, err)
			}
		})
	}
}

// TestReplicaTxnKeyValuesVerified: a group coordinator's transactional
// write verified with a transaction coordinator on another broker
// (KIP-890) presents the partition's verification guard: an end marker of
// the producer written after the guard was taken voids it, so the offsets
// cannot land after the marker; a transaction already open here needs no
// guard while it stays open.
func TestReplicaTxnKeyValuesVerified(t *testing.T) {
	p := openTestPartition(t, t.TempDir())
	defer p.close()
	kv := KeyValue{Key: []byte("k"), Value: []byte("v")}
	now := time.Now()

	g := p.StartTxnVerification(9, 0)
	if g == NoVerification {
		t.Fatal("no transaction is open: a verification is needed")
	}
	mustMarker(t, p, 9, 0, false) // the transaction ended meanwhile
	if _, err := p.AppendTxnKeyValuesVerified(now, 9, 0, g, kv); !errors.Is(err, ErrTxnNotVerified) {
		t.Fatalf("write after a marker voided the guard: %v, want ErrTxnNotVerified", err)
	}

	g = p.StartTxnVerification(9, 0)
	if _, err := p.AppendTxnKeyValuesVerified(now, 9, 0, g, kv); err != nil {
		t.Fatalf("write with a current guard: %v", err)
	}
	if g := p.StartTxnVerification(9, 0); g != NoVerification {
		t.Fatalf("guard %d with the transaction open here, want NoVerification", g)
	}
	if _, err := p.AppendTxnKeyValuesVerified(now, 9, 0, NoVerification, kv); err != nil {
		t.Fatalf("write in the open transaction: %v", err)
	}
	mustMarker(t, p, 9, 0, true)
	if _, err := p.AppendTxnKeyValuesVerified(now, 9, 0, NoVerification, kv); !errors.Is(err, ErrTxnNotVerified) {
		t.Fatalf("write without a guard after the marker: %v, want ErrTxnNotVerified", err)
	}
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != hw {
		t.Fatalf("last stable offset %d below the high watermark %d: a refused write opened a transaction", lso, hw)
	}
}
