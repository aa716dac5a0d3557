package controller

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/gregor-dev/gregor/internal/vfs"
)

// The Raft log and stable store live in two files of the metadata directory,
// written through the vfs seam so that crash tests can drop what was not
// fsynced (BoltDB mmaps its file and cannot go through vfs).
//
// raft.wal is a sequence of frames, each
//
//	length uint32 | crc32c(payload) uint32 | payload
//
// whose payload is an append (op 1: index, term, type, appended-at in Unix
// nanoseconds, data and extensions with uint32 lengths) or a delete of an
// index range (op 2: min, max), all big-endian. Replaying the frames in
// order gives the log. Every StoreLogs and DeleteRange appends its frames in
// one write and fsyncs before it returns, as Raft requires. A torn or
// corrupt frame ends the replay and is cut off: only a crash during the
// write that held it can leave one, and that write was never acknowledged.
// When the file holds more than twice the live entries (after compaction by
// a snapshot) it is rewritten whole: a temporary file, fsync, rename, and
// an fsync of the directory.
//
// raft.stable holds the stable store's keys (the current term and the last
// vote) as one frame of the same shape (key and value pairs with uint32
// lengths), rewritten atomically on every Set: Raft sets them only on a new
// term or a vote.
//
// Migration: a directory written by an older Gregor holds raft.db (the
// BoltDB store of raft-boltdb). openRaftStore copies its log and stable keys
// into fresh raft.wal and raft.stable files, fsyncs them, and then renames
// raft.db to raft.db.migrated; a crash before that rename redoes the copy
// on the next start. The snapshots directory keeps hashicorp/raft's
// FileSnapshotStore layout (snapstore.go), so it needs no migration.
const (
	walFile      = "raft.wal"
	stableFile   = "raft.stable"
	boltFile     = "raft.db"
	migratedBolt = "raft.db.migrated"

	opAppend = 1
	opDelete = 2

	frameHeader = 8
	// maxFrame bounds a frame read back from disk: a metadata batch is far
	// smaller, and a corrupt length must not allocate gigabytes.
	maxFrame = 64 << 20
	// rewriteMin is the file size below which the WAL is never rewritten.
	rewriteMin = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errStoreFailed is returned by every operation after a write or fsync of
// the store failed: what reached the disk is unknown, so the store is not
// used again until the node restarts and replays it (fsyncgate).
var errStoreFailed = errors.New("controller: raft store failed earlier")

// raftStore is a raft.LogStore and raft.StableStore over vfs.
type raftStore struct {
	fs  vfs.FS
	dir string

	mu     sync.Mutex
	wal    vfs.File
	size   int64 // bytes of raft.wal
	live   int64 // bytes the live entries take as frames
	logs   map[uint64]*raft.Log
	first  uint64 // 0: empty
	last   uint64
	stable map[string][]byte
	failed error
}

func openRaftStore(fs vfs.FS, dir string, logger *slog.Logger) (*raftStore, error) {
	if _, err := fs.Stat(filepath.Join(dir, boltFile)); err == nil {
		if err := migrateBolt(fs, dir, logger); err != nil {
			return nil, err
		}
	}
	s := &raftStore{fs: fs, dir: dir, logs: make(map[uint64]*raft.Log), stable: make(map[string][]byte)}
	if err := s.loadStable(); err != nil {
		return nil, err
	}
	if err := s.loadWAL(logger); err != nil {
		return nil, err
	}
	return s, nil
}

// migrateBolt copies an older Gregor's raft.db into the vfs store.
func migrateBolt(fs vfs.FS, dir string, logger *slog.Logger) error {
	path := filepath.Join(dir, boltFile)
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		return fmt.Errorf("controller: migrate %s: %w", path, err)
	}
	defer bolt.Close()
	for _, name := range []string{walFile, stableFile} {
		if err := fs.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("controller: migrate: %w", err)
		}
	}
	s := &raftStore{fs: fs, dir: dir, logs: make(map[uint64]*raft.Log), stable: make(map[string][]byte)}
	if err := s.loadWAL(logger); err != nil {
		return err
	}
	defer s.Close()
	first, err := bolt.FirstIndex()
	if err != nil {
		return fmt.Errorf("controller: migrate: %w", err)
	}
	last, err := bolt.LastIndex()
	if err != nil {
		return fmt.Errorf("controller: migrate: %w", err)
	}
	var batch []*raft.Log
	for i := first; first > 0 && i <= last; i++ {
		var l raft.Log
		if err := bolt.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue
			}
			return fmt.Errorf("controller: migrate log %d: %w", i, err)
		}
		batch = append(batch, &l)
		if len(batch) == 1024 || i == last {
			if err := s.StoreLogs(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	for _, k := range [][]byte{[]byte("CurrentTerm"), []byte("LastVoteTerm"), []byte("LastVoteCand")} {
		v, err := bolt.Get(k)
		if err != nil || len(v) == 0 {
			continue
		}
		if err := s.Set(k, v); err != nil {
			return err
		}
	}
	if err := s.syncDir(); err != nil {
		return err
	}
	if err := fs.Rename(path, filepath.Join(dir, migratedBolt)); err != nil {
		return fmt.Errorf("controller: migrate: %w", err)
	}
	if err := s.syncDir(); err != nil {
		return err
	}
	logger.Info("migrated the metadata log from raft.db", "first", first, "last", last)
	return nil
}

func (s *raftStore) syncDir() error {
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("controller: sync %s: %w", s.dir, err)
	}
	return nil
}

