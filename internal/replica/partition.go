package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gregor-dev/gregor/internal/commitlog"
	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/record"
	"github.com/gregor-dev/gregor/internal/vfs"
)

// Errors returned by Partition, mapped to Kafka codes by the broker.
var (
	ErrNotLeader          = errors.New("replica: not the leader for this partition")
	ErrNotEnoughReplicas  = errors.New("replica: fewer in-sync replicas than min.insync.replicas")
	ErrMessageTooLarge    = errors.New("replica: record batch larger than max.message.bytes")
	ErrClosed             = errors.New("replica: partition closed")
	ErrOffsetOutOfRange   = errors.New("replica: offset out of range")
	ErrFencedLeaderEpoch  = errors.New("replica: leader epoch is older than the current one")
	ErrUnknownLeaderEpoch = errors.New("replica: leader epoch is newer than the current one")
	// ErrNotEnoughReplicasAfterAppend: an acks=all produce was appended but
	// the ISR shrank below min.insync.replicas before it was replicated.
	ErrNotEnoughReplicasAfterAppend = errors.New("replica: in-sync replicas fell below min.insync.replicas after the append")
	// ErrNotFollower: replicated batches reached a partition this node leads.
	ErrNotFollower = errors.New("replica: not a follower of this partition")
	// ErrCoordinatorFenced: an end-transaction marker carries an older
	// transaction coordinator epoch than the producer's last marker here.
	ErrCoordinatorFenced = errors.New("replica: transaction coordinator epoch is older than the producer's last marker")
)

// AppendResult is what a produce learns about its batch.
type AppendResult struct {
	BaseOffset     int64
	LastOffset     int64
	LogAppendTime  int64 // -1 unless the topic uses LogAppendTime
	LogStartOffset int64
	// Duplicate is set when the batch was a retry of one already written: the
	// offsets are the original ones and nothing was appended.
	Duplicate bool
	// LeaderEpoch is the leader epoch the batch was appended in (for a
	// duplicate, the current one): WaitReplicatedInEpoch acknowledges it
	// only while this node has led without a break since that epoch.
	LeaderEpoch int32
}

// Partition is one partition hosted on this node.
type Partition struct {
	Topic   string
	Index   int32
	TopicID [16]byte
	dir     string
	fs      vfs.FS
	logger  *slog.Logger

	log *commitlog.Log
	cfg atomic.Pointer[config.Topic]

	nodeID        int32 // this node, set by the Manager before the partition is shared
	leaderEpoch   atomic.Int32
	highWatermark atomic.Int64
	isrSize       atomic.Int32
	// follower is set while another node leads the partition (leader is
	// its id): appends from clients are refused and the replica fetcher
	// feeds the log through AppendReplicated.
	follower atomic.Bool
	leader   atomic.Int32
	// ledSince is the leader epoch from which this node has led the
	// partition without a break (a leader epoch bumped while it stays
	// leader keeps it): records it appended in any epoch since are still
	// at their offsets, so their acks=all produce may be acknowledged.
	// Written before follower is cleared; meaningless while following.
	ledSince atomic.Int32
	// gone is set, with mu.closed, when the partition is closed or
	// deleted, so that parked acks=all produces see it without the lock.
	gone atomic.Bool
	// dirOffline is the Manager's offline error (nil for a partition
	// opened without a Manager): parked acks=all produces fail with it.
	dirOffline *atomic.Pointer[error]

	// mu is the append lock: it serialises appends and guards the producer
	// state, the flush counters and the high watermark's writers. Reads
	// never take it.
	mu struct {
		sync.Mutex
		producers       producerStates
		guards          map[int64]VerificationGuard // see StartTxnVerification
		unflushed       int64
		lastFlush       time.Time
		snapshotSegment int
		closed          bool
		leading         bool // becomeLeader ran since the last becomeFollower
		// syncing counts the fsyncs in flight (flush.messages, markers)
		// that hold the high watermark back: while one is, every append
		// waits for an fsync covering it before the high watermark moves
		// over it, so that nothing whose fsync fails ever becomes visible.
		syncing int
		// ended lists the transactions ended by a marker that is not yet
		// below the high watermark (Kafka's unreplicatedTxns): they keep
		// pinning the last stable offset until the marker is.
		ended []endedTxn
		// Leader side of replication (replication.go): the ISR and the
		// replicas from the metadata image, each follower's log end offset
		// (its last fetch offset, fsynced on the follower) and localEnd,
		// the end of what this node has made visible by the publish rules
		// above. The high watermark is the smallest of localEnd and the
		// ISR followers' log ends.
		isr         []int32
		replicas    []int32
		followerLEO map[int32]int64
		localEnd    int64
		// followers' catch-up tracking for ISR changes (Kafka's
		// lastCaughtUpTimeMs), and the partition epoch an ISR change must name.
		followerFetch  map[int32]followerFetch
		partitionEpoch int32
		// pendingISR are the members an ISR change this leader sent adds
		// (ISRProposalSent), based on partition epoch pendingEpoch. The
		// controller may commit the change, and then elect one of them,
		// before the metadata log brings it here, so the high watermark
		// waits for them too until a newer partition epoch is applied or
		// the controller refused the change (Kafka's maximal ISR of a
		// PendingExpandIsr).
		pendingISR   []int32
		pendingEpoch int32
	}

	waitMu  sync.Mutex
	waiters map[chan struct{}]struct{}

	// firstUnstable is the first offset of the earliest open transaction,
	// -1 when none is; written under mu, read without it (LastStableOffset).
	firstUnstable atomic.Int64
	// txnMu guards aborted, the aborted-transaction index sorted by marker
	// offset. Its file is written under mu (lock order: mu before txnMu).
	txnMu   sync.RWMutex
	aborted []abortedEntry
}

