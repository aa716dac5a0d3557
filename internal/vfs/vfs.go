package vfs

import (
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// File is an open file. Implementations are safe for concurrent ReadAt and
// WriteAt at distinct ranges, like *os.File; Read and Write use the shared
// offset and need the caller's serialisation.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer
	// Sync makes the file's data and metadata durable (fsync). After an
	// error nothing is known of what reached the disk: callers treat the
	// file as failed rather than retry (see fsyncgate).
	Sync() error
	// SyncData makes the file's data, and the metadata needed to read it
	// back, durable (fdatasync). Failure is as for Sync.
	SyncData() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
}

// FS is a filesystem. Every method is safe for concurrent use. Names are
// paths as the os package takes them.
type FS interface {
	// OpenFile opens a file with os.OpenFile's flags and permissions.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Open opens a file for reading.
	Open(name string) (File, error)
	ReadFile(name string) ([]byte, error)
	Remove(name string) error
	RemoveAll(name string) error
	// Rename replaces newname with oldname atomically; the rename is
	// durable only after SyncDir of its directory.
	Rename(oldname, newname string) error
	MkdirAll(dir string, perm os.FileMode) error
	Stat(name string) (os.FileInfo, error)
	ReadDir(name string) ([]os.DirEntry, error)
	// SyncDir makes the directory's entries (creates, renames, removes)
	// durable.
	SyncDir(dir string) error
}

// OSFile returns the operating-system file behind f, or nil when f has
// none (an in-memory file). Zero-copy sends (sendfile) need the descriptor;
// without one the caller copies.
func OSFile(f File) *os.File {
	if o, ok := f.(interface{ OSFile() *os.File }); ok {
		return o.OSFile()
	}
	return nil
}

// Default is the operating system's filesystem.
var Default FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (fs osFS) Open(name string) (File, error)           { return fs.OpenFile(name, os.O_RDONLY, 0) }
func (osFS) ReadFile(name string) ([]byte, error)        { return os.ReadFile(name) }
func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) RemoveAll(name string) error                 { return os.RemoveAll(name) }
func (osFS) Rename(oldname, newname string) error        { return os.Rename(oldname, newname) }
func (osFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFS) Stat(name string) (os.FileInfo, error)       { return os.Stat(name) }
func (osFS) ReadDir(name string) ([]os.DirEntry, error)  { return os.ReadDir(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// osFile is a value wrapping the pointer, so that converting it to File
// does not allocate.
type osFile struct{ *os.File }

func (f osFile) SyncData() error { return unix.Fdatasync(int(f.Fd())) }

func (f osFile) OSFile() *os.File { return f.File }