func frame(payload []byte) []byte {
	out := make([]byte, frameHeader, frameHeader+len(payload))
	binary.BigEndian.PutUint32(out, uint32(len(payload)))
	binary.BigEndian.PutUint32(out[4:], crc32.Checksum(payload, castagnoli))
	return append(out, payload...)
}

// nextFrame returns the payload of the frame at b's start and the frame's
// length, or ok false for a torn or corrupt frame.
func nextFrame(b []byte) (payload []byte, n int, ok bool) {
	if len(b) < frameHeader {
		return nil, 0, false
	}
	l := binary.BigEndian.Uint32(b)
	if l > maxFrame || int64(l) > int64(len(b)-frameHeader) {
		return nil, 0, false
	}
	payload = b[frameHeader : frameHeader+int(l)]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return nil, 0, false
	}
	return payload, frameHeader + int(l), true
}

func appendBytes(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

func encodeLog(l *raft.Log) []byte {
	b := make([]byte, 0, 1+8+8+1+8+8+len(l.Data)+len(l.Extensions))
	b = append(b, opAppend)
	b = binary.BigEndian.AppendUint64(b, l.Index)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = appendBytes(b, l.Data)
	return appendBytes(b, l.Extensions)
}

// reader decodes big-endian fields, keeping the first error.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) u64() uint64 {
	if len(r.b) < 8 {
		r.bad = true
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) u8() byte {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) bytes() []byte {
	if len(r.b) < 4 {
		r.bad = true
		return nil
	}
	n := binary.BigEndian.Uint32(r.b)
	if int64(n) > int64(len(r.b)-4) {
		r.bad = true
		return nil
	}
	v := bytes.Clone(r.b[4 : 4+n])
	r.b = r.b[4+n:]
	return v
}

func decodeLog(r *reader) *raft.Log {
	l := &raft.Log{Index: r.u64(), Term: r.u64(), Type: raft.LogType(r.u8())}
	if at := int64(r.u64()); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	l.Data, l.Extensions = r.bytes(), r.bytes()
	if len(l.Data) == 0 {
		l.Data = nil
	}
	if len(l.Extensions) == 0 {
		l.Extensions = nil
	}
	return l
}

func (s *raftStore) loadWAL(logger *slog.Logger) error {
	path := filepath.Join(s.dir, walFile)
	data, err := s.fs.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("controller: read %s: %w", path, err)
	}
	off := 0
	for off < len(data) {
		payload, n, ok := nextFrame(data[off:])
		if !ok {
			break
		}
		r := &reader{b: payload}
		switch r.u8() {
		case opAppend:
			l := decodeLog(r)
			if r.bad {
				ok = false
				break
			}
			s.put(l, int64(n))
		case opDelete:
			lo, hi := r.u64(), r.u64()
			if r.bad {
				ok = false
				break
			}
			s.deleteRange(lo, hi)
		default:
			ok = false
		}
		if !ok {
			break
		}
		off += n
	}
	f, err := s.fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("controller: open %s: %w", path, err)
	}
	s.wal, s.size = f, int64(off)
	if off < len(data) {
		logger.Warn("metadata log: cutting a torn or corrupt tail", "file", path, "valid_bytes", off, "bytes", len(data))
		if err := f.Truncate(int64(off)); err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("controller: truncate %s: %w", path, err)
		}
	}
	if len(data) == 0 {
		// A new file: its directory entry must survive a crash too.
		if err := s.syncDir(); err != nil {
			f.Close()
			return err
		}
	}
	return nil
}

