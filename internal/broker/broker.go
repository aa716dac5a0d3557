package broker

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/auth"
	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/group"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/quota"
	"github.com/gregor-dev/gregor/internal/replica"
	"github.com/gregor-dev/gregor/internal/server"
	"github.com/gregor-dev/gregor/internal/txn"
)

// Controller is what the broker needs of the metadata controller.
type Controller interface {
	Image() *metadata.Image
	// Leader is the node id of the active controller, if one is known.
	Leader() (int32, bool)
	CreateTopic(ctx context.Context, spec controller.TopicSpec) (metadata.Topic, error)
	DeleteTopic(ctx context.Context, name string) error
	CreatePartitions(ctx context.Context, name string, newTotal int32, assignments [][]int32, validateOnly bool) error
	AlterConfigs(ctx context.Context, resourceType int8, name string, set map[string]*string, replaceAll bool) error
	AlterReassignments(ctx context.Context, rs []controller.Reassignment) ([]error, error)
	UnregisterBroker(ctx context.Context, id int32) error
	ElectLeaders(ctx context.Context, typ int8, partitions controller.TopicPartitions, dryRun bool) ([]controller.ElectionResult, error)
	AlterClientQuotas(ctx context.Context, alts []controller.QuotaAlteration, validateOnly bool) ([]error, error)
	AlterUserScramCredentials(ctx context.Context, alts []controller.ScramAlteration) ([]controller.ScramResult, error)
	CreateACLs(ctx context.Context, acls []metadata.ACL) ([]error, error)
	DeleteACLs(ctx context.Context, filters []metadata.ACLFilter) ([][]metadata.ACL, []error, error)
}

// Config configures a Broker.
type Config struct {
	NodeID int32
	// LogDir is the data directory reported by DescribeLogDirs.
	LogDir string
	// Static holds the broker properties from the config file and flags.
	Static map[string]string
	// OnMetadataChange makes this node's partitions follow the current
	// metadata image before it returns. It is called after the broker's own
	// metadata changes (topics created, configs altered) have applied, so a
	// client that creates a topic can produce to it at once, and when a
	// request reaches a partition the image says this node leads before the
	// node has reconciled to that image (leaderReplica).
	OnMetadataChange func()
	// FetchSessionCacheSlots bounds the incremental fetch sessions (KIP-227)
	// the broker keeps: max.incremental.fetch.session.cache.slots. 0 (the
	// zero value) disables sessions: every fetch is answered in full.
	FetchSessionCacheSlots int
	// FetchSessionEviction is how long an idle fetch session is kept; 0
	// means Kafka's 120 s (min.incremental.fetch.session.eviction.ms).
	FetchSessionEviction time.Duration
	// Transactions is the transaction coordinator; nil answers the
	// transaction APIs COORDINATOR_NOT_AVAILABLE.
	Transactions *txn.Coordinator
	// Voters is the number of controller quorum voters: a cluster of one
	// voter with a lone broker caps the internal topics' replication
	// factor at its brokers, so a zero-config node serves groups and
	// transactions (internalCoordinator).
	Voters int
	// Forward sends a request to the active controller's controller
	// listener and returns its answer (KIP-590 forwarding of admin
	// requests that reach another broker). nil handles everything locally.
	Forward func(ctx context.Context, req kmsg.Request) (kmsg.Response, error)
	Logger  *slog.Logger

	// SendToBroker sends an inter-broker request (AddPartitionsToTxn
	// verifications) to another broker's Kafka listener and returns its
	// answer. nil: a coordinator on another broker is unavailable.
	SendToBroker func(ctx context.Context, broker int32, req kmsg.Request) (kmsg.Response, error)

	// LeaseHeld reports whether this broker's lease (renewed by the
	// controller's heartbeat answers) still runs; when it does not, the
	// partitions it leads answer Produce, Fetch and ListOffsets with
	// NOT_LEADER_OR_FOLLOWER, as it may have been deposed. nil: always.
	LeaseHeld func() bool
}

