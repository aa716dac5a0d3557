package group

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/statelog"
	"github.com/gregor-dev/gregor/internal/testkit"
)

// testImage holds topics of the given partition counts, each with id
// {i+1}.
func testImage(topics ...string) *metadata.Image {
	img := &metadata.Image{Topics: map[string]*metadata.Topic{}, TopicsByID: map[[16]byte]*metadata.Topic{}}
	for i := 0; i < len(topics); i += 2 {
		n := int(topics[i+1][0] - '0')
		t := &metadata.Topic{Name: topics[i], ID: [16]byte{byte(i/2 + 1)}, Partitions: make([]metadata.Partition, n)}
		img.Topics[t.Name], img.TopicsByID[t.ID] = t, t
	}
	return img
}

var tA = [16]byte{1}

func consumerLimits() ConsumerLimits {
	l := DefaultConsumerLimits()
	l.SessionTimeout, l.HeartbeatInterval = 3*time.Second, 100*time.Millisecond
	return l
}

func cjoin(id string, topics ...string) ConsumerHeartbeat {
	return ConsumerHeartbeat{Version: 1, MemberID: id, RebalanceTimeout: 2 * time.Second, Topics: topics, Owned: Assignment{}}
}

// beat is a heartbeat at epoch reporting owned (nil: unchanged).
func beat(id string, epoch int32, owned Assignment) ConsumerHeartbeat {
	return ConsumerHeartbeat{Version: 1, MemberID: id, MemberEpoch: epoch, RebalanceTimeout: -1, Owned: owned}
}

func mustBeat(t *testing.T, cg *consumerGroup, h ConsumerHeartbeat, img *metadata.Image, now time.Time) ConsumerHeartbeatResult {
	t.Helper()
	if _, err := h.validate(cg.limits); err != nil {
		t.Fatalf("validate %+v: %v", h, err)
	}
	r := cg.heartbeat(h, img, now)
	if r.Err != nil {
		t.Fatalf("heartbeat %s@%d: %v %s", h.MemberID, h.MemberEpoch, r.Err, r.Message)
	}
	return r
}

func count(a Assignment) int {
	n := 0
	for _, ps := range a {
		n += len(ps)
	}
	return n
}

// TestConsumerGroupRevokesBeforeReassigning: a second member gets the
// first one's partitions only after the first reports them revoked, and
// no partition is ever held by both.
func TestConsumerGroupRevokesBeforeReassigning(t *testing.T) {
	img := testImage("a", "6")
	cg := newConsumerGroup(consumerLimits())
	ra := mustBeat(t, cg, cjoin("A", "a"), img, t0)
	if count(ra.Assignment) != 6 || ra.MemberEpoch != cg.epoch {
		t.Fatalf("A joined with %v at epoch %d (group %d)", ra.Assignment, ra.MemberEpoch, cg.epoch)
	}
	epochA := ra.MemberEpoch
	rb := mustBeat(t, cg, cjoin("B", "a"), img, t0)
	if count(rb.Assignment) != 0 || rb.MemberEpoch != cg.epoch || rb.MemberEpoch <= epochA {
		t.Fatalf("B joined with %v at epoch %d: its partitions are A's until A revokes them", rb.Assignment, rb.MemberEpoch)
	}
	// A learns it must revoke three; its epoch stays.
	ra = mustBeat(t, cg, beat("A", epochA, nil), img, t0)
	if count(ra.Assignment) != 3 || ra.MemberEpoch != epochA {
		t.Fatalf("A told %v at epoch %d, want 3 partitions at %d", ra.Assignment, ra.MemberEpoch, epochA)
	}
	kept := ra.Assignment
	// B still gets nothing while A has not revoked.
	if r := mustBeat(t, cg, beat("B", rb.MemberEpoch, Assignment{}), img, t0); count(r.Assignment) != 0 {
		t.Fatalf("B got %v before A revoked", r.Assignment)
	}
	// A reports the revocation done and moves to the new epoch.
	ra = mustBeat(t, cg, beat("A", epochA, kept), img, t0)
	if ra.MemberEpoch != rb.MemberEpoch {
		t.Fatalf("A at epoch %d after revoking, want %d", ra.MemberEpoch, rb.MemberEpoch)
	}
	rb = mustBeat(t, cg, beat("B", rb.MemberEpoch, Assignment{}), img, t0)
	if count(rb.Assignment) != 3 || intersects(rb.Assignment, kept) {
		t.Fatalf("B got %v, A kept %v", rb.Assignment, kept)
	}
	if cg.state() != "Stable" {
		t.Fatalf("state %s, want Stable", cg.state())
	}
}