// put adds l to the in-memory log; a frame of n bytes holds it.
func (s *raftStore) put(l *raft.Log, n int64) {
	if old := s.logs[l.Index]; old != nil {
		s.live -= int64(len(encodeLog(old))) + frameHeader
	}
	s.logs[l.Index] = l
	s.live += n
	if s.first == 0 || l.Index < s.first {
		s.first = l.Index
	}
	if l.Index > s.last {
		s.last = l.Index
	}
}

func (s *raftStore) deleteRange(lo, hi uint64) {
	if s.first == 0 {
		return
	}
	for i := max(lo, s.first); i <= min(hi, s.last); i++ {
		if l := s.logs[i]; l != nil {
			s.live -= int64(len(encodeLog(l))) + frameHeader
			delete(s.logs, i)
		}
	}
	if len(s.logs) == 0 {
		s.first, s.last, s.live = 0, 0, 0
		return
	}
	for s.logs[s.first] == nil {
		s.first++
	}
	for s.logs[s.last] == nil {
		s.last--
	}
}

// write appends frames to the WAL and fsyncs it.
func (s *raftStore) write(b []byte) error {
	if s.failed != nil {
		return s.failed
	}
	if _, err := s.wal.WriteAt(b, s.size); err != nil {
		s.failed = fmt.Errorf("%w: %w", errStoreFailed, err)
		return fmt.Errorf("controller: write %s: %w", walFile, err)
	}
	if err := s.wal.SyncData(); err != nil {
		s.failed = fmt.Errorf("%w: %w", errStoreFailed, err)
		return fmt.Errorf("controller: sync %s: %w", walFile, err)
	}
	s.size += int64(len(b))
	return nil
}

// FirstIndex implements raft.LogStore.
func (s *raftStore) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, nil
}

// LastIndex implements raft.LogStore.
func (s *raftStore) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, nil
}

// GetLog implements raft.LogStore.
func (s *raftStore) GetLog(index uint64, out *raft.Log) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.logs[index]
	if l == nil {
		return raft.ErrLogNotFound
	}
	*out = *l
	return nil
}

// StoreLog implements raft.LogStore.
func (s *raftStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: the logs are durable when it returns.
func (s *raftStore) StoreLogs(logs []*raft.Log) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var buf []byte
	sizes := make([]int64, len(logs))
	for i, l := range logs {
		f := frame(encodeLog(l))
		sizes[i] = int64(len(f))
		buf = append(buf, f...)
	}
	if err := s.write(buf); err != nil {
		return err
	}
	for i, l := range logs {
		c := *l
		c.Data, c.Extensions = bytes.Clone(l.Data), bytes.Clone(l.Extensions)
		s.put(&c, sizes[i])
	}
	return nil
}

