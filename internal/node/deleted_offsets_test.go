package node_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestE2EOffsetsOfDeletedTopicRemoved: deleting a topic removes every
// group's committed offsets on it, durably (a restart replays the
// tombstones), as Kafka does, so a topic created again under the same name
// starts with none; other topics' offsets stay. A group kept the old
// topic's offsets (found by sarama's functional suite, which deletes and
// creates test.4 at each start and reuses its group ids).
func TestE2EOffsetsOfDeletedTopicRemoved(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	adm, _ := newAdmin(t, n)
	ctx := testCtx(t, 60*time.Second)
	createTopic(t, adm, "again", 2, nil)
	createTopic(t, adm, "kept", 1, nil)
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "again", Partition: 0, At: 5, LeaderEpoch: -1})
	os.Add(kadm.Offset{Topic: "again", Partition: 1, At: 7, LeaderEpoch: -1})
	os.Add(kadm.Offset{Topic: "kept", Partition: 0, At: 3, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(ctx, "readers", os); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	if _, err := adm.DeleteTopic(ctx, "again"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	createTopic(t, adm, "again", 2, nil)

	check := func(adm *kadm.Client, when string) {
		t.Helper()
		checkFor(t, "no offsets of the deleted topic "+when, func() bool {
			fetched, err := adm.FetchOffsets(ctx, "readers")
			if err != nil || fetched.Error() != nil {
				return false
			}
			_, old0 := fetched.Lookup("again", 0)
			_, old1 := fetched.Lookup("again", 1)
			k, ok := fetched.Lookup("kept", 0)
			return !old0 && !old1 && ok && k.At == 3
		})
	}
	check(adm, "after the delete")

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, dir, nil)
	adm, _ = newAdmin(t, n)
	check(adm, "after a restart")
}
