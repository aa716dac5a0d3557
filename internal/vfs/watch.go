package vfs

import (
	"errors"
	"os"
)

// WatchFS is an FS that reports every failed write, truncate or fsync of
// the FS it wraps (the I/O errors after which Kafka takes a log directory
// offline: EIO, ENOSPC, ...) to a callback, and otherwise passes every
// operation through. Failed opens, renames and removes are not reported:
// a missing file is an answer, not a disk fault.
type WatchFS struct {
	FS
	onErr func(name string, err error)
}

// NewWatchFS wraps fs; onErr runs in the failed operation's goroutine, so
// it must not block.
func NewWatchFS(fs FS, onErr func(name string, err error)) *WatchFS {
	return &WatchFS{FS: fs, onErr: onErr}
}

// OpenFile opens a file whose failed writes and fsyncs are reported.
func (w *WatchFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := w.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &watchFile{File: f, w: w, name: name}, nil
}

// Open opens a file for reading.
func (w *WatchFS) Open(name string) (File, error) { return w.OpenFile(name, os.O_RDONLY, 0) }

// SyncDir reports a failed directory fsync.
func (w *WatchFS) SyncDir(dir string) error { return w.check(dir, w.FS.SyncDir(dir)) }

func (w *WatchFS) check(name string, err error) error {
	// A file closed under a late fsync (a segment swapped out), or a
	// directory removed before its fsync (a partition deleted while it
	// wrote a checkpoint), is the caller's race, not the disk's.
	if err != nil && !errors.Is(err, os.ErrClosed) && !errors.Is(err, os.ErrNotExist) {
		w.onErr(name, err)
	}
	return err
}

type watchFile struct {
	File
	w    *WatchFS
	name string
}

func (f *watchFile) OSFile() *os.File { return OSFile(f.File) }
func (f *watchFile) Sync() error      { return f.w.check(f.name, f.File.Sync()) }
func (f *watchFile) SyncData() error  { return f.w.check(f.name, f.File.SyncData()) }
func (f *watchFile) Truncate(size int64) error {
	return f.w.check(f.name, f.File.Truncate(size))
}

func (f *watchFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	return n, f.w.check(f.name, err)
}

func (f *watchFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	return n, f.w.check(f.name, err)
}
