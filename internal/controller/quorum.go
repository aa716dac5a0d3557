package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// The quorum's membership (KIP-853 in Kafka's terms): voters, and observers
// (broker-only nodes that follow the metadata log as Raft non-voters). The
// Raft configuration is the truth; every Raft server's address is also its
// controller listener, so it tells a broker where each controller listens.

// Errors of quorum changes.
var (
	ErrDuplicateVoter = errors.New("controller: already a voter")
	ErrVoterNotFound  = errors.New("controller: not a voter")
	ErrNotObserver    = errors.New("controller: not an observer")
	ErrUnreachable    = errors.New("controller: new voter unreachable")
)

// reachTimeout bounds the check that a new voter listens.
const reachTimeout = 3 * time.Second

// membershipTimeout bounds a Raft configuration change: it commits once
// the new configuration's majority has it.
const membershipTimeout = 30 * time.Second

// Server is one member of the Raft configuration.
type Server struct {
	ID    int32
	Addr  string // controller listener (Raft and Kafka)
	Voter bool
}

// Servers returns the latest Raft configuration this node knows, voters
// first, each in id order.
func (c *Controller) Servers() ([]Server, error) {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, mapRaftErr(err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		id, err := strconv.ParseInt(string(s.ID), 10, 32)
		if err != nil {
			continue
		}
		out = append(out, Server{ID: int32(id), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	slices.SortFunc(out, func(a, b Server) int {
		if a.Voter != b.Voter {
			if a.Voter {
				return -1
			}
			return 1
		}
		return int(a.ID - b.ID)
	})
	return out, nil
}

// ServerAddr returns the controller listener of Raft server id.
func (c *Controller) ServerAddr(id int32) (string, bool) {
	servers, err := c.Servers()
	if err != nil {
		return "", false
	}
	for _, s := range servers {
		if s.ID == id {
			return s.Addr, true
		}
	}
	return "", false
}

// AddObserver makes node id, a broker-only node whose Raft listener is addr,
// a non-voting member, so that it receives the metadata log. It does
// nothing for a voter or an observer already known at addr.
func (c *Controller) AddObserver(ctx context.Context, id int32, addr string) error {
	return c.changeServers(ctx, func(servers []raft.Server) (raft.IndexFuture, error) {
		for _, s := range servers {
			if s.ID != serverID(id) {
				continue
			}
			if s.Suffrage == raft.Voter {
				return nil, fmt.Errorf("%w: node %d is a voter, it cannot also be a broker-only observer", ErrDuplicateVoter, id)
			}
			if s.Address == raft.ServerAddress(addr) {
				return nil, nil
			}
		}
		return c.raft.AddNonvoter(serverID(id), raft.ServerAddress(addr), 0, membershipTimeout), nil
	})
}

// AddVoter adds node id, whose controller listener is addr, to the voters
// (KIP-853 AddRaftVoter). The node must be running and must not be in the
// quorum yet (a broker-only observer cannot become a voter: it has no
// controller role).
func (c *Controller) AddVoter(ctx context.Context, id int32, addr string) error {
	return c.changeServers(ctx, func(servers []raft.Server) (raft.IndexFuture, error) {
		for _, s := range servers {
			if s.ID == serverID(id) {
				if s.Suffrage == raft.Voter {
					return nil, fmt.Errorf("%w: node %d", ErrDuplicateVoter, id)
				}
				return nil, fmt.Errorf("%w: node %d is a broker-only observer", ErrDuplicateVoter, id)
			}
		}
		// hashicorp/raft counts a new voter at once; one that is not
		// running (a mistyped address, a node not started) would leave the
		// quorum one failure closer to a stall, so it is refused.
		nc, err := c.mux.Dial(raft.ServerAddress(addr), reachTimeout)
		if err != nil {
			return nil, fmt.Errorf("%w: node %d at %s: %v", ErrUnreachable, id, addr, err)
		}
		nc.Close()
		return c.raft.AddVoter(serverID(id), raft.ServerAddress(addr), 0, membershipTimeout), nil
	})
}

// RemoveVoter removes voter id from the quorum (KIP-853 RemoveRaftVoter).
// Removing the active controller makes another voter take over.
func (c *Controller) RemoveVoter(ctx context.Context, id int32) error {
	return c.changeServers(ctx, func(servers []raft.Server) (raft.IndexFuture, error) {
		voters := 0
		found := false
		for _, s := range servers {
			if s.Suffrage == raft.Voter {
				voters++
				found = found || s.ID == serverID(id)
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: node %d", ErrVoterNotFound, id)
		}
		if voters == 1 {
			return nil, fmt.Errorf("%w: node %d is the last voter", ErrInvalidChange, id)
		}
		return c.raft.RemoveServer(serverID(id), 0, membershipTimeout), nil
	})
}

// RemoveObserver drops a broker-only node from the Raft configuration.
func (c *Controller) RemoveObserver(ctx context.Context, id int32) error {
	return c.changeServers(ctx, func(servers []raft.Server) (raft.IndexFuture, error) {
		for _, s := range servers {
			if s.ID == serverID(id) && s.Suffrage != raft.Voter {
				return c.raft.RemoveServer(serverID(id), 0, membershipTimeout), nil
			}
		}
		return nil, fmt.Errorf("%w: node %d", ErrNotObserver, id)
	})
}

// forgetObserver drops an unregistered broker-only node from the Raft
// configuration, so the leader stops replicating to it; if it is still
// running, its next registration adds it back.
func (c *Controller) forgetObserver(ctx context.Context, id int32) error {
	if err := c.RemoveObserver(ctx, id); err != nil && !errors.Is(err, ErrNotObserver) {
		return err
	}
	return nil
}

// changeServers runs one configuration change under the command lock, on
// the active controller. change returns nil for "nothing to do".
func (c *Controller) changeServers(ctx context.Context, change func([]raft.Server) (raft.IndexFuture, error)) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stopc:
		return ErrClosed
	}
	release := func() { <-c.sem }
	if c.raft.State() != raft.Leader {
		release()
		return ErrNotController
	}
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		release()
		return mapRaftErr(err)
	}
	f, err := change(cf.Configuration().Servers)
	if err != nil || f == nil {
		release()
		return err
	}
	abandoned, err := c.await(ctx, f, release)
	if !abandoned {
		release()
	}
	return mapRaftErr(err)
}

// ReplicaProgress is one member's position in the metadata log, as the
// active controller last saw it (DescribeQuorum's ReplicaState).
type ReplicaProgress struct {
	ID           int32
	Addr         string
	LogEndOffset int64     // -1: unknown
	LastFetch    time.Time // zero: unknown, or the leader itself
	LastCaughtUp time.Time // zero: unknown, or the leader itself
}

// QuorumState is the active controller's view of the quorum.
type QuorumState struct {
	LeaderID      int32
	LeaderEpoch   int32 // the Raft term
	HighWatermark int64 // the commit index
	Voters        []ReplicaProgress
	Observers     []ReplicaProgress
}

// Quorum describes the quorum. Only the active controller knows the
// followers' progress; elsewhere it fails with ErrNotController.
// Offsets are Raft indexes: the log end offset of a member is the index of
// its last entry, so the leader's is one past the offset of its last
// record, as in Kafka.
func (c *Controller) Quorum() (QuorumState, error) {
	if c.raft.State() != raft.Leader {
		return QuorumState{}, ErrNotController
	}
	servers, err := c.Servers()
	if err != nil {
		return QuorumState{}, err
	}
	q := QuorumState{LeaderID: c.cfg.NodeID, LeaderEpoch: int32(c.raft.CurrentTerm()), HighWatermark: int64(c.raft.CommitIndex())}
	last := int64(c.raft.LastIndex())
	for _, s := range servers {
		p := ReplicaProgress{ID: s.ID, Addr: s.Addr, LogEndOffset: -1}
		if s.ID == c.cfg.NodeID {
			p.LogEndOffset = last
		} else if pr, ok := c.progress.get(serverID(s.ID)); ok {
			p.LogEndOffset, p.LastFetch, p.LastCaughtUp = int64(pr.lastLog), pr.lastFetch, pr.lastCaughtUp
		}
		if s.Voter {
			q.Voters = append(q.Voters, p)
		} else {
			q.Observers = append(q.Observers, p)
		}
	}
	return q, nil
}

// progressTransport is the Raft transport with a record of every
// follower's log end, taken from its AppendEntries answers (hashicorp/raft
// keeps its own private). Pipelining is off so that every answer passes
// here; the metadata log is small and commits one command at a time.
//
// It also stands between the network and Raft for incoming RPCs
// (Consumer): a voter that rejoins with empty stores does not vote until
// it has caught up, and then only in later terms (voteFloor).
type progressTransport struct {
	*raft.NetworkTransport

	mu    sync.Mutex
	peers map[raft.ServerID]peerProgress

	// voteFloor: vote requests (and pre-votes) for a term at or below it
	// are refused here, without reaching Raft. 0 for a voter that kept its
	// stores; see Config.Rejoin.
	voteFloor atomic.Uint64
	rpcs      chan raft.RPC
	// dropAppend is Config.dropAppend (tests only; nil otherwise).
	dropAppend func() bool
	// stopc closes when the controller closes: see AppendEntries.
	stopc <-chan struct{}
	// redialFor and redialEvery shape AppendEntries' retries; see there.
	redialFor, redialEvery time.Duration

	// applyMu guards the follower's side of a commit acknowledgement
	// (holdUntilApplied): the indexes of command entries received and not
	// yet applied, ascending, how far the image has applied, and a channel
	// closed (and replaced) whenever that moves.
	applyMu  sync.Mutex
	commands []uint64
	applied  uint64
	appliedc chan struct{}

	// hbMu guards the heartbeat fast path: Raft answers heartbeats on the
	// transport's connection goroutines, which its Shutdown does not wait
	// for, and one still in flight when Close closed the stores failed to
	// save the term it carried, which Raft turns into a panic ("failed to
	// save current term: controller: raft store closed", seen once in
	// internal/node's tests). quiesce waits for those in flight and
	// refuses the rest.
	hbMu     sync.RWMutex
	hbClosed bool
}

// SetHeartbeatHandler wraps the NetworkTransport's: Raft's heartbeat
// handler runs under hbMu until quiesce.
func (t *progressTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		t.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	t.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		t.hbMu.RLock()
		defer t.hbMu.RUnlock()
		if t.hbClosed {
			rpc.Respond(nil, raft.ErrTransportShutdown)
			return
		}
		cb(rpc)
	})
}

