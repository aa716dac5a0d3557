package replica

import (
	"context"
	"errors"
	"math"
	"os"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/record"
)

func TestReplicaProducerStateCheck(t *testing.T) {
	const pid = 7
	base := func() producerStates {
		ps := make(producerStates)
		ps.record(pid, 1, batchMeta{FirstSeq: 0, LastSeq: 4, FirstOffset: 10, LastOffset: 14})
		ps.record(pid, 1, batchMeta{FirstSeq: 5, LastSeq: 9, FirstOffset: 15, LastOffset: 19})
		return ps
	}
	cases := []struct {
		name        string
		pid         int64
		epoch       int16
		first, last int32
		want        error
		dupOffset   int64
	}{
		{name: "next in sequence", pid: pid, epoch: 1, first: 10, last: 12},
		{name: "retry of the last batch", pid: pid, epoch: 1, first: 5, last: 9, want: ErrDuplicateSequence, dupOffset: 15},
		{name: "retry of an earlier batch", pid: pid, epoch: 1, first: 0, last: 4, want: ErrDuplicateSequence, dupOffset: 10},
		{name: "gap", pid: pid, epoch: 1, first: 15, last: 16, want: ErrOutOfOrderSequence},
		{name: "overlapping but not identical", pid: pid, epoch: 1, first: 3, last: 6, want: ErrOutOfOrderSequence},
		{name: "old epoch", pid: pid, epoch: 0, first: 10, last: 10, want: ErrInvalidProducerEpoch},
		{name: "new epoch starts at zero", pid: pid, epoch: 2, first: 0, last: 3},
		{name: "new epoch not at zero", pid: pid, epoch: 2, first: 4, last: 5, want: ErrOutOfOrderSequence},
		{name: "unknown producer any sequence", pid: 99, epoch: 0, first: 42, last: 43},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dup, err := base().check(tc.pid, tc.epoch, tc.first, tc.last)
			if !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
				t.Fatalf("check = %v, want %v", err, tc.want)
			}
			if tc.want == ErrDuplicateSequence && dup.FirstOffset != tc.dupOffset {
				t.Fatalf("duplicate offset = %d, want %d", dup.FirstOffset, tc.dupOffset)
			}
		})
	}
}

func TestReplicaProducerStateKeepsFiveBatches(t *testing.T) {
	ps := make(producerStates)
	for i := int32(0); i < 8; i++ {
		ps.record(1, 0, batchMeta{FirstSeq: i, LastSeq: i, FirstOffset: int64(i), LastOffset: int64(i)})
	}
	if n := len(ps[1].Batches); n != batchesKept {
		t.Fatalf("kept %d batches, want %d", n, batchesKept)
	}
	if _, err := ps.check(1, 0, 2, 2); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("a batch older than the last five is out of order, got %v", err)
	}
	if _, err := ps.check(1, 0, 7, 7); !errors.Is(err, ErrDuplicateSequence) {
		t.Fatalf("the newest batch is a duplicate, got %v", err)
	}
}

func TestReplicaLastSequenceWraps(t *testing.T) {
	if got := lastSequence(math.MaxInt32-1, 3); got != 1 {
		t.Fatalf("lastSequence wrap = %d, want 1", got)
	}
	if got := lastSequence(5, 4); got != 9 {
		t.Fatalf("lastSequence = %d, want 9", got)
	}
	if !inSequence(math.MaxInt32, 0) {
		t.Fatal("0 follows MaxInt32")
	}
}

func TestReplicaProducerSnapshotRoundTrip(t *testing.T) {
	ps := make(producerStates)
	ps.record(3, 2, batchMeta{FirstSeq: 0, LastSeq: 9, FirstOffset: 100, LastOffset: 109, Timestamp: 55})
	ps.record(4, 0, batchMeta{FirstSeq: 0, LastSeq: 0, FirstOffset: 110, LastOffset: 110, Timestamp: 56})
	b := ps.encode(111)
	got, off, err := decodeProducerSnapshot(b)
	if err != nil || off != 111 || len(got) != 2 || got[3].Epoch != 2 || got[3].Batches[0].LastOffset != 109 {
		t.Fatalf("decode = %v %d %v", got, off, err)
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		if _, _, err := decodeProducerSnapshot(c); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	if _, _, err := decodeProducerSnapshot(b[:len(b)-3]); err == nil {
		t.Fatal("truncated snapshot accepted")
	}
}

func testConfig() config.Topic {
	return config.Layers{}.ResolveTopic()
}

func idempotentBatch(t *testing.T, pid int64, epoch int16, seq int32, n int) ([]byte, record.Header) {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{Value: []byte("v")}
	}
	b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: time.Now().UnixMilli(), ProducerID: pid,
		ProducerEpoch: epoch, BaseSequence: seq, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	h, err := record.ValidateProduce(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

// TestReplicaIdempotentAppendSurvivesRestart checks KIP-98's promise across
// a crash: a retry after restart is still recognised as a duplicate, both
// from a snapshot (clean close) and from log replay (no snapshot).
func TestReplicaIdempotentAppendSurvivesRestart(t *testing.T) {
	for _, clean := range []bool{true, false} {
		name := map[bool]string{true: "clean close", false: "replay without snapshot"}[clean]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			var id [16]byte
			id[0] = 1
			p, err := openPartition(nil, dir, "t", 0, id, testConfig(), nil)
			if err != nil {
				t.Fatal(err)
			}
			for seq := int32(0); seq < 30; seq += 3 {
				b, h := idempotentBatch(t, 9, 0, seq, 3)
				if _, err := p.Append(b, h, -1); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.WaitDurable(context.Background(), p.LogEndOffset()); err != nil {
				t.Fatal(err)
			}
			if clean {
				if err := p.close(); err != nil {
					t.Fatal(err)
				}
			} else {
				p.log.Close()
				for _, off := range p.snapshots() {
					if err := removeFile(p.snapshotPath(off)); err != nil {
						t.Fatal(err)
					}
				}
			}
			p, err = openPartition(nil, dir, "t", 0, id, testConfig(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.close()
			b, h := idempotentBatch(t, 9, 0, 27, 3)
			res, err := p.Append(b, h, -1)
			if err != nil || !res.Duplicate || res.BaseOffset != 27 {
				t.Fatalf("retry after restart = %+v, %v; want duplicate at 27", res, err)
			}
			if leo := p.LogEndOffset(); leo != 30 {
				t.Fatalf("log end = %d, want 30", leo)
			}
			b, h = idempotentBatch(t, 9, 0, 31, 1)
			if _, err := p.Append(b, h, -1); !errors.Is(err, ErrOutOfOrderSequence) {
				t.Fatalf("gap after restart = %v, want out of order", err)
			}
		})
	}
}

func TestReplicaFetchWaiterWokenByAppend(t *testing.T) {
	var id [16]byte
	id[0] = 2
	p, err := openPartition(nil, t.TempDir(), "t", 0, id, testConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	ch := make(chan struct{}, 1)
	p.AddWaiter(ch)
	defer p.RemoveWaiter(ch)
	b, h := idempotentBatch(t, -1, -1, -1, 1)
	if _, err := p.Append(b, h, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("append did not wake the waiter")
	}
	data, err := p.Read(0, 1<<20)
	if err != nil || len(data) != len(b) {
		t.Fatalf("read %d bytes, %v; want %d", len(data), err, len(b))
	}
}

func removeFile(path string) error { return os.Remove(path) }
