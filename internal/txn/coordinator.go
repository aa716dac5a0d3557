package txn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/replica"
)

// Topic is the internal topic holding transaction states.
const Topic = "__transaction_state"

// Config configures a Coordinator. Zero values take Kafka's defaults.
type Config struct {
	// NumPartitions is transaction.state.log.num.partitions.
	NumPartitions int32
	// MaxTimeout is transaction.max.timeout.ms.
	MaxTimeout time.Duration
	// AbortInterval is how often timed-out transactions are looked for
	// (transaction.abort.timed.out.transaction.cleanup.interval.ms).
	AbortInterval time.Duration
	// IDExpiration is transactional.id.expiration.ms: an id idle (Empty,
	// CompleteCommit, CompleteAbort) for that long is removed.
	IDExpiration time.Duration
	// RemoveInterval is how often expired ids are looked for
	// (transaction.remove.expired.transaction.cleanup.interval.ms).
	RemoveInterval time.Duration
	// ProducerIDs hands out producer ids.
	ProducerIDs *ProducerIDs
	// Partition returns a partition this node leads (of __transaction_state
	// or of a data topic), or nil.
	Partition func(topic string, partition int32) *replica.Partition
	// GroupPartition is the __consumer_offsets partition of a consumer
	// group: AddOffsetsToTxn adds it to the transaction, as Kafka does, so
	// that the transaction's markers reach the group's transactional
	// offsets. nil: a group adds no partition.
	GroupPartition func(group string) TopicPartition
	// MarkerWritten is called once a marker is durable on a partition of
	// the transaction, before Complete* is logged: the group coordinator
	// applies the markers written to __consumer_offsets (Kafka's
	// onTransactionCompleted). A crash before the call loses nothing: the
	// marker is in the log, which the group coordinator replays. nil: none.
	MarkerWritten func(ctx context.Context, tp TopicPartition, pid int64, commit bool) error
	Logger        *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// entry is one transactional id; mu serialises its requests (held across
// the durable writes and the markers of a transaction's end).
type entry struct {
	mu        sync.Mutex
	partition int32
	m         Metadata
	gone      bool // removed (partition unloaded): look it up again
}

// Coordinator is the transaction coordinator of one node.
type Coordinator struct {
	cfg    Config
	logger *slog.Logger
	stopc  chan struct{}
	wg     sync.WaitGroup

	loadMu sync.Mutex // serialises partition loads
	mu     struct {
		sync.Mutex
		ids    map[string]*entry
		loaded map[int32]bool
		closed bool
	}
}

// New creates a coordinator; Start runs the timeout aborts.
func New(cfg Config) *Coordinator {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NumPartitions <= 0 {
		cfg.NumPartitions = 50
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 15 * time.Minute
	}
	if cfg.AbortInterval <= 0 {
		cfg.AbortInterval = 10 * time.Second
	}
	if cfg.IDExpiration <= 0 {
		cfg.IDExpiration = 7 * 24 * time.Hour
	}
	if cfg.RemoveInterval <= 0 {
		cfg.RemoveInterval = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Partition == nil {
		cfg.Partition = func(string, int32) *replica.Partition { return nil }
	}
	if cfg.MarkerWritten == nil {
		cfg.MarkerWritten = func(context.Context, TopicPartition, int64, bool) error { return nil }
	}
	c := &Coordinator{cfg: cfg, logger: cfg.Logger.With("component", "txn"), stopc: make(chan struct{})}
	c.mu.ids = map[string]*entry{}
	c.mu.loaded = map[int32]bool{}
	return c
}

// NumPartitions is the partition count of __transaction_state.
func (c *Coordinator) NumPartitions() int32 { return c.cfg.NumPartitions }

// PartitionFor is the __transaction_state partition owning id.
func (c *Coordinator) PartitionFor(id string) int32 {
	return metadata.PartitionFor(id, c.cfg.NumPartitions)
}

// Start aborts timed-out transactions every AbortInterval and removes
// expired transactional ids every RemoveInterval, until Close.
func (c *Coordinator) Start() {
	c.every(c.cfg.AbortInterval, c.AbortTimedOut)
	c.every(c.cfg.RemoveInterval, c.RemoveExpired)
}

func (c *Coordinator) every(d time.Duration, fn func()) {
	c.wg.Go(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-c.stopc:
				return
			case <-t.C:
				fn()
			}
		}
	})
}

// Close stops the background work; requests in flight finish.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed = true
	c.mu.Unlock()
	close(c.stopc)
	c.wg.Wait()
}