// TestConsumerGroupEpochChecks: a heartbeat at a later epoch, or at an
// older one holding partitions it no longer has, is fenced; the previous
// epoch with a subset of the assignment is the lost-answer case and is
// accepted. An unknown member is UNKNOWN_MEMBER_ID.
func TestConsumerGroupEpochChecks(t *testing.T) {
	img := testImage("a", "4")
	cg := newConsumerGroup(consumerLimits())
	ra := mustBeat(t, cg, cjoin("A", "a"), img, t0)
	e1 := ra.MemberEpoch
	rb := mustBeat(t, cg, cjoin("B", "a"), img, t0)
	kept := mustBeat(t, cg, beat("A", e1, nil), img, t0).Assignment // told to revoke two
	ra = mustBeat(t, cg, beat("A", e1, kept), img, t0)              // revoked: a new epoch
	if ra.MemberEpoch != rb.MemberEpoch {
		t.Fatalf("A at %d, want %d", ra.MemberEpoch, rb.MemberEpoch)
	}
	if r := cg.heartbeat(beat("A", ra.MemberEpoch+1, nil), img, t0); !errors.Is(r.Err, ErrFencedMemberEpoch) {
		t.Fatalf("a later epoch: %v", r.Err)
	}
	if r := cg.heartbeat(beat("A", e1, Assignment{tA: {0, 1, 2, 3}}), img, t0); !errors.Is(r.Err, ErrFencedMemberEpoch) {
		t.Fatalf("the previous epoch holding revoked partitions: %v", r.Err)
	}
	if r := cg.heartbeat(beat("A", e1, kept), img, t0); r.Err != nil || r.MemberEpoch != ra.MemberEpoch {
		t.Fatalf("the previous epoch with the current partitions: %v at %d", r.Err, r.MemberEpoch)
	}
	if r := cg.heartbeat(beat("C", 3, nil), img, t0); !errors.Is(r.Err, ErrUnknownMemberID) {
		t.Fatalf("an unknown member: %v", r.Err)
	}
	if err := cg.validateCommit("A", ra.MemberEpoch-1); !errors.Is(err, ErrStaleMemberEpoch) {
		t.Fatalf("a commit at an old epoch: %v", err)
	}
	if err := cg.validateCommit("A", ra.MemberEpoch); err != nil {
		t.Fatalf("a commit at the member's epoch: %v", err)
	}
}

// TestConsumerGroupRevocationTimeout: a member that does not revoke within
// its rebalance timeout is removed, and its partitions go to the other.
func TestConsumerGroupRevocationTimeout(t *testing.T) {
	img := testImage("a", "4")
	cg := newConsumerGroup(consumerLimits())
	ra := mustBeat(t, cg, cjoin("A", "a"), img, t0)
	rb := mustBeat(t, cg, cjoin("B", "a"), img, t0)
	mustBeat(t, cg, beat("A", ra.MemberEpoch, nil), img, t0) // told to revoke
	if d := cg.deadline(); !d.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("deadline %v, want the rebalance timeout", d)
	}
	if gone := cg.tick(t0.Add(2 * time.Second)); !slices.Equal(gone, []string{"A"}) {
		t.Fatalf("removed %v", gone)
	}
	rb = mustBeat(t, cg, beat("B", rb.MemberEpoch, Assignment{}), img, t0.Add(2*time.Second))
	if count(rb.Assignment) != 4 {
		t.Fatalf("B has %v after A was removed", rb.Assignment)
	}
}

// TestConsumerGroupSessionExpires: a member that stops heartbeating is
// removed at its session timeout.
func TestConsumerGroupSessionExpires(t *testing.T) {
	img := testImage("a", "2")
	cg := newConsumerGroup(consumerLimits())
	mustBeat(t, cg, cjoin("A", "a"), img, t0)
	rb := mustBeat(t, cg, cjoin("B", "a"), img, t0.Add(time.Second))
	if gone := cg.tick(t0.Add(3 * time.Second)); !slices.Equal(gone, []string{"A"}) {
		t.Fatalf("expired %v, want A", gone)
	}
	rb = mustBeat(t, cg, beat("B", rb.MemberEpoch, Assignment{}), img, t0.Add(3*time.Second))
	if count(rb.Assignment) != 2 {
		t.Fatalf("B has %v", rb.Assignment)
	}
}

