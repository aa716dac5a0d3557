package replica

import (
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/record"
)

// allocBatch builds a valid non-idempotent batch of n records of size bytes
// stamped now, as a produce request would carry it.
func allocBatch(tb testing.TB, n, size int) ([]byte, record.Header) {
	tb.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{Value: make([]byte, size)}
	}
	b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: time.Now().UnixMilli(),
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Records: recs})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := record.Validate(b)
	if err != nil {
		tb.Fatal(err)
	}
	return b, h
}

func openAllocPartition(tb testing.TB) *Partition {
	tb.Helper()
	p, err := openPartition(nil, tb.TempDir(), "alloc", 0, [16]byte{1}, config.Layers{}.ResolveTopic(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.close() })
	p.becomeLeader(1, 0, []int32{0}, []int32{0})
	return p
}

// TestReplicaAppendAllocs is the allocation budget of the produce hot path
// below the broker: a steady-state leader append of a non-idempotent batch
// (acks=all, single replica, no roll, no fsync due) must not allocate.
func TestReplicaAppendAllocs(t *testing.T) {
	p := openAllocPartition(t)
	batch, h := allocBatch(t, 10, 100)
	// Warm up: the first appends create the index and any lazy state.
	for range 10 {
		if _, err := p.Append(batch, h, -1); err != nil {
			t.Fatal(err)
		}
	}
	n := testing.AllocsPerRun(200, func() {
		if _, err := p.Append(batch, h, -1); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("Partition.Append: %v allocations per call, want 0 (profile: go test -run x -bench BenchmarkReplicaAppend -memprofile mem.out ./internal/replica)", n)
	}
}

func BenchmarkReplicaAppend(b *testing.B) {
	p := openAllocPartition(b)
	batch, h := allocBatch(b, 10, 100)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Append(batch, h, -1); err != nil {
			b.Fatal(err)
		}
	}
}
