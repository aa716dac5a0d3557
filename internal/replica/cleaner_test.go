package replica

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/record"
	"github.com/gregor-dev/gregor/internal/testkit"
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

// TestReplicaCleanerBackoffDynamic: log.cleaner.backoff.ms changed at run
// time takes effect at once, not after the wait under way (an hour here).
func TestReplicaCleanerBackoffDynamic(t *testing.T) {
	m := NewManager(ManagerConfig{DataDir: t.TempDir(), NodeID: 1, CleanerBackoff: time.Hour})
	cfg := testConfig()
	cfg.Compact, cfg.Delete = true, false
	cfg.SegmentBytes = 1024
	var id [16]byte
	id[0] = 4
	if err := m.Reconcile(map[TopicPartition]PartitionState{{"c", 0}: {TopicID: id, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}, Config: cfg}}); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p := m.Get("c", 0)
	for range 60 {
		b, h := keyedBatch(t, -1, 0, "k", "filler-filler-filler-filler")
		if _, err := p.Append(b, h, 1); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	m.SetCleanerBackoff(20 * time.Millisecond)
	testkit.Eventually(t, 10*time.Second, "a compaction after the backoff became 20ms", func() error {
		if st := p.log.CleanerState(); st.CleanBytes == 0 {
			return fmt.Errorf("cleaner state %+v", st)
		}
		return nil
	})
}

func keyedTxnBatch(t *testing.T, pid int64, seq int32, key, value string) ([]byte, record.Header) {
	t.Helper()
	b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: time.Now().UnixMilli(), ProducerID: pid,
		ProducerEpoch: 0, BaseSequence: seq, Transactional: true, Records: []record.Record{{Key: []byte(key), Value: []byte(value)}}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := record.ValidateProduce(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

// TestReplicaCleanerTxn: the cleaner keeps a committed value under a newer
// aborted one and removes the aborted one; it does not clean past a
// transaction still open; once the aborted transaction has no record left
// it leaves the aborted index (memory and file), its marker goes after
// delete.retention.ms, and a reopened partition agrees.
func TestReplicaCleanerTxn(t *testing.T) {
	dir := t.TempDir()
	m := NewManager(ManagerConfig{DataDir: dir, NodeID: 1})
	defer m.Close()
	cfg := testConfig()
	cfg.Compact, cfg.Delete = true, false
	cfg.SegmentBytes = 1024
	cfg.MinCleanableDirtyRatio = 0.01
	cfg.DeleteRetentionMs = 0
	var id [16]byte
	id[0] = 4
	tp := TopicPartition{"ct", 0}
	if err := m.Reconcile(map[TopicPartition]PartitionState{tp: {TopicID: id, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}, Config: cfg}}); err != nil {
		t.Fatal(err)
	}
	p := m.Get("ct", 0)
	appendTo := func(b []byte, h record.Header) AppendResult { return mustAppend(t, p, b, h) }
	committed := appendTo(keyedTxnBatch(t, 4, 0, "k", "committed"))
	mustMarker(t, p, 4, 0, true)
	aborted := appendTo(keyedTxnBatch(t, 4, 1, "k", "aborted"))
	abortMarker := mustMarker(t, p, 4, 0, false)
	appendTo(keyedTxnBatch(t, 4, 2, "k2", "later"))
	mustMarker(t, p, 4, 0, true)
	fillers := 0
	fill := func(n int) {
		for range n {
			appendTo(keyedBatch(t, -1, 0, fmt.Sprintf("filler-%03d", fillers), strings.Repeat("f", 200)))
			fillers++
		}
	}
	fill(5)
	open := appendTo(keyedTxnBatch(t, 6, 0, "o", "open"))
	fill(10)

	values := func() map[int64]string {
		out := map[int64]string{}
		err := p.log.ScanBatches(0, func(b []byte) error {
			h, err := record.ParseHeader(b)
			if err != nil || h.IsControl() {
				return err
			}
			return record.Records(b, h, 1<<20, func(r record.Record) error {
				out[h.BaseOffset+int64(r.OffsetDelta)] = string(r.Value)
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if n := m.CleanNow(context.Background()); n != 1 {
		t.Fatalf("cleaned %d partitions, want 1", n)
	}
	if cp := p.log.CleanerState().CleanPoint; cp == 0 || cp > open.BaseOffset {
		t.Fatalf("clean point %d with a transaction open at %d", cp, open.BaseOffset)
	}
	vals := values()
	if vals[committed.BaseOffset] != "committed" || vals[open.BaseOffset] != "open" {
		t.Fatalf("after the first pass: %q at %d, %q at %d", vals[committed.BaseOffset], committed.BaseOffset, vals[open.BaseOffset], open.BaseOffset)
	}
	if _, ok := vals[aborted.BaseOffset]; ok {
		t.Fatalf("aborted record kept at %d", aborted.BaseOffset)
	}
	// The open transaction holds the cleaner back: nothing cleanable is dirty.
	if n := m.CleanNow(context.Background()); n != 0 {
		t.Fatalf("cleaned %d partitions while only records past the open transaction are dirty", n)
	}
	if got := p.AbortedTransactions(0, p.LogEndOffset()); len(got) != 1 {
		t.Fatalf("aborted index after the first pass: %+v", got)
	}
	mustMarker(t, p, 6, 0, true)
	// Two more passes: the marker gets its horizon (the transaction leaves
	// the index), then goes.
	for pass := range 2 {
		fill(8)
		if n := m.CleanNow(context.Background()); n != 1 {
			t.Fatalf("pass %d cleaned %d partitions, want 1", pass, n)
		}
		if pass == 0 {
			if got := p.AbortedTransactions(0, p.LogEndOffset()); len(got) != 0 {
				t.Fatalf("aborted index after its records went: %+v", got)
			}
		}
	}
	markerLeft := false
	if err := p.log.ScanBatches(0, func(b []byte) error {
		h, err := record.ParseHeader(b)
		markerLeft = markerLeft || h.BaseOffset == abortMarker
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if markerLeft {
		t.Fatalf("ABORT marker at %d kept past delete.retention.ms", abortMarker)
	}
	vals = values()
	if vals[committed.BaseOffset] != "committed" {
		t.Fatalf("committed value lost: %q", vals[committed.BaseOffset])
	}
	leo := p.LogEndOffset()

	// Reopen: the index file agrees, and no transaction is reopened.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	p2, err := openPartition(nil, dir, "ct", 0, id, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.close()
	if got := p2.AbortedTransactions(0, leo); len(got) != 0 {
		t.Fatalf("aborted index after reopening: %+v", got)
	}
	if p2.LogEndOffset() != leo || p2.LastStableOffset() != p2.HighWatermark() {
		t.Fatalf("reopened: leo %d (want %d), lso %d, hw %d", p2.LogEndOffset(), leo, p2.LastStableOffset(), p2.HighWatermark())
	}
}
