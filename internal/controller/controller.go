package controller

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/vfs"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Errors returned by the controller. Errors caused by a record that does not
// fit the image also wrap the metadata error.
var (
	ErrNotController            = errors.New("controller: not the active controller")
	ErrClosed                   = errors.New("controller: closed")
	ErrTopicExists              = errors.New("controller: topic already exists")
	ErrUnknownTopic             = errors.New("controller: unknown topic")
	ErrUnknownPartition         = errors.New("controller: unknown partition")
	ErrUnknownBroker            = errors.New("controller: unknown broker")
	ErrInvalidReplicationFactor = errors.New("controller: invalid replication factor")
	ErrInvalidReplicaAssignment = errors.New("controller: invalid replica assignment")
	ErrInvalidPartitions        = errors.New("controller: invalid number of partitions")
	ErrInvalidConfigResource    = errors.New("controller: invalid config resource")
	ErrInvalidChange            = errors.New("controller: invalid metadata change")
	ErrInvalidConfig            = errors.New("controller: invalid config")
	ErrMetadataLost             = errors.New("controller: metadata log lost")
	ErrStaleBrokerEpoch         = errors.New("controller: stale broker epoch")
	ErrInconsistentClusterID    = errors.New("controller: inconsistent cluster id")
)

// ProducerIDBlockSize is the number of producer ids handed out per
// AllocateProducerIDs call (Kafka's block size).
const ProducerIDBlockSize = 1000

// Raft timing, tuned for a fast start on one node (the first election happens
// after a random wait of HeartbeatTimeout..2*HeartbeatTimeout) while leaving
// headroom for a loaded loopback quorum. Raft requires
// LeaderLeaseTimeout <= HeartbeatTimeout <= ElectionTimeout.
const (
	heartbeatTimeout   = 300 * time.Millisecond
	electionTimeout    = 300 * time.Millisecond
	leaderLeaseTimeout = 150 * time.Millisecond
	// commitTimeout is how often an idle leader sends each follower an
	// AppendEntries, which is how a follower learns of a commit: its
	// image lags the active controller's by up to twice this.
	commitTimeout     = 10 * time.Millisecond
	transportTimeout  = 10 * time.Second
	transportPool     = 3
	snapshotsRetained = 2
)

// Voter is a member of the initial controller quorum.
type Voter struct {
	ID   int32
	Addr string
}