// quiesce waits for the heartbeats Raft is handling and refuses later
// ones; Close calls it after Raft's shutdown and before closing the stores.
func (t *progressTransport) quiesce() {
	t.hbMu.Lock()
	t.hbClosed = true
	t.hbMu.Unlock()
}

type peerProgress struct {
	lastLog      uint64
	lastFetch    time.Time
	lastCaughtUp time.Time
	// commit is the commit index the follower has been told and
	// acknowledged: it has queued every entry up to it for its image.
	commit uint64
}

var errAppendDropped = errors.New("controller: AppendEntries dropped (test)")

// redialFor bounds how long AppendEntries keeps retrying a follower that
// refuses connections, and redialEvery is the pause between tries.
const (
	redialFor   = 5 * time.Second
	redialEvery = 50 * time.Millisecond
)

func newProgressTransport(t *raft.NetworkTransport, stopc <-chan struct{}) *progressTransport {
	return &progressTransport{NetworkTransport: t, peers: map[raft.ServerID]peerProgress{}, rpcs: make(chan raft.RPC),
		stopc: stopc, redialFor: redialFor, redialEvery: redialEvery, appliedc: make(chan struct{})}
}

// Consumer implements raft.Transport: the RPCs that filterLoop passes.
func (t *progressTransport) Consumer() <-chan raft.RPC { return t.rpcs }

