package group

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/statelog"
)

// Topic is the internal topic holding groups and offsets.
const Topic = "__consumer_offsets"

// Config configures a Coordinator. Zero values take Kafka's defaults.
type Config struct {
	// NumPartitions is offsets.topic.num.partitions.
	NumPartitions int32
	Limits        Limits
	// Consumer are the limits of KIP-848 consumer groups.
	Consumer ConsumerLimits
	// Image is the current metadata image (topic names, ids and
	// partitions for consumer groups' assignments); nil: none.
	Image func() *metadata.Image
	// OffsetsRetention is offsets.retention.minutes.
	OffsetsRetention time.Duration
	// RetentionCheckInterval is offsets.retention.check.interval.ms.
	RetentionCheckInterval time.Duration
	// MaxOffsetMetadataBytes is offset.metadata.max.bytes.
	MaxOffsetMetadataBytes int
	// Log returns the Log of the __consumer_offsets partition when this
	// node leads it, else nil (statelog.NewReplica in a node).
	Log func(partition int32) statelog.Log
	// Leads reports whether the metadata names this node the partition's
	// leader (statelog.OwnerConfig.Leads); nil: never.
	Leads func(partition int32) bool
	// PartitionCount is the number of partitions of a topic, 0 when the
	// topic does not exist.
	PartitionCount func(topic string) int32
	// LogEndOffset is a partition's log end offset (for lag), false when
	// the partition is not hosted here.
	LogEndOffset func(topic string, partition int32) (int64, bool)
	Logger       *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Coordinator is the group coordinator of one node.
type Coordinator struct {
	cfg    Config
	logger *slog.Logger
	stopc  chan struct{}
	// ctx ends at Close: a write waiting to be committed (a persist on a
	// group's actor) stops waiting, so shutting down never waits for
	// followers that are gone.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// owner loads a partition's groups when this node becomes its
	// leader and unloads them when leadership moves.
	owner *statelog.Owner
	// txnMu guards txnGroups: for each producer id with pending
	// transactional offsets, the groups holding them and their partition
	// (txn.go; the offsets themselves belong to the group actors). Never
	// held while calling into a group actor.
	txnMu     sync.Mutex
	txnGroups map[int64]map[string]int32
	mu        struct {
		sync.Mutex
		groups map[string]*group
		// active holds the Log of each loaded partition: a group is
		// made only in a partition found here, under mu, so an unload
		// (which deletes it under mu) sees every group of it.
		active map[int32]statelog.Log
		closed bool
	}
}

// New creates a coordinator; Start runs its background offset expiry.
func New(cfg Config) *Coordinator {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NumPartitions <= 0 {
		cfg.NumPartitions = 50
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	def := DefaultConsumerLimits()
	if cfg.Consumer.SessionTimeout <= 0 {
		cfg.Consumer.SessionTimeout = def.SessionTimeout
	}
	if cfg.Consumer.HeartbeatInterval <= 0 {
		cfg.Consumer.HeartbeatInterval = def.HeartbeatInterval
	}
	if cfg.Consumer.MaxSize <= 0 {
		cfg.Consumer.MaxSize = def.MaxSize
	}
	if len(cfg.Consumer.Assignors) == 0 {
		cfg.Consumer.Assignors = def.Assignors
	}
	if cfg.Image == nil {
		cfg.Image = func() *metadata.Image { return nil }
	}
	if cfg.Limits.MaxSize <= 0 {
		cfg.Limits.MaxSize = 1<<31 - 1
	}
	if cfg.Limits.MaxMemberMetadataBytes <= 0 {
		cfg.Limits.MaxMemberMetadataBytes = 1 << 20
	}
	if cfg.OffsetsRetention <= 0 {
		cfg.OffsetsRetention = 7 * 24 * time.Hour
	}
	if cfg.RetentionCheckInterval <= 0 {
		cfg.RetentionCheckInterval = 10 * time.Minute
	}
	if cfg.MaxOffsetMetadataBytes <= 0 {
		cfg.MaxOffsetMetadataBytes = 4096
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = func(int32) statelog.Log { return nil }
	}
	if cfg.PartitionCount == nil {
		cfg.PartitionCount = func(string) int32 { return 0 }
	}
	if cfg.LogEndOffset == nil {
		cfg.LogEndOffset = func(string, int32) (int64, bool) { return 0, false }
	}
	c := &Coordinator{cfg: cfg, logger: cfg.Logger.With("component", "group"), stopc: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.groups = map[string]*group{}
	c.mu.active = map[int32]statelog.Log{}
	c.owner = statelog.NewOwner(statelog.OwnerConfig{Name: "group", Partitions: cfg.NumPartitions, Log: cfg.Log, Leads: cfg.Leads,
		Load: c.load, Unload: c.unload, Logger: c.logger})
	return c
}

func (c *Coordinator) now() time.Time { return c.cfg.Now() }

// NumPartitions is the partition count of __consumer_offsets.
func (c *Coordinator) NumPartitions() int32 { return c.cfg.NumPartitions }

// Start loads the partitions this node leads, follows leadership from
// then on (LeadershipChanged), and runs offset expiry, until Close.
func (c *Coordinator) Start() {
	c.owner.Start()
	c.wg.Go(func() {
		t := time.NewTicker(c.cfg.RetentionCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-c.stopc:
				return
			case <-t.C:
				c.ExpireOffsets()
			}
		}
	})
}

// Close unloads every partition: group actors stop, parked joins and syncs
// get ErrNotCoordinator.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed = true
	c.mu.Unlock()
	close(c.stopc)
	c.cancel()
	c.owner.Close()
	c.wg.Wait()
}

// Serving reports whether this node has loaded __consumer_offsets
// partition p and serves it.
func (c *Coordinator) Serving(p int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.active[p] != nil
}

// LeadershipChanged tells the coordinator that the leaders of
// __consumer_offsets may have changed (after a metadata change): it loads
// the partitions this node now leads and unloads the others, in the
// background. It never blocks.
func (c *Coordinator) LeadershipChanged() { c.owner.Update() }

// load replays partition p into groups and makes them serve (the owner's
// Load).
func (c *Coordinator) load(ctx context.Context, p int32, l statelog.Log) error {
	gs, err := c.replay(p, l)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return ErrNotCoordinator
	}
	for _, g := range gs {
		if old := c.mu.groups[g.id]; old != nil {
			// Cannot happen (an unload removes a partition's groups
			// before it loads again); never run two actors for one id.
			c.logger.Error("group loaded twice", "group", g.id, "partition", p)
			continue
		}
		c.mu.groups[g.id] = g
		c.wg.Go(g.run)
	}
	c.mu.active[p] = l
	c.logger.Info("loaded groups", "partition", p, "groups", len(gs), "epoch", l.Epoch())
	return nil
}

