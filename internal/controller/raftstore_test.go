package controller

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/gregor-dev/gregor/internal/vfs"
)

func mkLogs(from, to, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("e%d-t%d", i, term))})
	}
	return out
}

func checkLogs(t *testing.T, s *raftStore, first, last uint64, term func(uint64) uint64) {
	t.Helper()
	if f, _ := s.FirstIndex(); f != first {
		t.Fatalf("first %d, want %d", f, first)
	}
	if l, _ := s.LastIndex(); l != last {
		t.Fatalf("last %d, want %d", l, last)
	}
	for i := first; first > 0 && i <= last; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("log %d: %v", i, err)
		}
		if want := fmt.Sprintf("e%d-t%d", i, term(i)); string(l.Data) != want || l.Term != term(i) {
			t.Fatalf("log %d = %q term %d, want %q", i, l.Data, l.Term, want)
		}
	}
}

// TestRaftStoreDurableAcrossCrash: what StoreLogs, DeleteRange and Set
// returned survives a crash (MemFS.CrashClone), a suffix truncation and a
// rewrite after compaction included; a torn tail is cut off.
func TestRaftStoreDurableAcrossCrash(t *testing.T) {
	m := vfs.NewMemFS()
	m.MkdirAll("/md", 0o755)
	log := slog.New(slog.DiscardHandler)
	s, err := openRaftStore(m, "/md", log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(mkLogs(1, 100, 1)); err != nil {
		t.Fatal(err)
	}
	// A follower's conflict: 91.. are replaced by term 2 entries.
	if err := s.DeleteRange(91, 100); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(mkLogs(91, 120, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	termOf := func(i uint64) uint64 {
		if i > 90 {
			return 2
		}
		return 1
	}
	reopen := func() *raftStore {
		t.Helper()
		m = m.CrashClone()
		s, err := openRaftStore(m, "/md", log)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s = reopen()
	checkLogs(t, s, 1, 120, termOf)
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 2 {
		t.Fatalf("CurrentTerm = %d, %v", v, err)
	}
	if _, err := s.Get([]byte("LastVoteTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key: %v, want raft's \"not found\"", err)
	}

	// Compaction past rewriteMin rewrites the file; the result survives.
	big := make([]byte, 4096)
	var logs []*raft.Log
	for i := uint64(121); i <= 700; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 2, Data: big})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 650); err != nil {
		t.Fatal(err)
	}
	if s.size > rewriteMin {
		t.Fatalf("wal is %d bytes after compacting to 50 entries: not rewritten", s.size)
	}
	s = reopen()
	if f, l := s.first, s.last; f != 651 || l != 700 {
		t.Fatalf("after rewrite and crash: %d..%d, want 651..700", f, l)
	}

	// A torn last frame is cut off, the rest kept.
	if err := s.StoreLogs(mkLogs(701, 701, 3)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	data, _ := m.ReadFile("/md/" + walFile)
	f, _ := m.OpenFile("/md/"+walFile, os.O_RDWR, 0)
	f.Truncate(int64(len(data) - 3))
	f.Sync()
	f.Close()
	s = reopen()
	if l, _ := s.LastIndex(); l != 700 {
		t.Fatalf("last %d after a torn tail, want 700", l)
	}
	if err := s.StoreLogs(mkLogs(701, 702, 3)); err != nil {
		t.Fatal(err)
	}
	s = reopen()
	if err := s.DeleteRange(651, 700); err != nil {
		t.Fatal(err)
	}
	s = reopen()
	checkLogs(t, s, 701, 702, func(uint64) uint64 { return 3 })
}

// TestRaftStoreFailedSyncFailsStore: after a failed fsync the store refuses
// every later write (what reached the disk is unknown).
func TestRaftStoreFailedSyncFailsStore(t *testing.T) {
	ffs := vfs.NewFaultFS(vfs.NewMemFS())
	ffs.MkdirAll("/md", 0o755)
	s, err := openRaftStore(ffs, "/md", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	flt := ffs.Add(&vfs.Fault{Op: vfs.OpSync, Fail: true})
	if err := s.StoreLogs(mkLogs(1, 1, 1)); err == nil {
		t.Fatal("StoreLogs succeeded with a failing fsync")
	}
	ffs.Clear(flt)
	if err := s.StoreLogs(mkLogs(1, 1, 1)); err == nil {
		t.Fatal("StoreLogs succeeded after an earlier failed fsync")
	}
	if l, _ := s.LastIndex(); l != 0 {
		t.Fatalf("last %d: a failed write is visible", l)
	}
}

// TestRaftStoreMigratesBolt: a metadata directory of an older Gregor
// (raft.db) is copied into the new store and raft.db renamed away.
func TestRaftStoreMigratesBolt(t *testing.T) {
	dir := t.TempDir()
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, boltFile)})
	if err != nil {
		t.Fatal(err)
	}
	if err := bolt.StoreLogs(mkLogs(5, 40, 4)); err != nil {
		t.Fatal(err)
	}
	bolt.SetUint64([]byte("CurrentTerm"), 4)
	bolt.SetUint64([]byte("LastVoteTerm"), 4)
	bolt.Set([]byte("LastVoteCand"), []byte("2"))
	bolt.Close()

	s, err := openRaftStore(vfs.Default, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkLogs(t, s, 5, 40, func(uint64) uint64 { return 4 })
	for k, want := range map[string]uint64{"CurrentTerm": 4, "LastVoteTerm": 4} {
		if v, err := s.GetUint64([]byte(k)); err != nil || v != want {
			t.Fatalf("%s = %d, %v", k, v, err)
		}
	}
	if v, _ := s.Get([]byte("LastVoteCand")); string(v) != "2" {
		t.Fatalf("LastVoteCand = %q", v)
	}
	if _, err := os.Stat(filepath.Join(dir, boltFile)); !os.IsNotExist(err) {
		t.Fatalf("raft.db still there after migration: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, migratedBolt)); err != nil {
		t.Fatal(err)
	}
}

// TestSnapStoreCrashAndCompat: a closed snapshot survives a crash and is
// listed newest first; an unfinished one is not listed; a snapshot of
// hashicorp/raft's FileSnapshotStore reads back, and ours reads with it.
func TestSnapStoreCrashAndCompat(t *testing.T) {
	m := vfs.NewMemFS()
	log := slog.New(slog.DiscardHandler)
	m.MkdirAll("/md", 0o755)
	st, err := openSnapStore(m, "/md", 2, log)
	if err != nil {
		t.Fatal(err)
	}
	write := func(st *snapStore, index uint64, data string, finish bool) string {
		t.Helper()
		sink, err := st.Create(1, index, 1, raft.Configuration{Servers: []raft.Server{{ID: "1", Address: "a"}}}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		sink.Write([]byte(data))
		if finish {
			if err := sink.Close(); err != nil {
				t.Fatal(err)
			}
		}
		return sink.ID()
	}
	write(st, 10, "ten", true)
	write(st, 20, "twenty", true)
	write(st, 30, "thirty, unfinished", false)
	m = m.CrashClone()
	st, _ = openSnapStore(m, "/md", 2, log)
	list, err := st.List()
	if err != nil || len(list) != 2 || list[0].Index != 20 || list[1].Index != 10 {
		t.Fatalf("List = %v, %v", list, err)
	}
	_, rc, err := st.Open(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(rc); string(b) != "twenty" {
		t.Fatalf("snapshot state %q", b)
	}

	dir := t.TempDir()
	fss, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sink, _ := fss.Create(1, 7, 1, raft.Configuration{}, 1, nil)
	sink.Write([]byte("theirs"))
	sink.Close()
	ours, _ := openSnapStore(vfs.Default, dir, 2, log)
	list, _ = ours.List()
	if len(list) != 1 {
		t.Fatalf("FileSnapshotStore's snapshot not listed: %v", list)
	}
	if _, rc, err := ours.Open(list[0].ID); err != nil {
		t.Fatal(err)
	} else if b, _ := io.ReadAll(rc); string(b) != "theirs" {
		t.Fatalf("read %q", b)
	}
	id := write(ours, 9, "ours", true)
	if _, rc, err := fss.Open(id); err != nil {
		t.Fatalf("FileSnapshotStore cannot read ours: %v", err)
	} else if b, _ := io.ReadAll(rc); string(b) != "ours" {
		t.Fatalf("read %q", b)
	}
}
