package group

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

var t0 = time.Unix(1000, 0)

func testLimits() Limits {
	l := DefaultLimits()
	l.InitialRebalanceDelay = 0
	l.MinSessionTimeout = time.Second
	l.MaxSize = 3
	return l
}

func newTestGroup() *groupState {
	g := newGroupState("g", testLimits(), t0)
	n := 0
	g.newMemberID = func(c string) string { n++; return fmt.Sprintf("%s-%d", c, n) }
	return g
}

func joinReq(id, instance string) JoinRequest {
	return JoinRequest{MemberID: id, InstanceID: instance, ClientID: "c", ProtocolType: "consumer",
		Protocols:      []Protocol{{Name: "range", Metadata: []byte("m")}},
		SessionTimeout: 2 * time.Second, RebalanceTimeout: 5 * time.Second, RequireKnownMemberID: true}
}

// run executes replies synchronously (persists are no-ops here).
func run(acts []action) {
	for _, a := range acts {
		switch a := a.(type) {
		case replyJoin:
			a.ch <- a.res
		case replySync:
			a.ch <- a.res
		}
	}
}

// runAt executes replies and restarts sessions at now (the runner reaching
// the actions at that time, after a persist).
func runAt(g *groupState, acts []action, now time.Time) {
	run(acts)
	for _, a := range acts {
		if r, ok := a.(restartSessions); ok {
			g.restart(r.members, now)
		}
	}
}

func join(g *groupState, req JoinRequest, now time.Time) chan JoinResult {
	ch := make(chan JoinResult, 1)
	run(g.join(req, ch, now))
	return ch
}

func doSync(g *groupState, req SyncRequest, now time.Time) chan SyncResult {
	ch := make(chan SyncResult, 1)
	run(g.syncGroup(req, ch, now))
	return ch
}

func got[T any](t *testing.T, ch chan T) T {
	t.Helper()
	select {
	case r := <-ch:
		return r
	default:
		t.Fatalf("no reply")
		panic("unreachable")
	}
}

func parked[T any](t *testing.T, ch chan T) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("unexpected reply %+v", r)
	default:
	}
}

// joinStable brings members (by instance id, "" for dynamic) to Stable.
func joinStable(t *testing.T, g *groupState, instances ...string) []string {
	t.Helper()
	var ids []string
	var chs []chan JoinResult
	g.limits.InitialRebalanceDelay = time.Second
	for _, inst := range instances {
		id := ""
		if inst == "" {
			r := got(t, join(g, joinReq("", ""), t0))
			if !errors.Is(r.Err, ErrMemberIDRequired) {
				t.Fatalf("first join: %v", r.Err)
			}
			id = r.MemberID
		}
		chs = append(chs, join(g, joinReq(id, inst), t0))
	}
	run(g.tick(t0.Add(time.Second))) // the initial delay ends
	g.limits.InitialRebalanceDelay = 0
	var leader string
	for _, ch := range chs {
		r := got(t, ch)
		if r.Err != nil {
			t.Fatalf("join: %v", r.Err)
		}
		ids = append(ids, r.MemberID)
		leader = r.LeaderID
	}
	if g.state != CompletingRebalance {
		t.Fatalf("state %v, want CompletingRebalance", g.state)
	}
	asg := map[string][]byte{}
	for _, id := range ids {
		asg[id] = []byte("asg-" + id)
	}
	var syncs []chan SyncResult
	for _, id := range ids {
		req := SyncRequest{MemberID: id, Generation: g.generation}
		if id == leader {
			req.Assignments = asg
		}
		syncs = append(syncs, doSync(g, req, t0))
	}
	for i, ch := range syncs {
		if r := got(t, ch); r.Err != nil || string(r.Assignment) != "asg-"+ids[i] {
			t.Fatalf("sync %s: %+v", ids[i], r)
		}
	}
	if g.state != Stable {
		t.Fatalf("state %v, want Stable", g.state)
	}
	return ids
}