// Config configures a Controller.
type Config struct {
	// NodeID is this node's id; it is also its Raft server id.
	NodeID int32
	// Dir holds the Raft log (raft.wal), stable store (raft.stable) and
	// the snapshots: <data-dir>/__cluster_metadata.
	Dir string
	// Addr is the Raft bind address, also advertised to peers. Port 0 picks
	// a free port (see Controller.Addr).
	Addr string
	// Voters is the initial quorum, used once to bootstrap a new cluster.
	// Empty means this node alone.
	Voters []Voter
	// ClusterID is written at bootstrap; empty means a random id.
	ClusterID string
	// Formatted says the data directory already belongs to a cluster (it
	// has a meta.properties). A formatted node whose Raft stores are empty
	// lost its metadata log: it refuses to start rather than bootstrap a
	// second cluster or vote as a new member (see ErrMetadataLost).
	Formatted bool
	// Observer makes this node a non-voting member (a broker-only node):
	// it never bootstraps, and the active controller adds it to the Raft
	// configuration as a non-voter when it registers (AddObserver). Its
	// Raft stores may be lost freely: it never voted.
	Observer bool
	// Join makes a controller that is not in Voters wait to be added by
	// AddRaftVoter (KIP-853) instead of bootstrapping a quorum of its own.
	Join bool
	// Rejoin says the quorum this voter belongs to is already running (the
	// node found an active controller before opening). With empty Raft
	// stores it then neither bootstraps nor votes until it has caught up
	// with the leader, and afterwards votes only in later terms: it may be
	// a voter whose data directory was lost with the votes it cast, which
	// must not vote twice in one term (KIP-853 keys voters by directory id
	// for this; hashicorp/raft has no such key).
	Rejoin bool
	// Advertise is the Raft address peers dial when it differs from the
	// voters entry and the bound address (a wildcard bind).
	Advertise string
	// SessionTimeout is broker.session.timeout.ms: the active controller
	// fences a broker that has not heartbeated for this long. 0 means 9 s.
	SessionTimeout time.Duration
	// Props are the node's static broker properties (file and --set); the
	// controller reads the ones its decisions depend on
	// (unclean.leader.election.enable, auto.leader.rebalance.enable,
	// leader.imbalance.*) below the dynamic configs in the image.
	Props map[string]string
	// Logger receives the controller's and Raft's logs; nil discards.
	Logger *slog.Logger
	// FS holds the Raft log, stable store and snapshots (raftstore.go,
	// snapstore.go); nil is the operating system's.
	FS vfs.FS
	// Dial opens Raft's connections to the other voters (nil: a TCP
	// dial). Tests cut links between nodes through it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// dropAppend, in tests, refuses the AppendEntries it returns true for
	// (heartbeats take Raft's fast path and still arrive).
	dropAppend func() bool
	// applyDelay, in tests, runs before each entry this node's image
	// applies: a slow state machine.
	applyDelay func()
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.NodeID < 0 {
		return fmt.Errorf("%w: node id %d", ErrInvalidConfig, c.NodeID)
	}
	if c.Dir == "" {
		return fmt.Errorf("%w: empty dir", ErrInvalidConfig)
	}
	if c.Addr == "" {
		return fmt.Errorf("%w: empty addr", ErrInvalidConfig)
	}
	for _, v := range c.Voters {
		if v.ID < 0 || v.Addr == "" {
			return fmt.Errorf("%w: voter %+v", ErrInvalidConfig, v)
		}
	}
	return nil
}

// Controller is one node's member of the metadata quorum. All methods are
// safe for concurrent use.
type Controller struct {
	cfg       Config
	log       *slog.Logger
	raft      *raft.Raft
	store     *raftStore
	logs      raft.LogStore // store, behind Raft's cache
	transport *raft.NetworkTransport
	progress  *progressTransport // transport wrapper: followers' log ends
	mux       *muxListener

	image atomic.Pointer[metadata.Image]
	// startCommit is the commit index WaitReady learnt (0 before); the
	// node is caught up once it applied that far (CaughtUp), and its image
	// the last command up to it, startCommand (lastCommand).
	startCommit  atomic.Uint64
	startCommand atomic.Uint64

	// sem is the command lock: commands run one at a time.
	sem chan struct{}
	// barrierTerm is the Raft term in which a Barrier last completed on
	// this leader. Guarded by sem.
	barrierTerm uint64

	baseCtx context.Context // cancelled by Close
	cancel  context.CancelFunc
	stopc   chan struct{}
	wg      sync.WaitGroup

	mu struct {
		sync.Mutex
		closed bool
	}

	// members holds the heartbeat times of the active controller's term
	// (membership.go); a leaf lock.
	members struct {
		sync.Mutex
		term  uint64
		since time.Time
		seen  map[int32]time.Time
		// catchUp holds the fenced brokers' catch-up targets
		// (Heartbeat), forgotten with the term.
		catchUp map[int32]catchUp
	}

	subMu   sync.Mutex
	subs    map[uint64]func(prev, next *metadata.Image)
	nextSub uint64

	notifyMu sync.Mutex
	queue    []imageChange
	notifyc  chan struct{} // capacity 1: "queue is non-empty"
	// fenceWake (capacity 1) wakes the fence loop when this node takes
	// over as active controller.
	fenceWake chan struct{}

	closeOnce sync.Once
	closeErr  error
}

type imageChange struct{ prev, next *metadata.Image }

