package replica

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/record"
)

func keyedBatch(t *testing.T, pid int64, seq int32, key, value string) ([]byte, record.Header) {
	t.Helper()
	epoch := int16(0)
	if pid < 0 {
		epoch, seq = -1, -1
	}
	b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: time.Now().UnixMilli(), ProducerID: pid,
		ProducerEpoch: epoch, BaseSequence: seq, Records: []record.Record{{Key: []byte(key), Value: []byte(value)}}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := record.ValidateProduce(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

// TestReplicaCleanerPolicy: the cleaner compacts a compacted partition once
// its dirty ratio reaches min.cleanable.dirty.ratio, leaves a clean one
// alone, and an idempotent producer's state survives compaction and replay.
func TestReplicaCleanerPolicy(t *testing.T) {
	dir := t.TempDir()
	m := NewManager(ManagerConfig{DataDir: dir, NodeID: 1})
	cfg := testConfig()
	cfg.Compact, cfg.Delete = true, false
	cfg.SegmentBytes = 1024
	var id [16]byte
	id[0] = 3
	tp := TopicPartition{"c", 0}
	plain := cfg
	plain.Compact, plain.Delete = false, true
	id2 := id
	id2[1] = 1
	want := map[TopicPartition]PartitionState{
		tp:       {TopicID: id, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}, Config: cfg},
		{"d", 0}: {TopicID: id2, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}, Config: plain},
	}
	if err := m.Reconcile(want); err != nil {
		t.Fatal(err)
	}
	p := m.Get("c", 0)
	for seq := int32(0); seq < 5; seq++ {
		b, h := keyedBatch(t, 9, seq, "k", "idempotent")
		if _, err := p.Append(b, h, 1); err != nil {
			t.Fatal(err)
		}
	}
	for range 60 {
		for _, part := range []*Partition{p, m.Get("d", 0)} {
			b, h := keyedBatch(t, -1, 0, "k", "filler-filler-filler-filler")
			if _, err := part.Append(b, h, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The plain (delete) partition next to it is never a candidate.
	if n := m.CleanNow(context.Background()); n != 1 {
		t.Fatalf("first pass compacted %d partitions, want 1", n)
	}
	if n := m.CleanNow(context.Background()); n != 0 {
		t.Fatalf("second pass compacted %d partitions, want 0 (nothing dirty)", n)
	}
	if st := p.log.CleanerState(); st.DirtyBytes != 0 || st.CleanBytes == 0 {
		t.Fatalf("cleaner state %+v", st)
	}
	leo := p.LogEndOffset()
	// Replay without a snapshot: the producer's last batch, kept empty, still
	// tells a retry from a new batch.
	p.log.Close()
	for _, off := range p.snapshots() {
		if err := os.Remove(p.snapshotPath(off)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := openPartition(nil, dir, "c", 0, id, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	defer m.Close()
	if st := m.Get("d", 0).log.CleanerState(); st.CleanPoint != 0 {
		t.Fatalf("the delete-policy partition was compacted: %+v", st)
	}
	if p.LogEndOffset() != leo {
		t.Fatalf("log end %d, want %d", p.LogEndOffset(), leo)
	}
	b, h := keyedBatch(t, 9, 4, "k", "idempotent")
	if res, err := p.Append(b, h, 1); err != nil || !res.Duplicate || res.BaseOffset != 4 {
		t.Fatalf("retry after compaction = %+v, %v; want duplicate at 4", res, err)
	}
	b, h = keyedBatch(t, 9, 6, "k", "gap")
	if _, err := p.Append(b, h, 1); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap after compaction = %v, want out of order", err)
	}
}