func TestGroupKIP394MemberIDRequired(t *testing.T) {
	g := newTestGroup()
	r := got(t, join(g, joinReq("", ""), t0))
	if !errors.Is(r.Err, ErrMemberIDRequired) || r.MemberID == "" {
		t.Fatalf("got %+v", r)
	}
	// An unknown member id is refused; the pending one joins.
	if r := got(t, join(g, joinReq("nope", ""), t0)); !errors.Is(r.Err, ErrUnknownMemberID) {
		t.Fatalf("unknown member: %v", r.Err)
	}
	if r := got(t, join(g, joinReq(r.MemberID, ""), t0)); r.Err != nil || r.Generation != 1 {
		t.Fatalf("rejoin: %+v", r)
	}
}

func TestGroupErrors(t *testing.T) {
	g := newTestGroup()
	ids := joinStable(t, g, "", "")
	cases := []struct {
		name string
		err  error
		got  func() error
	}{
		{"session timeout too small", ErrInvalidSessionTimeout, func() error {
			r := joinReq("", "")
			r.SessionTimeout = time.Millisecond
			return got(t, join(g, r, t0)).Err
		}},
		{"inconsistent protocol", ErrInconsistentGroupProtocol, func() error {
			r := joinReq("", "")
			r.Protocols = []Protocol{{Name: "other"}}
			return got(t, join(g, r, t0)).Err
		}},
		{"heartbeat wrong generation", ErrIllegalGeneration, func() error { return g.heartbeat(ids[0], "", 99, t0) }},
		{"heartbeat unknown member", ErrUnknownMemberID, func() error { return g.heartbeat("x", "", 1, t0) }},
		{"sync wrong generation", ErrIllegalGeneration, func() error {
			return got(t, doSync(g, SyncRequest{MemberID: ids[0], Generation: 7}, t0)).Err
		}},
		{"heartbeat ok", nil, func() error { return g.heartbeat(ids[1], "", g.generation, t0) }},
		{"group max size", ErrGroupMaxSizeReached, func() error {
			got(t, join(g, joinReq("", ""), t0)) // third member pending
			return got(t, join(g, joinReq("", ""), t0)).Err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.got(); !errors.Is(err, c.err) || (c.err == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, c.err)
			}
		})
	}
}

func TestGroupSessionTimeoutRemovesMember(t *testing.T) {
	g := newTestGroup()
	ids := joinStable(t, g, "", "")
	now := t0.Add(1500 * time.Millisecond)
	if err := g.heartbeat(ids[0], "", g.generation, now); err != nil {
		t.Fatal(err)
	}
	// ids[1] never heartbeats: its session (2s) ends.
	if d := g.deadline(); !d.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("deadline %v", d)
	}
	run(g.tick(t0.Add(2 * time.Second)))
	if g.state != PreparingRebalance || g.members[ids[1]] != nil {
		t.Fatalf("state %v members %d", g.state, len(g.members))
	}
	if err := g.heartbeat(ids[0], "", 1, now); !errors.Is(err, ErrRebalanceInProgress) {
		t.Fatalf("heartbeat during rebalance: %v", err)
	}
	ch := join(g, joinReq(ids[0], ""), now)
	if r := got(t, ch); r.Err != nil || r.Generation != 2 || len(r.Members) != 1 {
		t.Fatalf("rejoin: %+v", r)
	}
}

func TestGroupRebalanceTimeoutRemovesLaggards(t *testing.T) {
	g := newTestGroup()
	ids := joinStable(t, g, "", "")
	// ids[0] rejoins (a rebalance); ids[1] keeps heartbeating but never rejoins.
	ch := join(g, joinReq(ids[0], ""), t0)
	parked(t, ch)
	for at := t0; at.Before(t0.Add(5 * time.Second)); at = at.Add(time.Second) {
		g.heartbeat(ids[1], "", g.generation, at)
		run(g.tick(at))
	}
	parked(t, ch)
	run(g.tick(t0.Add(5 * time.Second)))
	if r := got(t, ch); r.Err != nil || len(r.Members) != 1 {
		t.Fatalf("join after rebalance timeout: %+v", r)
	}
	// A member that never sends SyncGroup is removed at the sync deadline.
	run(g.tick(t0.Add(10 * time.Second)))
	if len(g.members) != 0 || g.state != Empty {
		t.Fatalf("state %v members %d", g.state, len(g.members))
	}
}