// Open starts the controller: it opens the Raft stores in cfg.Dir, starts
// Raft, and bootstraps a new cluster when the stores are empty and this node
// is one of cfg.Voters (or cfg.Voters is empty). It returns before a leader
// is elected; call WaitReady.
func Open(cfg Config) (_ *Controller, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "controller")
	if cfg.FS == nil {
		cfg.FS = vfs.Default
	}
	if err := cfg.FS.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if err := cfg.FS.SyncDir(filepath.Dir(cfg.Dir)); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	hlog := hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.Warn,
		Output:      &slogWriter{log: logger},
		DisableTime: true,
	})

	c := &Controller{
		cfg:     cfg,
		log:     logger,
		sem:     make(chan struct{}, 1),
		stopc:   make(chan struct{}),
		subs:    make(map[uint64]func(prev, next *metadata.Image)),
		notifyc: make(chan struct{}, 1),

		fenceWake: make(chan struct{}, 1),
	}
	c.image.Store(&metadata.Image{})
	c.baseCtx, c.cancel = context.WithCancel(context.Background())

	var closers []io.Closer
	defer func() {
		if err != nil {
			c.cancel()
			for _, cl := range slices.Backward(closers) {
				_ = cl.Close()
			}
		}
	}()

	c.store, err = openRaftStore(cfg.FS, cfg.Dir, logger)
	if err != nil {
		return nil, fmt.Errorf("controller: open raft store: %w", err)
	}
	closers = append(closers, c.store)
	snaps, err := openSnapStore(cfg.FS, cfg.Dir, snapshotsRetained, logger)
	if err != nil {
		return nil, fmt.Errorf("controller: open snapshot store: %w", err)
	}
	advertise := cfg.Advertise
	for _, v := range cfg.Voters {
		if v.ID == cfg.NodeID {
			advertise = v.Addr
		}
	}
	c.mux, err = newMuxListener(cfg.Addr, advertise, cfg.Dial)
	if err != nil {
		return nil, fmt.Errorf("controller: listen %s: %w", cfg.Addr, err)
	}
	closers = append(closers, c.mux)
	c.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: c.mux, MaxPool: transportPool, Timeout: transportTimeout, Logger: hlog,
	})
	closers = append(closers, c.transport)
	c.progress = newProgressTransport(c.transport, c.stopc)
	c.progress.dropAppend = cfg.dropAppend
	c.wg.Go(func() { c.progress.filterLoop(c.stopc) })
	closers = append(closers, closerFunc(func() error { close(c.stopc); c.wg.Wait(); return nil }))

	rc := raft.DefaultConfig()
	rc.LocalID = serverID(cfg.NodeID)
	rc.HeartbeatTimeout = heartbeatTimeout
	rc.ElectionTimeout = electionTimeout
	rc.LeaderLeaseTimeout = leaderLeaseTimeout
	rc.CommitTimeout = commitTimeout
	rc.Logger = hlog
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("controller: raft config: %w", err)
	}

	logs, err := raft.NewLogCache(512, c.store)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	c.logs = logs
	existing, err := raft.HasExistingState(logs, c.store, snaps)
	if err != nil {
		return nil, fmt.Errorf("controller: read raft state: %w", err)
	}
	if !existing && cfg.Formatted && !cfg.Observer {
		// The directory was part of a cluster but its Raft stores are gone
		// (wiped, or replaced). Bootstrapping would start a second cluster;
		// joining empty would forget the votes this voter cast, so it could
		// vote twice in one term and help elect a leader that lacks
		// committed entries. Only an operator can decide (KIP-853: remove
		// and re-add the voter).
		return nil, fmt.Errorf("%w: %s has no Raft state but the data directory was formatted for a cluster: "+
			"this node lost its metadata log and must not bootstrap or vote as new; restore %s, or move the data directory away to start a new cluster",
			ErrMetadataLost, cfg.Dir, cfg.Dir)
	}
	c.raft, err = raft.NewRaft(rc, (*fsm)(c), logs, c.store, snaps, c.progress)
	if err != nil {
		return nil, fmt.Errorf("controller: start raft: %w", err)
	}
	closers = append(closers, closerFunc(func() error { return c.raft.Shutdown().Error() }))

	if !existing && cfg.Rejoin && !cfg.Observer {
		c.progress.voteFloor.Store(math.MaxUint64)
		c.log.Info("rejoining a running quorum with empty metadata stores: no vote until caught up")
	}
	if !existing && !cfg.Observer && !cfg.Join && !cfg.Rejoin {
		conf, member := c.bootstrapConfiguration()
		if member {
			switch err := c.raft.BootstrapCluster(conf).Error(); {
			case errors.Is(err, raft.ErrCantBootstrap):
				// Between NewRaft and here the running quorum's leader
				// already replicated to this node (it lists us as a
				// voter): the stores hold its entries, so this node
				// joined the cluster it was configured for.
				c.log.Info("metadata quorum reached this node before bootstrap; joined it")
			case err != nil:
				return nil, fmt.Errorf("controller: bootstrap: %w", err)
			default:
				c.log.Info("bootstrapped metadata quorum", "voters", len(conf.Servers))
			}
		}
	}

	c.members.seen = make(map[int32]time.Time)
	c.members.catchUp = make(map[int32]catchUp)
	c.wg.Go(c.leadershipLoop)
	c.wg.Go(c.dispatchLoop)
	c.wg.Go(c.fenceLoop)
	c.wg.Go(c.rebalanceLoop)
	return c, nil
}