// TestConsumerGroupStaticMember: a static member that leaves with epoch
// -2 keeps its partitions; its replacement (same instance id, new member
// id) takes them over at the same epoch. While it is active, another
// member with its instance id is refused.
func TestConsumerGroupStaticMember(t *testing.T) {
	img := testImage("a", "2")
	cg := newConsumerGroup(consumerLimits())
	inst := "i1"
	h := cjoin("A", "a")
	h.InstanceID = &inst
	ra := mustBeat(t, cg, h, img, t0)
	h2 := cjoin("A2", "a")
	h2.InstanceID = &inst
	if r := cg.heartbeat(h2, img, t0); !errors.Is(r.Err, ErrUnreleasedInstanceID) {
		t.Fatalf("a second member with the instance id: %v", r.Err)
	}
	leave := beat("A", StaticLeaveEpoch, nil)
	leave.InstanceID = &inst
	if r := mustBeat(t, cg, leave, img, t0); r.MemberEpoch != StaticLeaveEpoch {
		t.Fatalf("leave answered epoch %d", r.MemberEpoch)
	}
	epoch := cg.epoch
	r := mustBeat(t, cg, h2, img, t0.Add(time.Second))
	if r.MemberEpoch != ra.MemberEpoch || !sameAssignment(r.Assignment, ra.Assignment) || cg.epoch != epoch {
		t.Fatalf("replacement got %v at %d (group epoch %d -> %d), the member had %v at %d",
			r.Assignment, r.MemberEpoch, epoch, cg.epoch, ra.Assignment, ra.MemberEpoch)
	}
}

// TestConsumerGroupRegexFollowsNewTopics: a regex subscription is
// resolved as Kafka's coordinator resolves it: the heartbeat that brings a
// new regex is assigned the literal topics, a later one the matches;
// matching topics created afterwards are picked up, together, by a
// heartbeat at least regexRefreshInterval after the last resolution.
func TestConsumerGroupRegexFollowsNewTopics(t *testing.T) {
	cg := newConsumerGroup(consumerLimits())
	re := "logs-.*"
	h := cjoin("A", "other")
	h.Regex = &re
	img := testImage("logs-a", "2", "other", "3")
	held := func() int { return count(cg.members["A"].assigned) }
	ra := mustBeat(t, cg, h, img, t0)
	if held() != 3 {
		t.Fatalf("first heartbeat: %d partitions, want the literal topic's 3 only", held())
	}
	now := t0.Add(time.Second)
	ra = mustBeat(t, cg, beat("A", ra.MemberEpoch, nil), img, now)
	if held() != 5 {
		t.Fatalf("next heartbeat: %d partitions, want 5 with logs-a", held())
	}
	img = testImage("logs-a", "2", "other", "3", "logs-b", "1")
	ra = mustBeat(t, cg, beat("A", ra.MemberEpoch, nil), img, now.Add(time.Second))
	if held() != 5 {
		t.Fatalf("logs-b picked up %v after the last resolution, before the refresh interval", time.Second)
	}
	img = testImage("logs-a", "2", "other", "3", "logs-b", "1", "logs-c", "2")
	epoch := cg.epoch
	now = t0.Add(time.Second + regexRefreshInterval)
	for range 2 { // one to resolve, one to see it
		ra = mustBeat(t, cg, beat("A", ra.MemberEpoch, nil), img, now)
	}
	if held() != 8 || cg.epoch != epoch+1 {
		t.Fatalf("after the refresh interval: %d partitions, want 8; group epoch %d -> %d, want one bump for both topics", held(), epoch, cg.epoch)
	}
	// A second member with the same regex uses its resolution at once.
	h = cjoin("B")
	h.Regex = &re
	mustBeat(t, cg, h, img, now)
	if got := len(cg.subs["B"]); got != 3 {
		t.Fatalf("B subscribes to %d topics at its first heartbeat, want the 3 resolved", got)
	}
}

// TestConsumerGroupRegexThrottledChangeLater: topics created within the
// refresh interval of the last resolution are picked up by a heartbeat
// after the interval even though the image did not change again since
// (regression: the throttled heartbeat marked the image seen, so no later
// heartbeat looked again and the new topic was never assigned).
func TestConsumerGroupRegexThrottledChangeLater(t *testing.T) {
	cg := newConsumerGroup(consumerLimits())
	re := "logs-.*"
	h := cjoin("A")
	h.Regex = &re
	img := testImage("logs-a", "2")
	r := mustBeat(t, cg, h, img, t0)
	r = mustBeat(t, cg, beat("A", r.MemberEpoch, nil), img, t0.Add(100*time.Millisecond))
	if n := count(cg.members["A"].assigned); n != 2 {
		t.Fatalf("after the first resolution: %d partitions, want 2", n)
	}
	img = testImage("logs-a", "2", "logs-b", "3")
	for ms := 2500; ms <= 12500; ms += 1000 { // one heartbeat a second, the image unchanged
		r = mustBeat(t, cg, beat("A", r.MemberEpoch, nil), img, t0.Add(time.Duration(ms)*time.Millisecond))
	}
	if n := count(cg.members["A"].assigned); n != 5 {
		t.Fatalf("%v after logs-b was created: %d partitions, want 5", 10*time.Second, n)
	}
}