// partitionMetadataFile holds the topic id, so that a directory left from a
// deleted topic of the same name is never mistaken for the new topic's.
const partitionMetadataFile = "partition.metadata"

func openPartition(fs vfs.FS, dataDir, topic string, index int32, topicID [16]byte, cfg config.Topic, logger *slog.Logger) (*Partition, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if fs == nil {
		fs = vfs.Default
	}
	dir := filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, index))
	if err := checkTopicID(fs, dir, topicID); err != nil {
		return nil, err
	}
	p := &Partition{Topic: topic, Index: index, TopicID: topicID, dir: dir, fs: fs, logger: logger,
		waiters: make(map[chan struct{}]struct{})}
	p.cfg.Store(&cfg)
	l, err := commitlog.Open(logConfig(fs, dir, cfg, logger))
	if err != nil {
		return nil, fmt.Errorf("replica: open %s-%d: %w", topic, index, err)
	}
	p.log = l
	p.isrSize.Store(1)
	p.mu.producers = make(producerStates)
	p.mu.lastFlush = time.Now()
	p.firstUnstable.Store(-1)
	if err := p.loadTxnIndex(); err != nil {
		l.Close()
		return nil, err
	}
	if err := p.loadProducerState(); err != nil {
		l.Close()
		return nil, err
	}
	p.updateFirstUnstableLocked()
	p.mu.snapshotSegment = l.NumSegments()
	p.highWatermark.Store(l.LogEndOffset())
	p.mu.localEnd = l.LogEndOffset()
	return p, nil
}

func logConfig(fs vfs.FS, dir string, c config.Topic, logger *slog.Logger) commitlog.Config {
	retentionMs := time.Duration(-1)
	if c.Delete && c.RetentionMs >= 0 {
		retentionMs = time.Duration(c.RetentionMs) * time.Millisecond
	}
	retentionBytes := int64(-1)
	if c.Delete {
		retentionBytes = c.RetentionBytes
	}
	return commitlog.Config{
		Dir:                dir,
		SegmentBytes:       c.SegmentBytes,
		SegmentMs:          time.Duration(c.SegmentMs) * time.Millisecond,
		SegmentJitter:      time.Duration(c.SegmentJitterMs) * time.Millisecond,
		SegmentIndexBytes:  int(c.SegmentIndexBytes),
		RetentionBytes:     retentionBytes,
		RetentionMs:        retentionMs,
		IndexIntervalBytes: int(c.IndexInterval),
		MaxBatchBytes:      int(max(c.MaxMessageBytes, 1<<20)) + 1<<20,
		Preallocate:        c.Preallocate,
		Logger:             logger,
		FS:                 fs,
	}
}

