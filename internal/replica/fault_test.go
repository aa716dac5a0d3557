package replica

import (
	"errors"
	"io"
	"os"
	"testing"

	"github.com/gregor-dev/gregor/internal/commitlog"
	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/record"
	"github.com/gregor-dev/gregor/internal/vfs"
)

// Fault-injection tests: a segment fsync that blocks or fails (vfs.FaultFS)
// while a transaction marker or a flush.messages append waits for it.

func openFaultPartition(t *testing.T, fs vfs.FS, dir string, cfg config.Topic) *Partition {
	t.Helper()
	p, err := openPartition(fs, dir, "t", 0, [16]byte{9}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.close() })
	p.becomeLeader(1, 0, []int32{0}, []int32{0})
	return p
}

// segmentSync is a fault on the fsync of the partition's segment files.
func segmentSync(block, fail bool) *vfs.Fault {
	return &vfs.Fault{Op: vfs.OpSync, Match: vfs.Suffix(".log"), Block: block, Fail: fail}
}

// checkCommittedRead reads read_committed from offset 0 as a fetch does
// (data up to the LSO, then the aborted transactions below it) and fails if
// a transactional batch of pid is returned without its transaction listed.
func checkCommittedRead(t *testing.T, p *Partition, pid int64) {
	t.Helper()
	lso := p.LastStableOffset()
	data, err := p.ReadCommitted(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	aborted := p.AbortedTransactions(0, lso)
	for _, h := range batchesOf(t, data) {
		if h.ProducerID != pid || h.IsControl() {
			continue
		}
		listed := false
		for _, a := range aborted {
			listed = listed || (a.ProducerID == pid && a.FirstOffset <= h.BaseOffset)
		}
		if !listed {
			t.Fatalf("read_committed returned aborted batch at %d (LSO %d) with aborted transactions %v",
				h.BaseOffset, lso, aborted)
		}
	}
}

// TestReplicaTxnAbortMarkerSlowFsync: while the ABORT marker's fsync is in
// flight, the LSO stays at the transaction's first offset (the marker is not
// below the high watermark yet), a read_committed fetch never sees the
// aborted records unlisted, and the append lock is free.
func TestReplicaTxnAbortMarkerSlowFsync(t *testing.T) {
	fs := vfs.NewFaultFS(nil)
	p := openFaultPartition(t, fs, t.TempDir(), testConfig())
	b, h := txnBatch(t, 1, 0, 0, 2)
	mustAppend(t, p, b, h)
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != 0 || hw != 2 {
		t.Fatalf("open transaction: LSO %d HW %d, want 0 2", lso, hw)
	}

	flt := fs.Add(segmentSync(true, false))
	t.Cleanup(func() { fs.Clear(flt) }) // a failed check must not leave Close blocked
	type result struct {
		off int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		off, err := p.AppendTxnMarker(1, 0, false, 3)
		done <- result{off, err}
	}()
	<-flt.Hit()

	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != 0 || hw != 2 {
		t.Errorf("marker fsync in flight: LSO %d HW %d, want 0 2", lso, hw)
	}
	checkCommittedRead(t, p, 1)
	p.Producers() // takes the append lock: the fsync must not hold it

	flt.Release()
	res := <-done
	fs.Clear(flt)
	if res.err != nil || res.off != 2 {
		t.Fatalf("AppendTxnMarker = %d, %v; want 2, nil", res.off, res.err)
	}
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != 3 || hw != 3 {
		t.Fatalf("after the marker: LSO %d HW %d, want 3 3", lso, hw)
	}
	if got := p.AbortedTransactions(0, 3); len(got) != 1 || got[0] != (AbortedTxn{ProducerID: 1, FirstOffset: 0}) {
		t.Fatalf("aborted transactions %v, want [{1 0}]", got)
	}
	checkCommittedRead(t, p, 1)
}

// TestReplicaTxnAbortMarkerFsyncFails: when the ABORT marker's fsync fails
// the marker is answered as failed, the LSO and the high watermark stay
// before the aborted records, the partition refuses writes, and a restart
// (the marker's bytes did reach the file) finds the abort indexed.
func TestReplicaTxnAbortMarkerFsyncFails(t *testing.T) {
	dir := t.TempDir()
	fs := vfs.NewFaultFS(nil)
	p := openFaultPartition(t, fs, dir, testConfig())
	b, h := txnBatch(t, 1, 0, 0, 2)
	mustAppend(t, p, b, h)

	flt := fs.Add(segmentSync(false, true))
	if _, err := p.AppendTxnMarker(1, 0, false, 3); !errors.Is(err, commitlog.ErrLogFailed) {
		t.Fatalf("AppendTxnMarker with a failing fsync: %v, want ErrLogFailed", err)
	}
	fs.Clear(flt)
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != 0 || hw != 2 {
		t.Fatalf("after the failed marker: LSO %d HW %d, want 0 2", lso, hw)
	}
	checkCommittedRead(t, p, 1)
	if _, err := p.AppendTxnMarker(1, 0, false, 3); !errors.Is(err, commitlog.ErrLogFailed) {
		t.Fatalf("marker retry: %v, want the sticky ErrLogFailed", err)
	}
	nb, nh := allocBatch(t, 1, 10)
	if _, err := p.Append(nb, nh, 1); !errors.Is(err, commitlog.ErrLogFailed) {
		t.Fatalf("append after the failed marker: %v, want ErrLogFailed", err)
	}

	if err := p.close(); !errors.Is(err, commitlog.ErrLogFailed) {
		t.Fatalf("close of a failed log: %v", err)
	}
	p = openFaultPartition(t, nil, dir, testConfig())
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != 3 || hw != 3 {
		t.Fatalf("after restart: LSO %d HW %d, want 3 3", lso, hw)
	}
	if got := p.AbortedTransactions(0, 3); len(got) != 1 || got[0] != (AbortedTxn{ProducerID: 1, FirstOffset: 0}) {
		t.Fatalf("aborted transactions after restart %v, want [{1 0}]", got)
	}
	checkCommittedRead(t, p, 1)
}

// TestReplicaFlushMessagesFsyncFails: with flush.messages=1 an append whose
// fsync fails is answered as failed and never becomes visible; the failure
// is sticky, so the producer's retry writes nothing (no duplicate), and an
// idempotent retry is not mistaken for a written duplicate.
func TestReplicaFlushMessagesFsyncFails(t *testing.T) {
	cases := []struct {
		name  string
		batch func(t *testing.T) ([]byte, record.Header)
	}{
		{"non-idempotent", func(t *testing.T) ([]byte, record.Header) { return allocBatch(t, 3, 10) }},
		{"idempotent", func(t *testing.T) ([]byte, record.Header) { return idempotentBatch(t, 5, 0, 1, 3) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.FlushMessages = 1
			fs := vfs.NewFaultFS(nil)
			p := openFaultPartition(t, fs, t.TempDir(), cfg)
			first, fh := idempotentBatch(t, 5, 0, 0, 1)
			if _, err := p.Append(first, fh, 1); err != nil {
				t.Fatal(err)
			}
			if hw := p.HighWatermark(); hw != 1 {
				t.Fatalf("HW %d after a flushed append, want 1", hw)
			}

			flt := fs.Add(segmentSync(false, true))
			b, h := tc.batch(t)
			if _, err := p.Append(b, h, 1); !errors.Is(err, commitlog.ErrLogFailed) {
				t.Fatalf("append with a failing fsync: %v, want ErrLogFailed", err)
			}
			fs.Clear(flt)
			leo := p.LogEndOffset()
			for i := range 2 {
				res, err := p.Append(b, h, 1)
				if !errors.Is(err, commitlog.ErrLogFailed) {
					t.Fatalf("retry %d: %+v, %v; want ErrLogFailed", i, res, err)
				}
			}
			if got := p.LogEndOffset(); got != leo {
				t.Fatalf("retries moved the log end offset from %d to %d", leo, got)
			}
			if hw := p.HighWatermark(); hw != 1 {
				t.Fatalf("HW %d: the batch whose fsync failed is visible", hw)
			}
			data, err := p.Read(0, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if hs := batchesOf(t, data); len(hs) != 1 || hs[0].BaseOffset != 0 {
				t.Fatalf("read returned %d batches, want only the first one", len(hs))
			}
		})
	}
}

// TestReplicaFlushMessagesSlowFsync: a flush.messages append is visible only
// once its fsync is done, and the fsync does not hold the append lock.
func TestReplicaFlushMessagesSlowFsync(t *testing.T) {
	cfg := testConfig()
	cfg.FlushMessages = 1
	fs := vfs.NewFaultFS(nil)
	p := openFaultPartition(t, fs, t.TempDir(), cfg)
	flt := fs.Add(segmentSync(true, false))
	t.Cleanup(func() { fs.Clear(flt) }) // a failed check must not leave Close blocked
	b, h := allocBatch(t, 2, 10)
	done := make(chan error, 1)
	go func() {
		_, err := p.Append(b, h, 1)
		done <- err
	}()
	<-flt.Hit()
	if hw := p.HighWatermark(); hw != 0 {
		t.Errorf("HW %d while the batch's fsync is in flight, want 0", hw)
	}
	p.Producers() // takes the append lock: the fsync must not hold it
	flt.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fs.Clear(flt)
	if hw := p.HighWatermark(); hw != 2 {
		t.Fatalf("HW %d after the fsync, want 2", hw)
	}
}

// TestReplicaCrashKeepsAcksAll: after a simulated crash (vfs.MemFS drops
// what was not fsynced) an acks=all append that WaitDurable acknowledged is
// there, and an acks=1 append after it, never fsynced, is not.
func TestReplicaCrashKeepsAcksAll(t *testing.T) {
	mem := vfs.NewMemFS()
	p := openFaultPartition(t, mem, "/data", testConfig())
	b, h := allocBatch(t, 3, 10)
	res, err := p.Append(b, h, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitDurable(t.Context(), res.LastOffset+1); err != nil {
		t.Fatal(err)
	}
	b, h = allocBatch(t, 2, 10)
	if _, err := p.Append(b, h, 1); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != 5 {
		t.Fatalf("HW %d before the crash, want 5", hw)
	}

	r := openFaultPartition(t, mem.CrashClone(), "/data", testConfig())
	if hw, leo := r.HighWatermark(), r.LogEndOffset(); hw != 3 || leo != 3 {
		t.Fatalf("after the crash: HW %d LEO %d, want the acknowledged 3", hw, leo)
	}
	data, err := r.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if hs := batchesOf(t, data); len(hs) != 1 || hs[0].NumRecords != 3 {
		t.Fatalf("after the crash read %d batches, want the acks=all one", len(hs))
	}
}

// TestReplicaWriteFileAtomicSurvivesCrash: a file replaced with
// writeFileAtomic holds the new bytes after a crash (the rename is made
// durable with a directory sync), never the old ones.
func TestReplicaWriteFileAtomicSurvivesCrash(t *testing.T) {
	fs := vfs.NewMemFS()
	if err := fs.MkdirAll("/p", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(fs, "/p/f", []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(fs, "/p/f", []byte("new")); err != nil {
		t.Fatal(err)
	}
	f, err := fs.CrashClone().OpenFile("/p/f", os.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("after a crash: %v", err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "new" {
		t.Fatalf("after a crash the file holds %q, want %q", got, "new")
	}
}
