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
	"github.com/gregor-dev/gregor/internal/statelog"
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
	// Partition returns a data partition this node leads (for markers), or
	// nil.
	Partition func(topic string, partition int32) *replica.Partition
	// Log returns the Log of the __transaction_state partition when this
	// node leads it, else nil. nil: statelog.NewReplica of
	// Partition(Topic, partition).
	Log func(partition int32) statelog.Log
	// Leads reports whether the metadata names this node the partition's
	// leader (statelog.OwnerConfig.Leads); nil: never.
	Leads func(partition int32) bool
	// GroupPartition is the __consumer_offsets partition of a consumer
	// group: AddOffsetsToTxn adds it to the transaction, as Kafka does, so
	// that the transaction's markers reach the group's transactional
	// offsets. nil: a group adds no partition.
	GroupPartition func(group string) TopicPartition
	// WriteMarkers writes a transaction's end markers on its partitions,
	// wherever they are led (markers.go). nil: only the partitions
	// Partition returns get theirs, followed by MarkerWritten.
	WriteMarkers MarkerWriter
	// MarkerWritten is called, without WriteMarkers, once a marker is
	// durable on a partition of the transaction, before Complete* is
	// logged: the group coordinator applies the markers written to __consumer_offsets (Kafka's
	// onTransactionCompleted). A crash before the call loses nothing: the
	// marker is in the log, which the group coordinator replays. nil: none.
	MarkerWritten func(ctx context.Context, tp TopicPartition, pid int64, commit bool) error
	Logger        *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Coordinator is the transaction coordinator of one node.