func serverID(id int32) raft.ServerID { return raft.ServerID(strconv.Itoa(int(id))) }

func (c *Controller) bootstrapConfiguration() (raft.Configuration, bool) {
	voters := c.cfg.Voters
	if len(voters) == 0 {
		voters = []Voter{{ID: c.cfg.NodeID, Addr: string(c.transport.LocalAddr())}}
	}
	var conf raft.Configuration
	member := false
	for _, v := range voters {
		// Every voter bootstraps exactly the list it was given (its own
		// entry included, never its bound address), so that all voters
		// start from one configuration, as hashicorp/raft requires.
		addr := v.Addr
		if v.ID == c.cfg.NodeID {
			member = true
		}
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: raft.Voter, ID: serverID(v.ID), Address: raft.ServerAddress(addr),
		})
	}
	return conf, member
}

// Addr returns the address the controller listener is bound to.
func (c *Controller) Addr() string { return c.mux.ln.Addr().String() }

// AdvertisedAddr is the address peers reach this node's Raft (and
// controller listener) at.
func (c *Controller) AdvertisedAddr() string { return string(c.transport.LocalAddr()) }

// KafkaListener returns the Kafka half of the controller listener: the
// connections that did not open with the Raft preamble. Accept fails with
// net.ErrClosed once it or the controller is closed; closing it leaves the
// Raft half serving.
func (c *Controller) KafkaListener() net.Listener { return c.mux.kafka }

// Image returns the latest applied metadata image; never nil.
func (c *Controller) Image() *metadata.Image { return c.image.Load() }

// IsActive reports whether this node is the Raft leader (the active
// controller).
func (c *Controller) IsActive() bool { return c.raft.State() == raft.Leader }

// Leader returns the node id of the current leader, if one is known.
func (c *Controller) Leader() (int32, bool) {
	_, id := c.raft.LeaderWithID()
	if id == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(n), true
}

// CaughtUp reports whether this node has applied the metadata log up to
// the commit index it learnt when it started (WaitReady): before that its
// image may lag what the quorum decided.
func (c *Controller) CaughtUp() bool {
	target := c.startCommit.Load()
	return target > 0 && c.raft.AppliedIndex() >= target && c.progress.appliedIndex() >= c.startCommand.Load()
}

// lastCommand is the index of the last command entry at or below index in
// this node's log, 0 if there is none after the snapshot. Raft counts an
// entry applied once it queued it for the state machine, which applies it
// on another goroutine, and only commands reach the state machine: the
// image covers index once it applied this one.
func (c *Controller) lastCommand(index uint64) uint64 {
	first, err := c.logs.FirstIndex()
	if err != nil || first == 0 {
		return 0
	}
	var l raft.Log
	for i := index; i >= first && i > 0; i-- {
		if err := c.logs.GetLog(i, &l); err != nil {
			return 0
		}
		if l.Type == raft.LogCommand {
			return i
		}
	}
	return 0
}

