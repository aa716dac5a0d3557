package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestVFSFaultFS(t *testing.T) {
	fs := NewFaultFS(nil)
	dir := t.TempDir()
	f, err := fs.OpenFile(filepath.Join(dir, "a.log"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other, err := fs.OpenFile(filepath.Join(dir, "b.index"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if OSFile(f) == nil {
		t.Fatal("a FaultFS file over the OS hides its *os.File")
	}

	t.Run("write fails half-way", func(t *testing.T) {
		flt := fs.Add(&Fault{Op: OpWrite, Match: Suffix(".log"), Fail: true})
		defer fs.Clear(flt)
		n, err := f.WriteAt([]byte("abcd"), 0)
		if !errors.Is(err, ErrInjected) || n != 2 {
			t.Fatalf("WriteAt = %d, %v; want 2, ErrInjected", n, err)
		}
		if _, err := other.WriteAt([]byte("abcd"), 0); err != nil {
			t.Fatalf("a file the fault does not match failed: %v", err)
		}
	})
	t.Run("sync blocks until released, then fails", func(t *testing.T) {
		want := errors.New("EIO")
		flt := fs.Add(&Fault{Op: OpSync, Match: Suffix(".log"), Block: true, Fail: true, Err: want})
		defer fs.Clear(flt)
		done := make(chan error, 1)
		go func() { done <- f.SyncData() }()
		<-flt.Hit()
		select {
		case err := <-done:
			t.Fatalf("sync returned %v before the release", err)
		default:
		}
		flt.Release()
		if err := <-done; !errors.Is(err, want) {
			t.Fatalf("sync after release: %v, want %v", err, want)
		}
	})
	t.Run("cleared fault is gone", func(t *testing.T) {
		flt := fs.Add(&Fault{Op: OpSync, Fail: true})
		fs.Clear(flt)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := fs.SyncDir(dir); err != nil {
			t.Fatal(err)
		}
	})
}

func TestVFSMemFSCrashClone(t *testing.T) {
	m := NewMemFS()
	if err := m.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string, sync bool) {
		t.Helper()
		f, err := m.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
		if sync {
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
	}
	write("/d/a", "durable", true)
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	write("/d/a", "+lost", false)      // overwrites from offset 0, never synced
	write("/d/b", "synced file", true) // its directory entry is never synced
	if err := m.Rename("/d/a", "/d/c"); err != nil {
		t.Fatal(err)
	}

	c := m.CrashClone()
	got, err := c.ReadFile("/d/a")
	if err != nil || string(got) != "durable" {
		t.Fatalf("after crash /d/a = %q, %v; want the synced bytes under the synced name", got, err)
	}
	for _, name := range []string{"/d/b", "/d/c"} {
		if _, err := c.Stat(name); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after crash %s: %v, want not exist (its directory was not synced)", name, err)
		}
	}
	if got, _ := m.ReadFile("/d/c"); string(got) != "+lostle" {
		t.Fatalf("live /d/c = %q", got)
	}
}

func TestVFSWatchFSReportsIOErrors(t *testing.T) {
	ffs := NewFaultFS(NewMemFS())
	ffs.MkdirAll("/d", 0o755)
	var got []string
	w := NewWatchFS(ffs, func(name string, err error) { got = append(got, name) })
	if _, err := w.Open("/d/missing"); err == nil {
		t.Fatal("opened a missing file")
	}
	f, err := w.OpenFile("/d/a.log", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("reported %v before any I/O error", got)
	}
	flt := ffs.Add(&Fault{Op: OpSync, Match: Suffix(".log"), Fail: true})
	if err := f.Sync(); !errors.Is(err, ErrInjected) {
		t.Fatalf("Sync = %v", err)
	}
	ffs.Clear(flt)
	f.Close()
	if err := f.Sync(); err == nil {
		t.Fatal("Sync of a closed file succeeded")
	}
	if err := w.SyncDir("/d/gone"); err == nil {
		t.Fatal("SyncDir of a missing directory succeeded")
	}
	if len(got) != 1 || got[0] != "/d/a.log" {
		t.Fatalf("reported %v, want the failed fsync of /d/a.log only", got)
	}
}