func checkTopicID(fs vfs.FS, dir string, id [16]byte) error {
	path := filepath.Join(dir, partitionMetadataFile)
	want := fmt.Sprintf("version: 0\ntopic_id: %x\n", id)
	got, err := fs.ReadFile(path)
	if err == nil {
		if string(got) == want {
			return nil
		}
		// A directory of an older topic with the same name: it is not ours.
		if err := fs.RemoveAll(dir); err != nil {
			return fmt.Errorf("replica: remove stale %s: %w", dir, err)
		}
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	return writeFileAtomic(fs, path, []byte(want))
}

func writeFileAtomic(fs vfs.FS, path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("replica: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("replica: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	if err := fs.Rename(tmp, path); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	// The rename is durable only once the directory is synced: without it a
	// crash can bring the old file back (a stale aborted-index entry whose
	// marker compaction already removed, an older topic id).
	if err := fs.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	return nil
}

// Config returns the partition's effective topic configuration.
func (p *Partition) Config() config.Topic { return *p.cfg.Load() }

// SetConfig applies a changed topic configuration.
func (p *Partition) SetConfig(c config.Topic) {
	p.cfg.Store(&c)
	p.log.SetConfig(logConfig(p.fs, p.dir, c, p.logger))
}

// LeaderEpoch is the partition's current leader epoch.
func (p *Partition) LeaderEpoch() int32 { return p.leaderEpoch.Load() }

// HighWatermark is the offset below which records are committed and visible to consumers.
func (p *Partition) HighWatermark() int64 { return p.highWatermark.Load() }

// ISRSize is the number of in-sync replicas this replica last applied
// (a leader's min.insync.replicas check uses it).
func (p *Partition) ISRSize() int { return int(p.isrSize.Load()) }

// InISR reports whether replica id is in this leader's ISR (false on a
// follower, which keeps none).
func (p *Partition) InISR(id int32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.follower.Load() && slices.Contains(p.mu.isr, id)
}

// HighWatermarkLagging reports whether this node leads with a high
// watermark still below the start of its leader epoch. A new leader learns
// how far its predecessor had committed only from its followers' next
// fetches, so until then its high watermark can be below one a client was
// already given. ListOffsets answers OFFSET_NOT_AVAILABLE (retriable) then,
// as Kafka does, so that "latest" never goes back.
func (p *Partition) HighWatermarkLagging() bool {
	e := p.leaderEpoch.Load()
	if p.follower.Load() || e <= 0 {
		return false
	}
	_, start := p.log.EndOffsetForEpoch(e - 1)
	return start > p.highWatermark.Load()
}

// LogStartOffset is the first offset still in the log.
func (p *Partition) LogStartOffset() int64 { return p.log.LogStartOffset() }

// LogEndOffset is the offset the next appended record will get.
func (p *Partition) LogEndOffset() int64 { return p.log.LogEndOffset() }

// Size is the bytes the partition's segments hold on disk.
func (p *Partition) Size() int64 { return p.log.Size() }

// Dir is the partition's directory.
func (p *Partition) Dir() string { return p.dir }

// CheckLeaderEpoch compares a client's view of the leader epoch (-1: no view)
// with ours, per KIP-320.
func (p *Partition) CheckLeaderEpoch(epoch int32) error {
	cur := p.leaderEpoch.Load()
	switch {
	case epoch < 0 || epoch == cur:
		return nil
	case epoch < cur:
		return ErrFencedLeaderEpoch
	default:
		return ErrUnknownLeaderEpoch
	}
}

// Append validates one record batch as leader and appends it. The batch
// must already have passed record.Validate; its bytes are patched in place
// and written, so the caller must not reuse them concurrently. acks is the
// produce's required acks: -1 (all) is refused when the ISR is smaller than
// min.insync.replicas. The caller waits for durability with WaitDurable.
func (p *Partition) Append(batch []byte, h record.Header, acks int16) (AppendResult, error) {
	return p.append(batch, h, acks, nil)
}

// AppendVerified is Append for a produce whose transactional batches are
// verified (KIP-890): a batch that would open its producer's transaction
// here fails with ErrTxnNotVerified unless guard, from
// StartTxnVerification, is still current.
func (p *Partition) AppendVerified(batch []byte, h record.Header, acks int16, guard VerificationGuard) (AppendResult, error) {
	return p.append(batch, h, acks, &guard)
}

func (p *Partition) append(batch []byte, h record.Header, acks int16, guard *VerificationGuard) (AppendResult, error) {
	// Leadership first, as Kafka's Partition.appendRecordsToLeader: a
	// follower answered NOT_ENOUGH_REPLICAS (its own in-sync count is
	// not the leader's), which the Java producer retries on the same
	// node without refreshing its metadata, stuck there for its whole
	// delivery timeout after a failover. Checked again under the lock.
	if p.follower.Load() {
		return AppendResult{}, ErrNotLeader
	}
	cfg := p.cfg.Load()
	if int64(len(batch)) > cfg.MaxMessageBytes {
		return AppendResult{}, ErrMessageTooLarge
	}
	if acks == -1 && int64(p.isrSize.Load()) < cfg.MinInsyncReplicas {
		return AppendResult{}, ErrNotEnoughReplicas
	}
	var appendTime int64
	now := time.Now().UnixMilli()
	if cfg.LogAppendTime {
		appendTime = now
	}
	idempotent := h.ProducerID >= 0
	lastSeq := lastSequence(h.BaseSequence, h.LastOffsetDelta)

	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return AppendResult{}, ErrClosed
	}
	if p.follower.Load() {
		p.mu.Unlock()
		return AppendResult{}, ErrNotLeader
	}
	// A failed write or fsync takes the partition offline for writes. It is
	// checked before the duplicate check: a retry of a batch whose fsync
	// failed must not be answered as written from the producer state.
	if err := p.log.Err(); err != nil {
		p.mu.Unlock()
		return AppendResult{}, err
	}
	if idempotent {
		dup, err := p.mu.producers.check(h.ProducerID, h.ProducerEpoch, h.BaseSequence, lastSeq)
		if errors.Is(err, ErrDuplicateSequence) {
			p.mu.Unlock()
			return AppendResult{BaseOffset: dup.FirstOffset, LastOffset: dup.LastOffset, LogAppendTime: -1,
				LogStartOffset: p.log.LogStartOffset(), Duplicate: true, LeaderEpoch: p.leaderEpoch.Load()}, nil
		}
		if err != nil {
			p.mu.Unlock()
			return AppendResult{}, err
		}
		if guard != nil && h.IsTransactional() {
			if err := p.checkVerifiedLocked(h.ProducerID, h.ProducerEpoch, *guard); err != nil {
				p.mu.Unlock()
				return AppendResult{}, err
			}
		}
	}
	epoch := p.leaderEpoch.Load()
	info, err := p.log.Append(batch, epoch, appendTime)
	if err != nil {
		p.mu.Unlock()
		return AppendResult{}, err
	}
	if idempotent {
		p.mu.producers.record(h.ProducerID, h.ProducerEpoch, batchMeta{
			FirstSeq: h.BaseSequence, LastSeq: lastSeq,
			FirstOffset: info.BaseOffset, LastOffset: info.LastOffset, Timestamp: h.MaxTimestamp,
		})
		if h.IsTransactional() {
			// Opens the producer's transaction here (or continues it): the
			// last stable offset stays at its first offset until the marker.
			p.mu.producers.beginTxn(h.ProducerID, info.BaseOffset)
			p.clearVerificationLocked(h.ProducerID)
			if fu := p.firstUnstable.Load(); fu < 0 {
				p.firstUnstable.Store(p.mu.producers[h.ProducerID].CurrentTxnFirstOffset)
			}
		}
	}
	lat := int64(-1)
	if appendTime != 0 {
		lat = info.LogAppendTime
	}
	res := AppendResult{BaseOffset: info.BaseOffset, LastOffset: info.LastOffset, LogAppendTime: lat,
		LogStartOffset: p.log.LogStartOffset(), LeaderEpoch: epoch}
	if err := p.publishLocked(info.LastOffset+1, int64(h.NumRecords), cfg.FlushMessages); err != nil {
		return AppendResult{}, err
	}
	return res, nil
}

// publishLocked makes an appended batch ending at end (records of them)
// visible: at once, or, when flush.messages is due or an fsync holding the
// high watermark back is in flight, only once an fsync covering it
// succeeded. It is called with p.mu held and returns with it released.
func (p *Partition) publishLocked(end, records, flushMessages int64) error {
	p.mu.unflushed += records
	flushNow := p.mu.unflushed >= flushMessages
	p.maybeSnapshotLocked()
	if !flushNow && p.mu.syncing == 0 {
		p.setHighWatermarkLocked(end)
		p.mu.Unlock()
		p.notify()
		return nil
	}
	if flushNow {
		p.mu.unflushed = 0
		p.mu.lastFlush = time.Now()
	}
	return p.syncThenPublishLocked(end)
}

// syncThenPublishLocked fsyncs the log without holding the append lock and
// then moves the high watermark to end. It is called with p.mu held and
// returns with it released. While the fsync is in flight every append waits
// for its own fsync (group commit in the log) before it is visible; when an
// fsync fails the log's failure is sticky, the high watermark stays below
// everything the failed fsync covered and the error is returned.
func (p *Partition) syncThenPublishLocked(end int64) error {
	p.mu.syncing++
	p.mu.Unlock()
	err := p.log.Sync()
	p.mu.Lock()
	p.mu.syncing--
	if err == nil {
		p.setHighWatermarkLocked(end)
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	p.notify()
	return nil
}

// maybeSnapshotLocked snapshots producer state when the log rolled.
func (p *Partition) maybeSnapshotLocked() {
	if n := p.log.NumSegments(); n != p.mu.snapshotSegment {
		// Kafka snapshots producer state at every roll, so recovery replays at
		// most one segment.
		p.mu.snapshotSegment = n
		p.writeSnapshotLocked()
	}
}

// setHighWatermarkLocked records that this node has made everything below
// end visible and moves the high watermark as far as the ISR allows: a
// single replica is its whole ISR, so there the high watermark is end at
// once; with followers it is the smallest ISR log end offset.
func (p *Partition) setHighWatermarkLocked(end int64) {
	if end > p.mu.localEnd {
		p.mu.localEnd = end
	}
	p.advanceHighWatermarkLocked(p.replicatedEndLocked())
}

// advanceHighWatermarkLocked moves the high watermark forward to hw (never
// back) and resolves the ended transactions whose marker it passed, which
// may move the last stable offset (Kafka's onHighWatermarkUpdated). It
// reports whether the high watermark moved.
func (p *Partition) advanceHighWatermarkLocked(hw int64) bool {
	if hw <= p.highWatermark.Load() {
		return false
	}
	p.highWatermark.Store(hw)
	n := 0
	for _, t := range p.mu.ended {
		if t.MarkerOffset >= hw {
			p.mu.ended[n] = t
			n++
		}
	}
	if n != len(p.mu.ended) {
		clear(p.mu.ended[n:])
		p.mu.ended = p.mu.ended[:n]
		p.updateFirstUnstableLocked()
	}
	return true
}

// WaitDurable returns once every record below offset is fsynced. Concurrent
// callers share fsyncs (group commit in the log).
func (p *Partition) WaitDurable(ctx context.Context, offset int64) error {
	for p.log.DurableOffset() < offset {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.log.LogEndOffset() < offset {
			// Truncated away: this node was deposed and its tail cut. Not
			// an error to spin on until ctx ends.
			return ErrNotLeader
		}
		if err := p.log.Sync(); err != nil {
			return err
		}
	}
	return nil
}

// flushIfDue applies flush.ms: an fsync when the last one is older than it.
func (p *Partition) flushIfDue(now time.Time) {
	cfg := p.cfg.Load()
	if cfg.FlushMs <= 0 || cfg.FlushMs >= 1<<62 {
		return
	}
	p.mu.Lock()
	due := p.mu.unflushed > 0 && now.Sub(p.mu.lastFlush) >= time.Duration(cfg.FlushMs)*time.Millisecond
	if due {
		p.mu.unflushed = 0
		p.mu.lastFlush = now
	}
	p.mu.Unlock()
	if due {
		if err := p.log.Sync(); err != nil {
			p.logger.Error("flush failed", "topic", p.Topic, "partition", p.Index, "err", err)
		}
	}
}

// Read returns whole record batches from offset up to the high watermark,
// at most maxBytes except that the first batch is always whole (KIP-74).
func (p *Partition) Read(offset int64, maxBytes int) ([]byte, error) {
	return p.read(offset, maxBytes, p.highWatermark.Load())
}

// ReadCommitted is Read up to the last stable offset (read_committed).
func (p *Partition) ReadCommitted(offset int64, maxBytes int) ([]byte, error) {
	return p.read(offset, maxBytes, p.LastStableOffset())
}

func (p *Partition) read(offset int64, maxBytes int, hw int64) ([]byte, error) {
	if offset > hw && offset <= p.log.LogEndOffset() {
		return nil, nil
	}
	res, err := p.log.ReadUpTo(offset, maxBytes, hw)
	if errors.Is(err, commitlog.ErrOffsetOutOfRange) {
		return nil, ErrOffsetOutOfRange
	}
	return res.Data, err
}

// ReadRange is Read returning file ranges of the segment instead of bytes,
// for zero-copy sends. The caller must Release the result once sent.
func (p *Partition) ReadRange(offset int64, maxBytes int) (commitlog.RangeResult, error) {
	return p.readRange(offset, maxBytes, p.highWatermark.Load())
}

// ReadRangeCommitted is ReadRange up to the last stable offset
// (read_committed): no batch at or past the earliest open transaction.
func (p *Partition) ReadRangeCommitted(offset int64, maxBytes int) (commitlog.RangeResult, error) {
	return p.readRange(offset, maxBytes, p.LastStableOffset())
}

func (p *Partition) readRange(offset int64, maxBytes int, hw int64) (commitlog.RangeResult, error) {
	if offset > hw && offset <= p.log.LogEndOffset() {
		return commitlog.RangeResult{NextOffset: offset}, nil
	}
	res, err := p.log.ReadRange(offset, maxBytes, hw)
	if errors.Is(err, commitlog.ErrOffsetOutOfRange) {
		return res, ErrOffsetOutOfRange
	}
	return res, err
}

// OffsetForTimestamp finds the first offset whose timestamp is >= ts.
func (p *Partition) OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool) {
	return p.log.OffsetForTimestamp(ts)
}

// MaxTimestamp returns the largest timestamp in the log and its offset.
func (p *Partition) MaxTimestamp() (ts, offset int64) { return p.log.MaxTimestamp() }

// Segments describes the log's segments, oldest first.
func (p *Partition) Segments() []commitlog.SegmentInfo { return p.log.Segments() }

// EndOffsetForEpoch answers OffsetForLeaderEpoch (KIP-101, KIP-279).
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	return p.log.EndOffsetForEpoch(epoch)
}