// Broker handles Kafka requests for one node.
type Broker struct {
	cfg         Config
	logger      *slog.Logger
	ctrl        Controller
	replicas    *replica.Manager
	producerIDs *txn.ProducerIDs
	groups      *group.Coordinator
	requests    atomic.Int64
	// decompressSlots bounds concurrent decompression (see produce.go).
	decompressSlots chan struct{}
	sessions        *fetchSessionCache
	// quotas enforces the client quotas on produce and fetch (quotas.go).
	quotas *quota.Manager
	// leaderThrottle is the leader side of replication throttling
	// (leader.replication.throttled.rate; fetch.go).
	leaderThrottle *quota.Replication
	// authz decides every request when authorizer.class.name is set
	// (access.go); nil: everyone may do everything.
	authz *auth.Authorizer
	// bg owns the background work of request handlers: the creation of an
	// internal topic a FindCoordinator asked for, or of a topic a Metadata
	// request auto-creates (topics.go).
	bg struct {
		ctx      context.Context
		cancel   context.CancelFunc
		wg       sync.WaitGroup
		mu       sync.Mutex
		closed   bool
		creating map[string]*creation
	}
}

// New creates a Broker.
func New(cfg Config, ctrl Controller, replicas *replica.Manager, pids *txn.ProducerIDs, groups *group.Coordinator) *Broker {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnMetadataChange == nil {
		cfg.OnMetadataChange = func() {}
	}
	b := &Broker{cfg: cfg, logger: cfg.Logger.With("component", "broker"), ctrl: ctrl,
		replicas: replicas, producerIDs: pids, groups: groups, decompressSlots: make(chan struct{}, decompressSlots),
		sessions: newFetchSessionCache(cfg.FetchSessionCacheSlots, cfg.FetchSessionEviction)}
	b.bg.ctx, b.bg.cancel = context.WithCancel(context.Background())
	static := config.Layers{Static: cfg.Static}
	samples, _, _ := static.BrokerValue("quota.window.num")
	window, _, _ := static.BrokerValue("quota.window.size.seconds")
	b.quotas = quota.New(func() map[metadata.QuotaEntity]map[string]float64 { return b.image().ClientQuotas },
		int(config.Int64(samples, quota.DefaultSamples)), time.Duration(config.Int64(window, 1))*time.Second, nil)
	rsamples, _, _ := static.BrokerValue("replication.quota.window.num")
	rwindow, _, _ := static.BrokerValue("replication.quota.window.size.seconds")
	b.leaderThrottle = quota.NewReplication(int(config.Int64(rsamples, quota.DefaultSamples)),
		time.Duration(config.Int64(rwindow, 1))*time.Second, nil)
	if class, _, _ := static.BrokerValue("authorizer.class.name"); class != "" {
		users, _, _ := static.BrokerValue("super.users")
		open, _, _ := static.BrokerValue("allow.everyone.if.no.acl.found")
		b.authz = &auth.Authorizer{SuperUsers: auth.ParseSuperUsers(users), AllowIfNoACL: open == "true"}
	}
	return b
}

// Close stops the broker's background work and waits for it. Call it after
// the Kafka listener stopped.
func (b *Broker) Close() {
	b.bg.mu.Lock()
	b.bg.closed = true
	b.bg.mu.Unlock()
	b.bg.cancel()
	b.bg.wg.Wait()
}

// FetchSessions returns the number of open incremental fetch sessions.
func (b *Broker) FetchSessions() int { return b.sessions.len() }

// handlerFunc answers one API: it runs the ordered part and returns the
// completion that produces the response.
type handlerFunc func(b *Broker, ctx context.Context, req *server.Request) server.Completion

type api struct {
	min, max int16
	fn       handlerFunc
}