func TestGroupKIP345StaticRejoinKeepsAssignment(t *testing.T) {
	g := newTestGroup()
	ids := joinStable(t, g, "a", "b")
	gen := g.generation
	r := got(t, join(g, joinReq("", "b"), t0.Add(time.Second)))
	if r.Err != nil || r.Generation != gen || r.MemberID == ids[1] {
		t.Fatalf("static rejoin: %+v", r)
	}
	if g.state != Stable {
		t.Fatalf("state %v, want Stable (no rebalance)", g.state)
	}
	s := got(t, doSync(g, SyncRequest{MemberID: r.MemberID, InstanceID: "b", Generation: gen}, t0))
	if string(s.Assignment) != "asg-"+ids[1] {
		t.Fatalf("assignment %q", s.Assignment)
	}
	// The old member id is fenced.
	if err := g.heartbeat(ids[1], "b", gen, t0); !errors.Is(err, ErrFencedInstanceID) {
		t.Fatalf("old id heartbeat: %v", err)
	}
}

func TestGroupLeaveAll(t *testing.T) {
	g := newTestGroup()
	ids := joinStable(t, g, "", "")
	errs, acts := g.leave([]MemberLeave{{MemberID: ids[0]}, {MemberID: ids[1]}, {MemberID: "x"}}, t0)
	run(acts)
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], ErrUnknownMemberID) {
		t.Fatalf("errs %v", errs)
	}
	if g.state != Empty || g.generation != 2 {
		t.Fatalf("state %v generation %d", g.state, g.generation)
	}
}

func TestGroupProtocolVote(t *testing.T) {
	g := newTestGroup()
	for _, ps := range [][]string{{"a", "b"}, {"b", "a"}, {"b", "a", "c"}} {
		m := &member{id: ps[0] + fmt.Sprint(len(g.members))}
		for _, p := range ps {
			m.protocols = append(m.protocols, Protocol{Name: p})
		}
		g.members[m.id] = m
		if g.leader == "" {
			g.leader = m.id
		}
	}
	if p := g.selectProtocol(); p != "b" {
		t.Fatalf("selected %q, want b", p)
	}
}

func TestGroupJavaHashPartition(t *testing.T) {
	for _, c := range []struct {
		id   string
		hash int32
	}{{"", 0}, {"a", 97}, {"polygenelubricants", -2147483648}} {
		if h := JavaStringHashCode(c.id); h != c.hash {
			t.Errorf("hash(%q) = %d, want %d", c.id, h, c.hash)
		}
	}
	if p := PartitionFor("polygenelubricants", 50); p != 0 {
		t.Errorf("partition %d", p)
	}
}

// TestGroupKIP345StaticRejoinNewMetadata: a restarted static member's
// subscription bytes differ (franz-go and the Java client put the
// generation in them); like Kafka, only a change of the selected protocol
// rebalances the group.
func TestGroupKIP345StaticRejoinNewMetadata(t *testing.T) {
	for _, c := range []struct {
		name      string
		instance  string // which member restarts
		protocols []Protocol
		rebalance bool
	}{
		{"follower new metadata", "b", []Protocol{{Name: "range", Metadata: []byte("m-gen-7")}}, false},
		{"leader new metadata", "a", []Protocol{{Name: "range", Metadata: []byte("m-gen-7")}}, false},
		{"follower adds a protocol", "b", []Protocol{{Name: "range", Metadata: []byte("x")}, {Name: "sticky"}}, false},
		{"follower drops the protocol", "b", []Protocol{{Name: "range"}}, false},
		{"selected protocol changes", "b", []Protocol{{Name: "other"}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newTestGroup()
			ids := joinStable(t, g, "a", "b")
			if c.rebalance {
				// Make "other" supported by everyone so a vote can pick it.
				for _, m := range g.members {
					m.protocols = append(m.protocols, Protocol{Name: "other"})
				}
				// With two members, one vote each: "range" (leader's
				// preference) would still win, so make a prefer "other" too.
				lead := g.members[g.leader]
				lead.protocols = []Protocol{{Name: "other"}, {Name: "range", Metadata: []byte("m")}}
			}
			gen := g.generation
			req := joinReq("", c.instance)
			req.Protocols = c.protocols
			ch := join(g, req, t0.Add(time.Second))
			if c.rebalance {
				parked(t, ch)
				if g.state != PreparingRebalance {
					t.Fatalf("state %v, want PreparingRebalance", g.state)
				}
				return
			}
			r := got(t, ch)
			if r.Err != nil || r.Generation != gen || g.state != Stable || g.generation != gen {
				t.Fatalf("static rejoin: %+v, state %v generation %d (was %d)", r, g.state, g.generation, gen)
			}
			wasLeader := c.instance == "a" && g.leader == r.MemberID
			if r.SkipAssignment != wasLeader {
				t.Fatalf("skip assignment %v, leader %v", r.SkipAssignment, wasLeader)
			}
			old := ids[0]
			if c.instance == "b" {
				old = ids[1]
			}
			s := got(t, doSync(g, SyncRequest{MemberID: r.MemberID, InstanceID: c.instance, Generation: gen}, t0))
			if s.Err != nil || string(s.Assignment) != "asg-"+old {
				t.Fatalf("sync after rejoin: %+v, want asg-%s", s, old)
			}
			if !g.members[r.MemberID].sameProtocols(c.protocols) {
				t.Fatalf("member keeps old protocols %+v", g.members[r.MemberID].protocols)
			}
		})
	}
}

