package replica

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/gregor-dev/gregor/internal/commitlog"
	"github.com/gregor-dev/gregor/internal/record"
)

// Replication, both sides of Kafka's ISR protocol for one partition.
//
// Leader: a follower's fetch offset is its log end offset, and the follower
// sends it only once everything below it is fsynced (the durability
// decision in ARCHITECTURE.md), so the high watermark, the smallest log end
// over the ISR, is "on disk on every ISR member". A follower of the ISR
// that has not fetched since this node became leader holds the high
// watermark where it is (it never moves back).
//
// Follower: the fetcher appends the leader's batches unchanged
// (AppendReplicated), fsyncs (Sync), then takes the leader's high watermark
// capped by its own durable log end (SetFollowerHighWatermark), and reports
// the new log end by its next fetch offset. A divergent tail after a leader
// change is cut with TruncateTo, which also rewinds producer state and the
// aborted-transaction index as recovery would rebuild them.

// becomeLeader installs this node's leadership from the metadata log: the
// leader epoch, the ISR and the replicas. Followers' log ends are forgotten
// on a new epoch (they must fetch from this leader to count).
func (p *Partition) becomeLeader(epoch, partitionEpoch int32, isr, replicas []int32) {
	p.mu.Lock()
	if p.follower.Load() {
		// A follower's log end is fsynced and was all it had to publish.
		p.mu.localEnd = p.log.LogEndOffset()
	}
	if p.follower.Load() || epoch != p.leaderEpoch.Load() || p.mu.followerLEO == nil {
		p.mu.followerLEO = make(map[int32]int64)
		// Every replica gets replica.lag.time.max.ms from the election to
		// fetch before it can leave the ISR (Kafka's leader election time).
		now := time.Now()
		p.mu.followerFetch = make(map[int32]followerFetch)
		for _, id := range replicas {
			p.mu.followerFetch[id] = followerFetch{caughtUp: now}
		}
	}
	// The new epoch starts at this log end (Kafka's makeLeader), so
	// EndOffsetForEpoch tells a returning old leader where its epoch ended
	// here and it truncates the tail this leader never had. A failure is
	// sticky in the log and refuses the appends that follow.
	if err := p.log.AssignEpoch(epoch); err != nil {
		p.logger.Error("assign leader epoch failed", "topic", p.Topic, "partition", p.Index, "epoch", epoch, "err", err)
	}
	if partitionEpoch != p.mu.pendingEpoch || epoch != p.leaderEpoch.Load() || p.follower.Load() {
		// The controller's decision on the pending change (or a later
		// one) is in this ISR.
		p.mu.pendingISR = nil
	}
	p.mu.partitionEpoch = partitionEpoch
	p.mu.isr = slices.Clone(isr)
	p.mu.replicas = slices.Clone(replicas)
	p.isrSize.Store(int32(len(isr)))
	if p.follower.Load() || !p.mu.leading {
		p.ledSince.Store(epoch)
	}
	p.mu.leading = true
	p.leaderEpoch.Store(epoch)
	p.leader.Store(p.nodeID)
	p.follower.Store(false)
	// An ISR that lost a lagging member may let the high watermark move.
	moved := p.advanceHighWatermarkLocked(p.replicatedEndLocked())
	p.mu.Unlock()
	if moved {
		p.notify()
	}
}

// becomeFollower makes the partition follow leader (-1: no leader now) at
// epoch. Parked acks=all produces are woken to answer NOT_LEADER.
func (p *Partition) becomeFollower(epoch, leader int32) {
	p.mu.Lock()
	changed := !p.follower.Load() || p.leaderEpoch.Load() != epoch || p.leader.Load() != leader
	p.leaderEpoch.Store(epoch)
	p.leader.Store(leader)
	p.follower.Store(true)
	p.mu.leading = false
	p.mu.isr, p.mu.replicas, p.mu.followerLEO, p.mu.followerFetch = nil, nil, nil, nil
	p.mu.pendingISR = nil
	p.mu.Unlock()
	if changed {
		p.notify()
	}
}

// IsLeader reports whether this node leads the partition.
func (p *Partition) IsLeader() bool { return !p.follower.Load() }

// LedSince is the leader epoch from which this node has led the partition
// without a break (a leader epoch bumped while it stays leader keeps it),
// or -1 while it follows: state read off the log while leading since then
// is still what the log holds.
func (p *Partition) LedSince() int32 {
	if p.follower.Load() {
		return -1
	}
	e := p.ledSince.Load()
	if p.follower.Load() {
		return -1
	}
	return e
}