// filterLoop hands incoming RPCs to Raft, answering the vote requests that
// voteFloor refuses itself. It runs until stopc closes.
func (t *progressTransport) filterLoop(stopc <-chan struct{}) {
	in := t.NetworkTransport.Consumer()
	for {
		var rpc raft.RPC
		select {
		case rpc = <-in:
		case <-stopc:
			return
		}
		floor := t.voteFloor.Load()
		switch req := rpc.Command.(type) {
		case *raft.RequestVoteRequest:
			if req.Term <= floor {
				rpc.Respond(&raft.RequestVoteResponse{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}, Term: req.Term}, nil)
				continue
			}
		case *raft.RequestPreVoteRequest:
			if req.Term <= floor {
				rpc.Respond(&raft.RequestPreVoteResponse{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}, Term: req.Term}, nil)
				continue
			}
		case *raft.AppendEntriesRequest:
			if t.dropAppend != nil && t.dropAppend() {
				rpc.Respond(nil, errAppendDropped)
				continue
			}
			rpc = t.holdUntilApplied(rpc, req)
		}
		select {
		case t.rpcs <- rpc:
		case <-stopc:
			return
		}
	}
}

// AppendEntries implements raft.Transport and records the follower's log
// end: caught up when it reached the leader's last index as of the send.
//
// A replication request that fails fast (the follower's process is gone and
// its port refuses) is tried again every redialEvery for up to redialFor
// before the error reaches Raft. hashicorp/raft backs off a failing
// follower's replication exponentially up to 10.24 s, uncapped by any
// setting, and a follower learns the commit index only from replication
// (its heartbeats carry none): a voter killed for a few seconds therefore
// waited as long again on restart before its metadata caught up (2.2 s
// after 1 s down, 6.5 s after 6 s, and 9 s in a soak). Failing once per
// redialFor instead keeps Raft's failure count, and so its backoff, small
// for outages of tens of seconds, and the retries find the restarted
// follower within redialEvery. Heartbeats are left alone: Raft caps their
// backoff itself. Retrying is safe: Raft tolerates repeated messages.
func (t *progressTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	var want uint64
	if len(args.Entries) > 0 {
		want = args.Entries[len(args.Entries)-1].Index
	} else {
		want = args.PrevLogEntry
	}
	heartbeat := len(args.Entries) == 0 && args.PrevLogEntry == 0 && args.LeaderCommitIndex == 0
	start := time.Now()
	for {
		sent := time.Now()
		err := t.NetworkTransport.AppendEntries(id, target, args, resp)
		if err == nil && resp.Success {
			// A follower commits up to the leader's commit index or its
			// own log end, whichever is lower, and its filter holds the
			// answer until its image has applied them (holdUntilApplied).
			t.record(id, resp.LastLog, want, sent)
			t.recordCommit(id, min(args.LeaderCommitIndex, resp.LastLog))
		}
		if err == nil || heartbeat || time.Since(sent) > t.redialEvery || time.Since(start)+t.redialEvery > t.redialFor {
			return err
		}
		select {
		case <-time.After(t.redialEvery):
		case <-t.stopc:
			return err
		}
	}
}

