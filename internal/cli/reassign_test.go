package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestDrainPlan: every replica on the drained broker is replaced in place
// by the live broker outside the partition with the fewest replicas.
func TestDrainPlan(t *testing.T) {
	md := kadm.Metadata{
		Brokers: kadm.BrokerDetails{{NodeID: 1}, {NodeID: 2}, {NodeID: 3}, {NodeID: 4}},
		Topics: kadm.TopicDetails{
			"a": {Topic: "a", Partitions: kadm.PartitionDetails{
				0: {Partition: 0, Replicas: []int32{3, 1, 2}},
				1: {Partition: 1, Replicas: []int32{1, 2, 4}},
				2: {Partition: 2, Replicas: []int32{2, 4}},
			}},
		},
	}
	moves, err := drainPlan(md, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Loads without broker 1: 2 has 3, 3 has 1, 4 has 2. a-0 takes 4
	// (3 is in it), a-1 takes 3.
	if len(moves) != 2 || !slices.Equal(moves[0].Replicas, []int32{3, 4, 2}) || !slices.Equal(moves[1].Replicas, []int32{3, 2, 4}) {
		t.Fatalf("plan %+v", moves)
	}
	md.Brokers = md.Brokers[:3]
	md.Topics["b"] = kadm.TopicDetail{Topic: "b", Partitions: kadm.PartitionDetails{0: {Replicas: []int32{1, 2, 3}}}}
	if _, err := drainPlan(md, 1); err == nil || !strings.Contains(err.Error(), "no live broker left") {
		t.Fatalf("RF 3 on 3 brokers: %v", err)
	}
}

// TestE2ECLIReassignSingleNode runs the reassign commands against one
// node: a dry run changes nothing, a move to the replicas it already has
// completes at once, list and cancel report that nothing is in progress,
// and the errors name Kafka's codes.
func TestE2ECLIReassignSingleNode(t *testing.T) {
	addr, adm, _ := startGroupNode(t)
	r := cliRunner{t: t, addr: addr}
	r.ok("", "topic", "create", "mv", "-p", "2")
	out := r.ok("", "reassign", "--topic", "mv", "--partition", "1", "--replicas", "1", "--dry-run").stdout
	if !strings.Contains(out, "Dry run") || len(tableRow(out, "mv", "1", "1", "1")) == 0 {
		t.Fatalf("dry run:\n%s", out)
	}
	plan := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(plan, []byte(`{"version":1,"partitions":[{"topic":"mv","partition":0,"replicas":[1]},{"topic":"mv","partition":1,"replicas":[1]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out = r.ok("", "reassign", "--plan", plan, "--wait").stdout
	if !strings.Contains(out, "Done") {
		t.Fatalf("reassign --wait:\n%s", out)
	}
	if out := r.ok("", "reassign", "list").stdout; !strings.Contains(out, "No reassignment") {
		t.Fatalf("list:\n%s", out)
	}
	r.fail(1, []string{"NO_REASSIGNMENT_IN_PROGRESS"}, "", "reassign", "cancel", "--topic", "mv", "--partition", "0")
	r.fail(1, []string{"INVALID_REPLICA_ASSIGNMENT"}, "", "reassign", "--topic", "mv", "--partition", "0", "--replicas", "1,7")
	r.fail(1, []string{"UNKNOWN_TOPIC_OR_PARTITION"}, "", "reassign", "--topic", "mv", "--partition", "5", "--replicas", "1")
	r.fail(2, []string{"--plan"}, "", "reassign", "--plan", plan, "--topic", "mv", "--replicas", "1")
	r.fail(1, []string{"no live broker left"}, "", "cluster", "drain", "--broker", "1", "--dry-run")
	r.fail(1, []string{"BROKER_ID_NOT_REGISTERED"}, "", "cluster", "unregister", "--broker", "9")
	ctx := t.Context()
	td, err := adm.ListTopics(ctx, "mv")
	if err != nil || !slices.Equal(td["mv"].Partitions[0].Replicas, []int32{1}) {
		t.Fatalf("topic after the commands: %v %+v", err, td["mv"])
	}
}
