package vfs

import (
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrInjected is the error a Fault returns when it has no Err of its own.
var ErrInjected = errors.New("vfs: injected fault")

// Op is a file operation a Fault can intercept.
type Op int

// Operations a Fault intercepts.
const (
	OpSync  Op = iota // File.Sync and File.SyncData
	OpWrite           // File.Write and File.WriteAt
)

// Fault intercepts one operation on the files whose names Match. When Block
// is set the operation waits until Release; then, or at once, it fails with
// Err when Fail is set (a failed write writes only its first half, leaving a
// torn file) or runs normally. A Fault stays in force until cleared from its
// FaultFS.
type Fault struct {
	Op    Op
	Match func(name string) bool
	Block bool
	Fail  bool
	Err   error // the failure; nil: ErrInjected
	// Skip lets the first Skip matching operations run untouched.
	Skip int

	skipped atomic.Int64

	once     sync.Once
	hit      chan struct{}
	released chan struct{}
	relOnce  sync.Once
}

// Suffix matches names ending in s, such as ".log".
func Suffix(s string) func(string) bool {
	return func(name string) bool { return strings.HasSuffix(name, s) }
}

// Hit is closed when the fault first intercepts an operation (for a
// blocking fault: once the operation is waiting).
func (f *Fault) Hit() <-chan struct{} { return f.hit }

// Release lets blocked and later operations proceed (and fail when Fail).
func (f *Fault) Release() { f.relOnce.Do(func() { close(f.released) }) }

// apply runs the fault for one operation: a non-nil error means the
// operation fails with it.
func (f *Fault) apply() error {
	if f.skipped.Add(1) <= int64(f.Skip) {
		return nil
	}
	f.once.Do(func() { close(f.hit) })
	if f.Block {
		<-f.released
	}
	if !f.Fail {
		return nil
	}
	if f.Err != nil {
		return f.Err
	}
	return ErrInjected
}

// FaultFS is an FS that applies Faults to the files of the FS it wraps.
type FaultFS struct {
	FS
	mu     sync.Mutex
	faults []*Fault
}

// NewFaultFS wraps fs (nil: Default).
func NewFaultFS(fs FS) *FaultFS {
	if fs == nil {
		fs = Default
	}
	return &FaultFS{FS: fs}
}

// Add puts f in force and returns it.
func (fs *FaultFS) Add(f *Fault) *Fault {
	f.hit = make(chan struct{})
	f.released = make(chan struct{})
	fs.mu.Lock()
	fs.faults = append(fs.faults, f)
	fs.mu.Unlock()
	return f
}

// Clear takes f out of force and releases operations it blocks.
func (fs *FaultFS) Clear(f *Fault) {
	fs.mu.Lock()
	for i, g := range fs.faults {
		if g == f {
			fs.faults = append(fs.faults[:i:i], fs.faults[i+1:]...)
			break
		}
	}
	fs.mu.Unlock()
	f.Release()
}

func (fs *FaultFS) find(op Op, name string) *Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, f := range fs.faults {
		if f.Op == op && (f.Match == nil || f.Match(name)) {
			return f
		}
	}
	return nil
}

// OpenFile opens a file of the wrapped FS whose operations the faults see.
func (fs *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := fs.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: f, fs: fs, name: name}, nil
}

// Open opens a file for reading.
func (fs *FaultFS) Open(name string) (File, error) { return fs.OpenFile(name, os.O_RDONLY, 0) }

// SyncDir is subject to the OpSync faults matching the directory's name.
func (fs *FaultFS) SyncDir(dir string) error {
	if f := fs.find(OpSync, dir); f != nil {
		if err := f.apply(); err != nil {
			return err
		}
	}
	return fs.FS.SyncDir(dir)
}

type faultFile struct {
	File
	fs   *FaultFS
	name string
}

func (f *faultFile) OSFile() *os.File { return OSFile(f.File) }

func (f *faultFile) Sync() error {
	if flt := f.fs.find(OpSync, f.name); flt != nil {
		if err := flt.apply(); err != nil {
			return err
		}
	}
	return f.File.Sync()
}

func (f *faultFile) SyncData() error {
	if flt := f.fs.find(OpSync, f.name); flt != nil {
		if err := flt.apply(); err != nil {
			return err
		}
	}
	return f.File.SyncData()
}

func (f *faultFile) Write(p []byte) (int, error) {
	if flt := f.fs.find(OpWrite, f.name); flt != nil {
		if err := flt.apply(); err != nil {
			n, _ := f.File.Write(p[:len(p)/2])
			return n, err
		}
	}
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if flt := f.fs.find(OpWrite, f.name); flt != nil {
		if err := flt.apply(); err != nil {
			n, _ := f.File.WriteAt(p[:len(p)/2], off)
			return n, err
		}
	}
	return f.File.WriteAt(p, off)
}