// MetadataLag is how many committed metadata log entries this node knows of
// and has not applied yet.
func (c *Controller) MetadataLag() uint64 {
	commit, applied := c.raft.CommitIndex(), c.raft.AppliedIndex()
	if commit <= applied {
		return 0
	}
	return commit - applied
}

// AppliedOffset is the Raft index of the last metadata entry applied.
func (c *Controller) AppliedOffset() uint64 { return c.raft.AppliedIndex() }

// readyPoll is how often WaitReady re-checks leadership and apply progress;
// it only runs while a node starts.
const readyPoll = 5 * time.Millisecond

// WaitReady blocks until a leader is known, this node has applied every
// entry committed when it learned of that leader (on the leader: a Raft
// Barrier), and the image has a cluster id.
func (c *Controller) WaitReady(ctx context.Context) error {
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	sleep := func() error {
		select {
		case <-tick.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-c.stopc:
			return ErrClosed
		}
	}
	barrier := false // this node is the leader and its Barrier passed
	for {
		for {
			if _, id := c.raft.LeaderWithID(); id != "" {
				break
			}
			if err := sleep(); err != nil {
				return err
			}
		}
		if !c.IsActive() {
			break
		}
		_, err := c.await(ctx, c.raft.Barrier(0), nil)
		if err == nil {
			c.startCommit.Store(max(c.raft.AppliedIndex(), 1))
			barrier = true
			break
		}
		if !errors.Is(err, raft.ErrLeadershipLost) && !errors.Is(err, raft.ErrNotLeader) {
			return mapRaftErr(err)
		}
		// Elected and deposed again while the quorum forms (several
		// voters starting at once): wait for the next leader.
		c.log.Info("lost the metadata leadership while starting; waiting for the next leader", "err", err)
		if err := sleep(); err != nil {
			return err
		}
	}
	if !barrier {
		// A follower learns the leader from its first heartbeat, which
		// carries no commit index, and its commit index starts at 0
		// after a restart whatever snapshot it restored: wait for an
		// AppendEntries to set it. It then covers every entry this node
		// applied before it stopped (the smaller of the leader's commit
		// index and this log's end); a target of 0 left the image at the
		// snapshot's, where a broker takes the partitions created since
		// for strays.
		for c.raft.CommitIndex() == 0 {
			if err := sleep(); err != nil {
				return err
			}
		}
		target := c.raft.CommitIndex()
		command := c.lastCommand(target)
		c.startCommand.Store(command)
		c.startCommit.Store(max(target, 1))
		for c.raft.AppliedIndex() < target || c.progress.appliedIndex() < command {
			if err := sleep(); err != nil {
				return err
			}
		}
	}
	for c.Image().ClusterID == "" {
		if err := sleep(); err != nil {
			return err
		}
	}
	if term := c.raft.CurrentTerm(); c.progress.voteFloor.CompareAndSwap(math.MaxUint64, term) {
		c.log.Info("caught up with the quorum; voting again from the next term", "term", term)
	}
	c.checkVoters()
	return nil
}

// Resign hands the active controller's Raft leadership to another voter
// (a Raft leadership transfer) and waits for it, bounded by ctx: a node
// shutting down resigns while it still answers, as Kafka's controller
// does, instead of leaving the quorum to notice its silence. A no-op when
// this node is not the active controller or is the only voter.
func (c *Controller) Resign(ctx context.Context) error {
	if c.raft.State() != raft.Leader {
		return nil
	}
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	voters := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	if voters < 2 {
		return nil
	}
	_, err := c.await(ctx, c.raft.LeadershipTransfer(), nil)
	return err
}

// checkVoters warns when the configured voters differ from the quorum's
// configuration: the list only seeds a new cluster, so an edited list has
// no effect, and voters bootstrapped from different lists disagree.
func (c *Controller) checkVoters() {
	if len(c.cfg.Voters) == 0 {
		return
	}
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	want := map[raft.ServerID]raft.ServerAddress{}
	for _, v := range c.cfg.Voters {
		want[serverID(v.ID)] = raft.ServerAddress(v.Addr)
	}
	got := map[raft.ServerID]raft.ServerAddress{}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			got[s.ID] = s.Address
		}
	}
	if !maps.Equal(want, got) {
		c.log.Warn("controller.quorum.voters differs from the quorum's voters; the list only seeds a new cluster",
			"configured", fmt.Sprint(want), "quorum", fmt.Sprint(got))
	}
}

