package node_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/node"
)

var groupProps = map[string]string{
	"group.initial.rebalance.delay.ms": "0",
	"group.min.session.timeout.ms":     "500",
}

// seen counts consumed record values across a group's members.
type seen struct {
	mu     sync.Mutex
	counts map[string]int
}

func (s *seen) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.counts)
}

func (s *seen) waitFor(t *testing.T, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for s.total() < n {
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d distinct records, want %d", s.total(), n)
		}
		time.Sleep(20 * time.Millisecond) // polling a counter with a deadline
	}
}

// growAndShrink runs a group of 2, then 3, then 1 members (opts) over a
// new topic of six partitions, 300 records at each step (whileTwo runs
// once the first 300 are consumed by two). Members leave cleanly, so
// every record is consumed exactly once, and everything is committed once
// the last one left.
func growAndShrink(t *testing.T, n *node.Node, adm *kadm.Client, topic, group string, whileTwo func(), opts ...kgo.Opt) {
	t.Helper()
	createTopic(t, adm, topic, 6, nil)
	s := &seen{counts: map[string]int{}}
	a := startMember(t, n, s, group, topic, opts...)
	b := startMember(t, n, s, group, topic, opts...)
	produceN(t, n, topic, 0, 300)
	s.waitFor(t, 300, 20*time.Second)
	if whileTwo != nil {
		whileTwo()
	}
	c := startMember(t, n, s, group, topic, opts...)
	produceN(t, n, topic, 300, 300)
	s.waitFor(t, 600, 20*time.Second)
	b.close()
	c.close()
	produceN(t, n, topic, 600, 300)
	s.waitFor(t, 900, 20*time.Second)
	a.close()
	s.exactlyOnce(t)
	if sum := committedSum(t, adm, group); sum != 900 {
		t.Fatalf("committed offsets sum to %d, want 900", sum)
	}
}

// exactlyOnce fails the test for every record consumed other than once.
func (s *seen) exactlyOnce(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for v, k := range s.counts {
		if k != 1 {
			t.Errorf("record %s consumed %d times", v, k)
		}
	}
}

// committedSum adds up a group's committed offsets.
func committedSum(t *testing.T, adm *kadm.Client, group string) int64 {
	t.Helper()
	offs, err := adm.FetchOffsets(testCtx(t, 10*time.Second), group)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
	return sum
}

// member runs a group consumer until stop; it records every value it sees.
type member struct {
	cl   *kgo.Client
	stop context.CancelFunc
	done chan struct{}
}

func startMember(t *testing.T, n *node.Node, s *seen, group, topic string, opts ...kgo.Opt) *member {
	t.Helper()
	// Records are marked processed (AutoCommitMarks) before they are
	// counted: by default franz-go commits a poll's records only once the
	// next poll starts, so a member closed right after the test saw its
	// last records counted left them uncommitted (the final commit
	// missed them, or the next owner read them again).
	opts = append([]kgo.Opt{kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.SessionTimeout(3 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.AutoCommitInterval(200 * time.Millisecond), kgo.AutoCommitMarks()}, opts...)
	if os.Getenv("GREGOR_TEST_LOG") != "" {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, nil)))
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.KafkaAddr().String())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{cl: cl, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			cl.MarkCommitRecords(fs.Records()...)
			s.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { s.counts[string(r.Value)]++ })
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { m.close() })
	return m
}

// close stops polling and closes the client (committing and leaving).
func (m *member) close() {
	m.stop()
	<-m.done
	m.cl.Close()
}

func produceN(t *testing.T, n *node.Node, topic string, from, count int) {
	t.Helper()
	cl := newClient(t, n, kgo.DefaultProduceTopic(topic))
	var recs []*kgo.Record
	for i := from; i < from+count; i++ {
		recs = append(recs, &kgo.Record{Value: []byte(fmt.Sprintf("v%05d", i))})
	}
	if err := cl.ProduceSync(testCtx(t, 15*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cl.Close()
}

// TestE2EGroupExactlyOnceAcrossRebalances: 2, then 3, then 1 members over
// six partitions; members leave cleanly, so every record is consumed once.
func TestE2EGroupExactlyOnceAcrossRebalances(t *testing.T) {
	n := startNode(t, t.TempDir(), groupProps)
	adm, _ := newAdmin(t, n)
	for _, tc := range []struct {
		name     string
		balancer kgo.GroupBalancer
	}{
		{"range", kgo.RangeBalancer()},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			growAndShrink(t, n, adm, "eo-"+tc.name, "g-eo-"+tc.name, nil, kgo.Balancers(tc.balancer))
		})
	}
}