// TestGroupSyncKeepsMembersAlive: a follower parked in SyncGroup while the
// leader is slow is not expired by its session (Kafka's shouldKeepAlive),
// and every member's session restarts when the assignment is delivered,
// after the persist, however long that took.
func TestGroupSyncKeepsMembersAlive(t *testing.T) {
	g := newTestGroup()
	ids := joinStable(t, g, "", "")
	leaderCh := join(g, joinReq(ids[0], ""), t0) // a rebalance
	followerCh := join(g, joinReq(ids[1], ""), t0)
	lr, fr := got(t, leaderCh), got(t, followerCh)
	if lr.Err != nil || fr.Err != nil || g.state != CompletingRebalance {
		t.Fatalf("rejoin: %+v %+v state %v", lr, fr, g.state)
	}
	leader, follower := lr.MemberID, fr.MemberID
	if lr.LeaderID != leader {
		leader, follower = follower, leader
	}
	fsync := doSync(g, SyncRequest{MemberID: follower, Generation: g.generation}, t0)
	// 3s later (session 2s) the follower is still parked: a member parked
	// in sync is kept alive (the leader heartbeated at 1.5s).
	g.heartbeat(leader, "", g.generation, t0.Add(1500*time.Millisecond))
	run(g.tick(t0.Add(3 * time.Second)))
	parked(t, fsync)
	if g.members[follower] == nil || g.state != CompletingRebalance {
		t.Fatalf("follower expired while waiting for the leader: state %v", g.state)
	}
	// The leader syncs at 3.4s; the persist takes until 5s.
	acts := g.syncGroup(SyncRequest{MemberID: leader, Generation: g.generation,
		Assignments: map[string][]byte{leader: []byte("L"), follower: []byte("F")}}, make(chan SyncResult, 1), t0.Add(3400*time.Millisecond))
	runAt(g, acts, t0.Add(5*time.Second))
	if r := got(t, fsync); r.Err != nil || string(r.Assignment) != "F" {
		t.Fatalf("follower sync: %+v", r)
	}
	for _, id := range []string{leader, follower} {
		if m := g.members[id]; m == nil || !m.expires.Equal(t0.Add(7*time.Second)) {
			t.Fatalf("member %s session not restarted after the persist: %+v", id, m)
		}
	}
	run(g.tick(t0.Add(6 * time.Second)))
	if g.state != Stable || len(g.members) != 2 {
		t.Fatalf("state %v members %d, want Stable with 2", g.state, len(g.members))
	}
}

