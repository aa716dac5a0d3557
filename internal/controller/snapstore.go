package controller

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/gregor-dev/gregor/internal/vfs"
)

// snapStore is a raft.SnapshotStore over vfs that keeps hashicorp/raft's
// FileSnapshotStore layout (snapshots/<term>-<index>-<ms>/meta.json and
// state.bin, a CRC-64 (ECMA) of state.bin in meta.json), so directories
// written by either read with the other. One difference makes it crash-safe
// without renaming directories (which MemFS does not model): a snapshot is
// written in its final directory, state.bin fsynced first, and becomes
// visible only when meta.json appears through an fsynced temporary file, a
// rename and an fsync of the directory. A directory without a valid
// meta.json is an unfinished snapshot: List skips it and the next snapshot
// removes it, as it does FileSnapshotStore's ".tmp" directories.
type snapStore struct {
	fs     vfs.FS
	dir    string // <metadata dir>/snapshots
	retain int
	log    *slog.Logger
	mu     sync.Mutex // serialises Create's reaping with List
}

const (
	snapDir       = "snapshots"
	snapMetaFile  = "meta.json"
	snapStateFile = "state.bin"
	snapTmpSuffix = ".tmp"
)

// snapMeta is FileSnapshotStore's meta.json.
type snapMeta struct {
	raft.SnapshotMeta
	CRC []byte
}

func openSnapStore(fs vfs.FS, base string, retain int, logger *slog.Logger) (*snapStore, error) {
	dir := filepath.Join(base, snapDir)
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("controller: snapshots: %w", err)
	}
	if err := fs.SyncDir(base); err != nil {
		return nil, fmt.Errorf("controller: snapshots: %w", err)
	}
	return &snapStore{fs: fs, dir: dir, retain: retain, log: logger}, nil
}

// Create implements raft.SnapshotStore.
func (s *snapStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("controller: unsupported snapshot version %d", version)
	}
	name := fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli())
	dir := filepath.Join(s.dir, name)
	if err := s.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("controller: snapshot: %w", err)
	}
	f, err := s.fs.OpenFile(filepath.Join(dir, snapStateFile), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("controller: snapshot: %w", err)
	}
	sink := &snapSink{store: s, dir: dir, f: f, hash: crc64.New(crc64.MakeTable(crc64.ECMA)),
		meta: snapMeta{SnapshotMeta: raft.SnapshotMeta{
			Version: version, ID: name, Index: index, Term: term,
			Configuration: configuration, ConfigurationIndex: configurationIndex,
		}}}
	sink.w = bufio.NewWriter(io.MultiWriter(&fileWriter{f: f}, sink.hash))
	return sink, nil
}

// fileWriter adapts a vfs.File (whose Write needs no offset) for bufio.
type fileWriter struct{ f vfs.File }

func (w *fileWriter) Write(b []byte) (int, error) { return w.f.Write(b) }