// TestE2EGroupDeadMemberExpires: a member that stops heartbeating (a static
// member closed, which does not leave) loses its partitions after the
// session timeout and nothing is skipped.
func TestE2EGroupDeadMemberExpires(t *testing.T) {
	n := startNode(t, t.TempDir(), groupProps)
	adm, _ := newAdmin(t, n)
	topic, group := "dead", "g-dead"
	createTopic(t, adm, topic, 6, nil)
	s := &seen{counts: map[string]int{}}
	startMember(t, n, s, group, topic, kgo.SessionTimeout(1500*time.Millisecond))
	b := startMember(t, n, s, group, topic, kgo.InstanceID("dying"), kgo.SessionTimeout(1500*time.Millisecond))
	produceN(t, n, topic, 0, 120)
	s.waitFor(t, 120, 20*time.Second)
	b.close() // static: no LeaveGroup
	start := time.Now()
	produceN(t, n, topic, 120, 120)
	s.waitFor(t, 240, 20*time.Second)
	t.Logf("partitions moved after %v", time.Since(start))
}

// TestE2EGroupStaticRejoin (KIP-345): a static member restarted within the
// session timeout gets its partitions back and the others never rebalance.
func TestE2EGroupStaticRejoin(t *testing.T) {
	n := startNode(t, t.TempDir(), groupProps)
	adm, _ := newAdmin(t, n)
	topic, group := "static", "g-static"
	createTopic(t, adm, topic, 6, nil)
	s := &seen{counts: map[string]int{}}
	var mu sync.Mutex
	var aEvents int
	var bParts [][]int32
	track := func(events *int) kgo.Opt {
		return kgo.OnPartitionsRevoked(func(context.Context, *kgo.Client, map[string][]int32) {
			mu.Lock()
			*events++
			mu.Unlock()
		})
	}
	onB := kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
		mu.Lock()
		ps := slices.Clone(m[topic])
		slices.Sort(ps)
		bParts = append(bParts, ps)
		mu.Unlock()
	})
	sess := kgo.SessionTimeout(10 * time.Second)
	startMember(t, n, s, group, topic, kgo.InstanceID("a"), sess, kgo.Balancers(kgo.RangeBalancer()), track(&aEvents))
	b := startMember(t, n, s, group, topic, kgo.InstanceID("b"), sess, kgo.Balancers(kgo.RangeBalancer()), onB)
	produceN(t, n, topic, 0, 60)
	s.waitFor(t, 60, 20*time.Second)
	// a may have consumed everything alone: wait until b has partitions.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		ok := len(bParts) > 0 && len(bParts[len(bParts)-1]) == 3
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b never got partitions")
		}
	}
	mu.Lock()
	before := aEvents
	first := bParts[len(bParts)-1]
	mu.Unlock()
	b.close()
	startMember(t, n, s, group, topic, kgo.InstanceID("b"), sess, kgo.Balancers(kgo.RangeBalancer()), onB)
	produceN(t, n, topic, 60, 60)
	s.waitFor(t, 120, 20*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if aEvents != before {
		t.Fatalf("member a saw %d revocations after b restarted, want none", aEvents-before)
	}
	if got := bParts[len(bParts)-1]; !slices.Equal(got, first) || len(first) == 0 {
		t.Fatalf("b got %v after restart, had %v", got, first)
	}
}