// Subscribe registers fn to be called with every new image after it is
// published, in apply order, from one goroutine (never concurrently with
// itself or other subscribers). A subscriber sees only changes published
// after Subscribe; read Image() after subscribing for the starting state
// (the first call may then repeat part of it). fn must not block for long: it
// delays every other subscriber; it may call controller methods. cancel
// stops further calls except possibly one already under way.
func (c *Controller) Subscribe(fn func(prev, next *metadata.Image)) (cancel func()) {
	c.subMu.Lock()
	id := c.nextSub
	c.nextSub++
	c.subs[id] = fn
	c.subMu.Unlock()
	return func() {
		c.subMu.Lock()
		delete(c.subs, id)
		c.subMu.Unlock()
	}
}

// publish installs next as the current image and queues the change for the
// subscribers. Called only from the Raft FSM goroutine.
func (c *Controller) publish(prev, next *metadata.Image) {
	c.image.Store(next)
	c.notifyMu.Lock()
	c.queue = append(c.queue, imageChange{prev, next})
	c.notifyMu.Unlock()
	select {
	case c.notifyc <- struct{}{}:
	default:
	}
}

// dispatchLoop delivers queued image changes to the subscribers. The queue
// is bounded by how far the subscribers lag behind Raft apply; images share
// structure, so a lagging queue costs little memory per entry.
func (c *Controller) dispatchLoop() {
	for {
		select {
		case <-c.stopc:
			return
		case <-c.notifyc:
		}
		c.notifyMu.Lock()
		changes := c.queue
		c.queue = nil
		c.notifyMu.Unlock()
		for _, ch := range changes {
			c.subMu.Lock()
			ids := make([]uint64, 0, len(c.subs))
			for id := range c.subs {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			fns := make([]func(prev, next *metadata.Image), 0, len(ids))
			for _, id := range ids {
				fns = append(fns, c.subs[id])
			}
			c.subMu.Unlock()
			for _, fn := range fns {
				fn(ch.prev, ch.next)
			}
		}
	}
}

// leadershipLoop reacts to this node becoming the active controller: it
// writes the ClusterRecord when the cluster has none yet.
func (c *Controller) leadershipLoop() {
	for {
		select {
		case <-c.stopc:
			return
		case leader := <-c.raft.LeaderCh():
			if !leader {
				c.log.Info("lost controller leadership")
				continue
			}
			c.log.Info("became active controller", "term", c.raft.CurrentTerm())
			c.startSessions()
			err := c.exec(c.baseCtx, func(img *metadata.Image) ([]metadata.Record, error) {
				if img.ClusterID != "" {
					return nil, nil
				}
				id := c.cfg.ClusterID
				if id == "" {
					id = newClusterID()
				}
				return []metadata.Record{metadata.ClusterRecord{ClusterID: id}}, nil
			})
			if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
				c.log.Warn("bootstrap cluster id failed", "err", err)
			}
		}
	}
}

// newClusterID returns a random 22-character base64url id, like Kafka's.
func newClusterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Close shuts Raft down, stops the controller's goroutines and closes the
// stores. It is safe to call more than once.
func (c *Controller) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.mu.closed = true
		c.mu.Unlock()
		close(c.stopc)
		c.cancel()
		errs := []error{c.raft.Shutdown().Error()}
		c.wg.Wait()
		c.progress.quiesce() // no heartbeat may write to the stores below
		errs = append(errs, c.transport.Close(), c.store.Close())
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// goTracked starts fn as a goroutine owned by c, unless c is closing.
func (c *Controller) goTracked(fn func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return false
	}
	c.wg.Go(fn)
	return true
}