// applyHold bounds how long a follower holds an AppendEntries answer for
// its image to apply what the answer acknowledges as committed.
const applyHold = 200 * time.Millisecond

// holdUntilApplied returns rpc with its answer held, once Raft gives it,
// until this node's image has applied every command entry up to the commit
// index the answer acknowledges (at most applyHold). hashicorp/raft answers
// once it has queued the committed entries for the FSM, which applies them
// on another goroutine: on a loaded machine a client told by the active
// controller that a topic change was done could still read the old image
// from this broker (seen in CI: CreatePartitions answered, one broker
// still listing 12 partitions of 15). Only command entries reach the FSM,
// so the wait is for the last of those at or below the commit, which the
// requests' entries tell.
func (t *progressTransport) holdUntilApplied(rpc raft.RPC, req *raft.AppendEntriesRequest) raft.RPC {
	if len(req.Entries) > 0 {
		first := req.Entries[0].Index
		t.applyMu.Lock()
		// The entries replace whatever the log held from first on.
		i, _ := slices.BinarySearch(t.commands, first)
		t.commands = t.commands[:i]
		for _, e := range req.Entries {
			if e.Type == raft.LogCommand && e.Index > t.applied {
				t.commands = append(t.commands, e.Index)
			}
		}
		t.applyMu.Unlock()
	}
	answer := rpc.RespChan
	held := make(chan raft.RPCResponse, 1)
	rpc.RespChan = held
	go func() {
		var r raft.RPCResponse
		select {
		case r = <-held:
		case <-t.stopc:
			return
		}
		if resp, ok := r.Response.(*raft.AppendEntriesResponse); ok && r.Error == nil && resp.Success {
			t.awaitApplied(min(req.LeaderCommitIndex, resp.LastLog))
		}
		answer <- r
	}()
	return rpc
}

