package controller

import (
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
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