// apis is the one table of what the broker implements. ApiVersions advertises
// exactly these ranges, so a client never sends what we cannot answer.
var apis = map[int16]api{
	0:  {3, 12, handleProduce},                     // Produce: record batch v2 only (v3+); v12 is KIP-890 part 2 (implicit add)
	1:  {4, 12, handleFetch},                       // Fetch: v13+ name topics by id
	2:  {0, 7, handleListOffsets},                  // ListOffsets: v0 is the legacy form (KIP-896 dropped it in Kafka 4); v8+ add tiered-storage specs
	3:  {0, 12, handleMetadata},                    // Metadata
	8:  {0, 9, handleOffsetCommit},                 // OffsetCommit: v10 names topics by id (KIP-848)
	9:  {0, 9, handleOffsetFetch},                  // OffsetFetch: v8+ batch groups; v10 topic ids
	10: {0, 5, handleFindCoordinator},              // FindCoordinator: v4+ batch keys
	11: {0, 9, handleJoinGroup},                    // JoinGroup
	12: {0, 4, handleHeartbeat},                    // Heartbeat
	13: {0, 5, handleLeaveGroup},                   // LeaveGroup: v3+ batch members
	14: {0, 5, handleSyncGroup},                    // SyncGroup
	15: {0, 6, handleDescribeGroups},               // DescribeGroups: v6 answers GROUP_ID_NOT_FOUND for a missing or KIP-848 group (KIP-1043)
	16: {0, 5, handleListGroups},                   // ListGroups: v4 states filter, v5 types filter (classic, consumer)
	19: {0, 7, handleCreateTopics},                 // CreateTopics
	20: {0, 6, handleDeleteTopics},                 // DeleteTopics
	21: {0, 2, handleDeleteRecords},                // DeleteRecords
	22: {0, 5, handleInitProducerID},               // InitProducerId: v5 may answer TRANSACTION_ABORTABLE (KIP-890)
	23: {0, 4, handleOffsetForLeaderEpoch},         // OffsetForLeaderEpoch
	24: {0, 5, handleAddPartitionsToTxn},           // AddPartitionsToTxn: v4+ is KIP-890 (broker-side batches, verify_only)
	25: {0, 4, handleAddOffsetsToTxn},              // AddOffsetsToTxn: v4 may answer TRANSACTION_ABORTABLE (KIP-890)
	26: {0, 5, handleEndTxn},                       // EndTxn: v5 bumps the epoch (KIP-890 part 2)
	27: {0, 1, handleWriteTxnMarkers},              // WriteTxnMarkers: inter-broker; v2 (Kafka 4.2) adds the transaction version
	28: {0, 5, handleTxnOffsetCommit},              // TxnOffsetCommit: v5 adds the group to the transaction (KIP-890 part 2)
	29: {0, 3, handleDescribeAcls},                 // DescribeAcls: from the image; SECURITY_DISABLED without an authorizer, as Kafka
	30: {0, 3, handleCreateAcls},                   // CreateAcls: forwarded to the active controller
	31: {0, 3, handleDeleteAcls},                   // DeleteAcls: forwarded to the active controller
	32: {0, 4, handleDescribeConfigs},              // DescribeConfigs
	33: {0, 2, handleAlterConfigs},                 // AlterConfigs
	35: {0, 4, handleDescribeLogDirs},              // DescribeLogDirs
	37: {0, 3, handleCreatePartitions},             // CreatePartitions
	42: {0, 2, handleDeleteGroups},                 // DeleteGroups
	43: {0, 2, handleElectLeaders},                 // ElectLeaders: forwarded to the active controller
	44: {0, 1, handleIncrementalAlterConfigs},      // IncrementalAlterConfigs
	45: {0, 0, handleAlterReassignments},           // AlterPartitionReassignments: v1 (allow_replication_factor_change) is Kafka 4.1
	46: {0, 0, handleListReassignments},            // ListPartitionReassignments
	47: {0, 0, handleOffsetDelete},                 // OffsetDelete
	48: {0, 1, handleDescribeClientQuotas},         // DescribeClientQuotas: from this broker's image
	49: {0, 1, handleAlterClientQuotas},            // AlterClientQuotas: forwarded to the active controller
	50: {0, 0, handleDescribeUserScramCredentials}, // DescribeUserScramCredentials: from this broker's image
	51: {0, 0, handleAlterUserScramCredentials},    // AlterUserScramCredentials: forwarded to the active controller
	55: {0, 2, handleDescribeQuorum},               // DescribeQuorum: forwarded to the active controller
	57: {0, 2, handleUpdateFeatures},               // UpdateFeatures: the levels are fixed by the code (features.go)
	60: {0, 2, handleDescribeCluster},              // DescribeCluster: v2 lists fenced brokers on request (KIP-1073)
	61: {0, 0, handleDescribeProducers},            // DescribeProducers
	65: {0, 0, handleDescribeTransactions},         // DescribeTransactions
	66: {0, 1, handleListTransactions},             // ListTransactions: v1 adds a duration filter (KIP-994); v2's id pattern is Kafka 4.1
	68: {0, 1, handleConsumerGroupHeartbeat},       // ConsumerGroupHeartbeat (KIP-848): v1 has client-made member ids and regexes
	69: {0, 1, handleConsumerGroupDescribe},        // ConsumerGroupDescribe (KIP-848)
	75: {0, 0, handleDescribeTopicPartitions},      // DescribeTopicPartitions (KIP-966): Metadata's topics, paged with a cursor
	80: {0, 1, handleAddRaftVoter},                 // AddRaftVoter (KIP-853): forwarded
	81: {0, 0, handleRemoveRaftVoter},              // RemoveRaftVoter (KIP-853): forwarded
	64: {0, 0, handleUnregisterBroker},             // UnregisterBroker
}