// unload stops the groups of partition p (the owner's Unload): their parked
// joins and syncs, and every later request, get ErrNotCoordinator.
func (c *Coordinator) unload(p int32) {
	c.mu.Lock()
	delete(c.mu.active, p)
	var gs []*group
	for id, g := range c.mu.groups {
		if g.partition == p {
			gs = append(gs, g)
			delete(c.mu.groups, id)
		}
	}
	c.mu.Unlock()
	for _, g := range gs {
		g.stop()
	}
	c.txnMu.Lock()
	for pid, ids := range c.txnGroups {
		for id, gp := range ids {
			if gp == p {
				delete(ids, id)
			}
		}
		if len(ids) == 0 {
			delete(c.txnGroups, pid)
		}
	}
	c.txnMu.Unlock()
	c.logger.Info("unloaded groups", "partition", p, "groups", len(gs))
}

func (c *Coordinator) replay(p int32, l statelog.Log) ([]*group, error) {
	type acc struct {
		meta    *kmsg.GroupMetadataValue
		offsets map[TopicPartition]Offset
		pending map[int64]map[TopicPartition]Offset
		cg      *cgAcc
	}
	accs := map[string]*acc{}
	get := func(id string) *acc {
		a := accs[id]
		if a == nil {
			a = &acc{offsets: map[TopicPartition]Offset{}, pending: map[int64]map[TopicPartition]Offset{}}
			accs[id] = a
		}
		return a
	}
	// open: the groups holding offsets pending for each producer id.
	open := map[int64]map[string]struct{}{}
	end, err := l.Scan(func(r statelog.Record) error {
		if r.Marker {
			for id := range open[r.ProducerID] {
				a := accs[id]
				completeTxn(a.offsets, a.pending, r.ProducerID, r.Commit)
			}
			delete(open, r.ProducerID)
			return nil
		}
		key, value := bytes.Clone(r.Key), bytes.Clone(r.Value)
		d, err := decodeRecord(key, value)
		if err != nil {
			c.logger.Warn("skipping corrupt record", "partition", p, "err", err)
			return nil
		}
		if d.group == "" {
			return nil
		}
		a := get(d.group)
		switch {
		case d.cg != nil:
			if a.cg == nil {
				a.cg = newCgAcc()
			}
			a.cg.apply(*d.cg, key, value)
		case d.isOffset && d.offset != nil:
			o := *d.offset
			o.record = r.Offset
			if !r.Transactional {
				a.offsets[d.tp] = o
				break
			}
			addPending(a.pending, r.ProducerID, d.tp, o)
			if open[r.ProducerID] == nil {
				open[r.ProducerID] = map[string]struct{}{}
			}
			open[r.ProducerID][d.group] = struct{}{}
		case d.isOffset:
			delete(a.offsets, d.tp)
			dropPendingPartition(a.pending, d.tp)
		default:
			a.meta = d.meta
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("group: load partition %d: %w", p, err)
	}
	now := c.now()
	var out []*group
	for id, a := range accs {
		if a.meta == nil && len(a.offsets) == 0 && len(a.pending) == 0 && (a.cg == nil || len(a.cg.raw) == 0) {
			continue
		}
		g := newGroup(c, id, p, l, now)
		g.written = end // the log end may not be committed yet
		g.offsets, g.pending = a.offsets, a.pending
		for pid := range a.pending {
			c.notePending(pid, id, p)
		}
		if m := a.meta; m != nil {
			st := g.st
			st.protocolType, st.generation = m.ProtocolType, m.Generation
			if m.Protocol != nil {
				st.protocol = *m.Protocol
			}
			if m.Leader != nil {
				st.leader = *m.Leader
			}
			if m.CurrentStateTimestamp > 0 {
				st.stateTime = time.UnixMilli(m.CurrentStateTimestamp)
			}
			for _, mm := range m.Members {
				mem := &member{id: mm.MemberID, clientID: mm.ClientID, clientHost: mm.ClientHost,
					protocolType: m.ProtocolType, protocols: []Protocol{{Name: st.protocol, Metadata: mm.Subscription}},
					session: time.Duration(mm.SessionTimeoutMillis) * time.Millisecond, assignment: mm.Assignment}
				mem.rebalance = time.Duration(mm.RebalanceTimeoutMillis) * time.Millisecond
				if mem.rebalance <= 0 {
					mem.rebalance = mem.session
				}
				mem.expires = now.Add(mem.session)
				if mm.InstanceID != nil {
					mem.instanceID = *mm.InstanceID
					st.static[mem.instanceID] = mem.id
				}
				st.members[mem.id] = mem
			}
			if len(st.members) > 0 {
				st.state = Stable
			}
		}
		if a.cg != nil {
			g.cgWritten = a.cg.raw
			if len(g.st.members) == 0 {
				g.st.cg = a.cg.build(c.cfg.Consumer, now)
			}
		}
		out = append(out, g)
	}
	return out, nil
}

// lookup finds (create: or makes) a group.
func (c *Coordinator) lookup(id string, create bool) (*group, error) {
	if id == "" {
		return nil, ErrInvalidGroupID
	}
	p := PartitionFor(id, c.cfg.NumPartitions)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, ErrNotCoordinator
	}
	l := c.mu.active[p]
	if l == nil {
		c.mu.Unlock()
		_, err := c.owner.Log(p)
		c.mu.Lock()
		return nil, logErr(err)
	}
	g := c.mu.groups[id]
	if g == nil && create {
		g = newGroup(c, id, p, l, c.now())
		c.mu.groups[id] = g
		c.wg.Go(g.run)
	}
	if g == nil {
		return nil, ErrGroupIDNotFound
	}
	return g, nil
}

// forget removes a dead group (called by its actor).
func (c *Coordinator) forget(g *group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.groups[g.id] == g {
		delete(c.mu.groups, g.id)
	}
}

// with runs fn on a group's actor, retrying once on a group that died in
// between (a new one is made when create).
func (c *Coordinator) with(ctx context.Context, id string, create bool, fn func(g *group, now time.Time)) error {
	for range 3 {
		g, err := c.lookup(id, create)
		if err != nil {
			return err
		}
		err = g.do(ctx, func(now time.Time) { fn(g, now) })
		if !errors.Is(err, errGroupGone) {
			return err
		}
		c.mu.Lock()
		closed := c.mu.closed
		c.mu.Unlock()
		if closed {
			return ErrNotCoordinator
		}
	}
	return ErrCoordinatorNotAvailable
}

// appendRecords writes key/value records (nil value: tombstone) to the
// group's partition and returns the offset after them (not committed yet:
// waitCommitted).
func (c *Coordinator) appendRecords(g *group, kvs ...statelog.KeyValue) (int64, error) {
	next, err := g.log.Append(statelog.Batch{Now: c.now(), ProducerID: -1, ProducerEpoch: -1, Records: kvs})
	if err == nil {
		g.written = next
	}
	return next, logErr(err)
}

// waitCommitted waits until the records below next are committed (the high
// watermark passed them): only then is a write answered.
func (c *Coordinator) waitCommitted(ctx context.Context, l statelog.Log, next int64) error {
	return logErr(l.WaitCommitted(ctx, next))
}

// logErr maps a state log's errors as Kafka's group coordinator maps a
// failed append (GroupMetadataManager.appendForGroup, and
// CoordinatorRuntime in Kafka 4): not the leader (or a failed disk, which
// moves leadership) is NOT_COORDINATOR, too few in-sync replicas or a
// timeout is COORDINATOR_NOT_AVAILABLE, a partition still loading is
// COORDINATOR_LOAD_IN_PROGRESS.
func logErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, statelog.ErrLoading):
		return ErrCoordinatorLoading
	case errors.Is(err, statelog.ErrNotLeader), errors.Is(err, statelog.ErrStorage):
		return fmt.Errorf("%w: %w", ErrNotCoordinator, err)
	case errors.Is(err, statelog.ErrNotEnoughReplicas), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", ErrCoordinatorNotAvailable, err)
	}
	return err
}