// DeleteRange implements raft.LogStore.
func (s *raftStore) DeleteRange(lo, hi uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := []byte{opDelete}
	p = binary.BigEndian.AppendUint64(p, lo)
	p = binary.BigEndian.AppendUint64(p, hi)
	if err := s.write(frame(p)); err != nil {
		return err
	}
	s.deleteRange(lo, hi)
	if s.size > rewriteMin && s.size > 2*s.live {
		return s.rewrite()
	}
	return nil
}

// rewrite replaces the WAL with one holding only the live entries.
func (s *raftStore) rewrite() error {
	path := filepath.Join(s.dir, walFile)
	tmp := path + ".tmp"
	f, err := s.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("controller: rewrite %s: %w", path, err)
	}
	var buf []byte
	for i := s.first; s.first != 0 && i <= s.last; i++ {
		if l := s.logs[i]; l != nil {
			buf = append(buf, frame(encodeLog(l))...)
		}
	}
	if _, err = f.WriteAt(buf, 0); err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = s.fs.Rename(tmp, path)
	}
	if err == nil {
		err = s.fs.SyncDir(s.dir)
	}
	if err != nil {
		f.Close()
		// The rename may or may not have happened: either file holds the
		// same live log, but this handle may point at the old one.
		s.failed = fmt.Errorf("%w: %w", errStoreFailed, err)
		return fmt.Errorf("controller: rewrite %s: %w", path, err)
	}
	s.wal.Close()
	s.wal, s.size, s.live = f, int64(len(buf)), int64(len(buf))
	return nil
}

func (s *raftStore) loadStable() error {
	path := filepath.Join(s.dir, stableFile)
	data, err := s.fs.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("controller: read %s: %w", path, err)
	}
	payload, n, ok := nextFrame(data)
	if !ok || n != len(data) {
		// Written whole through a rename, so never torn: this is damage.
		return fmt.Errorf("controller: %s is corrupt (it holds the current term and vote; restore it, or treat this voter as lost)", path)
	}
	r := &reader{b: payload}
	for len(r.b) > 0 && !r.bad {
		k, v := r.bytes(), r.bytes()
		s.stable[string(k)] = v
	}
	if r.bad {
		return fmt.Errorf("controller: %s is corrupt", path)
	}
	return nil
}

// Set implements raft.StableStore: the value is durable when it returns.
func (s *raftStore) Set(key, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	next := make(map[string][]byte, len(s.stable)+1)
	for k, v := range s.stable {
		next[k] = v
	}
	next[string(key)] = bytes.Clone(val)
	var p []byte
	for k, v := range next {
		p = appendBytes(p, []byte(k))
		p = appendBytes(p, v)
	}
	path := filepath.Join(s.dir, stableFile)
	tmp := path + ".tmp"
	f, err := s.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("controller: write %s: %w", path, err)
	}
	if _, err = f.Write(frame(p)); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fs.Rename(tmp, path)
	}
	if err == nil {
		err = s.fs.SyncDir(s.dir)
	}
	if err != nil {
		s.failed = fmt.Errorf("%w: %w", errStoreFailed, err)
		return fmt.Errorf("controller: write %s: %w", path, err)
	}
	s.stable = next
	return nil
}

// errNotFound is the error raft-boltdb gives for a missing key, which
// hashicorp/raft compares by its text.
var errNotFound = errors.New("not found")

// Get implements raft.StableStore.
func (s *raftStore) Get(key []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.stable[string(key)]
	if !ok {
		return nil, errNotFound
	}
	return bytes.Clone(v), nil
}

// SetUint64 implements raft.StableStore.
func (s *raftStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore.
func (s *raftStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("controller: stable key %q holds %d bytes, not a uint64", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Close closes the WAL.
func (s *raftStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wal == nil {
		return nil
	}
	err := s.wal.Close()
	s.wal = nil
	if s.failed == nil {
		s.failed = errors.New("controller: raft store closed")
	}
	return err
}

var (
	_ raft.LogStore    = (*raftStore)(nil)
	_ raft.StableStore = (*raftStore)(nil)
	_ io.Closer        = (*raftStore)(nil)
)