// APIVersions implements server.Handler.
func (b *Broker) APIVersions() []kmsg.ApiVersionsResponseApiKey {
	out := make([]kmsg.ApiVersionsResponseApiKey, 0, len(apis))
	for k, a := range apis {
		if (k == 68 || k == 69) && b.groups != nil && !b.groups.ConsumerProtocol() {
			continue // group.coordinator.rebalance.protocols without "consumer", as Kafka
		}
		out = append(out, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: a.min, MaxVersion: a.max})
	}
	return out
}

// Handle implements server.Handler.
func (b *Broker) Handle(ctx context.Context, req *server.Request) server.Completion {
	b.requests.Add(1)
	a, ok := apis[req.Key]
	if !ok {
		// The server only passes advertised keys; reaching here is a bug, and
		// the server closes the connection on a nil response of the wrong kind.
		return nil
	}
	if b.authz != nil {
		acc := b.accessOf(req)
		resp, denied := acc.refused(req)
		if resp != nil {
			if p, ok := req.Body.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
				// No response is read: Kafka closes the connection.
				if req.Close != nil {
					req.Close()
				}
				return nil
			}
			return done(resp)
		}
		if f, ok := req.Body.(*kmsg.FetchRequest); ok {
			if unreadable := acc.fetchDeniedTopics(f); unreadable != nil {
				ctx = context.WithValue(ctx, fetchDeniedKey{}, unreadable)
			}
		}
		next := acc.handle(req, func() server.Completion { return b.dispatch(ctx, req, a) })
		if len(denied) > 0 {
			next = withDenied(req, next, denied)
		}
		return next
	}
	return b.dispatch(ctx, req, a)
}

// dispatch forwards req to the active controller or hands it to its API.
func (b *Broker) dispatch(ctx context.Context, req *server.Request, a api) server.Completion {
	if forwarded[req.Key] {
		forward := b.forward
		if req.Key == 33 || req.Key == 44 { // AlterConfigs, IncrementalAlterConfigs
			forward = b.forwardConfigs
		}
		if resp, ok := forward(ctx, req); ok {
			return done(resp)
		}
	}
	return a.fn(b, ctx, req)
}

// forwarded are the admin requests a broker that is not the active
// controller forwards to it, as Kafka's brokers do (KIP-590).
var forwarded = map[int16]bool{
	19: true, // CreateTopics
	20: true, // DeleteTopics
	33: true, // AlterConfigs
	37: true, // CreatePartitions
	43: true, // ElectLeaders
	44: true, // IncrementalAlterConfigs
	55: true, // DescribeQuorum: only the active controller knows the followers
	80: true, // AddRaftVoter
	81: true, // RemoveRaftVoter
	45: true, // AlterPartitionReassignments
	46: true, // ListPartitionReassignments
	64: true, // UnregisterBroker
	49: true, // AlterClientQuotas
	51: true, // AlterUserScramCredentials
	30: true, // CreateAcls
	31: true, // DeleteAcls
}