// LoadAll loads every hosted __transaction_state partition (node start) and
// finishes the transactions a crash left prepared.
func (c *Coordinator) LoadAll() error {
	var errs []error
	for p := range c.cfg.NumPartitions {
		if part := c.cfg.Partition(Topic, p); part != nil {
			errs = append(errs, c.ensureLoaded(p, part))
		}
	}
	return errors.Join(errs...)
}

func (c *Coordinator) ensureLoaded(p int32, part *replica.Partition) error {
	c.mu.Lock()
	done := c.mu.loaded[p]
	c.mu.Unlock()
	if done {
		return nil
	}
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	c.mu.Lock()
	done = c.mu.loaded[p]
	c.mu.Unlock()
	if done {
		return nil
	}
	ms, err := c.replay(p, part)
	if err != nil {
		return err
	}
	var pending []*entry
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return ErrNotCoordinator
	}
	for _, m := range ms {
		e := &entry{partition: p, m: *m}
		c.mu.ids[m.ID] = e
		if m.State == PrepareCommit || m.State == PrepareAbort {
			pending = append(pending, e)
		}
	}
	c.mu.loaded[p] = true
	c.mu.Unlock()
	c.logger.Info("loaded transactional ids", "partition", p, "ids", len(ms), "completing", len(pending))
	// A crash between Prepare* and Complete*: the decision is durable, so
	// write the markers again and complete.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for _, e := range pending {
		e.mu.Lock()
		errs = append(errs, c.finish(ctx, e))
		e.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (c *Coordinator) replay(p int32, part *replica.Partition) ([]*Metadata, error) {
	latest := map[string]*Metadata{}
	err := part.ScanKeyValues(func(key, value []byte) error {
		id, m, err := decodeRecord(bytes.Clone(key), bytes.Clone(value))
		if err != nil {
			c.logger.Warn("skipping corrupt record", "partition", p, "err", err)
			return nil
		}
		if m == nil {
			delete(latest, id)
		} else {
			latest[id] = m
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("txn: load partition %d: %w", p, err)
	}
	out := make([]*Metadata, 0, len(latest))
	for _, m := range latest {
		out = append(out, m)
	}
	return out, nil
}

// lookup returns id's entry, locked, creating an unpersisted one when
// create (its m.ProducerID is then -1). The caller unlocks it.
func (c *Coordinator) lookup(id string, create bool) (*entry, error) {
	if id == "" {
		return nil, ErrTransactionalIDNotFound
	}
	p := c.PartitionFor(id)
	part := c.cfg.Partition(Topic, p)
	if part == nil {
		return nil, ErrNotCoordinator
	}
	if err := c.ensureLoaded(p, part); err != nil {
		return nil, err
	}
	for {
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return nil, ErrNotCoordinator
		}
		e := c.mu.ids[id]
		if e == nil {
			if !create {
				c.mu.Unlock()
				return nil, ErrTransactionalIDNotFound
			}
			e = &entry{partition: p, m: Metadata{ID: id, ProducerID: -1, ProducerEpoch: -1,
				PreviousProducerID: -1, NextProducerID: -1}}
			c.mu.ids[id] = e
		}
		c.mu.Unlock()
		e.mu.Lock()
		if !e.gone {
			return e, nil
		}
		e.mu.Unlock()
	}
}

// known is e's metadata, nil when never persisted.
func (e *entry) known() *Metadata {
	if e.m.ProducerID < 0 {
		return nil
	}
	return &e.m
}

// waitReplicated waits until the records below next are fsynced here and
// on every ISR member (the high watermark passed them), as Kafka's
// coordinator appends with acks=all: local durability alone can lose a
// state change when another replica, without it, leads next (a power loss
// of the whole cluster). Errors are Kafka's coordinator mapping.
func waitReplicated(ctx context.Context, part *replica.Partition, next int64) error {
	err := part.WaitDurable(ctx, next)
	if err == nil {
		err = part.WaitReplicated(ctx, next)
	}
	switch {
	case errors.Is(err, replica.ErrNotLeader):
		return ErrNotCoordinator
	case errors.Is(err, replica.ErrNotEnoughReplicas), errors.Is(err, replica.ErrNotEnoughReplicasAfterAppend):
		return ErrCoordinatorNotAvailable
	}
	return err
}

// persist writes m durably to the entry's partition and makes it current.
func (c *Coordinator) persist(ctx context.Context, e *entry, m Metadata) error {
	part := c.cfg.Partition(Topic, e.partition)
	if part == nil {
		return ErrNotCoordinator
	}
	next, err := part.AppendKeyValues(c.cfg.Now(), replica.KeyValue{Key: encodeKey(m.ID), Value: encodeValue(m)})
	if err != nil {
		return err
	}
	if err := waitReplicated(ctx, part, next); err != nil {
		return err
	}
	e.m = m
	return nil
}

// finish completes a prepared transaction: markers on every partition
// (the __consumer_offsets partitions of its groups included), then
// Complete*. e is locked.
func (c *Coordinator) finish(ctx context.Context, e *entry) error {
	m := e.m
	commit := m.State == PrepareCommit
	coordEpoch := int32(0)
	if part := c.cfg.Partition(Topic, e.partition); part != nil {
		coordEpoch = part.LeaderEpoch()
	}
	var errs []error
	for _, tp := range m.SortedPartitions() {
		part := c.cfg.Partition(tp.Topic, tp.Partition)
		if part == nil {
			// Deleted topic or partition not led here: nothing to mark.
			c.logger.Warn("transaction marker skipped", "transactional_id", m.ID, "topic", tp.Topic,
				"partition", tp.Partition)
			continue
		}
		if _, err := part.AppendTxnMarker(m.ProducerID, m.ProducerEpoch, commit, coordEpoch); err != nil {
			errs = append(errs, fmt.Errorf("txn: marker on %s-%d: %w", tp.Topic, tp.Partition, err))
			continue
		}
		if err := c.cfg.MarkerWritten(ctx, tp, m.ProducerID, commit); err != nil {
			errs = append(errs, fmt.Errorf("txn: marker on %s-%d: %w", tp.Topic, tp.Partition, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.persist(ctx, e, completed(m, c.cfg.Now()))
}

// endLocked writes Prepare* (or, fencing, a bumped PrepareAbort), then
// finishes. e is locked.
func (c *Coordinator) endLocked(ctx context.Context, e *entry, m Metadata) error {
	if err := c.persist(ctx, e, m); err != nil {
		return err
	}
	return c.finish(ctx, e)
}

// InitProducerID answers InitProducerId for a transactional id: a new
// producer id, or the existing one under the next epoch (a fresh id when the
// epoch is exhausted); an open transaction is aborted first. reqPID and
// reqEpoch are -1 unless the client resumes (v3+).
func (c *Coordinator) InitProducerID(ctx context.Context, id string, timeout time.Duration, reqPID int64, reqEpoch int16) (int64, int16, error) {
	if timeout <= 0 || timeout > c.cfg.MaxTimeout {
		return -1, -1, ErrInvalidTransactionTimeout
	}
	e, err := c.lookup(id, true)
	if err != nil {
		return -1, -1, err
	}
	defer e.mu.Unlock()
	d, err := planInit(e.known(), timeout, c.cfg.MaxTimeout, reqPID, reqEpoch)
	if err != nil {
		return -1, -1, err
	}
	now := c.cfg.Now()
	if d.abortFirst {
		if err := c.endLocked(ctx, e, fenced(e.m, now)); err != nil {
			return -1, -1, err
		}
	}
	newPID := int64(-1)
	if d.newPID {
		if newPID, err = c.cfg.ProducerIDs.Next(ctx); err != nil {
			return -1, -1, err
		}
	}
	base := e.m
	if base.ProducerID < 0 {
		base = Metadata{ID: id}
	}
	if err := c.persist(ctx, e, bumped(base, newPID, timeout, now)); err != nil {
		return -1, -1, err
	}
	c.logger.Debug("init producer id", "transactional_id", id, "producer_id", e.m.ProducerID, "epoch", e.m.ProducerEpoch)
	return e.m.ProducerID, e.m.ProducerEpoch, nil
}

// AddPartitions adds partitions to the producer's transaction (opening it).
// tv2: the add is a transaction.version 2 produce's implicit one (KIP-890
// part 2, AddPartitionsToTxn v5 from a partition leader).
func (c *Coordinator) AddPartitions(ctx context.Context, id string, pid int64, epoch int16, tps []TopicPartition, tv2 bool) error {
	return c.add(ctx, id, pid, epoch, tps, nil, tv2)
}

// AddOffsets adds a consumer group's offsets to the producer's transaction.
// As Kafka, the group's __consumer_offsets partition joins the
// transaction's partitions (persisted), so a transaction prepared before a
// crash still gets its marker there. tv2: the add is a TxnOffsetCommit v5's
// implicit one (KIP-890 part 2).
func (c *Coordinator) AddOffsets(ctx context.Context, id string, pid int64, epoch int16, group string, tv2 bool) error {
	var tps []TopicPartition
	if c.cfg.GroupPartition != nil {
		tps = append(tps, c.cfg.GroupPartition(group))
	}
	return c.add(ctx, id, pid, epoch, tps, []string{group}, tv2)
}

// VerifyPartitions answers a verify_only AddPartitionsToTxn (KIP-890 part
// 1): the error for the whole transaction (a wrong producer, or an end in
// progress), else for each partition nil when it is in the ongoing
// transaction and ErrTransactionAbortable when it is not. It writes nothing.
func (c *Coordinator) VerifyPartitions(id string, pid int64, epoch int16, tps []TopicPartition) (map[TopicPartition]error, error) {
	e, err := c.lookup(id, false)
	if errors.Is(err, ErrTransactionalIDNotFound) {
		return nil, ErrInvalidProducerIDMapping
	}
	if err != nil {
		return nil, err
	}
	defer e.mu.Unlock()
	if err := checkProducer(e.known(), pid, epoch); err != nil {
		return nil, err
	}
	if s := e.m.State; s == PrepareCommit || s == PrepareAbort {
		return nil, ErrConcurrentTransactions
	}
	out := make(map[TopicPartition]error, len(tps))
	for _, tp := range tps {
		out[tp] = ErrTransactionAbortable
		if _, ok := e.m.Partitions[tp]; ok && e.m.State == Ongoing {
			out[tp] = nil
		}
	}
	return out, nil
}

func (c *Coordinator) add(ctx context.Context, id string, pid int64, epoch int16, tps []TopicPartition, groups []string, tv2 bool) error {
	e, err := c.lookup(id, false)
	if errors.Is(err, ErrTransactionalIDNotFound) {
		return ErrInvalidProducerIDMapping
	}
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	n, changed, err := planAddPartitions(e.known(), pid, epoch, tps, groups, tv2, c.cfg.Now())
	if err != nil {
		return err
	}
	if !changed {
		e.m = n // groups only: memory
		return nil
	}
	return c.persist(ctx, e, n)
}

// CheckOffsetCommit validates a TxnOffsetCommit's producer against the
// transaction: it must be current and its transaction must include group.
func (c *Coordinator) CheckOffsetCommit(id string, pid int64, epoch int16, group string) error {
	return c.CommitOffsets(id, pid, epoch, group, func() error { return nil })
}

// CommitOffsets is CheckOffsetCommit followed by write (the group
// coordinator's transactional write of the offsets) with the transaction
// held: the transaction cannot end between the check and the write, so
// offsets are never written after the transaction's marker, where they
// would wait for the producer's next transaction.
func (c *Coordinator) CommitOffsets(id string, pid int64, epoch int16, group string, write func() error) error {
	e, err := c.lookup(id, false)
	if errors.Is(err, ErrTransactionalIDNotFound) {
		return ErrInvalidProducerIDMapping
	}
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if err := checkProducer(e.known(), pid, epoch); err != nil {
		return err
	}
	_, ok := e.m.Groups[group]
	if !ok && c.cfg.GroupPartition != nil {
		// Groups are not persisted; the group's partition is (a restart
		// while the transaction is open).
		_, ok = e.m.Partitions[c.cfg.GroupPartition(group)]
	}
	if !ok || e.m.State != Ongoing {
		return ErrInvalidTxnState
	}
	return write()
}

// EndTxn commits or aborts the producer's transaction: PrepareCommit or
// PrepareAbort (durable), markers on every partition (those of the groups'
// offsets included), then CompleteCommit or CompleteAbort, all before it
// returns. tv2 (EndTxn v5+, KIP-890 part 2): the epoch is bumped (a new
// producer id when it is exhausted), the markers carry the new one, and
// aborting with nothing open is allowed. It returns the producer id and
// epoch the producer continues with.
func (c *Coordinator) EndTxn(ctx context.Context, id string, pid int64, epoch int16, commit, tv2 bool) (int64, int16, error) {
	e, err := c.lookup(id, false)
	if errors.Is(err, ErrTransactionalIDNotFound) {
		return -1, -1, ErrInvalidProducerIDMapping
	}
	if err != nil {
		return -1, -1, err
	}
	defer e.mu.Unlock()
	act, err := planEnd(e.known(), pid, epoch, commit, tv2)
	if err != nil {
		return -1, -1, err
	}
	if act != endNothing {
		now := c.cfg.Now()
		n := prepared(e.m, commit, now)
		if tv2 {
			next := int64(-1)
			if epochExhausted(&e.m) {
				if next, err = c.cfg.ProducerIDs.Next(ctx); err != nil {
					return -1, -1, err
				}
			}
			n = preparedV2(e.m, commit, next, now)
		}
		if act == endEmptyAbort {
			// Nothing was written: no partition needs a marker.
			n.Partitions = map[TopicPartition]struct{}{}
		}
		if err := c.endLocked(ctx, e, n); err != nil {
			return -1, -1, err
		}
	}
	return e.m.ProducerID, e.m.ProducerEpoch, nil
}

// entries snapshots the ids' entries, so a sweep locks each one without
// holding Coordinator.mu.
func (c *Coordinator) entries() []*entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	es := make([]*entry, 0, len(c.mu.ids))
	for _, e := range c.mu.ids {
		es = append(es, e)
	}
	return es
}

// RemoveExpired removes the transactional ids idle for longer than
// IDExpiration (a tombstone on __transaction_state), as Kafka's
// TransactionStateManager does; a later InitProducerId for one starts over
// with a new producer id.
func (c *Coordinator) RemoveExpired() {
	es := c.entries()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, e := range es {
		if !e.mu.TryLock() {
			continue // busy: not idle
		}
		if !e.gone && e.known() != nil && expired(&e.m, c.cfg.Now(), c.cfg.IDExpiration) {
			if err := c.removeLocked(ctx, e); err != nil {
				c.logger.Warn("remove expired transactional id failed", "txn_id", e.m.ID, "err", err)
			} else {
				c.logger.Info("removed expired transactional id", "txn_id", e.m.ID, "producer_id", e.m.ProducerID)
			}
		}
		e.mu.Unlock()
	}
}

// removeLocked writes e's tombstone durably and forgets it. e is locked.
func (c *Coordinator) removeLocked(ctx context.Context, e *entry) error {
	part := c.cfg.Partition(Topic, e.partition)
	if part == nil {
		return ErrNotCoordinator
	}
	next, err := part.AppendKeyValues(c.cfg.Now(), replica.KeyValue{Key: encodeKey(e.m.ID)})
	if err != nil {
		return err
	}
	if err := waitReplicated(ctx, part, next); err != nil {
		return err
	}
	e.gone = true
	c.mu.Lock()
	if c.mu.ids[e.m.ID] == e {
		delete(c.mu.ids, e.m.ID)
	}
	c.mu.Unlock()
	return nil
}

// AbortTimedOut aborts every open transaction older than its timeout,
// bumping the epoch so that its producer is fenced (as Kafka does).
func (c *Coordinator) AbortTimedOut() {
	es := c.entries()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, e := range es {
		if !e.mu.TryLock() {
			continue // busy: a request is on it; next round
		}
		now := c.cfg.Now()
		if !e.gone && e.known() != nil && timedOut(&e.m, now) {
			c.logger.Info("aborting timed-out transaction", "transactional_id", e.m.ID,
				"producer_id", e.m.ProducerID, "epoch", e.m.ProducerEpoch)
			if err := c.endLocked(ctx, e, fenced(e.m, now)); err != nil {
				c.logger.Warn("abort timed-out transaction failed", "transactional_id", e.m.ID, "err", err)
			}
		}
		e.mu.Unlock()
	}
}

// Describe returns the metadata of a transactional id.
func (c *Coordinator) Describe(id string) (Metadata, error) {
	e, err := c.lookup(id, false)
	if err != nil {
		return Metadata{}, err
	}
	defer e.mu.Unlock()
	if e.known() == nil {
		return Metadata{}, ErrTransactionalIDNotFound
	}
	return e.m.clone(), nil
}

// List returns the transactional ids coordinated here, filtered by states
// and producer ids (empty filter: all), sorted by id.
func (c *Coordinator) List(states []State, pids []int64) []Metadata {
	es := c.entries()
	var out []Metadata
	for _, e := range es {
		e.mu.Lock()
		m, ok := e.m.clone(), e.known() != nil && !e.gone
		e.mu.Unlock()
		if !ok || (len(states) > 0 && !contains(states, m.State)) || (len(pids) > 0 && !contains(pids, m.ProducerID)) {
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