// snapshots returns the finished snapshots, newest first, and the names of
// the unfinished directories.
func (s *snapStore) snapshots() ([]*snapMeta, []string, error) {
	ents, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("controller: snapshots: %w", err)
	}
	var out []*snapMeta
	var unfinished []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		m, err := s.readMeta(e.Name())
		if err != nil {
			unfinished = append(unfinished, e.Name())
			continue
		}
		if m.Version != 1 {
			continue
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *snapMeta) int {
		switch {
		case a.Term != b.Term:
			return cmpU64(b.Term, a.Term)
		case a.Index != b.Index:
			return cmpU64(b.Index, a.Index)
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out, unfinished, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *snapStore) readMeta(name string) (*snapMeta, error) {
	data, err := s.fs.ReadFile(filepath.Join(s.dir, name, snapMetaFile))
	if err != nil {
		return nil, err
	}
	m := new(snapMeta)
	if err := json.Unmarshal(data, m); err != nil {
		return nil, err
	}
	return m, nil
}

// List implements raft.SnapshotStore.
func (s *snapStore) List() ([]*raft.SnapshotMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snaps, _, err := s.snapshots()
	if err != nil {
		return nil, err
	}
	var out []*raft.SnapshotMeta
	for _, m := range snaps {
		out = append(out, &m.SnapshotMeta)
		if len(out) == s.retain {
			break
		}
	}
	return out, nil
}

// Open implements raft.SnapshotStore: the state is checked against its
// CRC before it is handed out.
func (s *snapStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	if strings.ContainsAny(id, `/\`) || id == "." || id == ".." {
		return nil, nil, fmt.Errorf("controller: bad snapshot id %q", id)
	}
	m, err := s.readMeta(id)
	if err != nil {
		return nil, nil, fmt.Errorf("controller: snapshot %s: %w", id, err)
	}
	data, err := s.fs.ReadFile(filepath.Join(s.dir, id, snapStateFile))
	if err != nil {
		return nil, nil, fmt.Errorf("controller: snapshot %s: %w", id, err)
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	h.Write(data)
	if !bytes.Equal(h.Sum(nil), m.CRC) {
		return nil, nil, fmt.Errorf("controller: snapshot %s: CRC mismatch", id)
	}
	return &m.SnapshotMeta, io.NopCloser(bytes.NewReader(data)), nil
}

// reap removes snapshots beyond the retained count and unfinished ones.
func (s *snapStore) reap(keep string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	snaps, unfinished, err := s.snapshots()
	if err != nil {
		return err
	}
	var gone []string
	for i := s.retain; i < len(snaps); i++ {
		gone = append(gone, snaps[i].ID)
	}
	for _, u := range unfinished {
		if u != keep {
			gone = append(gone, u)
		}
	}
	for _, name := range gone {
		if err := s.fs.RemoveAll(filepath.Join(s.dir, name)); err != nil {
			return fmt.Errorf("controller: reap snapshot %s: %w", name, err)
		}
	}
	if len(gone) > 0 {
		return s.fs.SyncDir(s.dir)
	}
	return nil
}

type snapSink struct {
	store  *snapStore
	dir    string
	f      vfs.File
	w      *bufio.Writer
	hash   hash.Hash64
	meta   snapMeta
	closed bool
}

func (k *snapSink) ID() string                  { return k.meta.ID }
func (k *snapSink) Write(b []byte) (int, error) { return k.w.Write(b) }

// Close implements raft.SnapshotSink: the snapshot is durable and listed
// when it returns nil.
func (k *snapSink) Close() error {
	if k.closed {
		return nil
	}
	k.closed = true
	if err := k.finish(); err != nil {
		_ = k.store.fs.RemoveAll(k.dir)
		return fmt.Errorf("controller: snapshot %s: %w", k.meta.ID, err)
	}
	return k.store.reap(k.meta.ID)
}

func (k *snapSink) finish() error {
	err := k.w.Flush()
	if err == nil {
		err = k.f.Sync()
	}
	if cerr := k.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	k.meta.Size = int64(0)
	if st, err := k.store.fs.Stat(filepath.Join(k.dir, snapStateFile)); err == nil {
		k.meta.Size = st.Size()
	}
	k.meta.CRC = k.hash.Sum(nil)
	data, err := json.Marshal(&k.meta)
	if err != nil {
		return err
	}
	fs := k.store.fs
	path := filepath.Join(k.dir, snapMetaFile)
	tmp := path + snapTmpSuffix
	f, err := fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, path)
	}
	if err == nil {
		err = fs.SyncDir(k.dir)
	}
	if err == nil {
		// The snapshot's directory entry itself.
		err = fs.SyncDir(k.store.dir)
	}
	return err
}

// Cancel implements raft.SnapshotSink.
func (k *snapSink) Cancel() error {
	if k.closed {
		return nil
	}
	k.closed = true
	k.f.Close()
	return k.store.fs.RemoveAll(k.dir)
}

var _ raft.SnapshotStore = (*snapStore)(nil)