// awaitApplied waits, at most applyHold, until the image has applied the
// last command entry at or below commit.
func (t *progressTransport) awaitApplied(commit uint64) {
	var timeout <-chan time.Time
	for {
		t.applyMu.Lock()
		i, found := slices.BinarySearch(t.commands, commit)
		if found {
			i++
		}
		done := i == 0 || t.commands[i-1] <= t.applied
		wake := t.appliedc
		t.applyMu.Unlock()
		if done {
			return
		}
		if timeout == nil {
			timeout = time.After(applyHold)
		}
		select {
		case <-wake:
		case <-timeout:
			return
		case <-t.stopc:
			return
		}
	}
}

// appliedTo records that the image has applied the log up to index; the
// FSM calls it for every entry it applies and every snapshot it restores.
func (t *progressTransport) appliedTo(index uint64) {
	t.applyMu.Lock()
	defer t.applyMu.Unlock()
	if index <= t.applied {
		return
	}
	t.applied = index
	i, found := slices.BinarySearch(t.commands, index)
	if found {
		i++
	}
	t.commands = t.commands[i:]
	close(t.appliedc)
	t.appliedc = make(chan struct{})
}

// appliedIndex is the index of the last entry the image applied.
func (t *progressTransport) appliedIndex() uint64 {
	t.applyMu.Lock()
	defer t.applyMu.Unlock()
	return t.applied
}

// restored records that the image was replaced by a snapshot's, which
// holds every command entry up to its index: none is waited for.
func (t *progressTransport) restored(lastOffset uint64) {
	t.applyMu.Lock()
	defer t.applyMu.Unlock()
	t.commands = nil
	t.applied = max(t.applied, lastOffset)
	close(t.appliedc)
	t.appliedc = make(chan struct{})
}

// AppendEntriesPipeline implements raft.Transport: no pipelining, so every
// answer is seen by AppendEntries.
func (t *progressTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// InstallSnapshot implements raft.Transport: a follower that took a
// snapshot ends at its last index.
func (t *progressTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	sent := time.Now()
	err := t.NetworkTransport.InstallSnapshot(id, target, args, resp, data)
	if err == nil && resp.Success {
		t.record(id, args.LastLogIndex, args.LastLogIndex, sent)
	}
	return err
}

func (t *progressTransport) record(id raft.ServerID, lastLog, sentUpTo uint64, sent time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[id]
	p.lastLog = lastLog
	p.lastFetch = time.Now()
	if lastLog >= sentUpTo {
		p.lastCaughtUp = sent
	}
	t.peers[id] = p
}

func (t *progressTransport) recordCommit(id raft.ServerID, commit uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[id]
	p.commit = max(p.commit, commit)
	t.peers[id] = p
}

// lagging reports whether a follower that answered since liveSince has
// not acknowledged a commit index of at least index.
func (t *progressTransport) lagging(index uint64, liveSince time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.peers {
		if p.lastFetch.After(liveSince) && p.commit < index {
			return true
		}
	}
	return false
}

func (t *progressTransport) get(id raft.ServerID) (peerProgress, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.peers[id]
	return p, ok
}