// await waits for f or ctx. If ctx ends first, await returns ctx.Err() with
// abandoned true, and onAbandon (if non-nil) runs from a tracked goroutine
// once Raft resolves f. Otherwise onAbandon never runs.
func (c *Controller) await(ctx context.Context, f raft.Future, onAbandon func()) (abandoned bool, err error) {
	const (
		waiting = iota
		resolved
		gaveUp
	)
	done := make(chan error, 1)
	var state atomic.Int32
	started := c.goTracked(func() {
		done <- f.Error()
		if !state.CompareAndSwap(waiting, resolved) && onAbandon != nil {
			onAbandon()
		}
	})
	if !started {
		// Closing: Raft shutdown resolves f promptly.
		return false, f.Error()
	}
	select {
	case err := <-done:
		return false, err
	case <-ctx.Done():
		if state.CompareAndSwap(waiting, gaveUp) {
			return true, ctx.Err()
		}
		return false, <-done
	}
}

// exec runs one command under the command lock: decide computes records
// from the current image; they are validated against it, proposed as one
// Raft entry and awaited.
func (c *Controller) exec(ctx context.Context, decide func(img *metadata.Image) ([]metadata.Record, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stopc:
		return ErrClosed
	}
	release := func() { <-c.sem }
	// owned is true while this call must release sem; a future awaited past
	// ctx's end hands the release to its waiter, so the next command still
	// decides after this one's outcome is known.
	owned := true
	defer func() {
		if owned {
			release()
		}
	}()
	wait := func(f raft.Future) error {
		abandoned, err := c.await(ctx, f, release)
		if abandoned {
			owned = false
		}
		return err
	}
	if c.raft.State() != raft.Leader {
		return ErrNotController
	}
	if term := c.raft.CurrentTerm(); c.barrierTerm != term {
		if err := wait(c.raft.Barrier(0)); err != nil {
			return mapRaftErr(err)
		}
		c.barrierTerm = term
	}
	img := c.Image()
	recs, err := decide(img)
	if err != nil || len(recs) == 0 {
		return err
	}
	if _, err := img.ApplyBatch(recs, img.LastOffset); err != nil {
		return mapApplyErr(err)
	}
	f := c.raft.Apply(metadata.EncodeBatch(recs), enqueueTimeout(ctx))
	if err := wait(f); err != nil {
		return mapRaftErr(err)
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return mapApplyErr(err)
	}
	return nil
}

// execVisible is exec for the changes a client may act on at once on another
// broker (topics, ACLs, SCRAM credentials, client quotas): after the commit it
// appends a Raft barrier and waits for it, whose replication carries the
// new commit index to every follower and observer, so that their images
// apply the change within a round trip rather than at the next idle
// AppendEntries (up to 2*commitTimeout). The barrier commits once a
// majority has it, so the change is then also awaited on every other live
// follower (awaitFollowersCommit): in CI a client that created an ACL
// through one node was refused by the third, whose image had not applied
// it yet. Both are best effort: their failure does not fail the committed
// change.
func (c *Controller) execVisible(ctx context.Context, decide func(img *metadata.Image) ([]metadata.Record, error)) error {
	if err := c.exec(ctx, decide); err != nil {
		return err
	}
	index := c.Image().LastOffset
	f := c.raft.Barrier(time.Second)
	done := make(chan struct{})
	go func() { f.Error(); close(done) }()
	select {
	case <-done:
		c.awaitFollowersCommit(ctx, index)
	case <-ctx.Done():
	}
	return nil
}

func enqueueTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 0
}

func mapRaftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", ErrNotController, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		// The leader is still the leader, only busy: Kafka's controller
		// answers a command that timed out REQUEST_TIMED_OUT, never
		// NOT_CONTROLLER (clients would look for another controller and
		// give up after their retries on a cluster that is fine).
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return fmt.Errorf("controller: raft: %w", err)
}

