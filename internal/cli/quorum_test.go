package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestE2ECLIQuorum runs the quorum commands against a single gregor node: a
// quorum of one voter, the leader; cluster describe carries the same; voter
// changes that cannot apply are refused with Kafka's errors.
func TestE2ECLIQuorum(t *testing.T) {
	addr, _, _ := startGroupNode(t)
	r := cliRunner{t: t, addr: addr}

	res := r.ok("", "--json", "quorum", "describe")
	var q quorumSummary
	if err := json.Unmarshal([]byte(res.stdout), &q); err != nil {
		t.Fatalf("quorum describe --json: %v: %s", err, res)
	}
	if q.LeaderID != 1 || q.LeaderEpoch < 1 || q.HighWatermark < 1 || len(q.Voters) != 1 || q.Voters[0].NodeID != 1 ||
		q.Voters[0].Lag != 0 || len(q.Observers) != 0 {
		t.Fatalf("quorum describe: %+v", q)
	}
	res = r.ok("", "quorum", "describe")
	if !strings.Contains(res.stdout, "Quorum leader: 1") || !strings.Contains(res.stdout, "1     leader") {
		t.Fatalf("quorum describe table: %s", res)
	}

	res = r.ok("", "--json", "cluster", "describe")
	var s clusterSummary
	if err := json.Unmarshal([]byte(res.stdout), &s); err != nil {
		t.Fatalf("cluster describe --json: %v: %s", err, res)
	}
	if s.Quorum == nil || s.Quorum.LeaderID != 1 || len(s.Quorum.Voters) != 1 {
		t.Fatalf("cluster describe quorum: %+v", s.Quorum)
	}
	if res = r.ok("", "cluster", "describe"); !strings.Contains(res.stdout, "Quorum leader: 1") {
		t.Fatalf("cluster describe table lacks the quorum: %s", res)
	}

	r.fail(1, []string{"VOTER_NOT_FOUND"}, "", "quorum", "remove-voter", "--id", "9")
	r.fail(1, []string{"DUPLICATE_VOTER"}, "", "quorum", "add-voter", "--id", "1", "--controller-addr", "127.0.0.1:1")
	r.fail(1, []string{"INVALID_REQUEST", "unreachable"}, "", "quorum", "add-voter", "--id", "4", "--controller-addr", "127.0.0.1:1")
	r.fail(1, []string{"INVALID_REQUEST", "last voter"}, "", "quorum", "remove-voter", "--id", "1")
	r.fail(2, []string{"--controller-addr"}, "", "quorum", "add-voter", "--id", "4", "--controller-addr", "nope")
}