// writeGroup persists a group's metadata (a tombstone once Dead) and waits
// for it to be durable.
func (c *Coordinator) writeGroup(g *group) error {
	var v []byte
	if g.st.state != Dead {
		v = groupValue(g.st)
	}
	next, err := c.appendRecords(g, statelog.KeyValue{Key: groupKey(g.id), Value: v})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	return c.waitCommitted(ctx, g.log, next)
}

func waitReply[T any](ctx context.Context, g *group, ch chan T, gone T) T {
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		return gone
	case <-g.donec:
		select {
		case r := <-ch:
			return r
		default:
			return gone
		}
	}
}

// Join handles a JoinGroup and blocks until the join phase answers it (or
// ctx ends).
func (c *Coordinator) Join(ctx context.Context, id string, req JoinRequest) JoinResult {
	ch := make(chan JoinResult, 1)
	var g *group
	err := c.with(ctx, id, true, func(gg *group, now time.Time) {
		g = gg
		if gg.st.consumerActive() {
			// A classic member cannot join a group of consumer-protocol
			// members (Kafka without online migration).
			ch <- JoinResult{Err: ErrInconsistentGroupProtocol, MemberID: req.MemberID, Generation: -1}
			return
		}
		if gg.st.cg != nil {
			// An empty consumer group turns classic: its records go.
			gg.st.cg = nil
			if _, err := gg.persistConsumer(); err != nil {
				ch <- JoinResult{Err: err, MemberID: req.MemberID, Generation: -1}
				return
			}
		}
		gg.exec(gg.st.join(req, ch, now))
	})
	if err != nil {
		return JoinResult{Err: err, MemberID: req.MemberID, Generation: -1}
	}
	res := waitReply(ctx, g, ch, JoinResult{Err: ErrNotCoordinator, MemberID: req.MemberID, Generation: -1})
	if res.Err != nil && !errors.Is(res.Err, ErrMemberIDRequired) {
		c.logger.Debug("join failed", "group", id, "member", req.MemberID, "err", res.Err)
	}
	return res
}

