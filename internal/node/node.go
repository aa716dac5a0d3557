// Package node is the composition root: it builds a running Gregor node from
// its configuration (controller, replica manager, broker, Kafka listener,
// admin HTTP listener), starts the parts in dependency order and stops them
// in reverse. A single node is a cluster of one running the same code paths
// as a larger cluster: metadata goes through the Raft-backed controller,
// partitions through the replica layer.
//
// Start order: the data directory's lock and storage identity
// (meta.properties: a directory of another node id is refused before
// anything opens; of another cluster, once the quorum names its cluster id;
// a new directory gets one then), a broker's client listener (bound, not
// yet served), the controller (a voter with a new directory first asks its
// peers whether the quorum runs: quorum.go) and the Kafka half of the
// controller listener, a broker-only node's join (its registration makes
// it a Raft observer), the quorum (a multi-voter node waits for its peers as
// long as it takes), the broker, its registration with the active controller
// (lifecycle.go: BrokerRegistration, then BrokerHeartbeat every
// broker.heartbeat.interval.ms; Start returns once the controller unfenced
// it), then the partitions this broker hosts, the coordinators and the
// listeners.
//
// process.roles picks the parts: a controller-only node has no client
// listener, registration or ISR updater (it hosts no partitions, so its
// replica manager and coordinators stay empty, and its broker only answers
// forwarded admin requests); a broker-only node's controller is a Raft
// non-voter. Controllers are found through the Raft configuration
// (quorum.go), so voters added at runtime are reached too.
//
// Goroutines: the broker lifecycle loop (one), the listeners' serve loops,
// the replica manager's loop, one replica fetcher per leader broker this
// node follows partitions of (fetcher.go, started after each reconcile,
// stopped by itself when it has nothing to fetch, and by Close before the
// partitions close), the ISR updater (isr.go: AlterPartition to the
// active controller) and the storage watcher (offline.go: a failed write or
// fsync takes the log directory offline and fences the broker); all stop on
// Close. The forwarder keeps at most forwarderConns connections to the
// active controller, the inter-broker client (interbroker.go) at most
// peerConns to each other broker.
//
// Storage: everything the node stores goes through one vfs.FS (Options.FS;
// the operating system's by default), wrapped in a vfs.WatchFS that reports
// I/O failures.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sys/unix"

	"github.com/gregor-dev/gregor/internal/broker"
	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/group"
	"github.com/gregor-dev/gregor/internal/httpapi"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/quota"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/server"
	"github.com/gregor-dev/gregor/internal/txn"
	"github.com/gregor-dev/gregor/internal/vfs"
)

// Node is a running Gregor node.
type Node struct {
	cfg    config.Node
	logger *slog.Logger
	// fs holds everything the node stores: meta.properties, the metadata
	// log's Raft stores, the partitions and the checkpoints. It reports
	// every failed write or fsync to storageFailed.
	fs vfs.FS
	// offlinec is closed by the first storage failure (offline.go).
	offlinec    chan struct{}
	offlineOnce sync.Once
	offlineErr  error // set before offlinec closes
	// lease gates leader service on heartbeats (lease.go); nil on a
	// controller-only node.
	lease *brokerLease

	lock     *os.File
	ctrl     *controller.Controller
	replicas *replica.Manager
	fetchers *replicaFetchers
	broker   *broker.Broker
	groups   *group.Coordinator
	txns     *txn.Coordinator
	kafkaLn  net.Listener // bound before the server owns it
	kafka    *server.Server
	// extra are the client listeners besides the inter-broker one.
	extra    []*extraListener
	ctrlAPIs *server.Server // the Kafka half of the controller listener
	// forwarder sends admin requests to the active controller.
	forwarder *forwarder
	// peers sends inter-broker requests (interbroker.go).
	peers *peerClients
	// stopLifecycle stops the broker's heartbeats, asking the controller
	// to fence it first; nil until registration starts.
	stopLifecycle func()
	requests      *requestMetrics
	health        *clusterHealth // replication and controller metrics (health.go)
	http          *httpapi.Server

	cancel      context.CancelFunc
	wg          sync.WaitGroup
	unsubscribe func()
	reconcileMu sync.Mutex
	// reconciled is the offset of the last image the partitions were
	// reconciled with (0: none yet).
	reconciled atomic.Uint64
	closeOnce  sync.Once
	closeErr   error
}

