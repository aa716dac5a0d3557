package commitlog

import (
	"errors"
	"testing"

	"github.com/gregor-dev/gregor/internal/vfs"
)

// TestLogFaultWriteSticky: a segment write that fails half-way publishes
// nothing (LEO, reads) and every later append fails with the same failure.
func TestLogFaultWriteSticky(t *testing.T) {
	fs := vfs.NewFaultFS(nil)
	l := openLog(t, Config{FS: fs})
	mustAppend(t, l, makeBatch(t, 2, 10, 1), 0)
	f := fs.Add(&vfs.Fault{Op: vfs.OpWrite, Match: vfs.Suffix(logExt), Fail: true})
	if _, err := l.Append(makeBatch(t, 2, 10, 1), 0, 0); !errors.Is(err, ErrLogFailed) || !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("failing append: %v", err)
	}
	fs.Clear(f)
	if _, err := l.Append(makeBatch(t, 2, 10, 1), 0, 0); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("append after a failed write: %v, want the sticky ErrLogFailed", err)
	}
	if got := l.LogEndOffset(); got != 2 {
		t.Fatalf("LEO %d after a failed write, want 2", got)
	}
	res, err := l.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if res.NextOffset != 2 {
		t.Fatalf("read reaches offset %d, want 2: the torn batch is visible", res.NextOffset)
	}
	if err := l.Err(); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Err() = %v", err)
	}
}

// TestLogFaultSyncSticky: a failed fsync does not move the durable offset
// and fails every later Sync and Append (fsyncgate: after a failed fsync the
// page cache cannot be trusted to reach the disk).
func TestLogFaultSyncSticky(t *testing.T) {
	fs := vfs.NewFaultFS(nil)
	l := openLogFsync(t, Config{FS: fs})
	mustAppend(t, l, makeBatch(t, 1, 10, 1), 0)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, makeBatch(t, 1, 10, 1), 0)
	f := fs.Add(&vfs.Fault{Op: vfs.OpSync, Match: vfs.Suffix(logExt), Fail: true})
	if err := l.Sync(); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("failing sync: %v", err)
	}
	fs.Clear(f)
	if got := l.DurableOffset(); got != 1 {
		t.Fatalf("durable offset %d after a failed fsync, want 1", got)
	}
	if err := l.Sync(); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("sync after a failed fsync: %v, want sticky", err)
	}
	if _, err := l.Append(makeBatch(t, 1, 10, 1), 0, 0); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("append after a failed fsync: %v, want sticky", err)
	}
}

// TestLogCrashKeepsSynced: after a simulated crash (vfs.MemFS drops what
// was not fsynced) a batch acknowledged after Sync (acks=all) is there and
// one appended after the last Sync is not; the log reopens and appends.
func TestLogCrashKeepsSynced(t *testing.T) {
	for _, roll := range []bool{false, true} {
		t.Run(map[bool]string{false: "one segment", true: "after a roll"}[roll], func(t *testing.T) {
			mem := vfs.NewMemFS()
			cfg := Config{Dir: "/data/t-0", FS: mem}
			if roll {
				cfg.SegmentBytes = 200
			}
			l := openLogFsync(t, cfg)
			var synced int64
			for i := range 3 {
				mustAppend(t, l, makeBatch(t, 1, 100, int64(i)), 0)
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			synced = l.LogEndOffset()
			mustAppend(t, l, makeBatch(t, 1, 100, 9), 0) // not synced: lost
			if roll && l.NumSegments() < 2 {
				t.Fatalf("%d segments, want a roll", l.NumSegments())
			}

			cfg.FS = mem.CrashClone()
			r := openLogFsync(t, cfg)
			if got := r.LogEndOffset(); got != synced {
				t.Fatalf("LEO after crash %d, want the synced %d", got, synced)
			}
			res, err := r.Read(0, 1<<20)
			if err != nil || res.NextOffset == 0 {
				t.Fatalf("read after crash: next %d, %v", res.NextOffset, err)
			}
			if _, err := r.Append(makeBatch(t, 1, 100, 10), 0, 0); err != nil {
				t.Fatalf("append after crash: %v", err)
			}
		})
	}
}

// TestLogCrashKeepsCheckpointRenames: a checkpoint written through a
// temporary file and a rename (the leader-epoch checkpoint, the log start
// after DeleteRecords) survives a crash right after the call returned: the
// rename is made durable by an fsync of the directory. Before that fsync
// the old checkpoint came back, so a new leader forgot the epoch it had
// started at its log end.
func TestLogCrashKeepsCheckpointRenames(t *testing.T) {
	mem := vfs.NewMemFS()
	cfg := Config{Dir: "/data/t-0", FS: mem}
	l := openLogFsync(t, cfg)
	mustAppend(t, l, makeBatch(t, 1, 100, 0), 0)
	mustAppend(t, l, makeBatch(t, 1, 100, 1), 0)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.AssignEpoch(3); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, makeBatch(t, 1, 100, 2), 3)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.SetLogStartOffset(1); err != nil {
		t.Fatal(err)
	}

	cfg.FS = mem.CrashClone()
	r := openLogFsync(t, cfg)
	if got := r.LatestEpoch(); got != 3 {
		t.Fatalf("latest epoch after crash %d, want 3", got)
	}
	if e, end := r.EndOffsetForEpoch(0); e != 0 || end != 2 {
		t.Fatalf("EndOffsetForEpoch(0) after crash = %d, %d; want 0, 2", e, end)
	}
	if got := r.LogStartOffset(); got != 1 {
		t.Fatalf("log start after crash %d, want 1", got)
	}
}
