package vfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// MemFS is an in-memory FS that remembers what is durable, so a test can
// simulate a crash (CrashClone): a file's bytes are durable up to its last
// Sync or SyncData, and a directory entry (a create, rename or remove) once
// its directory is synced (SyncDir). Directories themselves are durable as
// soon as they are made. Its files have no *os.File (OSFile is nil), so
// zero-copy reads are unavailable.
type MemFS struct {
	mu   sync.Mutex
	dirs map[string]bool
	// live are the entries a reader sees; durable those that survive a crash.
	live    map[string]*memNode
	durable map[string]*memNode
}

type memNode struct {
	data    []byte
	synced  []byte
	modTime time.Time
}

// NewMemFS returns an empty MemFS holding the root directory.
func NewMemFS() *MemFS {
	return &MemFS{dirs: map[string]bool{"/": true, ".": true}, live: map[string]*memNode{}, durable: map[string]*memNode{}}
}

// CrashClone returns the MemFS a restart after a crash would see: only the
// durable directory entries, each file holding its durable bytes.
func (m *MemFS) CrashClone() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.crashCloneLocked()
}

// CrashCloneAll is CrashClone of several filesystems at one instant, as a
// power loss of every machine at once: no operation on any of them runs
// between the first clone and the last. It must not run concurrently with
// another CrashCloneAll of an overlapping set.
func CrashCloneAll(ms ...*MemFS) []*MemFS {
	for _, m := range ms {
		m.mu.Lock()
	}
	out := make([]*MemFS, len(ms))
	for i, m := range ms {
		out[i] = m.crashCloneLocked()
	}
	for _, m := range ms {
		m.mu.Unlock()
	}
	return out
}

func (m *MemFS) crashCloneLocked() *MemFS {
	c := NewMemFS()
	for d := range m.dirs {
		c.dirs[d] = true
	}
	for name, n := range m.durable {
		cn := &memNode{data: append([]byte(nil), n.synced...), modTime: n.modTime}
		cn.synced = append([]byte(nil), cn.data...)
		c.live[name], c.durable[name] = cn, cn
	}
	return c
}

func memErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

// OpenFile supports O_RDONLY, O_WRONLY, O_RDWR, O_CREATE, O_EXCL, O_TRUNC
// and O_APPEND.
func (m *MemFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	name = filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.live[name]
	switch {
	case m.dirs[name]:
		return nil, memErr("open", name, errors.New("is a directory"))
	case n == nil && flag&os.O_CREATE == 0:
		return nil, memErr("open", name, fs.ErrNotExist)
	case n != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, memErr("open", name, fs.ErrExist)
	case n == nil && !m.dirs[filepath.Dir(name)]:
		return nil, memErr("open", name, fs.ErrNotExist)
	}
	if n == nil {
		n = &memNode{modTime: time.Now()}
		m.live[name] = n
	}
	if flag&os.O_TRUNC != 0 {
		n.data = n.data[:0]
	}
	return &memFile{fs: m, n: n, name: name, appendMode: flag&os.O_APPEND != 0,
		readOnly: flag&(os.O_WRONLY|os.O_RDWR) == 0}, nil
}

// Open opens a file for reading.
func (m *MemFS) Open(name string) (File, error) { return m.OpenFile(name, os.O_RDONLY, 0) }

// ReadFile returns a copy of the file's bytes.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	name = filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.live[name]
	if n == nil {
		return nil, memErr("open", name, fs.ErrNotExist)
	}
	return append([]byte(nil), n.data...), nil
}

// Remove removes a file or an empty directory.
func (m *MemFS) Remove(name string) error {
	name = filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.live[name] != nil {
		delete(m.live, name)
		return nil
	}
	if m.dirs[name] {
		for f := range m.live {
			if filepath.Dir(f) == name {
				return memErr("remove", name, errors.New("directory not empty"))
			}
		}
		delete(m.dirs, name)
		return nil
	}
	return memErr("remove", name, fs.ErrNotExist)
}

// RemoveAll removes name and everything under it, durably (like the
// directory removals it is used for).
func (m *MemFS) RemoveAll(name string) error {
	name = filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	under := func(p string) bool { return p == name || strings.HasPrefix(p, name+string(filepath.Separator)) }
	for p := range m.live {
		if under(p) {
			delete(m.live, p)
		}
	}
	for p := range m.durable {
		if under(p) {
			delete(m.durable, p)
		}
	}
	for p := range m.dirs {
		if under(p) {
			delete(m.dirs, p)
		}
	}
	return nil
}