// forward sends req to the active controller when that is another node. It
// reports false when the request is to be handled here: this node is the
// active controller, or nothing forwards (a node without a controller
// channel). A controller that cannot be reached, or answers NOT_CONTROLLER
// (it lost leadership), is tried again until forwardTimeout, then the
// client gets REQUEST_TIMED_OUT: as Kafka's forwarding, a broker never
// hands a client NOT_CONTROLLER for a request it forwards.
func (b *Broker) forward(ctx context.Context, req *server.Request) (kmsg.Response, bool) {
	if b.cfg.Forward == nil {
		return nil, false
	}
	resp, local, err := b.toController(ctx, req.Body)
	switch {
	case local:
		return nil, false
	case err != nil:
		b.logger.Warn("forwarding to the active controller failed", "api_key", req.Key, "err", err)
		return errorResponse(req.Body, b.errorCode(err)), true
	}
	return resp, true
}

// HandleForwarded answers a request forwarded by another broker, on the
// active controller, without forwarding it again.
func (b *Broker) HandleForwarded(ctx context.Context, req *server.Request) server.Completion {
	a, ok := apis[req.Key]
	if !ok || !forwarded[req.Key] {
		return nil
	}
	return a.fn(b, context.WithValue(ctx, forwardedKey{}, true), req)
}

// forwardedKey marks the context of a request another broker forwarded.
type forwardedKey struct{}

// forwardedRequest reports whether ctx is that of a forwarded request.
func forwardedRequest(ctx context.Context) bool {
	v, _ := ctx.Value(forwardedKey{}).(bool)
	return v
}

// done wraps an already computed response as a Completion.
func done(resp kmsg.Response) server.Completion {
	return func(context.Context) kmsg.Response { return resp }
}

// image is the current metadata image.
func (b *Broker) image() *metadata.Image { return b.ctrl.Image() }

// leaseHeld reports whether this broker may serve as a partition leader
// (Config.LeaseHeld).
func (b *Broker) leaseHeld() bool { return b.cfg.LeaseHeld == nil || b.cfg.LeaseHeld() }

// controllerID is the controller id Metadata and DescribeCluster name from
// img, -1 (Kafka's "none") during an election: the active controller when
// it is a broker this answer lists (registered and unfenced), else a listed
// broker, this one first, as a Kafka broker names a live broker: the admin
// requests a client sends there are forwarded. An id the answer does not
// list (a controller-only node, or a broker fenced in this image) leaves a
// client unable to reach its controller: kafkajs retried createTopics on
// "broker not found" until it gave up.
func (b *Broker) controllerID(img *metadata.Image) int32 {
	id, ok := b.ctrl.Leader()
	if !ok {
		return -1
	}
	listed := func(id int32) bool {
		br, ok := img.Brokers[id]
		return ok && !br.Fenced
	}
	switch {
	case listed(id):
		return id
	case listed(b.cfg.NodeID):
		return b.cfg.NodeID
	}
	alive := int32(-1)
	for id := range img.Brokers {
		if listed(id) && (alive < 0 || id < alive) {
			alive = id
		}
	}
	return alive
}

// topicLayers resolves where a topic's configs come from.
func (b *Broker) topicLayers(img *metadata.Image, overrides map[string]string) config.Layers {
	return config.Layers{
		Topic:          overrides,
		DynamicBroker:  img.BrokerConfigs[strconv.Itoa(int(b.cfg.NodeID))],
		DynamicDefault: img.BrokerConfigs[""],
		Static:         b.cfg.Static,
	}
}

// brokerLayers resolves where broker properties come from.
func (b *Broker) brokerLayers(img *metadata.Image) config.Layers {
	return b.topicLayers(img, nil)
}

// brokerInt reads a numeric broker property.
func (b *Broker) brokerInt(img *metadata.Image, name string) int64 {
	v, _, _ := b.brokerLayers(img).BrokerValue(name)
	return config.Int64(v, config.Int64(config.BrokerDefs[name].Default, 0))
}

// TopicConfig resolves a topic's effective typed configuration.
func (b *Broker) TopicConfig(img *metadata.Image, t *metadata.Topic) config.Topic {
	return b.topicLayers(img, t.Configs).ResolveTopic()
}

func splitHostPort(addr string) (string, int32) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	p, _ := strconv.Atoi(port)
	return host, int32(p)
}