// DeleteRecordsBefore moves the log start offset to offset (DeleteRecords).
// offset -1 means the high watermark.
func (p *Partition) DeleteRecordsBefore(offset int64) (int64, error) {
	hw := p.highWatermark.Load()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return 0, ErrOffsetOutOfRange
	}
	if offset <= p.log.LogStartOffset() {
		return p.log.LogStartOffset(), nil
	}
	if err := p.log.SetLogStartOffset(offset); err != nil {
		return 0, err
	}
	p.trimAborted()
	return p.log.LogStartOffset(), nil
}

// ProducerState describes one active producer, for DescribeProducers.
type ProducerState struct {
	ProducerID            int64
	ProducerEpoch         int16
	LastSequence          int32
	LastTimestamp         int64
	CurrentTxnStartOffset int64
}

// Producers lists the partition's active idempotent producers.
func (p *Partition) Producers() []ProducerState {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ProducerState, 0, len(p.mu.producers))
	for pid, e := range p.mu.producers {
		out = append(out, ProducerState{ProducerID: pid, ProducerEpoch: e.Epoch, LastSequence: e.lastSeq(),
			LastTimestamp: e.LastTimestamp, CurrentTxnStartOffset: e.CurrentTxnFirstOffset})
	}
	return out
}

// AddWaiter registers ch to receive a non-blocking signal whenever the high
// watermark moves. Long-poll fetches use it instead of polling.
func (p *Partition) AddWaiter(ch chan struct{}) {
	p.waitMu.Lock()
	p.waiters[ch] = struct{}{}
	p.waitMu.Unlock()
}

// RemoveWaiter undoes AddWaiter.
func (p *Partition) RemoveWaiter(ch chan struct{}) {
	p.waitMu.Lock()
	delete(p.waiters, ch)
	p.waitMu.Unlock()
}

func (p *Partition) notify() {
	p.waitMu.Lock()
	for ch := range p.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	p.waitMu.Unlock()
}

func (p *Partition) enforceRetention() {
	n, err := p.log.EnforceRetention()
	if err != nil {
		p.logger.Error("retention failed", "topic", p.Topic, "partition", p.Index, "err", err)
		return
	}
	if n > 0 {
		p.trimAborted()
		p.logger.Info("retention deleted segments", "topic", p.Topic, "partition", p.Index,
			"segments", n, "log_start_offset", p.log.LogStartOffset())
	}
}

// close writes a producer snapshot and closes the log cleanly.
func (p *Partition) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return nil
	}
	p.mu.closed = true
	p.gone.Store(true)
	p.writeSnapshotLocked()
	return p.log.Close()
}

// delete removes the partition and its data (topic deletion).
func (p *Partition) delete() error {
	p.mu.Lock()
	p.mu.closed = true
	p.gone.Store(true)
	p.mu.Unlock()
	p.notify()
	return p.log.Delete()
}