// applyErrors maps metadata apply errors to the controller's sentinels.
var applyErrors = []struct{ from, to error }{
	{metadata.ErrTopicExists, ErrTopicExists},
	{metadata.ErrUnknownTopic, ErrUnknownTopic},
	{metadata.ErrUnknownPartition, ErrUnknownPartition},
	{metadata.ErrInvalidPartition, ErrInvalidPartitions},
	{metadata.ErrUnknownBroker, ErrUnknownBroker},
	{metadata.ErrStaleBrokerEpoch, ErrStaleBrokerEpoch},
	{metadata.ErrInvalidResource, ErrInvalidConfigResource},
}

func mapApplyErr(err error) error {
	for _, m := range applyErrors {
		if errors.Is(err, m.from) {
			return fmt.Errorf("%w: %w", m.to, err)
		}
	}
	return fmt.Errorf("%w: %w", ErrInvalidChange, err)
}

// slogWriter turns hclog's text lines into slog records.
type slogWriter struct {
	log *slog.Logger

	mu       sync.Mutex
	lastPeer map[string]time.Time // peer-unreachable line (without its error) -> last logged
}

// peerLogInterval rate-limits Raft's peer-unreachable errors: a leader logs
// one per heartbeat backoff (every 150 ms or so) while a voter is down.
const peerLogInterval = 10 * time.Second

func (w *slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	switch {
	case strings.Contains(line, "[ERROR]"):
		level = slog.LevelError
	case strings.Contains(line, "[WARN]"):
		level = slog.LevelWarn
	}
	if strings.Contains(line, "failed to heartbeat to") || strings.Contains(line, "failed to appendEntries to") {
		level = slog.LevelWarn
		key, _, _ := strings.Cut(line, "error=")
		key = strings.Split(key, "backoff time=")[0]
		now := time.Now()
		w.mu.Lock()
		if w.lastPeer == nil {
			w.lastPeer = make(map[string]time.Time)
		}
		last, seen := w.lastPeer[key]
		if !seen || now.Sub(last) >= peerLogInterval {
			w.lastPeer[key] = now
		} else {
			level = slog.LevelDebug
		}
		w.mu.Unlock()
	}
	w.log.Log(context.Background(), level, "raft", "line", line)
	return len(p), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// fsm is the Raft state machine: the Controller seen from Raft's side.
type fsm Controller

// Apply implements raft.FSM. It decodes one batch and applies it all or
// nothing; the returned value is nil or the error that rejected the batch.
func (f *fsm) Apply(l *raft.Log) any {
	c := (*Controller)(f)
	defer c.progress.appliedTo(l.Index)
	if c.cfg.applyDelay != nil {
		c.cfg.applyDelay()
	}
	if l.Type != raft.LogCommand {
		return nil
	}
	prev := c.image.Load()
	recs, err := metadata.DecodeBatch(l.Data)
	if err != nil {
		c.log.Error("undecodable metadata entry", "offset", l.Index, "err", err)
		c.skip(prev, l.Index)
		return err
	}
	next, err := prev.ApplyBatch(recs, l.Index)
	if err != nil {
		c.log.Warn("metadata entry rejected", "offset", l.Index, "err", err)
		c.skip(prev, l.Index)
		return err
	}
	c.publish(prev, next)
	return nil
}

// skip moves the image's LastOffset past a command it could not apply, so
// that a snapshot of it, restored, still covers that command (WaitReady's
// target after a restart may be it: lastCommand).
func (c *Controller) skip(prev *metadata.Image, index uint64) {
	if next, err := prev.ApplyBatch(nil, index); err == nil {
		c.image.Store(next)
	}
}

// Snapshot implements raft.FSM by capturing the current (immutable) image.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return imageSnapshot{img: (*Controller)(f).image.Load()}, nil
}

// Restore implements raft.FSM: it replaces the image with the snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	c := (*Controller)(f)
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		return fmt.Errorf("controller: read snapshot: %w", err)
	}
	img, err := metadata.DecodeImage(buf.Bytes())
	if err != nil {
		return fmt.Errorf("controller: decode snapshot: %w", err)
	}
	c.publish(c.image.Load(), img)
	c.progress.restored(img.LastOffset)
	return nil
}

type imageSnapshot struct{ img *metadata.Image }

func (s imageSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.img.Encode()); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (imageSnapshot) Release() {}