// Sync handles a SyncGroup and blocks until the leader's assignment (or an
// error) answers it.
func (c *Coordinator) Sync(ctx context.Context, id string, req SyncRequest) SyncResult {
	ch := make(chan SyncResult, 1)
	var g *group
	err := c.with(ctx, id, false, func(gg *group, now time.Time) {
		g = gg
		gg.exec(gg.st.syncGroup(req, ch, now))
	})
	if errors.Is(err, ErrGroupIDNotFound) {
		err = ErrUnknownMemberID
	}
	if err != nil {
		return SyncResult{Err: err}
	}
	res := waitReply(ctx, g, ch, SyncResult{Err: ErrNotCoordinator})
	if res.Err != nil {
		c.logger.Debug("sync failed", "group", id, "member", req.MemberID, "generation", req.Generation, "err", res.Err)
	}
	return res
}

// Heartbeat handles a Heartbeat.
func (c *Coordinator) Heartbeat(ctx context.Context, id, memberID, instanceID string, generation int32) error {
	var res error
	err := c.with(ctx, id, false, func(g *group, now time.Time) {
		res = g.st.heartbeat(memberID, instanceID, generation, now)
	})
	if res != nil && !errors.Is(res, ErrRebalanceInProgress) {
		c.logger.Debug("heartbeat failed", "group", id, "member", memberID, "generation", generation, "err", res)
	}
	if errors.Is(err, ErrGroupIDNotFound) {
		return ErrUnknownMemberID
	}
	if err != nil {
		return err
	}
	return res
}