type Coordinator struct {
	cfg    Config
	logger *slog.Logger
	stopc  chan struct{}
	// ctx ends at Close: background completions stop waiting.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	markers markerState // transactions left prepared (markers.go)

	// owner loads a partition's ids when this node becomes its leader
	// and unloads them when leadership moves.
	owner *statelog.Owner
	mu    struct {
		sync.Mutex
		ids map[string]*entry
		// active holds the Log of each loaded partition: an entry is
		// made only in a partition found here, under mu.
		active map[int32]statelog.Log
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
	if cfg.Log == nil {
		part := cfg.Partition
		cfg.Log = func(p int32) statelog.Log {
			if r := statelog.NewReplica(part(Topic, p)); r != nil {
				return r
			}
			return nil
		}
	}
	if cfg.MarkerWritten == nil {
		cfg.MarkerWritten = func(context.Context, TopicPartition, int64, bool) error { return nil }
	}
	c := &Coordinator{cfg: cfg, logger: cfg.Logger.With("component", "txn"), stopc: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.ids = map[string]*entry{}
	c.mu.active = map[int32]statelog.Log{}
	c.owner = statelog.NewOwner(statelog.OwnerConfig{Name: "txn", Partitions: cfg.NumPartitions, Log: cfg.Log, Leads: cfg.Leads,
		Load: c.load, Unload: c.unload, Logger: c.logger})
	return c
}

// NumPartitions is the partition count of __transaction_state.
func (c *Coordinator) NumPartitions() int32 { return c.cfg.NumPartitions }

// PartitionFor is the __transaction_state partition owning id.
func (c *Coordinator) PartitionFor(id string) int32 {
	return metadata.PartitionFor(id, c.cfg.NumPartitions)
}

// Start loads the partitions this node leads and follows leadership from
// then on (LeadershipChanged); it aborts timed-out transactions every
// AbortInterval and removes expired transactional ids every RemoveInterval,
// until Close.
func (c *Coordinator) Start() {
	c.owner.Start()
	c.every(c.cfg.AbortInterval, c.AbortTimedOut)
	c.every(c.cfg.RemoveInterval, c.RemoveExpired)
	c.every(markerRetryInterval, c.completeStuck)
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

// Close stops the background work and unloads every partition; requests
// in flight finish.
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

// Serving reports whether this node has loaded __transaction_state
// partition p and serves it.
func (c *Coordinator) Serving(p int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.active[p] != nil
}

// LeadershipChanged tells the coordinator that the leaders of
// __transaction_state may have changed (after a metadata change): it loads
// the partitions this node now leads and unloads the others, in the
// background. It never blocks.
func (c *Coordinator) LeadershipChanged() { c.owner.Update() }

// load replays partition p into entries and makes them serve (the owner's
// Load); transactions a crash or a leader change left prepared are then
// finished in the background: the decision is durable, so their markers
// are written again and they complete.
func (c *Coordinator) load(ctx context.Context, p int32, l statelog.Log) error {
	ms, err := c.replay(p, l)
	if err != nil {
		return err
	}
	pending := 0
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return ErrNotCoordinator
	}
	for _, m := range ms {
		if old := c.mu.ids[m.ID]; old != nil {
			old.stop() // cannot happen: an unload removed it
		}
		e := newEntry(p, l, *m)
		c.mu.ids[m.ID] = e
		var first func()
		if m.State == PrepareCommit || m.State == PrepareAbort {
			// Completed by the actor before any request: requests on
			// the id wait for the end of its transaction.
			pending++
			first = func() { c.finishLoaded(e) }
		}
		c.wg.Go(func() { e.run(first) })
	}
	c.mu.active[p] = l
	c.mu.Unlock()
	c.logger.Info("loaded transactional ids", "partition", p, "ids", len(ms), "completing", pending,
		"epoch", l.Epoch())
	return nil
}

// finishLoaded completes a prepared transaction a load found (on its actor).
func (c *Coordinator) finishLoaded(e *entry) {
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	if err := c.finish(ctx, e); err != nil {
		c.logger.Warn("completing a loaded transaction failed", "transactional_id", e.m.ID, "err", err)
	}
}

// unload stops partition p's actors (the owner's Unload). It does not wait
// for what they are running: their writes fail, the Log being deposed, and
// Close waits for them.
func (c *Coordinator) unload(p int32) {
	c.mu.Lock()
	delete(c.mu.active, p)
	n := 0
	for id, e := range c.mu.ids {
		if e.partition == p {
			e.stop()
			delete(c.mu.ids, id)
			n++
		}
	}
	c.mu.Unlock()
	c.logger.Info("unloaded transactional ids", "partition", p, "ids", n)
}

func (c *Coordinator) replay(p int32, l statelog.Log) ([]*Metadata, error) {
	latest := map[string]*Metadata{}
	_, err := l.Scan(func(r statelog.Record) error {
		if r.Marker {
			return nil
		}
		id, m, err := decodeRecord(bytes.Clone(r.Key), bytes.Clone(r.Value))
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

// lookup returns id's actor, making one for an unpersisted id when create
// (its m.ProducerID is then -1).
func (c *Coordinator) lookup(id string, create bool) (*entry, error) {
	if id == "" {
		return nil, ErrTransactionalIDNotFound
	}
	p := c.PartitionFor(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, ErrNotCoordinator
	}
	l := c.mu.active[p]
	if l == nil {
		_, err := c.owner.Log(p)
		return nil, logErr(err)
	}
	e := c.mu.ids[id]
	if e == nil {
		if !create {
			return nil, ErrTransactionalIDNotFound
		}
		e = newEntry(p, l, Metadata{ID: id, ProducerID: -1, ProducerEpoch: -1,
			PreviousProducerID: -1, NextProducerID: -1})
		c.mu.ids[id] = e
		c.wg.Go(func() { e.run(nil) })
	}
	return e, nil
}

// known is e's metadata, nil when never persisted.
func (e *entry) known() *Metadata {
	if e.m.ProducerID < 0 {
		return nil
	}
	return &e.m
}

// persist writes m to the entry's partition, waits until it is committed
// (on disk on every in-sync replica) and makes it current.
func (c *Coordinator) persist(ctx context.Context, e *entry, m Metadata) error {
	if err := c.write(ctx, e, statelog.KeyValue{Key: encodeKey(m.ID), Value: encodeValue(m)}); err != nil {
		return err
	}
	e.m = m
	return nil
}

// write appends kv to the entry's partition and waits until it is
// committed.
func (c *Coordinator) write(ctx context.Context, e *entry, kv statelog.KeyValue) error {
	next, err := e.log.Append(statelog.Batch{Now: c.cfg.Now(), ProducerID: -1, ProducerEpoch: -1,
		Records: []statelog.KeyValue{kv}})
	if err != nil {
		return logErr(err)
	}
	return logErr(e.log.WaitCommitted(ctx, next))
}

// logErr maps a state log's errors as Kafka's transaction coordinator maps
// a failed append (TransactionStateManager.appendTransactionToLog): not the
// leader (or a failed disk, which moves leadership) is NOT_COORDINATOR, too
// few in-sync replicas or a timeout is COORDINATOR_NOT_AVAILABLE, a
// partition still loading is COORDINATOR_LOAD_IN_PROGRESS.
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

// finish completes a prepared transaction: markers on every partition
// (the __consumer_offsets partitions of its groups included, markers.go),
// then Complete*. A failure short of a fence leaves the transaction for
// completeStuck. It runs on e's actor.
func (c *Coordinator) finish(ctx context.Context, e *entry) error {
	m := e.m
	err := c.writeMarkers(ctx, m, e.log.Epoch(), func() bool { return c.leadsAt(e) })
	if err == nil {
		err = c.persist(ctx, e, completed(m, c.cfg.Now()))
	}
	if err != nil && !errors.Is(err, ErrMarkerFenced) && !errors.Is(err, ErrNotCoordinator) {
		c.noteStuck(e)
	}
	return err
}

// endLocked writes Prepare* (or, fencing, a bumped PrepareAbort), then
// finishes. It runs on e's actor.
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
	pid, epoch := int64(-1), int16(-1)
	err := c.with(ctx, id, true, func(e *entry) error {
		d, err := planInit(e.known(), timeout, c.cfg.MaxTimeout, reqPID, reqEpoch)
		if err != nil {
			return err
		}
		now := c.cfg.Now()
		if d.abortFirst {
			if err := c.endLocked(ctx, e, fenced(e.m, now)); err != nil {
				return err
			}
		}
		newPID := int64(-1)
		if d.newPID {
			if newPID, err = c.cfg.ProducerIDs.Next(ctx); err != nil {
				return err
			}
		}
		base := e.m
		if base.ProducerID < 0 {
			base = Metadata{ID: id}
		}
		if err := c.persist(ctx, e, bumped(base, newPID, timeout, now)); err != nil {
			return err
		}
		c.logger.Debug("init producer id", "transactional_id", id, "producer_id", e.m.ProducerID, "epoch", e.m.ProducerEpoch)
		pid, epoch = e.m.ProducerID, e.m.ProducerEpoch
		return nil
	})
	if err != nil {
		return -1, -1, err
	}
	return pid, epoch, nil
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

// withKnown is with for requests naming an existing id: an unknown one is
// ErrInvalidProducerIDMapping.
func (c *Coordinator) withKnown(ctx context.Context, id string, fn func(e *entry) error) error {
	err := c.with(ctx, id, false, fn)
	if errors.Is(err, ErrTransactionalIDNotFound) {
		return ErrInvalidProducerIDMapping
	}
	return err
}

// VerifyPartitions answers a verify_only AddPartitionsToTxn (KIP-890 part
// 1): the error for the whole transaction (a wrong producer, or an end in
// progress), else for each partition nil when it is in the ongoing
// transaction and ErrTransactionAbortable when it is not. It writes nothing.
func (c *Coordinator) VerifyPartitions(id string, pid int64, epoch int16, tps []TopicPartition) (map[TopicPartition]error, error) {
	var out map[TopicPartition]error
	err := c.withKnown(context.Background(), id, func(e *entry) error {
		if err := checkProducer(e.known(), pid, epoch); err != nil {
			return err
		}
		if s := e.m.State; s == PrepareCommit || s == PrepareAbort {
			return ErrConcurrentTransactions
		}
		out = make(map[TopicPartition]error, len(tps))
		for _, tp := range tps {
			out[tp] = ErrTransactionAbortable
			if _, ok := e.m.Partitions[tp]; ok && e.m.State == Ongoing {
				out[tp] = nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Coordinator) add(ctx context.Context, id string, pid int64, epoch int16, tps []TopicPartition, groups []string, tv2 bool) error {
	return c.withKnown(ctx, id, func(e *entry) error {
		n, changed, err := planAddPartitions(e.known(), pid, epoch, tps, groups, tv2, c.cfg.Now())
		if err != nil {
			return err
		}
		if !changed {
			e.m = n // groups only: memory
			return nil
		}
		return c.persist(ctx, e, n)
	})
}

// CheckOffsetCommit validates a TxnOffsetCommit's producer against the
// transaction: it must be current and its transaction must include group.
func (c *Coordinator) CheckOffsetCommit(id string, pid int64, epoch int16, group string) error {
	return c.CommitOffsets(id, pid, epoch, group, func() error { return nil })
}

// CommitOffsets is CheckOffsetCommit followed by write (the group
// coordinator's transactional write of the offsets) on the id's actor: the
// transaction cannot end between the check and the write, so offsets are
// never written after the transaction's marker, where they would wait for
// the producer's next transaction.
func (c *Coordinator) CommitOffsets(id string, pid int64, epoch int16, group string, write func() error) error {
	return c.withKnown(context.Background(), id, func(e *entry) error {
		if err := checkProducer(e.known(), pid, epoch); err != nil {
			return err
		}
		_, ok := e.m.Groups[group]
		if !ok && c.cfg.GroupPartition != nil {
			// Groups are not persisted; the group's partition is (a
			// restart while the transaction is open).
			_, ok = e.m.Partitions[c.cfg.GroupPartition(group)]
		}
		if !ok || e.m.State != Ongoing {
			return ErrInvalidTxnState
		}
		return write()
	})
}

// EndTxn commits or aborts the producer's transaction: PrepareCommit or
// PrepareAbort (durable), markers on every partition (those of the groups'
// offsets included), then CompleteCommit or CompleteAbort, all before it
// returns. tv2 (EndTxn v5+, KIP-890 part 2): the epoch is bumped (a new
// producer id when it is exhausted), the markers carry the new one, and
// aborting with nothing open is allowed. It returns the producer id and
// epoch the producer continues with.
func (c *Coordinator) EndTxn(ctx context.Context, id string, pid int64, epoch int16, commit, tv2 bool) (int64, int16, error) {
	outPID, outEpoch := int64(-1), int16(-1)
	err := c.withKnown(ctx, id, func(e *entry) error {
		act, err := planEnd(e.known(), pid, epoch, commit, tv2)
		if err != nil {
			return err
		}
		if act != endNothing {
			now := c.cfg.Now()
			n := prepared(e.m, commit, now)
			if tv2 {
				next := int64(-1)
				if epochExhausted(&e.m) {
					if next, err = c.cfg.ProducerIDs.Next(ctx); err != nil {
						return err
					}
				}
				n = preparedV2(e.m, commit, next, now)
			}
			if act == endEmptyAbort {
				// Nothing was written: no partition needs a marker.
				n.Partitions = map[TopicPartition]struct{}{}
			}
			if err := c.endLocked(ctx, e, n); err != nil {
				return err
			}
		}
		outPID, outEpoch = e.m.ProducerID, e.m.ProducerEpoch
		return nil
	})
	if err != nil {
		return -1, -1, err
	}
	return outPID, outEpoch, nil
}

// entries snapshots the ids' actors, so a sweep visits each one without
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
// with a new producer id. A busy id is not idle: it is skipped.
func (c *Coordinator) RemoveExpired() {
	es := c.entries()
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	for _, e := range es {
		e.tryDo(func() {
			if e.known() == nil || !expired(&e.m, c.cfg.Now(), c.cfg.IDExpiration) {
				return
			}
			if err := c.removeLocked(ctx, e); err != nil {
				c.logger.Warn("remove expired transactional id failed", "txn_id", e.m.ID, "err", err)
			} else {
				c.logger.Info("removed expired transactional id", "txn_id", e.m.ID, "producer_id", e.m.ProducerID)
			}
		})
	}
}

// removeLocked writes e's tombstone durably, forgets it and stops its
// actor. It runs on e's actor.
func (c *Coordinator) removeLocked(ctx context.Context, e *entry) error {
	if err := c.write(ctx, e, statelog.KeyValue{Key: encodeKey(e.m.ID)}); err != nil {
		return err
	}
	e.stop()
	c.mu.Lock()
	if c.mu.ids[e.m.ID] == e {
		delete(c.mu.ids, e.m.ID)
	}
	c.mu.Unlock()
	return nil
}

// AbortTimedOut aborts every open transaction older than its timeout,
// bumping the epoch so that its producer is fenced (as Kafka does). A busy
// id (a request on it) is left to the next round.
func (c *Coordinator) AbortTimedOut() {
	es := c.entries()
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	for _, e := range es {
		e.tryDo(func() {
			now := c.cfg.Now()
			if e.known() == nil || !timedOut(&e.m, now) {
				return
			}
			c.logger.Info("aborting timed-out transaction", "transactional_id", e.m.ID,
				"producer_id", e.m.ProducerID, "epoch", e.m.ProducerEpoch)
			if err := c.endLocked(ctx, e, fenced(e.m, now)); err != nil {
				c.logger.Warn("abort timed-out transaction failed", "transactional_id", e.m.ID, "err", err)
			}
		})
	}
}

// Describe returns the metadata of a transactional id.
func (c *Coordinator) Describe(id string) (Metadata, error) {
	var m Metadata
	err := c.with(context.Background(), id, false, func(e *entry) error {
		if e.known() == nil {
			return ErrTransactionalIDNotFound
		}
		m = e.m.clone()
		return nil
	})
	return m, err
}

// List returns the transactional ids coordinated here, filtered by states
// and producer ids (empty filter: all), sorted by id.
func (c *Coordinator) List(states []State, pids []int64) []Metadata {
	es := c.entries()
	var out []Metadata
	for _, e := range es {
		var m Metadata
		var ok bool
		if err := e.do(context.Background(), func() { m, ok = e.m.clone(), e.known() != nil }); err != nil || !ok {
			continue
		}
		if (len(states) > 0 && !contains(states, m.State)) || (len(pids) > 0 && !contains(pids, m.ProducerID)) {
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
