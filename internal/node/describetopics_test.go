package node_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// describeTopicPartitions sends one DescribeTopicPartitions request and
// renders its answer as "topic:code:partitions" entries and the cursor,
// so a page reads as one line.
func describeTopicPartitions(t *testing.T, cl kmsg.Requestor, topics []string, limit int32, cursor *kmsg.DescribeTopicPartitionsRequestCursor) (string, *kmsg.DescribeTopicPartitionsResponse) {
	t.Helper()
	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	for _, name := range topics {
		rt := kmsg.NewDescribeTopicPartitionsRequestTopic()
		rt.Topic = name
		req.Topics = append(req.Topics, rt)
	}
	req.ResponsePartitionLimit, req.Cursor = limit, cursor
	resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, rt := range resp.Topics {
		var ps []string
		for _, p := range rt.Partitions {
			ps = append(ps, fmt.Sprint(p.Partition))
		}
		parts = append(parts, fmt.Sprintf("%s:%d:%s", *rt.Topic, rt.ErrorCode, strings.Join(ps, ",")))
	}
	out := strings.Join(parts, " ")
	if c := resp.NextCursor; c != nil {
		out += fmt.Sprintf(" next=%s/%d", c.Topic, c.Partition)
	}
	return out, resp
}

// TestDescribeTopicPartitions (KIP-966, as Kafka's handler): topics sorted
// by name, paged by the partition limit with a cursor that resumes inside
// a topic or at the next one; named unknown and invalid topics answered
// with their errors; a cursor outside the named topics refused.
func TestDescribeTopicPartitions(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	createTopic(t, adm, "dtp-b", 2, nil)
	createTopic(t, adm, "dtp-a", 3, nil)
	createTopic(t, adm, "dtp-c", 1, nil)
	names := []string{"dtp-c", "dtp-a", "dtp-b"}

	for _, tc := range []struct {
		limit  int32
		cursor *kmsg.DescribeTopicPartitionsRequestCursor
		want   string
	}{
		{2000, nil, "dtp-a:0:0,1,2 dtp-b:0:0,1 dtp-c:0:0"},
		{4, nil, "dtp-a:0:0,1,2 dtp-b:0:0 next=dtp-b/1"},
		{4, &kmsg.DescribeTopicPartitionsRequestCursor{Topic: "dtp-b", Partition: 1}, "dtp-b:0:1 dtp-c:0:0"},
		{3, nil, "dtp-a:0:0,1,2 next=dtp-b/0"},
		{0, nil, "dtp-a:0:0 next=dtp-a/1"}, // the limit is at least 1
	} {
		if got, _ := describeTopicPartitions(t, cl, names, tc.limit, tc.cursor); got != tc.want {
			t.Errorf("limit %d, cursor %+v: %s, want %s", tc.limit, tc.cursor, got, tc.want)
		}
	}

	got, resp := describeTopicPartitions(t, cl, []string{"dtp-a", "dtp-none", "bad/name"}, 2000, nil)
	want := fmt.Sprintf("bad/name:%d: dtp-a:0:0,1,2 dtp-none:%d:", kerr.InvalidTopicException.Code, kerr.UnknownTopicOrPartition.Code)
	if got != want {
		t.Errorf("named with unknown topics: %s, want %s", got, want)
	}
	topics, err := adm.ListTopics(testCtx(t, 5*time.Second), "dtp-a")
	if err != nil {
		t.Fatal(err)
	}
	a := resp.Topics[1]
	p := a.Partitions[0]
	if a.TopicID != topics["dtp-a"].ID || a.AuthorizedOperations == -2147483648 || p.LeaderID != n.NodeID() || p.LeaderEpoch < 0 ||
		len(p.Replicas) != 1 || len(p.ISR) != 1 || p.EligibleLeaderReplicas == nil || len(p.EligibleLeaderReplicas) != 0 {
		t.Errorf("dtp-a described as %+v", a)
	}

	// Every topic when none is named: the internal ones too, sorted.
	all, _ := describeTopicPartitions(t, cl, nil, 2000, &kmsg.DescribeTopicPartitionsRequestCursor{Topic: "dtp-"})
	if all != "dtp-a:0:0,1,2 dtp-b:0:0,1 dtp-c:0:0" {
		t.Errorf("all topics from the cursor dtp-: %s", all)
	}

	for _, cursor := range []kmsg.DescribeTopicPartitionsRequestCursor{{Topic: "dtp-x"}, {Topic: "dtp-a", Partition: -1}} {
		got, _ := describeTopicPartitions(t, cl, []string{"dtp-a"}, 10, &cursor)
		if want := fmt.Sprintf("dtp-a:%d:", kerr.InvalidRequest.Code); got != want {
			t.Errorf("cursor %+v: %s, want %s", cursor, got, want)
		}
	}
}

// TestACLsDescribeTopicPartitions: a topic the principal may not describe
// is answered TOPIC_AUTHORIZATION_FAILED, after the others and without its
// id, when named, and left out when every topic is asked for; the
// authorized operations are the principal's.
func TestACLsDescribeTopicPartitions(t *testing.T) {
	n := startACLNode(t, nil)
	adm, _ := newAdmin(t, n)
	ctx := testCtx(t, 30*time.Second)
	createTopic(t, adm, "orders", 1, nil)
	createTopic(t, adm, "secret", 1, nil)
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Allow("User:alice").Topics("orders").
		Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	alice := aliceClient(t, n.ListenerAddr("SASL_PLAINTEXT").String()).Broker(int(n.NodeID()))

	got, resp := describeTopicPartitions(t, alice, []string{"secret", "orders"}, 2000, nil)
	if want := fmt.Sprintf("orders:0:0 secret:%d:", kerr.TopicAuthorizationFailed.Code); got != want {
		t.Errorf("named: %s, want %s", got, want)
	}
	if ops := resp.Topics[0].AuthorizedOperations; ops != 1<<3|1<<8 { // READ, and DESCRIBE it implies
		t.Errorf("alice's operations on orders: %#x", ops)
	}
	if resp.Topics[1].TopicID != [16]byte{} {
		t.Errorf("the refused topic's id was answered")
	}
	if got, _ := describeTopicPartitions(t, alice, nil, 2000, nil); got != "orders:0:0" {
		t.Errorf("all topics: %s, want orders only", got)
	}
}
