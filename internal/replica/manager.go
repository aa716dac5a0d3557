package replica

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gregor-dev/gregor/internal/commitlog"
	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/vfs"
)

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	DataDir string
	NodeID  int32
	Logger  *slog.Logger
	// RetentionCheckInterval is log.retention.check.interval.ms.
	RetentionCheckInterval time.Duration
	// CleanerBackoff is log.cleaner.backoff.ms: the log cleaner's pass
	// interval (default 15 s).
	CleanerBackoff time.Duration
	// FS is the filesystem of the partitions' files (nil: the operating
	// system's); tests inject faults through it.
	FS vfs.FS
}

// Manager owns the partitions hosted on this node.
type Manager struct {
	cfg    ManagerConfig
	logger *slog.Logger

	mu struct {
		sync.RWMutex
		parts map[TopicPartition]*Partition
	}
	// checkpoint is the high watermark checkpoint read at the first
	// Reconcile (nil before), for the replicated partitions it opens.
	checkpoint map[TopicPartition]int64
	// offline is the error that took the data directory offline (a
	// failed write or fsync anywhere in it); nil while online.
	offline atomic.Pointer[error]
	// cleanerBackoff is log.cleaner.backoff.ms, a dynamic broker config
	// (SetCleanerBackoff); a change wakes the cleaner's wait through
	// cleanerWake.
	cleanerBackoff atomic.Int64
	cleanerWake    chan struct{}
}

// ErrLogDirOffline is the error of every partition operation once the data
// directory is offline: KAFKA_STORAGE_ERROR, as commitlog.ErrLogFailed.
var ErrLogDirOffline = fmt.Errorf("%w: the log directory is offline", commitlog.ErrLogFailed)

// SetOffline takes the data directory offline after an I/O error in it, as
// Kafka's LogDirFailureChannel does: from here on Offline reports it, and
// the node stops serving, fetching and reconciling its partitions. It
// stays offline until the node restarts.
func (m *Manager) SetOffline(cause error) {
	err := fmt.Errorf("%w (%w)", ErrLogDirOffline, cause)
	if m.offline.CompareAndSwap(nil, &err) {
		m.logger.Error("log directory offline", "dir", m.cfg.DataDir, "err", cause)
		// Parked acks=all produces and coordinator writes wait for a
		// high watermark that will not move now: wake them to fail.
		for _, p := range m.All() {
			p.notify()
		}
	}
}

// Offline returns nil while the data directory is online, else an error
// wrapping ErrLogDirOffline.
func (m *Manager) Offline() error {
	if e := m.offline.Load(); e != nil {
		return *e
	}
	return nil
}

func (m *Manager) fs() vfs.FS {
	if m.cfg.FS == nil {
		return vfs.Default
	}
	return m.cfg.FS
}

// NewManager creates a manager; Start runs its background work (retention, flush.ms).
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetentionCheckInterval <= 0 {
		cfg.RetentionCheckInterval = 5 * time.Minute
	}
	if cfg.CleanerBackoff <= 0 {
		cfg.CleanerBackoff = DefaultCleanerBackoff
	}
	m := &Manager{cfg: cfg, logger: cfg.Logger.With("component", "replica"), cleanerWake: make(chan struct{}, 1)}
	m.mu.parts = make(map[TopicPartition]*Partition)
	return m
}

// Get returns a hosted partition, or nil.
func (m *Manager) Get(topic string, partition int32) *Partition {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.mu.parts[TopicPartition{topic, partition}]
}

// All returns every hosted partition.
func (m *Manager) All() []*Partition {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Partition, 0, len(m.mu.parts))
	for _, p := range m.mu.parts {
		out = append(out, p)
	}
	return out
}

// PartitionState is what the metadata log says about one partition, as the
// manager needs it.
type PartitionState struct {
	TopicID     [16]byte
	Leader      int32
	LeaderEpoch int32
	// PartitionEpoch is bumped by every change of the partition (an ISR
	// change must name the current one).
	PartitionEpoch int32
	Replicas       []int32
	ISR            []int32
	Config         config.Topic
}