// Rename moves a file; the move is durable after SyncDir.
func (m *MemFS) Rename(oldname, newname string) error {
	oldname, newname = filepath.Clean(oldname), filepath.Clean(newname)
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.live[oldname]
	if n == nil {
		return memErr("rename", oldname, fs.ErrNotExist)
	}
	delete(m.live, oldname)
	m.live[newname] = n
	return nil
}

// MkdirAll makes dir and its parents, durably.
func (m *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := dir; !m.dirs[d]; d = filepath.Dir(d) {
		if m.live[d] != nil {
			return memErr("mkdir", d, fs.ErrExist)
		}
		m.dirs[d] = true
	}
	return nil
}

// Stat describes a file or directory.
func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	name = filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[name] {
		return memInfo{name: filepath.Base(name), dir: true}, nil
	}
	n := m.live[name]
	if n == nil {
		return nil, memErr("stat", name, fs.ErrNotExist)
	}
	return memInfo{name: filepath.Base(name), size: int64(len(n.data)), mod: n.modTime}, nil
}

// ReadDir lists a directory, sorted by name.
func (m *MemFS) ReadDir(name string) ([]os.DirEntry, error) {
	name = filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[name] {
		return nil, memErr("readdir", name, fs.ErrNotExist)
	}
	var out []os.DirEntry
	for p, n := range m.live {
		if filepath.Dir(p) == name {
			out = append(out, fs.FileInfoToDirEntry(memInfo{name: filepath.Base(p), size: int64(len(n.data)), mod: n.modTime}))
		}
	}
	for d := range m.dirs {
		if d != name && filepath.Dir(d) == name {
			out = append(out, fs.FileInfoToDirEntry(memInfo{name: filepath.Base(d), dir: true}))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// SyncDir makes the directory's current entries durable.
func (m *MemFS) SyncDir(dir string) error {
	dir = filepath.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[dir] {
		return memErr("sync", dir, fs.ErrNotExist)
	}
	for p := range m.durable {
		if filepath.Dir(p) == dir && m.live[p] == nil {
			delete(m.durable, p)
		}
	}
	for p, n := range m.live {
		if filepath.Dir(p) == dir {
			m.durable[p] = n
		}
	}
	return nil
}

type memInfo struct {
	name string
	size int64
	mod  time.Time
	dir  bool
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) ModTime() time.Time { return i.mod }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
func (i memInfo) Mode() os.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}

type memFile struct {
	fs         *MemFS
	n          *memNode
	name       string
	pos        int64
	appendMode bool
	readOnly   bool
	closed     bool
}

func (f *memFile) check(write bool) error {
	if f.closed {
		return os.ErrClosed
	}
	if write && f.readOnly {
		return memErr("write", f.name, errors.New("file opened read-only"))
	}
	return nil
}

func (f *memFile) ReadAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check(false); err != nil {
		return 0, err
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.n.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Read(b []byte) (int, error) {
	n, err := f.ReadAt(b, f.pos)
	f.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *memFile) WriteAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check(true); err != nil {
		return 0, err
	}
	if end := off + int64(len(b)); end > int64(len(f.n.data)) {
		f.n.data = append(f.n.data, make([]byte, end-int64(len(f.n.data)))...)
	}
	copy(f.n.data[off:], b)
	f.n.modTime = time.Now()
	return len(b), nil
}

func (f *memFile) Write(b []byte) (int, error) {
	if f.appendMode {
		f.fs.mu.Lock()
		f.pos = int64(len(f.n.data))
		f.fs.mu.Unlock()
	}
	n, err := f.WriteAt(b, f.pos)
	f.pos += int64(n)
	return n, err
}

func (f *memFile) Close() error {
	if f.closed {
		return os.ErrClosed
	}
	f.closed = true
	return nil
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check(false); err != nil {
		return err
	}
	f.n.synced = append(f.n.synced[:0], f.n.data...)
	return nil
}

func (f *memFile) SyncData() error { return f.Sync() }

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check(true); err != nil {
		return err
	}
	if size < int64(len(f.n.data)) {
		f.n.data = f.n.data[:size]
	} else {
		f.n.data = append(f.n.data, make([]byte, size-int64(len(f.n.data)))...)
	}
	return nil
}

func (f *memFile) Stat() (os.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return memInfo{name: filepath.Base(f.name), size: int64(len(f.n.data)), mod: f.n.modTime}, nil
}