// Leave handles a LeaveGroup: one error (or nil) per member.
func (c *Coordinator) Leave(ctx context.Context, id string, members []MemberLeave) ([]error, error) {
	var errs []error
	err := c.with(ctx, id, false, func(g *group, now time.Time) {
		var acts []action
		errs, acts = g.st.leave(members, now)
		g.exec(acts)
	})
	if errors.Is(err, ErrGroupIDNotFound) {
		return nil, ErrUnknownMemberID
	}
	return errs, err
}

// Commit stores offsets for a group. A generation below 0 is a simple
// (groupless) commit, allowed while the group has no members; members of the
// current generation commit also during PreparingRebalance (not during
// CompletingRebalance: REBALANCE_IN_PROGRESS), as in Kafka.
// It returns an error per partition (nil: committed) once the commit is
// durable. version is the OffsetCommit request's: a member of a consumer
// group (KIP-848) must commit with 9 or later (UNSUPPORTED_VERSION, as
// Kafka).
func (c *Coordinator) Commit(ctx context.Context, id, memberID, instanceID string, generation int32, version int16, offsets map[TopicPartition]Offset) (map[TopicPartition]error, error) {
	out := make(map[TopicPartition]error, len(offsets))
	var next int64
	var log statelog.Log
	err := c.with(ctx, id, true, func(g *group, now time.Time) {
		st := g.st
		// As Kafka: a generation below 0 commits freely to an Empty
		// group (admin tools, assign()-only consumers); without member
		// id and generation it is refused while the group has members.
		simple := generation < 0 && memberID == "" && instanceID == ""
		var gerr error
		var partOK func(id [16]byte, p int32) bool
		switch {
		case st.cg != nil:
			partOK, gerr = st.cg.commitCheck(memberID, generation, version)
		case generation < 0 && st.state == Empty:
		case simple:
			gerr = ErrUnknownMemberID
		default:
			if _, err := st.checkMember(memberID, instanceID, generation); err != nil {
				gerr = err
			} else if st.state == CompletingRebalance {
				gerr = ErrRebalanceInProgress
			}
		}
		if c.logger.Enabled(ctx, slog.LevelDebug) {
			state, gen := st.state.String(), st.generation
			if st.cg != nil {
				state, gen = st.cg.state(), st.cg.epoch
			}
			c.logger.Debug("offset commit", "group", id, "member_id", memberID, "generation", generation,
				"state", state, "group_generation", gen, "partitions", len(offsets), "err", gerr)
		}
		var kvs []statelog.KeyValue
		var ok []TopicPartition
		for tp, o := range offsets {
			switch {
			case gerr != nil:
				out[tp] = gerr
			case partOK != nil && !partOK(c.topicID(tp.Topic), tp.Partition):
				out[tp] = ErrStaleMemberEpoch
			case tp.Partition < 0 || tp.Partition >= c.cfg.PartitionCount(tp.Topic):
				out[tp] = ErrUnknownTopicOrPartition
			case len(o.Metadata) > c.cfg.MaxOffsetMetadataBytes:
				out[tp] = ErrOffsetMetadataTooLarge
			default:
				o.CommitTimestamp = now.UnixMilli()
				offsets[tp] = o
				kvs = append(kvs, statelog.KeyValue{Key: offsetKey(id, tp), Value: offsetValue(o)})
				ok = append(ok, tp)
			}
		}
		if len(kvs) == 0 {
			return
		}
		n, err := c.appendRecords(g, kvs...)
		if err != nil {
			for _, tp := range ok {
				out[tp] = err
			}
			return
		}
		base := n - int64(len(kvs))
		for i, tp := range ok {
			o := offsets[tp]
			o.record = base + int64(i)
			g.offsets[tp] = o
			out[tp] = nil
		}
		next, log = n, g.log
	})
	if err != nil {
		return nil, err
	}
	if next > 0 {
		if err := c.waitCommitted(ctx, log, next); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Fetch returns a group's committed offsets for tps (nil: all of them).
// Partitions without a commit are absent. An unknown group has none.
// Offsets pending in an open transaction are never shown.
func (c *Coordinator) Fetch(ctx context.Context, id string, tps []TopicPartition) (map[TopicPartition]Offset, error) {
	out, _, err := c.FetchOffsets(ctx, id, tps, false)
	return out, err
}

// FetchOffsets is Fetch for OffsetFetch: with requireStable (KIP-447) a
// partition for which an open transaction holds an offset is in unstable
// instead (UNSTABLE_OFFSET_COMMIT, the client retries). As in Kafka, when
// tps is nil only partitions with a committed offset are looked at.
func (c *Coordinator) FetchOffsets(ctx context.Context, id string, tps []TopicPartition, requireStable bool) (offsets map[TopicPartition]Offset, unstable map[TopicPartition]bool, err error) {
	return c.FetchOffsetsAs(ctx, id, "", -1, tps, requireStable)
}

// FetchOffsetsAs is FetchOffsets for a member of a consumer group at
// epoch (OffsetFetch v9+; epoch -1: no member): a member the group does
// not have is UNKNOWN_MEMBER_ID, another epoch STALE_MEMBER_EPOCH.
func (c *Coordinator) FetchOffsetsAs(ctx context.Context, id, memberID string, epoch int32, tps []TopicPartition, requireStable bool) (offsets map[TopicPartition]Offset, unstable map[TopicPartition]bool, err error) {
	out := map[TopicPartition]Offset{}
	unstable = map[TopicPartition]bool{}
	var written int64
	var log statelog.Log
	var merr error
	err = c.with(ctx, id, false, func(g *group, now time.Time) {
		if g.st.cg != nil {
			if merr = g.st.cg.validateFetch(memberID, epoch); merr != nil {
				return
			}
		}
		written, log = g.written, g.log
		if tps == nil {
			for tp, o := range g.offsets {
				if requireStable && hasPending(g.pending, tp) {
					unstable[tp] = true
					continue
				}
				out[tp] = o
			}
			return
		}
		for _, tp := range tps {
			if requireStable && hasPending(g.pending, tp) {
				unstable[tp] = true
				continue
			}
			if o, ok := g.offsets[tp]; ok {
				out[tp] = o
			}
		}
	})
	if errors.Is(err, ErrGroupIDNotFound) {
		return out, unstable, nil // as Kafka: no group, no offsets
	}
	if err == nil && merr != nil {
		err = merr
	}
	if err == nil && written > 0 {
		// The offsets read include the group's writes not committed yet
		// (a commit waiting for the followers): show them only once they
		// are, so no reader sees an offset a new leader may not have.
		// Too few in-sync replicas fail the writes, not this read.
		err = logErr(log.WaitReadable(ctx, written))
	}
	if err != nil {
		return nil, nil, err
	}
	return out, unstable, nil
}

// MemberDescription describes one member.
type MemberDescription struct {
	MemberID, InstanceID, ClientID, ClientHost string
	Metadata, Assignment                       []byte
}

// Description describes a group (DescribeGroups).
type Description struct {
	ID, State, ProtocolType, Protocol string
	Generation                        int32
	Members                           []MemberDescription
	// Consumer: a KIP-848 consumer group (ConsumerDescribe describes it).
	Consumer bool
	// Missing: the coordinator has no such group.
	Missing bool
}

// Describe describes a group; an unknown group is Dead with no members
// (and Missing).
func (c *Coordinator) Describe(ctx context.Context, id string) (Description, error) {
	d := Description{ID: id, State: Dead.String()}
	err := c.with(ctx, id, false, func(g *group, now time.Time) {
		st := g.st
		if st.cg != nil {
			d.State, d.ProtocolType, d.Generation = st.cg.state(), "consumer", st.cg.epoch
			d.Consumer = true
			return
		}
		d.State, d.ProtocolType, d.Generation = st.state.String(), st.protocolType, st.generation
		if st.state == Stable || st.state == CompletingRebalance {
			d.Protocol = st.protocol
		}
		for _, m := range st.sortedMembers() {
			md := MemberDescription{MemberID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost}
			if st.state == Stable {
				md.Metadata, md.Assignment = m.metadataFor(st.protocol), m.assignment
			}
			d.Members = append(d.Members, md)
		}
	})
	if errors.Is(err, ErrGroupIDNotFound) {
		d.Missing = true
		return d, nil
	}
	return d, err
}

// Listing is one group in ListGroups.
type Listing struct {
	ID, ProtocolType, State string
	// Type is "classic" or "consumer" (KIP-848).
	Type string
}

// List lists the groups this node coordinates.
func (c *Coordinator) List(ctx context.Context) []Listing {
	c.mu.Lock()
	ids := make([]string, 0, len(c.mu.groups))
	for id := range c.mu.groups {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	sort.Strings(ids)
	var out []Listing
	for _, id := range ids {
		var l Listing
		err := c.with(ctx, id, false, func(g *group, now time.Time) {
			l = Listing{ID: id, ProtocolType: g.st.protocolType, State: g.st.state.String(), Type: "classic"}
			if cg := g.st.cg; cg != nil {
				l = Listing{ID: id, ProtocolType: "consumer", State: cg.state(), Type: "consumer"}
			}
		})
		if err == nil {
			out = append(out, l)
		}
	}
	return out
}

// Delete deletes an empty group and its offsets.
func (c *Coordinator) Delete(ctx context.Context, id string) error {
	var res error
	err := c.with(ctx, id, false, func(g *group, now time.Time) {
		if g.st.state != Empty || g.st.consumerActive() {
			res = ErrNonEmptyGroup
			return
		}
		res = g.die(now)
	})
	if err != nil {
		return err
	}
	return res
}

// die writes tombstones for every offset and the group, and marks it Dead
// (the actor then stops and the coordinator forgets it). As Kafka's
// deleteAllOffsets, a partition only an open transaction holds gets a
// tombstone too: a replay drops pending offsets at their tombstone, so the
// transaction's marker no longer brings them back.
func (g *group) die(now time.Time) error {
	kvs := []statelog.KeyValue{}
	for tp := range g.offsets {
		kvs = append(kvs, statelog.KeyValue{Key: offsetKey(g.id, tp)})
	}
	var pids []int64
	seen := map[TopicPartition]bool{}
	for pid, offs := range g.pending {
		pids = append(pids, pid)
		for tp := range offs {
			if _, ok := g.offsets[tp]; !ok && !seen[tp] {
				seen[tp] = true
				kvs = append(kvs, statelog.KeyValue{Key: offsetKey(g.id, tp)})
			}
		}
	}
	kvs = append(kvs, statelog.KeyValue{Key: groupKey(g.id)})
	for k := range g.cgWritten {
		kvs = append(kvs, statelog.KeyValue{Key: []byte(k)})
	}
	next, err := g.c.appendRecords(g, kvs...)
	if err != nil {
		return err
	}
	g.offsets = map[TopicPartition]Offset{}
	g.pending = map[int64]map[TopicPartition]Offset{}
	g.st.cg, g.cgWritten = nil, nil
	for _, pid := range pids {
		g.c.forgetPending(pid, g.id)
	}
	g.st.transition(Dead, now)
	ctx, cancel := context.WithTimeout(g.c.ctx, 30*time.Second)
	defer cancel()
	return g.c.waitCommitted(ctx, g.log, next)
}

// DeleteOffsets deletes committed offsets (OffsetDelete). A partition of a
// topic the group is subscribed to is refused while the group has members.
func (c *Coordinator) DeleteOffsets(ctx context.Context, id string, tps []TopicPartition) (map[TopicPartition]error, error) {
	out := map[TopicPartition]error{}
	var gerr error
	var next int64
	var log statelog.Log
	err := c.with(ctx, id, false, func(g *group, now time.Time) {
		st := g.st
		subscribed := map[string]bool{}
		if st.cg != nil {
			for _, tp := range tps {
				if st.cg.subscribesTo(tp.Topic) {
					subscribed[tp.Topic] = true
				}
			}
		}
		if st.state != Empty {
			if st.protocolType != "consumer" {
				gerr = ErrNonEmptyGroup
				return
			}
			for _, m := range st.members {
				var md kmsg.ConsumerMemberMetadata
				if md.ReadFrom(m.metadataFor(st.protocol)) == nil {
					for _, t := range md.Topics {
						subscribed[t] = true
					}
				}
			}
		}
		var kvs []statelog.KeyValue
		for _, tp := range tps {
			if subscribed[tp.Topic] {
				out[tp] = ErrGroupSubscribedToTopic
				continue
			}
			out[tp] = nil
			if _, ok := g.offsets[tp]; ok {
				kvs = append(kvs, statelog.KeyValue{Key: offsetKey(id, tp)})
			}
		}
		if len(kvs) == 0 {
			return
		}
		n, err := c.appendRecords(g, kvs...)
		if err != nil {
			gerr = err
			return
		}
		next, log = n, g.log
		for _, tp := range tps {
			if out[tp] == nil {
				delete(g.offsets, tp)
				dropPendingPartition(g.pending, tp)
			}
		}
	})
	if errors.Is(err, ErrGroupIDNotFound) {
		return nil, ErrGroupIDNotFound
	}
	if err != nil {
		return nil, err
	}
	if gerr == nil && next > 0 {
		gerr = c.waitCommitted(ctx, log, next)
	}
	return out, gerr
}

// ExpireOffsets removes offsets past offsets.retention.minutes from empty
// groups (counted from when the group became empty, or from the commit for
// groups that only store offsets), and deletes empty groups left with none.
func (c *Coordinator) ExpireOffsets() {
	c.eachGroup("expire offsets", func(id string, g *group, now time.Time) {
		if g.st.state != Empty || g.st.consumerActive() {
			return
		}
		var kvs []statelog.KeyValue
		var gone []TopicPartition
		for tp, o := range g.offsets {
			if hasPending(g.pending, tp) {
				continue // as Kafka: not while a transaction holds an offset of it
			}
			ref := time.UnixMilli(o.CommitTimestamp)
			if g.st.protocolType != "" && g.st.stateTime.After(ref) {
				ref = g.st.stateTime
			}
			if !now.Before(ref.Add(c.cfg.OffsetsRetention)) {
				kvs = append(kvs, statelog.KeyValue{Key: offsetKey(id, tp)})
				gone = append(gone, tp)
			}
		}
		if len(gone) == len(g.offsets) && len(g.pending) == 0 {
			if err := g.die(now); err != nil {
				c.logger.Warn("expire group failed", "group", id, "err", err)
			}
			return
		}
		if len(kvs) == 0 {
			return
		}
		if _, err := c.appendRecords(g, kvs...); err != nil {
			c.logger.Warn("expire offsets failed", "group", id, "err", err)
			return
		}
		for _, tp := range gone {
			delete(g.offsets, tp)
		}
	})
}

// eachGroup runs fn on the actor of every group coordinated here, within a
// minute in all; a group that could not be reached is logged as what
// skipped.
func (c *Coordinator) eachGroup(what string, fn func(id string, g *group, now time.Time)) {
	c.mu.Lock()
	ids := make([]string, 0, len(c.mu.groups))
	for id := range c.mu.groups {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	for _, id := range ids {
		err := c.with(ctx, id, false, func(g *group, now time.Time) { fn(id, g, now) })
		if err != nil && !errors.Is(err, ErrGroupIDNotFound) {
			c.logger.Debug(what+" skipped", "group", id, "err", err)
		}
	}
}

// TopicsDeleted removes every committed offset, and every transaction's
// pending one, that a group coordinated here holds on a partition of the
// deleted topics, with tombstones (which replay also applies to pending
// offsets), as Kafka does (OffsetMetadataManager.onPartitionsDeleted): a
// topic created again under the same name starts with no committed
// offsets. It runs in the background of a metadata change; a group whose
// write fails keeps its offsets (logged).
func (c *Coordinator) TopicsDeleted(topics []string) {
	if len(topics) == 0 {
		return
	}
	c.eachGroup("removing the offsets of deleted topics", func(id string, g *group, now time.Time) {
		gone := map[TopicPartition]bool{}
		for tp := range g.offsets {
			if slices.Contains(topics, tp.Topic) {
				gone[tp] = true
			}
		}
		for _, offs := range g.pending {
			for tp := range offs {
				if slices.Contains(topics, tp.Topic) {
					gone[tp] = true
				}
			}
		}
		if len(gone) == 0 {
			return
		}
		kvs := make([]statelog.KeyValue, 0, len(gone))
		for tp := range gone {
			kvs = append(kvs, statelog.KeyValue{Key: offsetKey(id, tp)})
		}
		if _, err := c.appendRecords(g, kvs...); err != nil {
			c.logger.Warn("removing the offsets of deleted topics failed", "group", id, "err", err)
			return
		}
		for tp := range gone {
			delete(g.offsets, tp)
			dropPendingPartition(g.pending, tp)
		}
	})
}

// LagRow is one group's committed offset and lag on one partition.
type LagRow struct {
	Group        string
	Topic        string
	Partition    int32
	Committed    int64
	LogEndOffset int64
	// Lag is LogEndOffset - Committed, -1 when the log end is unknown here.
	Lag int64
}

// Lag returns a row per committed offset of every group coordinated here.
func (c *Coordinator) Lag(ctx context.Context) []LagRow {
	var out []LagRow
	for _, l := range c.List(ctx) {
		offs, err := c.Fetch(ctx, l.ID, nil)
		if err != nil {
			continue
		}
		for tp, o := range offs {
			row := LagRow{Group: l.ID, Topic: tp.Topic, Partition: tp.Partition, Committed: o.Offset, LogEndOffset: -1, Lag: -1}
			if leo, ok := c.cfg.LogEndOffset(tp.Topic, tp.Partition); ok {
				row.LogEndOffset, row.Lag = leo, max(leo-o.Offset, 0)
			}
			out = append(out, row)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	return out
}