// Options are the seams of a node that tests use; the zero value is what
// `gregor serve` runs with.
type Options struct {
	// Dial opens every connection this node makes to another node: replica
	// fetches, broker registration and heartbeats, AlterPartition,
	// forwarded admin requests, inter-broker requests (transaction markers
	// and verifications) and the metadata quorum's Raft traffic. nil
	// dials TCP. The in-process cluster harness cuts links through it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// FS stores all of the node's data (cfg.DataDir is a path in it)
	// instead of the operating system: tests give each node a vfs.MemFS
	// to cut its power (MemFS.CrashClone, vfs.CrashCloneAll), or a
	// vfs.FaultFS to fail its disk. The data directory's lock file is
	// taken only on the operating system's filesystem. nil: vfs.Default.
	FS vfs.FS
}

// Run starts a node and serves until ctx ends, then shuts down cleanly.
func Run(ctx context.Context, cfg config.Node, logger *slog.Logger) error {
	n, err := Start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	<-ctx.Done()
	logger.Info("shutting down")
	return n.Close()
}

// Start builds and starts a node. The returned node serves until Close.
// At most one Options may be given.
func Start(ctx context.Context, cfg config.Node, logger *slog.Logger, options ...Options) (_ *Node, err error) {
	var opts Options
	if len(options) > 1 {
		return nil, errors.New("node: more than one Options")
	} else if len(options) == 1 {
		opts = options[0]
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	logger = logger.With("node_id", cfg.NodeID)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := validateProps(cfg.Props, logger); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, logger: logger, offlinec: make(chan struct{})}
	osFS := fs == vfs.Default
	fs = vfs.NewWatchFS(fs, n.storageFailed)
	n.fs = fs
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := fs.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	if osFS {
		if n.lock, err = lockDataDir(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel

	// Storage identity: a directory formatted for another node is refused
	// before anything in it is opened.
	meta, err := config.ReadMetaPropertiesFS(fs, cfg.DataDir)
	formatted := err == nil
	switch {
	case formatted:
		if err := config.CheckMetaProperties(meta, cfg.DataDir, cfg.NodeID, ""); err != nil {
			return nil, err
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}

	roles, err := cfg.ProcessRoles()
	if err != nil {
		return nil, err
	}
	quorum, err := cfg.QuorumVoters()
	if err != nil {
		return nil, err
	}
	bootstrap, err := cfg.BootstrapServers()
	if err != nil {
		return nil, err
	}
	voters := make([]controller.Voter, len(quorum))
	voterAddrs := map[int32]string{}
	for i, v := range quorum {
		voters[i] = controller.Voter{ID: v.ID, Addr: listenAddr(v.Addr)}
		voterAddrs[v.ID] = listenAddr(v.Addr)
	}
	// A broker binds its client listener first: a broker-only node's
	// registration, which makes it an observer, names it.
	if roles.Broker {
		if n.kafkaLn, err = net.Listen("tcp", listenAddr(cfg.KafkaAddr)); err != nil {
			return nil, fmt.Errorf("node: kafka listener: %w", err)
		}
		if n.extra, err = bindExtraListeners(cfg, func() *metadata.Image { return n.ctrl.Image() }); err != nil {
			n.kafkaLn.Close()
			return nil, err
		}
	}
	// A controller named in no voters list joins a running quorum: it waits
	// for AddRaftVoter rather than bootstrapping one of its own.
	joining := roles.Controller && len(quorum) == 0 && len(bootstrap) > 0
	// A voter of a larger quorum with a new data directory asks its peers
	// first: see quorumRunning.
	rejoin := roles.Controller && !formatted && len(quorum) > 1 && quorumRunning(ctx, cfg.NodeID, voterAddrs, opts.Dial)
	n.ctrl, err = controller.Open(controller.Config{
		NodeID:         cfg.NodeID,
		Dir:            filepath.Join(cfg.DataDir, "__cluster_metadata"),
		Addr:           listenAddr(cfg.ControllerAddr),
		Advertise:      raftAdvertised(cfg),
		Voters:         voters,
		Formatted:      formatted,
		Observer:       !roles.Controller,
		Join:           joining,
		Rejoin:         rejoin,
		SessionTimeout: time.Duration(config.Int64(props(cfg.Props, "broker.session.timeout.ms"), 9000)) * time.Millisecond,
		Props:          cfg.Props,
		Logger:         logger,
		FS:             fs,
		Dial:           opts.Dial,
	})
	if err != nil {
		return nil, fmt.Errorf("node: controller: %w", err)
	}
	if len(voterAddrs) == 0 && len(bootstrap) == 0 {
		voterAddrs[cfg.NodeID] = n.ctrl.Addr()
	}
	ctrls := &controllers{static: voterAddrs, bootstrap: bootstrap, ctrl: n.ctrl, self: cfg.NodeID}
	// The controller listener's Kafka half: broker registrations and
	// heartbeats, served before the quorum is up so that peers get
	// NOT_CONTROLLER rather than a silent port.
	ctrlAPIs := broker.NewControllerAPIs(n.ctrl, logger)
	n.ctrlAPIs = server.New(server.Config{
		Listener: n.ctrl.KafkaListener(), MaxRequestBytes: int32(config.Int64(props(cfg.Props, "socket.request.max.bytes"), 100<<20)),
		Logger: logger.With("listener", "controller"),
	}, ctrlAPIs)
	if err := n.ctrlAPIs.Listen(); err != nil {
		return nil, fmt.Errorf("node: controller listener: %w", err)
	}
	n.wg.Go(func() {
		if err := n.ctrlAPIs.Serve(runCtx); err != nil && !errors.Is(err, server.ErrServerClosed) && !errors.Is(err, context.Canceled) {
			logger.Error("controller listener stopped", "err", err)
		}
	})

	var lc *brokerLifecycle
	if roles.Broker {
		host, port := advertised(cfg.Advertised(), n.kafkaLn.Addr())
		lc = newBrokerLifecycle(&brokerLifecycle{
			nodeID: cfg.NodeID, clusterID: meta.ClusterID, host: host, port: port, listener: cfg.Listen(),
			rack:        props(cfg.Props, "broker.rack"),
			interval:    time.Duration(config.Int64(props(cfg.Props, "broker.heartbeat.interval.ms"), 2000)) * time.Millisecond,
			controllers: ctrls, leader: n.ctrl.Leader, applied: n.appliedMetadata,
			logger: logger.With("component", "broker-lifecycle"),
		})
		lc.client.dial = opts.Dial
		session := time.Duration(config.Int64(props(cfg.Props, "broker.session.timeout.ms"), 9000)) * time.Millisecond
		n.lease = newBrokerLease(session, n.loneVoter, logger.With("component", "broker-lease"))
		lc.lease = n.lease
		if n.lease.duration <= lc.interval {
			logger.Warn("broker lease not longer than the heartbeat interval: the broker will stop serving its partitions between heartbeats",
				"lease", n.lease.duration, "broker.heartbeat.interval.ms", lc.interval)
		}
	}
	// One voter elects itself at once, so a missing leader after a minute is
	// a fault; a larger quorum waits for its peers as long as it takes, as
	// they may be started in any order, and so do nodes that join one.
	readyCtx, readyCancel := context.WithCancel(ctx)
	if len(quorum) <= 1 && len(bootstrap) == 0 {
		readyCtx, readyCancel = context.WithTimeout(ctx, 60*time.Second)
	} else {
		logger.Info("waiting for the metadata quorum", "voters", cfg.Voters, "bootstrap_servers", bootstrap)
	}
	defer readyCancel()
	if !roles.Controller {
		// A broker-only node asks to follow the metadata log (KIP-853
		// observer); it registers for real once it has caught up.
		lc.raftAddr = n.ctrl.AdvertisedAddr()
		if err := lc.join(readyCtx); err != nil {
			return nil, err
		}
	} else if joining {
		logger.Info("waiting to be added to the metadata quorum (AddRaftVoter)", "controller", n.ctrl.AdvertisedAddr())
	}
	if err := n.ctrl.WaitReady(readyCtx); err != nil {
		return nil, fmt.Errorf("node: waiting for the metadata quorum: %w", err)
	}
	clusterID := n.ctrl.Image().ClusterID
	if formatted {
		if err := config.CheckMetaProperties(meta, cfg.DataDir, cfg.NodeID, clusterID); err != nil {
			return nil, err
		}
	} else if err := config.WriteMetaPropertiesFS(fs, cfg.DataDir, config.MetaProperties{
		ClusterID: clusterID, NodeID: cfg.NodeID, DirectoryID: config.NewDirectoryID(),
	}); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}

	retentionCheck := time.Duration(config.Int64(props(cfg.Props, "log.retention.check.interval.ms"), 300000)) * time.Millisecond
	cleanerBackoff := time.Duration(config.Int64(props(cfg.Props, "log.cleaner.backoff.ms"), 15000)) * time.Millisecond
	n.replicas = replica.NewManager(replica.ManagerConfig{DataDir: cfg.DataDir, NodeID: cfg.NodeID,
		Logger: logger, RetentionCheckInterval: retentionCheck, CleanerBackoff: cleanerBackoff, FS: fs})
	followerRate := func() int64 {
		img := n.ctrl.Image()
		v, _, _ := config.Layers{DynamicBroker: img.BrokerConfigs[strconv.Itoa(int(cfg.NodeID))],
			DynamicDefault: img.BrokerConfigs[""], Static: cfg.Props}.BrokerValue("follower.replication.throttled.rate")
		return config.Int64(v, math.MaxInt64)
	}
	throttle := quota.NewReplication(int(config.Int64(props(cfg.Props, "replication.quota.window.num"), quota.DefaultSamples)),
		time.Duration(config.Int64(props(cfg.Props, "replication.quota.window.size.seconds"), 1))*time.Second, nil)
	n.fetchers = newReplicaFetchers(cfg.NodeID, n.replicas, n.ctrl.Image, opts.Dial, throttle, followerRate, logger)

	n.forwarder = newForwarder(cfg.NodeID, ctrls, n.ctrl.Leader, opts.Dial)
	pids := txn.NewProducerIDs(func(ctx context.Context) (int64, int64, error) {
		first, count, err := n.ctrl.AllocateProducerIDs(ctx, cfg.NodeID)
		if errors.Is(err, controller.ErrNotController) {
			first, count, err = n.forwarder.allocateProducerIDs(ctx, cfg.NodeID)
		}
		if err != nil && ctx.Err() == nil {
			// As Kafka's RPCProducerIdManager: a broker without a
			// block of ids answers COORDINATOR_LOAD_IN_PROGRESS,
			// which clients retry, while the controller cannot give
			// one (an election); never NOT_CONTROLLER, which is not
			// a client's answer (kgo gave up InitProducerId on it).
			// The cause is kept as text so the error table does not
			// match it first.
			return 0, 0, fmt.Errorf("%w: no producer id block from the controller: %v", txn.ErrCoordinatorLoading, err)
		}
		return first, count, err
	})
	n.groups = newGroupCoordinator(cfg.NodeID, cfg.Props, n.ctrl, n.replicas, logger)
	n.peers = newPeerClients(cfg.NodeID, n.ctrl.Image, opts.Dial, logger)
	n.txns = newTxnCoordinator(cfg.NodeID, cfg.Props, n.ctrl, n.replicas, pids, n.groups, n.writeMarkers, logger)
	n.broker = broker.New(broker.Config{NodeID: cfg.NodeID, LogDir: absPath(cfg.DataDir), Static: cfg.Props,
		FetchSessionCacheSlots: int(config.Int64(props(cfg.Props, "max.incremental.fetch.session.cache.slots"), 1000)),
		Transactions:           n.txns,
		Voters:                 len(voterAddrs),
		Forward:                n.forwarder.forward,
		SendToBroker:           n.peers.request,
		LeaseHeld:              n.lease.held,
		Logger:                 logger, OnMetadataChange: n.reconcileNow}, n.ctrl, n.replicas, pids, n.groups)

	ctrlAPIs.SetBroker(n.broker)
	warnBrokerPrincipal(cfg.Props, logger)
	n.requests = newRequestMetrics(n.broker.APIVersions())
	if roles.Broker {
		n.kafka = server.New(kafkaServerConfig(cfg.Props, n.kafkaLn, cfg.Listen(), nil, nil, n.requests.observe, logger), n.broker)
		if err := n.kafka.Listen(); err != nil {
			return nil, fmt.Errorf("node: kafka listener: %w", err)
		}
		for _, l := range n.extra {
			l.srv = server.New(kafkaServerConfig(cfg.Props, l.ln, l.cfg.Name, l.sasl, l.tls, n.requests.observe, logger.With("listener", l.cfg.Name)), n.broker)
			if err := l.srv.Listen(); err != nil {
				return nil, fmt.Errorf("node: listener %s: %w", l.cfg.Name, err)
			}
		}

		// Register with the active controller, with the advertised
		// address (port 0, in tests, advertises the bound port), and wait
		// to be unfenced, as a KRaft broker does before it serves.
		lc.clusterID = clusterID
		for _, l := range n.extra {
			lc.extra = append(lc.extra, l.registration())
		}
		lcCtx, lcCancel := context.WithCancel(runCtx)
		lcDone := make(chan struct{})
		n.stopLifecycle = func() { lcCancel(); <-lcDone }
		n.wg.Go(func() { defer close(lcDone); lc.run(lcCtx) })
		regCtx, regCancel := context.WithTimeout(ctx, 60*time.Second)
		defer regCancel()
		if err := lc.waitUnfenced(regCtx); err != nil {
			return nil, err
		}
		// The controller committed the unfencing; this node's image
		// may not have applied it (nor the registration: after a
		// restart on a new port it still holds the old endpoint).
		// Until it has, this node's Metadata would leave itself out,
		// or name its dead endpoint, to the clients it now serves.
		if err := waitImage(regCtx, n.ctrl, func(img *metadata.Image) bool {
			br, ok := img.Brokers[cfg.NodeID]
			return ok && !br.Fenced && br.Epoch == lc.brokerEpoch()
		}); err != nil {
			return nil, fmt.Errorf("node: waiting for this node's metadata to show it unfenced: %w", err)
		}

		n.wg.Go(func() { n.watchStorage(runCtx) })

		lagMax := time.Duration(config.Int64(props(cfg.Props, "replica.lag.time.max.ms"), 30000)) * time.Millisecond
		eligible := func(id int32) bool {
			br, ok := n.ctrl.Image().Brokers[id]
			return ok && !br.Fenced
		}
		isr := newISRUpdater(cfg.NodeID, n.replicas, lagMax, lc.brokerEpoch, n.ctrl.Leader, eligible, ctrls, opts.Dial, logger)
		n.wg.Go(func() { isr.run(runCtx) })
	}

	// Partitions follow the metadata log from here on.
	n.health = newClusterHealth(n)
	n.unsubscribe = n.ctrl.Subscribe(func(prev, next *metadata.Image) {
		n.health.observe(prev, next)
		n.reconcile(next)
		if gone := deletedTopics(prev, next); len(gone) > 0 {
			n.wg.Go(func() { n.groups.TopicsDeleted(gone) })
		}
	})
	img := n.ctrl.Image()
	n.replicas.RemoveStrayDirs(func(topic string, p int32) bool {
		t := img.Topics[topic]
		return t != nil && int(p) < len(t.Partitions) && slices.Contains(t.Partitions[p].Replicas, cfg.NodeID)
	})
	if err := n.reconcile(img); err != nil {
		return nil, err
	}
	// The coordinators load the partitions this node leads in the
	// background (clients meanwhile get COORDINATOR_LOAD_IN_PROGRESS), and
	// follow leadership from then on (reconcile).
	n.groups.Start()
	n.txns.Start()

	n.wg.Go(func() { n.replicas.Run(runCtx) })
	if n.kafka != nil {
		n.wg.Go(func() {
			if err := n.kafka.Serve(runCtx); err != nil && !errors.Is(err, server.ErrServerClosed) && !errors.Is(err, context.Canceled) {
				logger.Error("kafka listener stopped", "err", err)
			}
		})
	}
	for _, l := range n.extra {
		n.wg.Go(func() {
			if err := l.srv.Serve(runCtx); err != nil && !errors.Is(err, server.ErrServerClosed) && !errors.Is(err, context.Canceled) {
				logger.Error("listener stopped", "listener", l.cfg.Name, "err", err)
			}
		})
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(n), n.health, n.requests.vec)
	n.http = httpapi.New(httpapi.Config{Addr: listenAddr(cfg.HTTPAddr), Registry: reg, Ready: n.ready,
		Logger: logger.With("component", "http")})
	if err := n.http.Listen(); err != nil {
		return nil, fmt.Errorf("node: http listener: %w", err)
	}
	n.wg.Go(func() {
		if err := n.http.Serve(); err != nil {
			logger.Error("http listener stopped", "err", err)
		}
	})
	// The order of the first attributes is relied on by scripts and the
	// spawned-binary tests: kafka before http.
	var attrs []any
	if lc != nil {
		attrs = append(attrs, "kafka", n.kafka.Addr().String(), "advertised", net.JoinHostPort(lc.host, strconv.Itoa(int(lc.port))))
	}
	attrs = append(attrs, "controller", n.ctrl.Addr(), "http", n.http.Addr().String(),
		"data_dir", absPath(cfg.DataDir), "cluster_id", n.ctrl.Image().ClusterID, "roles", props(cfg.Props, config.PropProcessRoles))
	for _, l := range n.extra {
		attrs = append(attrs, "listener_"+strings.ToLower(l.cfg.Name), l.srv.Addr().String())
	}
	logger.Info("gregor node started", attrs...)
	return n, nil
}

// KafkaAddr is the bound Kafka listener address; nil on a controller-only
// node, which serves no clients.
func (n *Node) KafkaAddr() net.Addr {
	if n.kafka == nil {
		return nil
	}
	return n.kafka.Addr()
}

// ListenerAddr is the bound address of the extra client listener called
// name (listeners), nil if there is none.
func (n *Node) ListenerAddr(name string) net.Addr {
	for _, l := range n.extra {
		if l.cfg.Name == name && l.srv != nil {
			return l.srv.Addr()
		}
	}
	return nil
}

// ControllerAddr is the bound controller listener address (Raft and the
// broker-to-controller requests).
func (n *Node) ControllerAddr() string { return n.ctrl.Addr() }

// HTTPAddr is the bound admin listener address.
func (n *Node) HTTPAddr() net.Addr { return n.http.Addr() }

func (n *Node) ready() error {
	if err := n.replicas.Offline(); err != nil {
		return err
	}
	if _, ok := n.ctrl.Leader(); !ok {
		return errors.New("no active controller")
	}
	if !n.ctrl.CaughtUp() {
		return errors.New("catching up with the metadata log")
	}
	return nil
}

// deletedTopics are the topics of prev that next no longer has, or has
// under a new id (deleted and created again between the two images).
func deletedTopics(prev, next *metadata.Image) []string {
	if prev == nil || next == nil {
		return nil
	}
	var gone []string
	for name, t := range prev.Topics {
		if nt := next.Topics[name]; nt == nil || nt.ID != t.ID {
			gone = append(gone, name)
		}
	}
	return gone
}

func (n *Node) reconcileNow() { n.reconcile(n.ctrl.Image()) }

// appliedMetadata is the metadata offset this broker's heartbeats report:
// that of the image its partitions were last reconciled with, so that the
// controller unfences it (and its lease is renewed) only once a leadership
// it lost is applied here. Before the first reconcile no partition is
// served, and the image's own offset stands in.
func (n *Node) appliedMetadata() int64 {
	if o := n.reconciled.Load(); o > 0 {
		return int64(o)
	}
	return int64(n.ctrl.Image().LastOffset)
}

// reconcile makes the hosted partitions follow an image. It is called by the
// metadata subscription and, for read-your-writes, right after this node's
// own metadata changes; the mutex keeps the two in order.
func (n *Node) reconcile(img *metadata.Image) error {
	n.reconcileMu.Lock()
	defer n.reconcileMu.Unlock()
	if n.replicas.Offline() != nil {
		return nil // the partitions stay as they were, unserved
	}
	if cur := n.ctrl.Image(); cur.LastOffset > img.LastOffset {
		img = cur
	}
	want := make(map[replica.TopicPartition]replica.PartitionState)
	brokerLayers := config.Layers{
		DynamicBroker:  img.BrokerConfigs[strconv.Itoa(int(n.cfg.NodeID))],
		DynamicDefault: img.BrokerConfigs[""],
		Static:         n.cfg.Props,
	}
	if v, _, ok := brokerLayers.BrokerValue("log.cleaner.backoff.ms"); ok {
		n.replicas.SetCleanerBackoff(time.Duration(config.Int64(v, 0)) * time.Millisecond)
	}
	for _, t := range img.Topics {
		layers := brokerLayers
		layers.Topic = t.Configs
		cfg := layers.ResolveTopic()
		for _, p := range t.Partitions {
			want[replica.TopicPartition{Topic: t.Name, Partition: p.Partition}] = replica.PartitionState{
				TopicID: t.ID, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch,
				Replicas: p.Replicas, ISR: p.ISR, Config: cfg,
			}
		}
	}
	err := n.replicas.Reconcile(want)
	n.reconciled.Store(img.LastOffset)
	n.fetchers.update()
	if n.groups != nil {
		n.groups.LeadershipChanged()
	}
	if n.txns != nil {
		n.txns.LeadershipChanged()
	}
	return err
}

// Close shuts the node down: listeners first, then partitions (clean-shutdown
// markers and producer snapshots), then the controller.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var errs []error
		if n.unsubscribe != nil {
			n.unsubscribe()
		}
		if n.stopLifecycle != nil {
			// First, while the controller listener still answers (this
			// node may be the active controller).
			n.stopLifecycle()
		}
		if n.kafka != nil {
			errs = append(errs, n.kafka.Shutdown(ctx))
		} else if n.kafkaLn != nil {
			n.kafkaLn.Close()
		}
		for _, l := range n.extra {
			if l.srv != nil {
				errs = append(errs, l.srv.Shutdown(ctx))
			} else {
				l.ln.Close()
			}
		}
		if n.broker != nil {
			n.broker.Close()
		}
		if n.ctrl != nil {
			// While the controller listener still answers: the other
			// brokers' heartbeats keep reaching an active controller
			// until another voter leads (a slow shutdown of the rest of
			// this node would otherwise fence them all).
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			if err := n.ctrl.Resign(rctx); err != nil {
				n.logger.Warn("resigning the metadata quorum leadership failed", "err", err)
			}
			rcancel()
		}
		if n.ctrlAPIs != nil {
			errs = append(errs, n.ctrlAPIs.Shutdown(ctx))
		}
		if n.http != nil {
			errs = append(errs, n.http.Shutdown(ctx))
		}
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if n.forwarder != nil {
			n.forwarder.close()
		}
		if n.txns != nil {
			n.txns.Close()
		}
		if n.peers != nil {
			n.peers.close()
		}
		if n.groups != nil {
			n.groups.Close()
		}
		if n.fetchers != nil {
			n.fetchers.close()
		}
		if n.replicas != nil {
			n.reconcileMu.Lock()
			errs = append(errs, n.replicas.Close())
			n.reconcileMu.Unlock()
		}
		if n.ctrl != nil {
			errs = append(errs, n.ctrl.Close())
		}
		if n.lock != nil {
			n.lock.Close()
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// lockDataDir takes an exclusive lock so two processes never share a data dir.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("node: lock data dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("node: data dir %s is in use by another gregor process: %w", dir, err)
	}
	return f, nil
}

// validateProps checks every known broker property; unknown ones are
// logged and ignored, as Kafka does.
func validateProps(p map[string]string, logger *slog.Logger) error {
	for k, v := range p {
		if _, ok := config.BrokerDefs[k]; !ok {
			if !strings.HasPrefix(k, "listener.name.") { // read by the listener they name (sasl.go)
				logger.Warn("ignoring unknown property", "name", k)
			}
			continue
		}
		if err := config.CheckBrokerConfig(k, v); err != nil {
			return err
		}
	}
	return nil
}

func props(p map[string]string, name string) string {
	if v, ok := p[name]; ok {
		return v
	}
	return config.BrokerDefs[name].Default
}

// listenAddr binds "localhost" to the IPv4 loopback, so the advertised
// "localhost:9092" and the listener agree whatever the resolver prefers.
func listenAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && host == "localhost" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

func advertised(adv string, bound net.Addr) (string, int32) {
	host, portStr, err := net.SplitHostPort(adv)
	if err != nil {
		host = adv
	}
	port, _ := strconv.Atoi(portStr)
	if tcp, ok := bound.(*net.TCPAddr); ok && port == 0 {
		port = tcp.Port
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return host, int32(port)
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// NodeID is this node's id.
func (n *Node) NodeID() int32 { return n.cfg.NodeID }

// ReplicaState is what this node holds of one partition.
type ReplicaState struct {
	Leader        bool
	LeaderEpoch   int32
	HighWatermark int64
	LogEndOffset  int64
	// ISRSize is the in-sync replicas as this node's replica applies
	// them (a leader checks min.insync.replicas against it), which may
	// trail the metadata other nodes answer.
	ISRSize int
	Dir     string
}

// Replica reports this node's replica of a partition; ok is false when the
// node hosts none.
func (n *Node) Replica(topic string, partition int32) (ReplicaState, bool) {
	p := n.replicas.Get(topic, partition)
	if p == nil {
		return ReplicaState{}, false
	}
	return ReplicaState{Leader: p.IsLeader(), LeaderEpoch: p.LeaderEpoch(), HighWatermark: p.HighWatermark(),
		LogEndOffset: p.LogEndOffset(), ISRSize: p.ISRSize(), Dir: p.Dir()}, true
}

// raftAdvertised is the Raft address to advertise when the controller
// listener binds a wildcard host: the advertised client host with the
// controller port. Otherwise the bound address is advertised as is.
func raftAdvertised(cfg config.Node) string {
	host, port, err := net.SplitHostPort(cfg.ControllerAddr)
	if err != nil || port == "0" || (host != "" && host != "0.0.0.0" && host != "::") {
		return ""
	}
	advHost, _, err := net.SplitHostPort(cfg.Advertised())
	if err != nil || advHost == "" {
		advHost = "localhost"
	}
	return net.JoinHostPort(advHost, port)
}

// waitImage waits until cond holds for ctrl's image.
func waitImage(ctx context.Context, ctrl *controller.Controller, cond func(*metadata.Image) bool) error {
	changed := make(chan struct{}, 1)
	cancel := ctrl.Subscribe(func(_, _ *metadata.Image) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer cancel()
	for !cond(ctrl.Image()) {
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}
