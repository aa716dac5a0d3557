package controller

import (
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/gregor-dev/gregor/internal/testkit"
)

// requestVote sends one RequestVote to addr as candidate id at candAddr, with
// a log newer than anything the voter has.
func requestVote(t *testing.T, addr string, id int32, candAddr string, term uint64) bool {
	t.Helper()
	m, err := newMuxListener("127.0.0.1:0", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := raft.NewNetworkTransport(m, 1, 5*time.Second, io.Discard)
	defer tr.Close()
	req := &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(serverID(id)), Addr: []byte(candAddr)},
		Term:      term, LastLogIndex: 1000, LastLogTerm: term - 1,
	}
	var resp raft.RequestVoteResponse
	if err := tr.RequestVote(raft.ServerID("1"), raft.ServerAddress(addr), req, &resp); err != nil {
		t.Fatalf("request vote: %v", err)
	}
	return resp.Granted
}

// TestControllerRejoinDoesNotVote: a voter that starts with empty stores
// while its quorum runs (Config.Rejoin: possibly one that lost its disk and
// the votes it cast) refuses every vote until it has caught up; the same
// voter without Rejoin bootstraps and grants the vote, which is what could
// elect two leaders in one term.
func TestControllerRejoinDoesNotVote(t *testing.T) {
	for _, rejoin := range []bool{false, true} {
		// Voters 2 and 3 never start: the node cannot catch up.
		cfg := Config{NodeID: 1, Dir: t.TempDir(), Addr: "127.0.0.1:0", Rejoin: rejoin,
			Voters: []Voter{{1, "127.0.0.1:1"}, {2, "127.0.0.1:2"}, {3, "127.0.0.1:3"}}}
		c, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		granted := requestVote(t, c.Addr(), 2, "127.0.0.1:2", 7)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if granted == rejoin {
			t.Errorf("rejoin=%v: vote granted=%v", rejoin, granted)
		}
	}
}

// TestHeartbeatQuiesce: Close must not close the stores under a heartbeat
// Raft is still handling (it saves the heartbeat's term, and a failed save
// panics). quiesce waits for the one in flight and refuses later ones
// without calling Raft's handler.
func TestHeartbeatQuiesce(t *testing.T) {
	srv, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pt := newProgressTransport(srv, nil)
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	pt.SetHeartbeatHandler(func(rpc raft.RPC) {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		rpc.Respond(&raft.AppendEntriesResponse{Term: 5, Success: true}, nil)
	})
	cli, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	heartbeat := func() error {
		req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax,
			ID: []byte("1"), Addr: []byte(cli.LocalAddr())}, Term: 5}
		var resp raft.AppendEntriesResponse
		return cli.AppendEntries("2", srv.LocalAddr(), req, &resp)
	}
	first := make(chan error, 1)
	go func() { first <- heartbeat() }()
	<-entered
	quiesced := make(chan struct{})
	go func() { pt.quiesce(); close(quiesced) }()
	select {
	case <-quiesced:
		t.Fatal("quiesce returned while a heartbeat was being handled")
	case <-time.After(100 * time.Millisecond): // quiesce must still be waiting
	}
	close(release)
	<-quiesced
	if err := <-first; err != nil {
		t.Fatalf("the heartbeat in flight: %v", err)
	}
	if err := heartbeat(); err == nil {
		t.Fatal("a heartbeat after quiesce was answered")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("Raft's handler ran %d times, want 1 (none after quiesce)", n)
	}
}

// countingStream is a raft.StreamLayer over TCP that counts its dials.
type countingStream struct {
	net.Listener
	dials atomic.Int32
}

func (s *countingStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	s.dials.Add(1)
	return net.DialTimeout("tcp", string(addr), timeout)
}

// TestAppendEntriesRedialsRestartedFollower: a replication request to a
// follower whose port refuses is retried until the follower is back, so
// Raft never counts the failure (and never backs off for seconds); a
// heartbeat is not retried; closing the controller ends the retries.
func TestAppendEntriesRedialsRestartedFollower(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	leaderStream := &countingStream{Listener: ln}
	leader := raft.NewNetworkTransport(leaderStream, 2, 5*time.Second, io.Discard)
	defer leader.Close()
	stopc := make(chan struct{})
	pt := newProgressTransport(leader, stopc)
	pt.redialFor, pt.redialEvery = time.Minute, 10*time.Millisecond

	// The follower's address, refusing until the follower starts.
	follower := raft.ServerAddress(net.JoinHostPort("127.0.0.1", strconv.Itoa(testkit.FreePorts(t, 1)[0])))

	header := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("1"), Addr: []byte(ln.Addr().String())}
	heartbeat := &raft.AppendEntriesRequest{RPCHeader: header, Term: 3}
	var hbResp raft.AppendEntriesResponse
	if err := pt.AppendEntries("2", follower, heartbeat, &hbResp); err == nil {
		t.Fatal("a heartbeat to a closed port succeeded")
	}
	if n := leaderStream.dials.Load(); n != 1 {
		t.Fatalf("a failed heartbeat dialed %d times, want 1 (Raft retries heartbeats itself)", n)
	}

	replicate := &raft.AppendEntriesRequest{RPCHeader: header, Term: 3, PrevLogEntry: 7, PrevLogTerm: 3, LeaderCommitIndex: 7}
	var resp raft.AppendEntriesResponse
	done := make(chan error, 1)
	go func() { done <- pt.AppendEntries("2", follower, replicate, &resp) }()
	checkFor(t, "retries of a refused AppendEntries", func() bool { return leaderStream.dials.Load() >= 4 }) // refused, and retried
	select {
	case err := <-done:
		t.Fatalf("AppendEntries gave up while the follower was down: %v", err)
	default:
	}
	fol, err := raft.NewTCPTransport(string(follower), nil, 2, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer fol.Close()
	rpc := <-fol.Consumer()
	rpc.Respond(&raft.AppendEntriesResponse{Term: 3, LastLog: 7, Success: true}, nil)
	if err := <-done; err != nil || !resp.Success {
		t.Fatalf("AppendEntries after the follower came back: err=%v success=%v", err, resp.Success)
	}
	if p, ok := pt.get("2"); !ok || p.lastLog != 7 || p.commit != 7 {
		t.Fatalf("progress after the retry: %+v (recorded %v), want log end and commit 7", p, ok)
	}

	// Closing ends the retries at once.
	fol.Close()
	go func() { done <- pt.AppendEntries("2", follower, replicate, &resp) }()
	before := leaderStream.dials.Load()
	checkFor(t, "retries after the follower stopped", func() bool { return leaderStream.dials.Load() >= before+2 })
	close(stopc)
	if err := <-done; err == nil {
		t.Fatal("AppendEntries to a stopped follower succeeded after the controller closed")
	}
}