// TestE2EGroupOffsetsSurviveRestart: committed offsets are records in
// __consumer_offsets, reloaded when the node starts again.
func TestE2EGroupOffsetsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, groupProps)
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "persist", 3, nil)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "persist", Partition: 0, At: 7, LeaderEpoch: -1, Metadata: "m0"})
	offs.Add(kadm.Offset{Topic: "persist", Partition: 2, At: 42, LeaderEpoch: -1})
	resp, err := adm.CommitOffsets(testCtx(t, 10*time.Second), "g-persist", offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	// A commit to an unknown partition is refused per partition.
	bad := kadm.Offsets{}
	bad.Add(kadm.Offset{Topic: "persist", Partition: 9, At: 1, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(testCtx(t, 10*time.Second), "g-persist", bad); err != nil || resp.Error() == nil {
		t.Fatalf("commit to partition 9: err %v, resp %v, want UNKNOWN_TOPIC_OR_PARTITION", err, resp.Error())
	}
	n.Close()

	n2 := startNode(t, dir, groupProps)
	adm2, _ := newAdmin(t, n2)
	got, err := adm2.FetchOffsets(testCtx(t, 10*time.Second), "g-persist")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		p    int32
		at   int64
		meta string
	}{{0, 7, "m0"}, {2, 42, ""}} {
		o, ok := got.Lookup("persist", w.p)
		if !ok || o.At != w.at || o.Metadata != w.meta {
			t.Fatalf("partition %d after restart: %+v (found %v), want %d %q", w.p, o, ok, w.at, w.meta)
		}
	}
	if _, ok := got.Lookup("persist", 1); ok {
		t.Fatalf("partition 1 has an offset it never committed")
	}
	groups, err := adm2.ListGroups(testCtx(t, 10*time.Second))
	if err != nil || !slices.Contains(groups.Groups(), "g-persist") {
		t.Fatalf("list groups: %v %v", groups.Groups(), err)
	}
	// ListGroups v5 filters by type and state, case-insensitively as
	// Kafka 4 does; every group here is classic.
	_, raw := newAdmin(t, n2)
	for _, c := range []struct {
		types, states []string
		want          bool
	}{
		{[]string{"CLASSIC"}, []string{"empty"}, true},
		{[]string{"consumer"}, nil, false},
		{nil, []string{"Stable"}, false},
	} {
		req := kmsg.NewPtrListGroupsRequest()
		req.TypesFilter, req.StatesFilter = c.types, c.states
		resp, err := req.RequestWith(testCtx(t, 10*time.Second), raw)
		if err != nil {
			t.Fatal(err)
		}
		found := slices.ContainsFunc(resp.Groups, func(g kmsg.ListGroupsResponseGroup) bool {
			return g.Group == "g-persist" && g.GroupType == "classic" && g.GroupState == "Empty"
		})
		if found != c.want {
			t.Fatalf("ListGroups types %v states %v: %+v, want g-persist listed %v", c.types, c.states, resp.Groups, c.want)
		}
	}
	if _, err := adm2.DeleteGroup(testCtx(t, 10*time.Second), "g-persist"); err != nil {
		t.Fatalf("delete group: %v", err)
	}
}

// TestE2EGroupOffsetMetadataLimit: the coordinator reads
// offset.metadata.max.bytes from the broker properties.
func TestE2EGroupOffsetMetadataLimit(t *testing.T) {
	n := startNode(t, t.TempDir(), map[string]string{"offset.metadata.max.bytes": "8",
		"offsets.retention.check.interval.ms": "60000"})
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "meta", 1, nil)
	for _, c := range []struct {
		name, meta string
		ok         bool
	}{{"at the limit", "12345678", true}, {"over the limit", "123456789", false}} {
		t.Run(c.name, func(t *testing.T) {
			offs := kadm.Offsets{}
			offs.Add(kadm.Offset{Topic: "meta", Partition: 0, At: 1, LeaderEpoch: -1, Metadata: c.meta})
			resp, err := adm.CommitOffsets(testCtx(t, 10*time.Second), "g-meta", offs)
			if err != nil {
				t.Fatal(err)
			}
			if err := resp.Error(); (err == nil) != c.ok || (!c.ok && !errors.Is(err, kerr.OffsetMetadataTooLarge)) {
				t.Fatalf("commit %d bytes of metadata: %v, want ok=%v", len(c.meta), err, c.ok)
			}
		})
	}
}

// TestE2EFindCoordinatorCreatesInBackground: the first FindCoordinator of a
// fresh cluster answers COORDINATOR_NOT_AVAILABLE at once while
// __consumer_offsets is created in the background (Kafka's getCoordinator),
// then the coordinator, once its partition is open. Creating the topic
// before answering held the client's connection for seconds, and the
// heartbeats queued behind it starved until the group expired the member.
func TestE2EFindCoordinatorCreatesInBackground(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	_, raw := newAdmin(t, n)
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKeys = []string{"fresh-group"}
	first := rawRequest[*kmsg.FindCoordinatorResponse](t, raw, req)
	if len(first.Coordinators) != 1 || first.Coordinators[0].ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("first FindCoordinator on a fresh node: %+v, want COORDINATOR_NOT_AVAILABLE", first.Coordinators)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp := rawRequest[*kmsg.FindCoordinatorResponse](t, raw, req)
		if c := resp.Coordinators; len(c) == 1 && c[0].ErrorCode == 0 {
			if c[0].NodeID != 1 {
				t.Fatalf("coordinator %d, want node 1", c[0].NodeID)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no coordinator 20s after __consumer_offsets creation started: %+v", resp.Coordinators)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}