// TestConsumerGroupRegexForgottenWithLastMember: a regex's resolution goes
// with its last subscriber, as Kafka deletes it; a member that comes back
// with the regex is resolved afresh (the literal topics first), and a
// member whose regex changed does not keep the old one's resolution.
func TestConsumerGroupRegexForgottenWithLastMember(t *testing.T) {
	cg := newConsumerGroup(consumerLimits())
	re := "logs-.*"
	h := cjoin("A", "other")
	h.Regex = &re
	img := testImage("logs-a", "2", "other", "1")
	r := mustBeat(t, cg, h, img, t0)
	mustBeat(t, cg, beat("A", r.MemberEpoch, nil), img, t0)
	if _, ok := cg.regexes[re]; !ok || count(cg.members["A"].assigned) != 3 {
		t.Fatalf("before leaving: resolutions %v, assigned %v", cg.regexes, cg.members["A"].assigned)
	}
	mustBeat(t, cg, beat("A", LeaveEpoch, nil), img, t0.Add(time.Second))
	if len(cg.regexes) != 0 || len(cg.pending) != 0 {
		t.Fatalf("the last subscriber left; resolutions %v, pending %v remain", cg.regexes, cg.pending)
	}
	h.MemberID = "A2"
	mustBeat(t, cg, h, img, t0.Add(2*time.Second))
	if n := count(cg.members["A2"].assigned); n != 1 {
		t.Fatalf("rejoining with the regex: %d partitions at the first heartbeat, want the literal topic's 1", n)
	}

	other := "other-.*"
	r = mustBeat(t, cg, beat("A2", cg.members["A2"].epoch, nil), img, t0.Add(3*time.Second))
	b := beat("A2", r.MemberEpoch, nil)
	b.Regex = &other
	mustBeat(t, cg, b, img, t0.Add(4*time.Second))
	if _, ok := cg.regexes[re]; ok {
		t.Fatalf("%q kept after its only member changed regex: %v", re, cg.regexes)
	}
}