// Reconcile makes the hosted partitions match the metadata: it opens
// partitions this node is now a replica of, updates epochs and configs, and
// closes and deletes partitions whose topic is gone or that no longer list
// this node as a replica. It is called in metadata apply order.
func (m *Manager) Reconcile(want map[TopicPartition]PartitionState) error {
	var firstErr error
	if m.checkpoint == nil {
		m.checkpoint = m.readHWCheckpoint()
	}
	for tp, st := range want {
		if !contains(st.Replicas, m.cfg.NodeID) {
			// No longer a replica (a completed reassignment moved it
			// away): stop it and delete its copy, as Kafka's brokers
			// delete a replica the metadata no longer assigns them.
			if p := m.Get(tp.Topic, tp.Partition); p != nil {
				m.logger.Info("deleting a replica this node no longer holds", "topic", tp.Topic, "partition", tp.Partition,
					"replicas", st.Replicas)
				m.drop(tp, p)
			}
			continue
		}
		p := m.Get(tp.Topic, tp.Partition)
		if p != nil && p.TopicID != st.TopicID {
			m.drop(tp, p)
			p = nil
		}
		if p == nil {
			np, err := openPartition(m.cfg.FS, m.cfg.DataDir, tp.Topic, tp.Partition, st.TopicID, st.Config, m.logger)
			if err != nil {
				m.logger.Error("open partition failed", "topic", tp.Topic, "partition", tp.Partition, "err", err)
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			np.nodeID = m.cfg.NodeID
			np.dirOffline = &m.offline
			if len(st.Replicas) > 1 {
				hw, ok := m.checkpoint[tp]
				delete(m.checkpoint, tp) // only this process's first open of it
				np.startFromCheckpoint(hw, ok)
			}
			// Its role first, then visible: a request in between
			// would find an opened partition that is neither, and an
			// acks=1 produce would append to it as a leader at epoch 0.
			m.applyRole(np, st)
			m.mu.Lock()
			m.mu.parts[tp] = np
			m.mu.Unlock()
			continue
		}
		if p.Config() != st.Config {
			p.SetConfig(st.Config)
		}
		m.applyRole(p, st)
	}
	for tp, p := range m.snapshot() {
		if _, ok := want[tp]; !ok {
			m.drop(tp, p)
		}
	}
	return firstErr
}

// applyRole makes p lead or follow as st says.
func (m *Manager) applyRole(p *Partition, st PartitionState) {
	if st.Leader == m.cfg.NodeID {
		p.becomeLeader(st.LeaderEpoch, st.PartitionEpoch, st.ISR, st.Replicas)
	} else {
		p.becomeFollower(st.LeaderEpoch, st.Leader)
	}
}

// FollowedFrom lists the partitions this node follows whose leader is
// leader, for that leader's replica fetcher.
func (m *Manager) FollowedFrom(leader int32) []*Partition {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Partition
	for _, p := range m.mu.parts {
		if p.follower.Load() && p.leader.Load() == leader {
			out = append(out, p)
		}
	}
	return out
}

// Leaders lists the nodes that lead a partition this node follows.
func (m *Manager) Leaders() []int32 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []int32
	for _, p := range m.mu.parts {
		if l := p.leader.Load(); p.follower.Load() && l >= 0 && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

func (m *Manager) snapshot() map[TopicPartition]*Partition {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[TopicPartition]*Partition, len(m.mu.parts))
	for k, v := range m.mu.parts {
		out[k] = v
	}
	return out
}

func (m *Manager) drop(tp TopicPartition, p *Partition) {
	m.mu.Lock()
	delete(m.mu.parts, tp)
	m.mu.Unlock()
	if err := p.delete(); err != nil {
		m.logger.Warn("delete partition failed", "topic", tp.Topic, "partition", tp.Partition, "err", err)
	}
}

// RemoveStrayDirs deletes partition directories under the data dir that the
// metadata does not assign to this node (a topic deleted, or the replica
// reassigned away, while this node was down).
func (m *Manager) RemoveStrayDirs(known func(topic string, partition int32) bool) {
	fs := m.fs()
	ents, err := fs.ReadDir(m.cfg.DataDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), "__cluster_metadata") {
			continue
		}
		i := strings.LastIndexByte(e.Name(), '-')
		if i <= 0 {
			continue
		}
		n, err := strconv.ParseInt(e.Name()[i+1:], 10, 32)
		if err != nil {
			continue
		}
		if _, err := fs.Stat(filepath.Join(m.cfg.DataDir, e.Name(), partitionMetadataFile)); err != nil {
			continue
		}
		if !known(e.Name()[:i], int32(n)) {
			m.logger.Info("removing partition of deleted topic", "dir", e.Name())
			fs.RemoveAll(filepath.Join(m.cfg.DataDir, e.Name()))
		}
	}
}

// Run enforces retention and flush.ms, and runs the log cleaner in a
// goroutine it owns (cleaner.go), until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { m.runCleaner(ctx) })
	retention := time.NewTicker(m.cfg.RetentionCheckInterval)
	defer retention.Stop()
	flush := time.NewTicker(100 * time.Millisecond)
	defer flush.Stop()
	checkpoint := time.NewTicker(hwCheckpointInterval)
	defer checkpoint.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retention.C:
			for _, p := range m.All() {
				p.enforceRetention()
			}
		case now := <-flush.C:
			for _, p := range m.All() {
				p.flushIfDue(now)
			}
		case <-checkpoint.C:
			if err := m.writeHWCheckpoint(); err != nil {
				m.logger.Warn("high watermark checkpoint failed", "err", err)
			}
		}
	}
}

// EnforceRetention runs one retention pass now.
func (m *Manager) EnforceRetention() {
	for _, p := range m.All() {
		p.enforceRetention()
	}
}

// Close closes every partition cleanly (producer snapshots, clean-shutdown
// markers) and writes the high watermark checkpoint.
func (m *Manager) Close() error {
	var firstErr error
	for tp, p := range m.snapshot() {
		if err := p.close(); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("replica: close %s-%d: %w", tp.Topic, tp.Partition, err)
		}
	}
	if err := m.writeHWCheckpoint(); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

func contains(xs []int32, x int32) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