// Leader is the node the partition follows, or this node when it leads.
func (p *Partition) Leader() int32 { return p.leader.Load() }

// LatestEpoch is the latest leader epoch in the log's epoch cache, or -1:
// a follower's last fetched epoch (Fetch v12+ divergence check).
func (p *Partition) LatestEpoch() int32 { return p.log.LatestEpoch() }

// replicatedEndLocked is the high watermark the ISR allows: localEnd capped
// by the log end of every other member of the maximal ISR (the ISR and the
// members a pending ISR change adds). An ISR follower not heard from yet
// allows nothing past the current high watermark.
func (p *Partition) replicatedEndLocked() int64 {
	hw := p.mu.localEnd
	for _, ids := range [2][]int32{p.mu.isr, p.mu.pendingISR} {
		for _, id := range ids {
			if id == p.nodeID {
				continue
			}
			leo, ok := p.mu.followerLEO[id]
			if !ok {
				return p.highWatermark.Load()
			}
			hw = min(hw, leo)
		}
	}
	return hw
}

// UpdateFollower records a follower's fetch at fetchOffset (its fsynced log
// end) and moves the high watermark when the ISR allows it; a move wakes
// parked acks=all produces and fetches. A node that is not a replica of
// the partition, or a partition this node does not lead, gets ErrNotLeader
// (NOT_LEADER_OR_FOLLOWER); an offset outside the log, ErrOffsetOutOfRange.
func (p *Partition) UpdateFollower(replicaID int32, fetchOffset int64) error {
	p.mu.Lock()
	if p.follower.Load() || p.mu.closed || !slices.Contains(p.mu.replicas, replicaID) || replicaID == p.nodeID {
		p.mu.Unlock()
		return ErrNotLeader
	}
	// An offset past the log end is not this log's: it must not count as
	// replicated (Kafka answers OFFSET_OUT_OF_RANGE and records nothing).
	leo := p.log.LogEndOffset()
	if fetchOffset > leo || fetchOffset < 0 {
		p.mu.Unlock()
		return ErrOffsetOutOfRange
	}
	p.mu.followerLEO[replicaID] = fetchOffset
	// Kafka's lastCaughtUpTime: a fetch reaching the log end catches up
	// now; one reaching the log end of the previous fetch caught up then.
	now := time.Now()
	ff := p.mu.followerFetch[replicaID]
	switch {
	case fetchOffset >= leo:
		ff.caughtUp = now
	case fetchOffset >= ff.lastFetchLEO && ff.lastFetch.After(ff.caughtUp):
		ff.caughtUp = ff.lastFetch
	}
	ff.lastFetch, ff.lastFetchLEO = now, leo
	p.mu.followerFetch[replicaID] = ff
	moved := p.advanceHighWatermarkLocked(p.replicatedEndLocked())
	p.mu.Unlock()
	if moved {
		p.notify()
	}
	return nil
}

// WaitReplicated returns once the high watermark reached offset: every ISR
// member has the records below it on disk. As Kafka's DelayedProduce, an
// ISR that shrank below min.insync.replicas by then fails the produce with
// ErrNotEnoughReplicasAfterAppend (the records stay). It fails with
// ErrNotLeader when leadership moves and ctx's error when ctx ends. A
// single replica returns at once: its high watermark moved when the append
// was published.
func (p *Partition) WaitReplicated(ctx context.Context, offset int64) error {
	return p.WaitReplicatedInEpoch(ctx, offset, -1)
}

// WaitReplicatedInEpoch is WaitReplicated for records appended as leader in
// leader epoch epoch (AppendResult.LeaderEpoch; -1: any): it fails with
// ErrNotLeader as soon as this node has stopped leading since that epoch,
// whatever the high watermark says. A later epoch of a leader that never
// stopped (a reassignment removing a replica bumps it) keeps its records at
// their offsets, and acknowledges them as Kafka does. A deposed leader's high watermark comes from
// the new leader and may pass offset before its own tail is truncated, and
// a deposed leader elected again has a high watermark over other records
// at the same offsets: neither says that this produce's records were
// replicated, so neither may acknowledge them (the producer retries on the
// leader, and idempotence answers a retry of a replicated batch from its
// producer state).
func (p *Partition) WaitReplicatedInEpoch(ctx context.Context, offset int64, epoch int32) error {
	return p.waitReplicated(ctx, offset, epoch, true)
}