// TestConsumerHeartbeatValidation: Kafka's request checks.
func TestConsumerHeartbeatValidation(t *testing.T) {
	l := consumerLimits()
	bad := "(("
	unknown := "sticky"
	for name, tc := range map[string]struct {
		h    ConsumerHeartbeat
		want error
	}{
		"join owning partitions": {ConsumerHeartbeat{Version: 1, MemberID: "m", RebalanceTimeout: time.Second, Topics: []string{"a"}, Owned: Assignment{tA: {0}}}, ErrInvalidRequest},
		"join without timeout":   {ConsumerHeartbeat{Version: 1, MemberID: "m", RebalanceTimeout: -1, Topics: []string{"a"}, Owned: Assignment{}}, ErrInvalidRequest},
		"join without topics":    {ConsumerHeartbeat{Version: 1, MemberID: "m", RebalanceTimeout: time.Second, Owned: Assignment{}}, ErrInvalidRequest},
		"v1 without member id":   {ConsumerHeartbeat{Version: 1, RebalanceTimeout: time.Second, Topics: []string{"a"}, Owned: Assignment{}}, ErrInvalidRequest},
		"epoch below -2":         {ConsumerHeartbeat{Version: 1, MemberID: "m", MemberEpoch: -3}, ErrInvalidRequest},
		"invalid regex":          {ConsumerHeartbeat{Version: 1, MemberID: "m", RebalanceTimeout: time.Second, Regex: &bad, Owned: Assignment{}}, ErrInvalidRegex},
		"unknown assignor":       {ConsumerHeartbeat{Version: 1, MemberID: "m", RebalanceTimeout: time.Second, Topics: []string{"a"}, Owned: Assignment{}, Assignor: &unknown}, ErrUnsupportedAssignor},
	} {
		if _, err := tc.h.validate(l); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if _, err := (&ConsumerHeartbeat{Version: 0, RebalanceTimeout: time.Second, Topics: []string{"a"}, Owned: Assignment{}}).validate(l); err != nil {
		t.Errorf("v0 join without a member id (the coordinator names it): %v", err)
	}
}

// TestAssignUniformBalancedAndSticky: counts differ by at most one, and a
// member joining moves only the partitions it needs.
func TestAssignUniformBalancedAndSticky(t *testing.T) {
	topic := []assignTopic{{id: tA, name: "a", partitions: 7}}
	two := assignUniform([]assignMember{{id: "A", topics: topic}, {id: "B", topics: topic}})
	if a, b := count(two["A"]), count(two["B"]); a+b != 7 || a-b > 1 || b-a > 1 {
		t.Fatalf("two members: %v", two)
	}
	three := assignUniform([]assignMember{{id: "A", topics: topic, prev: two["A"]}, {id: "B", topics: topic, prev: two["B"]}, {id: "C", topics: topic}})
	moved := 0
	for _, id := range []string{"A", "B"} {
		if !subset(three[id], two[id]) {
			t.Fatalf("%s gained partitions it did not have: %v -> %v", id, two[id], three[id])
		}
		moved += count(two[id]) - count(three[id])
	}
	if c := count(three["C"]); c != moved || c < 2 || c > 3 {
		t.Fatalf("C got %d partitions, %d moved: %v", c, moved, three)
	}
}

// TestAssignRangeContiguous: each topic splits into ranges, the first
// members by id one longer.
func TestAssignRangeContiguous(t *testing.T) {
	topic := []assignTopic{{id: tA, name: "a", partitions: 5}}
	got := assignRange([]assignMember{{id: "A", topics: topic}, {id: "B", topics: topic}})
	if !slices.Equal(got["A"][tA], []int32{0, 1, 2}) || !slices.Equal(got["B"][tA], []int32{3, 4}) {
		t.Fatalf("range: %v", got)
	}
}

// TestConsumerGroupSurvivesCoordinatorMove: the consumer group's records
// in __consumer_offsets (Kafka's formats) bring it back on the next
// coordinator: members, epochs, targets and assignments, a revocation in
// progress included. A member carries on at its epoch there, and the
// partition it was revoking is still withheld from the other until it
// reports the revocation; a member that left is gone.
func TestConsumerGroupSurvivesCoordinatorMove(t *testing.T) {
	img := testImage("a", "4")
	mem := statelog.NewMemory(1)
	newCoord := func(l statelog.Log) *Coordinator {
		c := New(Config{NumPartitions: 1, Log: (&leadership{l: l}).log, Consumer: consumerLimits(),
			Image: func() *metadata.Image { return img }, PartitionCount: func(string) int32 { return 4 }})
		t.Cleanup(c.Close)
		c.Start()
		return c
	}
	c1 := newCoord(mem)
	hb := func(c *Coordinator, h ConsumerHeartbeat) ConsumerHeartbeatResult {
		t.Helper()
		var r ConsumerHeartbeatResult
		testkit.Eventually(t, 10*time.Second, "a heartbeat answered", func() error {
			r = c.ConsumerHeartbeat(testCtx(t), "g", h)
			if errors.Is(r.Err, ErrCoordinatorLoading) || errors.Is(r.Err, ErrNotCoordinator) {
				return r.Err
			}
			return nil
		})
		if r.Err != nil {
			t.Fatalf("heartbeat %s@%d: %v %s", h.MemberID, h.MemberEpoch, r.Err, r.Message)
		}
		return r
	}
	ra := hb(c1, cjoin("A", "a"))
	rb := hb(c1, cjoin("B", "a"))
	rc := hb(c1, cjoin("C", "a"))
	hb(c1, beat("C", LeaveEpoch, nil))
	told := hb(c1, beat("A", ra.MemberEpoch, nil)) // A must revoke two for B
	if count(told.Assignment) != 2 {
		t.Fatalf("A told %v", told.Assignment)
	}
	before, err := c1.ConsumerDescribe(testCtx(t), "g")
	if err != nil {
		t.Fatal(err)
	}
	// What was written, change by change, is the whole state.
	var want map[string][]byte
	if err := c1.with(testCtx(t), "g", false, func(g *group, _ time.Time) { want = g.st.cg.records("g") }); err != nil {
		t.Fatal(err)
	}
	acc := newCgAcc()
	if _, err := mem.Scan(func(r statelog.Record) error {
		if len(r.Key) >= 2 && r.Key[1] >= cgMetadataKey && r.Key[1] <= cgCurrentMemberKey {
			d, err := decodeConsumerRecord(int16(r.Key[1]), r.Key, r.Value)
			if err != nil {
				return err
			}
			acc.apply(d, slices.Clone(r.Key), slices.Clone(r.Value))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(acc.raw) != len(want) {
		t.Fatalf("the log holds %d consumer records, the group %d", len(acc.raw), len(want))
	}
	for k, v := range want {
		if !bytes.Equal(acc.raw[k], v) {
			t.Fatalf("record %q: the log holds %x, the group %x", k, acc.raw[k], v)
		}
	}

	mem.Depose()
	c2 := newCoord(mem.Reopen(2))
	var after ConsumerDescription
	testkit.Eventually(t, 10*time.Second, "the group loaded", func() error {
		after, err = c2.ConsumerDescribe(testCtx(t), "g")
		return err
	})
	if after.Epoch != before.Epoch || after.AssignmentEpoch != before.AssignmentEpoch || len(after.Members) != 2 {
		t.Fatalf("loaded %+v, was %+v", after, before)
	}
	for i, m := range after.Members {
		b := before.Members[i]
		if m.MemberID != b.MemberID || m.MemberEpoch != b.MemberEpoch || !sameAssignment(m.Assignment, b.Assignment) || !sameAssignment(m.Target, b.Target) {
			t.Fatalf("member %d loaded as %+v, was %+v", i, m, b)
		}
	}
	// B gets nothing until A, still revoking on the new coordinator,
	// reports it.
	if r := hb(c2, beat("B", rb.MemberEpoch, Assignment{})); count(r.Assignment) != 0 {
		t.Fatalf("B got %v while A was revoking", r.Assignment)
	}
	ra = hb(c2, beat("A", ra.MemberEpoch, told.Assignment))
	if ra.MemberEpoch != after.AssignmentEpoch {
		t.Fatalf("A at %d after revoking, want %d", ra.MemberEpoch, after.AssignmentEpoch)
	}
	if r := hb(c2, beat("B", after.AssignmentEpoch, Assignment{})); count(r.Assignment) != 2 || intersects(r.Assignment, told.Assignment) {
		t.Fatalf("B got %v, A kept %v", r.Assignment, told.Assignment)
	}
	if r := c2.ConsumerHeartbeat(testCtx(t), "g", beat("C", rc.MemberEpoch, nil)); !errors.Is(r.Err, ErrUnknownMemberID) {
		t.Fatalf("C, which left: %v", r.Err)
	}
}

// TestConsumerRecordsRoundTrip: every record kind decodes to what was
// encoded, and a truncated value is corrupt, not a panic.
func TestConsumerRecordsRoundTrip(t *testing.T) {
	cg := newConsumerGroup(consumerLimits())
	img := testImage("a", "3")
	re := "x.*"
	h := cjoin("A", "a")
	h.Regex = &re
	inst, rack := "i", "r"
	h.InstanceID, h.RackID = &inst, &rack
	mustBeat(t, cg, h, img, t0)
	acc := newCgAcc()
	for k, v := range cg.records("g") {
		key := []byte(k)
		version := int16(key[0])<<8 | int16(key[1])
		r, err := decodeConsumerRecord(version, key, v)
		if err != nil {
			t.Fatalf("kind %d: %v", version, err)
		}
		acc.apply(r, key, v)
		for n := 2; n < len(v); n++ {
			if _, err := decodeConsumerRecord(version, key, v[:n]); err == nil && version != cgPartitionMetaKey {
				t.Fatalf("kind %d truncated to %d bytes decoded", version, n)
			}
		}
	}
	back := acc.build(consumerLimits(), t0)
	m, b := cg.members["A"], back.members["A"]
	if b == nil || b.instanceID != inst || b.rack != rack || b.regex != re || !slices.Equal(b.topics, m.topics) ||
		b.epoch != m.epoch || !sameAssignment(b.assigned, m.assigned) || back.epoch != cg.epoch ||
		!slices.Equal(back.subTopics, cg.subTopics) || back.static[inst] != "A" {
		t.Fatalf("decoded %+v, encoded %+v", b, m)
	}
}

// TestConsumerGroupRegexKeptAcrossLoad: a group loaded from the log (a new
// coordinator) has its regexes resolved at once, as Kafka, which keeps
// the resolutions in the log: its members keep what the regex gave them
// instead of revoking it for a heartbeat.
func TestConsumerGroupRegexKeptAcrossLoad(t *testing.T) {
	cg := newConsumerGroup(consumerLimits())
	img := testImage("logs-a", "2")
	re := "logs-.*"
	h := cjoin("A")
	h.Regex = &re
	r := mustBeat(t, cg, h, img, t0)
	r = mustBeat(t, cg, beat("A", r.MemberEpoch, nil), img, t0)
	if count(cg.members["A"].assigned) != 2 {
		t.Fatalf("before the load: %v", cg.members["A"].assigned)
	}
	acc := newCgAcc()
	for k, v := range cg.records("g") {
		key := []byte(k)
		rec, err := decodeConsumerRecord(int16(key[0])<<8|int16(key[1]), key, v)
		if err != nil {
			t.Fatal(err)
		}
		acc.apply(rec, key, v)
	}
	back := acc.build(consumerLimits(), t0)
	got := mustBeat(t, back, beat("A", r.MemberEpoch, cg.members["A"].assigned), img, t0.Add(time.Second))
	if got.MemberEpoch != r.MemberEpoch || count(back.members["A"].assigned) != 2 || back.epoch != cg.epoch {
		t.Fatalf("after the load: epoch %d (was %d), holds %v, group epoch %d (was %d)",
			got.MemberEpoch, r.MemberEpoch, back.members["A"].assigned, back.epoch, cg.epoch)
	}
}

// TestConsumerGroupStaticIdentity: a static member is found by its
// instance id, so a replaced member's retried leave, or a stranger naming
// the instance, is FENCED_INSTANCE_ID and changes nothing.
func TestConsumerGroupStaticIdentity(t *testing.T) {
	img := testImage("a", "2")
	cg := newConsumerGroup(consumerLimits())
	inst := "i1"
	static := func(h ConsumerHeartbeat) ConsumerHeartbeat { h.InstanceID = &inst; return h }
	mustBeat(t, cg, static(cjoin("A", "a")), img, t0)
	mustBeat(t, cg, static(beat("A", StaticLeaveEpoch, nil)), img, t0)
	r2 := mustBeat(t, cg, static(cjoin("A2", "a")), img, t0)
	for _, epoch := range []int32{LeaveEpoch, StaticLeaveEpoch} {
		if r := cg.heartbeat(static(beat("A", epoch, nil)), img, t0); !errors.Is(r.Err, ErrFencedInstanceID) {
			t.Fatalf("the replaced member leaving at %d: %v", epoch, r.Err)
		}
	}
	if r := cg.heartbeat(static(beat("X", r2.MemberEpoch, nil)), img, t0); !errors.Is(r.Err, ErrFencedInstanceID) {
		t.Fatalf("a stranger naming the instance: %v", r.Err)
	}
	if m := cg.members["A2"]; m == nil || m.departed || count(m.assigned) != 2 {
		t.Fatalf("A2 after the others' requests: %+v", m)
	}
}

// TestConsumerGroupStaticLeaveReleasesRevoking: a static member leaving
// while it revokes frees what it was revoking (the other member gets it
// at once) and keeps the rest; it commits no more at its old epoch.
func TestConsumerGroupStaticLeaveReleasesRevoking(t *testing.T) {
	img := testImage("a", "4")
	cg := newConsumerGroup(consumerLimits())
	inst := "i1"
	h := cjoin("A", "a")
	h.InstanceID = &inst
	ra := mustBeat(t, cg, h, img, t0)
	rb := mustBeat(t, cg, cjoin("B", "a"), img, t0)
	mustBeat(t, cg, beat("A", ra.MemberEpoch, nil), img, t0) // told to revoke two
	leave := beat("A", StaticLeaveEpoch, nil)
	leave.InstanceID = &inst
	mustBeat(t, cg, leave, img, t0)
	if !cg.deadline().Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("deadline %v: a revocation timer is left", cg.deadline())
	}
	if r := mustBeat(t, cg, beat("B", rb.MemberEpoch, Assignment{}), img, t0); count(r.Assignment) != 2 {
		t.Fatalf("B got %v", r.Assignment)
	}
	if err := cg.validateCommit("A", ra.MemberEpoch); !errors.Is(err, ErrStaleMemberEpoch) {
		t.Fatalf("a commit of the departed member: %v", err)
	}
}

// TestConsumerGroupTxnCommitChecks: a transactional commit naming no
// member is accepted while the group has members, and one at another
// epoch is ILLEGAL_GENERATION, as Kafka's.
func TestConsumerGroupTxnCommitChecks(t *testing.T) {
	cg := newConsumerGroup(consumerLimits())
	ra := mustBeat(t, cg, cjoin("A", "a"), testImage("a", "1"), t0)
	if err := cg.validateTxnCommit("", "", -1); err != nil {
		t.Fatalf("no member: %v", err)
	}
	if err := cg.validateTxnCommit("A", "", ra.MemberEpoch+1); !errors.Is(err, ErrIllegalGeneration) {
		t.Fatalf("another epoch: %v", err)
	}
	if err := cg.validateTxnCommit("A", "", ra.MemberEpoch); err != nil {
		t.Fatalf("the member's epoch: %v", err)
	}
}

// TestConsumerRegexValidatedAlone: an expression valid only once wrapped
// is refused.
func TestConsumerRegexValidatedAlone(t *testing.T) {
	re := "nomatch)|(.*"
	h := ConsumerHeartbeat{Version: 1, MemberID: "m", RebalanceTimeout: time.Second, Regex: &re, Owned: Assignment{}}
	if _, err := h.validate(consumerLimits()); !errors.Is(err, ErrInvalidRegex) {
		t.Fatalf("%q: %v", re, err)
	}
}

// TestAssignUniformMixedSubscriptions: the member subscribed to more
// topics takes what only it can have.
func TestAssignUniformMixedSubscriptions(t *testing.T) {
	x, y := assignTopic{id: [16]byte{1}, name: "x", partitions: 4}, assignTopic{id: [16]byte{2}, name: "y", partitions: 100}
	got := assignUniform([]assignMember{{id: "A", topics: []assignTopic{x}}, {id: "B", topics: []assignTopic{x, y}}})
	if count(got["A"]) != 4 || count(got["B"]) != 100 {
		t.Fatalf("A %d, B %d partitions", count(got["A"]), count(got["B"]))
	}
}

// TestConsumerGroupCommitAtOlderEpoch (KIP-1251): a commit at an epoch
// older than the member's is accepted for the partitions it has held
// since that epoch, and refused (STALE_MEMBER_EPOCH) for the ones it gave
// up or gained later; a later epoch is refused outright.
func TestConsumerGroupCommitAtOlderEpoch(t *testing.T) {
	img := testImage("a", "4")
	cg := newConsumerGroup(consumerLimits())
	ra := mustBeat(t, cg, cjoin("A", "a"), img, t0)
	e1 := ra.MemberEpoch
	mustBeat(t, cg, cjoin("B", "a"), img, t0)
	kept := mustBeat(t, cg, beat("A", e1, nil), img, t0).Assignment
	ra = mustBeat(t, cg, beat("A", e1, kept), img, t0) // revoked two: a new epoch
	if ra.MemberEpoch == e1 {
		t.Fatal("A did not move on")
	}
	ok, err := cg.commitCheck("A", e1, 9)
	if err != nil || ok == nil {
		t.Fatalf("a commit at the previous epoch: %v", err)
	}
	for p := int32(0); p < 4; p++ {
		want := slices.Contains(kept[tA], p)
		if got := ok(tA, p); got != want {
			t.Errorf("partition %d at epoch %d: accepted %v, want %v (A kept %v)", p, e1, got, want, kept)
		}
	}
	if _, err := cg.commitCheck("A", ra.MemberEpoch+1, 9); !errors.Is(err, ErrStaleMemberEpoch) {
		t.Fatalf("a later epoch: %v", err)
	}
	if ok, err := cg.commitCheck("A", ra.MemberEpoch, 9); err != nil || ok != nil {
		t.Fatalf("the member's epoch: %v", err)
	}
	// Before v9 OffsetCommit cannot name a member epoch: refused as
	// UNSUPPORTED_VERSION for members, as Kafka; an unknown member is
	// still UNKNOWN_MEMBER_ID and a commit to the group without members
	// goes through.
	if _, err := cg.commitCheck("A", ra.MemberEpoch, 8); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("a v8 commit of a member: %v", err)
	}
	if _, err := cg.commitCheck("Z", 1, 8); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("a v8 commit of an unknown member: %v", err)
	}
}

// TestConsumerRecordsWrittenIncrementally: the records written change by
// change (changedRecords after each heartbeat and tick) always add up to
// the group's whole state, a new target for members that did not
// heartbeat and the removal of expired ones included.
func TestConsumerRecordsWrittenIncrementally(t *testing.T) {
	img := testImage("a", "6")
	cg := newConsumerGroup(consumerLimits())
	log := map[string][]byte{}
	flush := func(what string) {
		t.Helper()
		for k, v := range cg.changedRecords("g") {
			if v == nil {
				delete(log, k)
			} else {
				log[k] = v
			}
		}
		want := cg.records("g")
		if len(log) != len(want) {
			t.Fatalf("after %s: %d records written, the state has %d", what, len(log), len(want))
		}
		for k, v := range want {
			if !bytes.Equal(log[k], v) {
				t.Fatalf("after %s: record %q is stale", what, k)
			}
		}
	}
	ra := mustBeat(t, cg, cjoin("A", "a"), img, t0)
	flush("A joins")
	mustBeat(t, cg, cjoin("B", "a"), img, t0)
	flush("B joins") // A's target changed; A did not heartbeat
	mustBeat(t, cg, beat("A", ra.MemberEpoch, nil), img, t0)
	flush("A told to revoke")
	mustBeat(t, cg, cjoin("C", "a"), img, t0.Add(2*time.Second))
	flush("C joins")
	cg.tick(t0.Add(4 * time.Second)) // A's revocation and session, B's session end
	flush("A and B removed")
	if len(cg.members) != 1 {
		t.Fatalf("members left: %d", len(cg.members))
	}
}