// TestGroupKIP394PendingOutlivesJoinPhase: a member id handed out with
// MEMBER_ID_REQUIRED stays valid for its session timeout even when the
// rebalance deadline ends the join phase before the member rejoins with it,
// as in Kafka (onCompleteJoin removes members that did not rejoin, never
// pending ids). Dropping it answered the rejoin UNKNOWN_MEMBER_ID.
//
// The id is handed out before the leader rejoins: a pending id holds the
// join phase open (a lone member rejoining otherwise completes it at once).
func TestGroupKIP394PendingOutlivesJoinPhase(t *testing.T) {
	g := newTestGroup()
	a := joinStable(t, g, "")[0]
	first := joinReq("", "")
	first.SessionTimeout = 10 * time.Second // outlives the join phase
	r := got(t, join(g, first, t0.Add(400*time.Millisecond)))
	if !errors.Is(r.Err, ErrMemberIDRequired) {
		t.Fatalf("first join: %v", r.Err)
	}
	b := r.MemberID
	ja := join(g, joinReq(a, ""), t0.Add(500*time.Millisecond)) // the leader rejoins: a rebalance
	if g.state != PreparingRebalance {
		t.Fatalf("state %v, want PreparingRebalance (an id is pending)", g.state)
	}
	parked(t, ja)
	run(g.tick(t0.Add(5500 * time.Millisecond))) // the rebalance timeout ends the join phase
	if r := got(t, ja); r.Err != nil || len(r.Members) != 1 {
		t.Fatalf("leader's join: %+v", r)
	}
	jb := join(g, joinReq(b, ""), t0.Add(5600*time.Millisecond))
	parked(t, jb)
	if g.members[b] == nil || g.state != PreparingRebalance {
		t.Fatalf("member %s not added (state %v)", b, g.state)
	}
	run(g.tick(t0.Add(5600 * time.Millisecond)))
	// a rejoins; then both are in the next generation.
	ja = join(g, joinReq(a, ""), t0.Add(5700*time.Millisecond))
	ra, rb := got(t, ja), got(t, jb)
	if ra.Err != nil || rb.Err != nil || ra.Generation != rb.Generation || len(ra.Members)+len(rb.Members) != 2 {
		t.Fatalf("joins: %+v %+v", ra, rb)
	}
}

// TestGroupLoneMemberRejoinCompletesAtOnce: the only member of a Stable
// group rejoins with a new subscription (librdkafka does so when its
// subscription or a matched regex changes). Every member has then
// rejoined, so the join completes at once with a new generation, as in
// Kafka, and not at the rebalance timeout: librdkafka's
// 0045_subscribe_many_updates waited its max.poll.interval.ms (300 s).
// The same holds for the leader rejoining with its protocols unchanged,
// for a member rejoining with new protocols while the group completes a
// rebalance, and for a static member replaced with new protocols.
func TestGroupLoneMemberRejoinCompletesAtOnce(t *testing.T) {
	newSub := func(req JoinRequest) JoinRequest {
		req.Protocols = []Protocol{{Name: "range", Metadata: []byte("new subscription")}}
		return req
	}
	for _, tc := range []struct {
		name   string
		static string
		rejoin func(g *groupState, id string) chan JoinResult
	}{
		{"new protocols in Stable", "", func(g *groupState, id string) chan JoinResult {
			return join(g, newSub(joinReq(id, "")), t0.Add(2*time.Second))
		}},
		{"leader, same protocols, in Stable", "", func(g *groupState, id string) chan JoinResult {
			return join(g, joinReq(id, ""), t0.Add(2*time.Second))
		}},
		{"new protocols in CompletingRebalance", "", func(g *groupState, id string) chan JoinResult {
			// A leader rejoin starts a rebalance that completes at once
			// (CompletingRebalance), then the member rejoins again with
			// a new subscription before it syncs.
			got(t, join(g, joinReq(id, ""), t0.Add(2*time.Second)))
			if g.state != CompletingRebalance {
				t.Fatalf("state %v after the first rejoin, want CompletingRebalance", g.state)
			}
			return join(g, newSub(joinReq(id, "")), t0.Add(2*time.Second))
		}},
		{"static member replaced with new protocols", "inst", func(g *groupState, _ string) chan JoinResult {
			// Preferring another protocol changes the one the group
			// selects, which takes a rebalance.
			req := joinReq("", "inst")
			req.Protocols = []Protocol{{Name: "roundrobin", Metadata: []byte("m")}, {Name: "range", Metadata: []byte("m")}}
			return join(g, req, t0.Add(2*time.Second))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGroup()
			ids := joinStable(t, g, tc.static)
			gen := g.generation
			r := got(t, tc.rejoin(g, ids[0]))
			if r.Err != nil || r.Generation <= gen || g.state != CompletingRebalance {
				t.Fatalf("rejoin: err %v generation %d (was %d), state %v; want an answer at once with a new generation",
					r.Err, r.Generation, gen, g.state)
			}
		})
	}
}