// WaitHighWatermarkInEpoch is WaitReplicatedInEpoch for a reader of what
// was written: it waits for the high watermark alone. Too few in-sync
// replicas fail a write (as Kafka's DelayedProduce), never a read of what
// the in-sync replicas already hold.
func (p *Partition) WaitHighWatermarkInEpoch(ctx context.Context, offset int64, epoch int32) error {
	return p.waitReplicated(ctx, offset, epoch, false)
}

func (p *Partition) waitReplicated(ctx context.Context, offset int64, epoch int32, minISR bool) error {
	if err := p.replicatedTo(offset, epoch, minISR); err != errNotYet {
		return err
	}
	wake := make(chan struct{}, 1)
	p.AddWaiter(wake)
	defer p.RemoveWaiter(wake)
	for {
		if err := p.replicatedTo(offset, epoch, minISR); err != errNotYet {
			return err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var errNotYet = errors.New("replica: not replicated yet")

func (p *Partition) replicatedTo(offset int64, epoch int32, minISR bool) error {
	// Leadership first: the high watermark of a follower is another
	// leader's (see WaitReplicatedInEpoch).
	if p.follower.Load() || (epoch >= 0 && epoch < p.ledSince.Load()) {
		return ErrNotLeader
	}
	if p.gone.Load() {
		// No longer a replica at all (deleted: a reassignment moved it
		// away, or the topic went), or stopping: no high watermark will
		// come. The producer finds the partition's leader again.
		return ErrNotLeader
	}
	if p.dirOffline != nil {
		if err := p.dirOffline.Load(); err != nil {
			// The log directory went offline: followers are refused,
			// so the high watermark stays, and the node no longer
			// reconciles, so no new leader will come here either. As
			// Kafka's DelayedProduce on an offline partition:
			// KAFKA_STORAGE_ERROR.
			return *err
		}
	}
	if p.highWatermark.Load() < offset {
		return errNotYet
	}
	if minISR && int64(p.isrSize.Load()) < p.cfg.Load().MinInsyncReplicas {
		return ErrNotEnoughReplicasAfterAppend
	}
	return nil
}

// ReadRangeForFollower is ReadRange for a follower's fetch: up to the log
// end, not the high watermark, so that the high watermark can move.
func (p *Partition) ReadRangeForFollower(offset int64, maxBytes int) (commitlog.RangeResult, error) {
	return p.readRange(offset, maxBytes, p.log.LogEndOffset())
}

// AppendReplicated appends the leader's batches from a fetch response as
// they are (base offsets, leader epochs, timestamps), after checking each
// batch's CRC and that it starts at the log end; batches the log already
// has are skipped, and a truncated last batch (a fetch size limit) is left
// for the next fetch. Producer state and transactions follow the batches.
// It does not fsync: the fetcher calls Sync once per response. It returns
// the new log end offset.
func (p *Partition) AppendReplicated(records []byte) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.appendReplicatedLocked(records)
}

// AppendFetched is AppendReplicated for the answer to a fetch sent at pos:
// it appends nothing and fails with ErrStaleFetch unless the partition
// still follows the same leader in the same epoch from the same log end.
// An answer that crossed a leader change (the fetcher of the old leader
// still had a request in flight) or a truncation would otherwise put
// another leader's batches after this log's, where no epoch check finds
// them (Kafka's fetcher drops such answers the same way).
func (p *Partition) AppendFetched(pos FetchPosition, records []byte) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkPositionLocked(pos, true); err != nil {
		return p.log.LogEndOffset(), err
	}
	return p.appendReplicatedLocked(records)
}

func (p *Partition) appendReplicatedLocked(records []byte) (int64, error) {
	if p.mu.closed {
		return 0, ErrClosed
	}
	if !p.follower.Load() {
		return 0, ErrNotFollower
	}
	aborts := false
	s := record.Split(records)
	for b, ok := s.Next(); ok; b, ok = s.Next() {
		h, err := record.Validate(b)
		if err != nil {
			return p.log.LogEndOffset(), err
		}
		if h.LastOffset() < p.log.LogEndOffset() {
			continue
		}
		if _, err := p.log.AppendReplicated(b); err != nil {
			return p.log.LogEndOffset(), err
		}
		if p.replayBatchLocked(b, h) {
			aborts = true
		}
	}
	if aborts {
		if err := p.rewriteTxnIndexLocked(); err != nil {
			p.logger.Error("aborted transaction index write failed; it is rebuilt at the next start",
				"topic", p.Topic, "partition", p.Index, "err", err)
			p.fs.Remove(p.txnIndexPath())
		}
	}
	p.updateFirstUnstableLocked()
	p.maybeSnapshotLocked()
	return p.log.LogEndOffset(), nil
}

// Sync fsyncs the log (group commit with any other fsync in flight).
func (p *Partition) Sync() error { return p.log.Sync() }

// DurableOffset is the first offset not known to be fsynced.
func (p *Partition) DurableOffset() int64 { return p.log.DurableOffset() }

// SetFollowerHighWatermark takes the leader's high watermark from a fetch
// response, capped by this follower's durable log end. It never moves back.
func (p *Partition) SetFollowerHighWatermark(leaderHW int64) {
	p.setFollowerHighWatermark(nil, leaderHW)
}

// SetFetchedHighWatermark is SetFollowerHighWatermark for the answer to a
// fetch sent at pos: ignored unless the partition still follows the same
// leader in the same epoch (another leader's high watermark says nothing
// about this log).
func (p *Partition) SetFetchedHighWatermark(pos FetchPosition, leaderHW int64) {
	p.setFollowerHighWatermark(&pos, leaderHW)
}

func (p *Partition) setFollowerHighWatermark(pos *FetchPosition, leaderHW int64) {
	p.mu.Lock()
	moved := false
	if p.follower.Load() && !p.mu.closed && (pos == nil || p.checkPositionLocked(*pos, false) == nil) {
		moved = p.advanceHighWatermarkLocked(min(leaderHW, p.log.DurableOffset()))
	}
	p.mu.Unlock()
	if moved {
		p.notify()
	}
}

// TruncateTo cuts a follower's divergent tail: every batch holding offsets
// at or past off goes (a batch straddling off goes whole). The high
// watermark is capped at the new log end, and producer state, open
// transactions and the aborted-transaction index are rebuilt as recovery
// rebuilds them (snapshot at or below the new end, then a log replay).
func (p *Partition) TruncateTo(off int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.truncateToLocked(off)
}

func (p *Partition) truncateToLocked(off int64) error {
	if p.mu.closed {
		return ErrClosed
	}
	if off >= p.log.LogEndOffset() {
		// Nothing to cut but the epoch cache's entries at the log end.
		return p.log.TruncateTo(off)
	}
	if err := p.log.TruncateTo(off); err != nil {
		return err
	}
	leo := p.log.LogEndOffset()
	if p.highWatermark.Load() > leo {
		p.highWatermark.Store(leo)
	}
	p.mu.localEnd = min(p.mu.localEnd, leo)
	p.txnMu.Lock()
	i := sort.Search(len(p.aborted), func(i int) bool { return p.aborted[i].LastOffset >= leo })
	cut := i < len(p.aborted)
	p.aborted = p.aborted[:i:i]
	p.txnMu.Unlock()
	if cut {
		if err := p.rewriteTxnIndexLocked(); err != nil {
			p.fs.Remove(p.txnIndexPath())
		}
	}
	p.mu.producers = make(producerStates)
	p.mu.ended = nil
	clear(p.mu.guards)
	if err := p.loadProducerState(); err != nil {
		return err
	}
	p.updateFirstUnstableLocked()
	p.mu.snapshotSegment = p.log.NumSegments()
	p.logger.Info("truncated divergent log tail", "topic", p.Topic, "partition", p.Index, "log_end_offset", leo)
	return nil
}

// FetchPosition is where a follower's fetch of one partition starts: the
// leader and leader epoch it follows, its log end offset (fsynced: the
// leader counts it as replicated) and the latest epoch of its epoch cache
// (Fetch v12 last_fetched_epoch, as Kafka's follower sends it). The answer to the fetch is applied only while
// the partition is still at this position.
type FetchPosition struct {
	Leader           int32
	LeaderEpoch      int32
	FetchOffset      int64
	LastFetchedEpoch int32
}

// ErrStaleFetch: a fetch answer reached a partition that has since changed
// leader, leader epoch or log end; it is dropped and the fetch sent again.
var ErrStaleFetch = errors.New("replica: fetch answer for an older leader, leader epoch or log end")

// FollowerPosition returns where the next fetch of this follower starts,
// or ErrNotFollower when the partition has no other leader to follow. The
// fetch offset is the log end, fsynced first if it is not yet: a deposed
// leader's tail appended but not fsynced when it was deposed would
// otherwise sit between its fetch offset (the durable end) and its log
// end, where the new leader's divergence check (which compares the fetch
// offset) never looks, and the batches the new leader sends for those
// offsets would be skipped as already present. So the fetch offset and the
// log end are the same offset, and the check covers every batch.
func (p *Partition) FollowerPosition() (FetchPosition, error) {
	if p.log.DurableOffset() < p.log.LogEndOffset() {
		if err := p.log.Sync(); err != nil {
			return FetchPosition{}, err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return FetchPosition{}, ErrClosed
	}
	if !p.follower.Load() || p.leader.Load() < 0 {
		return FetchPosition{}, ErrNotFollower
	}
	leo := p.log.LogEndOffset()
	if p.log.DurableOffset() < leo {
		// An append raced with the fsync above: fetch again next round.
		return FetchPosition{}, ErrStaleFetch
	}
	return FetchPosition{Leader: p.leader.Load(), LeaderEpoch: p.leaderEpoch.Load(), FetchOffset: leo,
		LastFetchedEpoch: p.log.LatestEpoch()}, nil
}

// checkPositionLocked fails with ErrStaleFetch unless the partition still
// follows pos's leader in pos's epoch (and, with atEnd, its log still ends
// at pos's fetch offset).
func (p *Partition) checkPositionLocked(pos FetchPosition, atEnd bool) error {
	if p.mu.closed {
		return ErrClosed
	}
	if !p.follower.Load() || p.leader.Load() != pos.Leader || p.leaderEpoch.Load() != pos.LeaderEpoch {
		return ErrStaleFetch
	}
	if atEnd && p.log.LogEndOffset() != pos.FetchOffset {
		return ErrStaleFetch
	}
	return nil
}

// TruncateFetched is TruncateTo for a diverging epoch answered to a fetch
// sent at pos: it cuts the log where it diverges from the leader's
// (Kafka's getOffsetTruncationState): the leader's end offset for the
// diverging epoch, capped by this log's own end for that epoch; without a
// usable answer (epoch or end offset -1), at the high watermark. It fails
// with ErrStaleFetch when the partition has moved on from pos.
func (p *Partition) TruncateFetched(pos FetchPosition, epoch int32, leaderEnd int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkPositionLocked(pos, true); err != nil {
		return err
	}
	off := p.highWatermark.Load()
	if epoch >= 0 && leaderEnd >= 0 {
		_, localEnd := p.log.EndOffsetForEpoch(epoch)
		if localEnd < 0 {
			localEnd = off
		}
		off = min(leaderEnd, localEnd)
	}
	return p.truncateToLocked(off)
}

// followerFetch is what the leader remembers of a follower's fetches.
type followerFetch struct {
	caughtUp     time.Time // last time it had everything the leader had
	lastFetch    time.Time
	lastFetchLEO int64 // the leader's log end at lastFetch
}

// ISRProposal is an ISR change this leader wants the controller to make.
type ISRProposal struct {
	TopicID        [16]byte
	Topic          string
	Partition      int32
	LeaderEpoch    int32
	PartitionEpoch int32
	ISR            []int32
}

// expandFetchWindow is how recently a replica outside the ISR must have
// fetched to be proposed back in. Kafka expands an ISR only while it
// handles that follower's fetch (maybeExpandIsr), so a follower that
// stopped fetching (killed, cut off, stopped) is never proposed. Here the
// proposal is made on a timer, from what the follower's fetches left
// behind; without this bound a dead follower that had caught up stayed a
// candidate for lagMax, and each proposal counted it in the high watermark
// while it was out (pendingISR), stalling acks=all writes on a node that
// would never fetch again. A live follower long-polls at most
// replica.fetch.wait.max.ms (500 ms by default) between fetches.
const expandFetchWindow = 2 * time.Second

// ProposeISR computes the ISR this leader wants (Kafka's
// maybeShrinkIsr/maybeExpandIsr): ISR followers that have not caught up
// within lagMax (replica.lag.time.max.ms) leave; replicas outside the ISR
// join when their log end reached the high watermark, they caught up
// within lagMax, they fetched within expandFetchWindow, and eligible (nil:
// all are) says they may: KIP-841, a fenced broker or one in controlled
// shutdown is not added. Members a pending change adds count as members
// (see ISRProposalSent). ok is false when the ISR is right as it is or
// this node does not lead the partition.
func (p *Partition) ProposeISR(now time.Time, lagMax time.Duration, eligible func(id int32) bool) (ISRProposal, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.follower.Load() || p.mu.closed || p.mu.followerFetch == nil {
		return ISRProposal{}, false
	}
	hw := p.highWatermark.Load()
	var isr []int32
	for _, id := range p.mu.replicas {
		inSync := id == p.nodeID
		if !inSync {
			ff := p.mu.followerFetch[id]
			recent := now.Sub(ff.caughtUp) <= lagMax
			if slices.Contains(p.mu.isr, id) || slices.Contains(p.mu.pendingISR, id) {
				inSync = recent
			} else {
				leo, fetched := p.mu.followerLEO[id]
				inSync = recent && fetched && leo >= hw && now.Sub(ff.lastFetch) <= expandFetchWindow &&
					(eligible == nil || eligible(id))
			}
		}
		if inSync {
			isr = append(isr, id)
		}
	}
	// Against the maximal ISR: a pending member that fell behind is
	// proposed out again, and the answer settles it.
	maximal := slices.Concat(p.mu.isr, p.mu.pendingISR)
	same := len(isr) == len(maximal)
	for _, id := range isr {
		same = same && slices.Contains(maximal, id)
	}
	// An expansion still pending was never answered (the request or its
	// answer was lost, the controller moved): it is proposed again, or the
	// committed ISR would stay short of its caught-up members, below
	// min.insync.replicas, for as long as this node leads.
	if same && len(p.mu.pendingISR) == 0 {
		return ISRProposal{}, false
	}
	return ISRProposal{TopicID: p.TopicID, Topic: p.Topic, Partition: p.Index, LeaderEpoch: p.leaderEpoch.Load(),
		PartitionEpoch: p.mu.partitionEpoch, ISR: isr}, true
}

// ISRProposalSent records that prop is being sent to the controller: the
// members it adds count for the high watermark from now on (see
// pendingISR). The controller may commit it and elect an added member
// while this leader, cut off, still has the old ISR; a high watermark over
// the old ISR alone would then acknowledge records the new leader never
// had (the chaos soak's bug 8). A proposal for another epoch is ignored.
func (p *Partition) ISRProposalSent(prop ISRProposal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.follower.Load() || p.mu.closed || prop.LeaderEpoch != p.leaderEpoch.Load() || prop.PartitionEpoch != p.mu.partitionEpoch {
		return
	}
	if p.mu.pendingEpoch != prop.PartitionEpoch {
		p.mu.pendingISR = nil
	}
	p.mu.pendingEpoch = prop.PartitionEpoch
	for _, id := range prop.ISR {
		if !slices.Contains(p.mu.isr, id) && !slices.Contains(p.mu.pendingISR, id) {
			p.mu.pendingISR = append(p.mu.pendingISR, id)
		}
	}
}

// ISRProposalAnswered settles the pending members of prop once the
// controller answered it at its partition epoch: accepted (the
// controller's ISR is now prop.ISR, committed or already so) leaves
// pending only the members prop adds; refused for a reason that shows the
// ISR was left as it is (INELIGIBLE_REPLICA, INVALID_REQUEST) leaves none.
// Other answers (a stale partition epoch, a lost leadership) settle
// nothing: the metadata log will bring the controller's ISR.
func (p *Partition) ISRProposalAnswered(prop ISRProposal, accepted bool) {
	p.mu.Lock()
	if p.follower.Load() || p.mu.closed || prop.LeaderEpoch != p.leaderEpoch.Load() ||
		prop.PartitionEpoch != p.mu.partitionEpoch || prop.PartitionEpoch != p.mu.pendingEpoch {
		p.mu.Unlock()
		return
	}
	var pending []int32
	if accepted {
		for _, id := range prop.ISR {
			if !slices.Contains(p.mu.isr, id) {
				pending = append(pending, id)
			}
		}
	}
	p.mu.pendingISR = pending
	moved := p.advanceHighWatermarkLocked(p.replicatedEndLocked())
	p.mu.Unlock()
	if moved {
		p.notify()
	}
}
