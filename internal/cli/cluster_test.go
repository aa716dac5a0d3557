package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestE2ECLIClusterElectLeaders runs cluster describe and elect-leaders
// against an in-process gregor node: on one broker every partition is led
// by its preferred replica, so an election is not needed, the dry run plans
// nothing, and bad flags are usage errors.
func TestE2ECLIClusterElectLeaders(t *testing.T) {
	addr, _, _ := startGroupNode(t)
	r := cliRunner{t: t, addr: addr}
	name := uniqueTopic("elect")
	r.ok("", "topic", "create", name, "-p", "2", "-r", "1")

	var s clusterSummary
	res := r.ok("", "--json", "cluster", "describe")
	if err := json.Unmarshal([]byte(res.stdout), &s); err != nil {
		t.Fatalf("cluster describe --json: %v: %s", err, res)
	}
	if len(s.Brokers) != 1 || s.Brokers[0].Fenced || s.Brokers[0].Leaders < 2 || s.Brokers[0].Replicas < 2 ||
		len(s.UnderReplicated) != 0 || len(s.Offline) != 0 || s.Controller != s.Brokers[0].NodeID {
		t.Fatalf("cluster describe: %+v", s)
	}
	res = r.ok("", "cluster", "describe")
	if row := tableRow(res.stdout, "1"); len(row) < 7 || row[4] != "unfenced" {
		t.Fatalf("cluster describe table: %s", res)
	}

	res = r.ok("", "cluster", "elect-leaders", "--topic", name, "--partition", "1")
	if row := tableRow(res.stdout, name, "1"); len(row) < 4 || row[2] != "1" || row[3] != "ELECTION_NOT_NEEDED" {
		t.Fatalf("elect-leaders: %s", res)
	}
	var out struct {
		Partitions []electionOutcome `json:"partitions"`
	}
	res = r.ok("", "--json", "cluster", "elect-leaders", "--topic", name, "--type", "unclean")
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || len(out.Partitions) != 2 {
		t.Fatalf("elect-leaders --json: %v: %s", err, res)
	}
	for _, o := range out.Partitions {
		if o.Result != "ELECTION_NOT_NEEDED" || o.Leader != 1 {
			t.Fatalf("unclean election of a led partition: %+v", o)
		}
	}
	res = r.ok("", "cluster", "elect-leaders", "--dry-run")
	if !strings.Contains(res.stdout, "No partition needs an election.") {
		t.Fatalf("dry run over every partition: %s", res)
	}
	res = r.ok("", "cluster", "elect-leaders", "--dry-run", "--topic", name)
	if row := tableRow(res.stdout, name, "0"); len(row) < 4 || row[3] != "ELECTION_NOT_NEEDED" {
		t.Fatalf("dry run of one topic: %s", res)
	}
	r.fail(ExitUsage, []string{"--type"}, "", "cluster", "elect-leaders", "--type", "clean")
	r.fail(ExitUsage, []string{"--topic"}, "", "cluster", "elect-leaders", "--partition", "0")
	r.fail(ExitError, []string{"UNKNOWN_TOPIC_OR_PARTITION"}, "", "cluster", "elect-leaders", "--topic", name, "--partition", "9")
}
