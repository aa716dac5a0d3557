package group

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sort"
	"time"
)

// State is a classic group's state, spelled as Kafka spells it.
type State int8

// The group states (Kafka's GroupState).
const (
	Empty State = iota
	PreparingRebalance
	CompletingRebalance
	Stable
	Dead
)

func (s State) String() string {
	switch s {
	case Empty:
		return "Empty"
	case PreparingRebalance:
		return "PreparingRebalance"
	case CompletingRebalance:
		return "CompletingRebalance"
	case Stable:
		return "Stable"
	default:
		return "Dead"
	}
}

// Errors the coordinator answers with; the broker maps them to Kafka codes.
var (
	ErrUnknownMemberID           = errors.New("group: unknown member id")
	ErrIllegalGeneration         = errors.New("group: illegal generation")
	ErrRebalanceInProgress       = errors.New("group: rebalance in progress")
	ErrMemberIDRequired          = errors.New("group: member id required")
	ErrFencedInstanceID          = errors.New("group: fenced instance id")
	ErrGroupMaxSizeReached       = errors.New("group: group max size reached")
	ErrInvalidSessionTimeout     = errors.New("group: invalid session timeout")
	ErrInconsistentGroupProtocol = errors.New("group: inconsistent group protocol")
	ErrInvalidGroupID            = errors.New("group: invalid group id")
	ErrMemberMetadataTooLarge    = errors.New("group: member metadata too large")
	ErrCoordinatorNotAvailable   = errors.New("group: coordinator not available")
	ErrNotCoordinator            = errors.New("group: not the coordinator")
	ErrCoordinatorLoading        = errors.New("group: coordinator load in progress")
	ErrNonEmptyGroup             = errors.New("group: group is not empty")
	ErrGroupIDNotFound           = errors.New("group: group id not found")
	ErrGroupSubscribedToTopic    = errors.New("group: group is subscribed to the topic")
	ErrUnknownTopicOrPartition   = errors.New("group: unknown topic or partition")
	ErrOffsetMetadataTooLarge    = errors.New("group: offset metadata too large")
)

// Protocol is one assignor a member supports, with its metadata.
type Protocol struct {
	Name     string
	Metadata []byte
}

// Limits are the broker properties that bound groups.
type Limits struct {
	MinSessionTimeout time.Duration // group.min.session.timeout.ms
	MaxSessionTimeout time.Duration // group.max.session.timeout.ms
	MaxSize           int           // group.max.size
	// InitialRebalanceDelay is group.initial.rebalance.delay.ms: an empty
	// group waits this long (extended per joining member, up to the
	// rebalance timeout) before completing its first join, so a fleet of
	// consumers starting together costs one rebalance.
	InitialRebalanceDelay time.Duration
	// MaxMemberMetadataBytes bounds the protocols' metadata of one member.
	MaxMemberMetadataBytes int
}

// DefaultLimits are Kafka's defaults.
func DefaultLimits() Limits {
	return Limits{MinSessionTimeout: 6 * time.Second, MaxSessionTimeout: 30 * time.Minute,
		MaxSize: 1<<31 - 1, InitialRebalanceDelay: 3 * time.Second, MaxMemberMetadataBytes: 1 << 20}
}

// JoinRequest is a JoinGroup.
type JoinRequest struct {
	MemberID, InstanceID string
	ClientID, ClientHost string
	ProtocolType         string
	Protocols            []Protocol
	SessionTimeout       time.Duration
	RebalanceTimeout     time.Duration
	// RequireKnownMemberID is KIP-394 (JoinGroup v4+): a first join with an
	// empty member id gets ErrMemberIDRequired and an id to rejoin with.
	RequireKnownMemberID bool
}

// JoinedMember is one member in the leader's JoinGroup response.
type JoinedMember struct {
	MemberID, InstanceID string
	Metadata             []byte
}

// JoinResult answers a JoinGroup. MemberID is set also with
// ErrMemberIDRequired.
type JoinResult struct {
	Err          error
	Generation   int32
	ProtocolType string
	Protocol     string
	LeaderID     string
	MemberID     string
	Members      []JoinedMember
	// SkipAssignment tells a rejoining static leader not to reassign
	// (JoinGroup v9, KIP-814).
	SkipAssignment bool
}

// SyncRequest is a SyncGroup. ProtocolType and Protocol are checked when
// not nil (v5+).
type SyncRequest struct {
	MemberID, InstanceID   string
	Generation             int32
	ProtocolType, Protocol *string
	Assignments            map[string][]byte
}

// SyncResult answers a SyncGroup.
type SyncResult struct {
	Err          error
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// MemberLeave names a member leaving (LeaveGroup v3+ batches them).
type MemberLeave struct {
	MemberID, InstanceID string
}

// member is one member of a group.
type member struct {
	id, instanceID       string
	clientID, clientHost string
	protocolType         string
	protocols            []Protocol
	session, rebalance   time.Duration
	assignment           []byte
	// join and sync are the parked JoinGroup/SyncGroup replies, nil when
	// none is parked.
	join chan JoinResult
	sync chan SyncResult
	// expires is when the member's session ends without a heartbeat.
	expires time.Time
}

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func (m *member) sameProtocols(ps []Protocol) bool {
	return slices.EqualFunc(m.protocols, ps, func(a, b Protocol) bool {
		return a.Name == b.Name && string(a.Metadata) == string(b.Metadata)
	})
}

// action is something the state machine asks its runner to do, in order.
type action interface{ isAction() }

type replyJoin struct {
	ch  chan JoinResult
	res JoinResult
}

type replySync struct {
	ch  chan SyncResult
	res SyncResult
}

// persistGroup writes the group's metadata record (a tombstone when Dead).
type persistGroup struct{}

// restartSessions starts the sessions of these members afresh at the time
// the runner reaches this action (after the persist before it).
type restartSessions struct{ members []string }

// restart restarts the named members' sessions at now.
func (g *groupState) restart(ids []string, now time.Time) {
	for _, id := range ids {
		if m := g.members[id]; m != nil {
			m.expires = now.Add(m.session)
		}
	}
}

func (restartSessions) isAction() {}
func (replyJoin) isAction()       {}
func (replySync) isAction()       {}
func (persistGroup) isAction()    {}

// groupState is one group's membership state machine. It is not safe for
// concurrent use: its actor owns it.
type groupState struct {
	id     string
	limits Limits
	// newMemberID makes a member id from a prefix (the group.instance.id
	// of a static member, else the client id).
	newMemberID func(clientID string) string

	state        State
	stateTime    time.Time
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	// pending are KIP-394 member ids handed out but not yet joined with,
	// with when they expire (one session timeout).
	pending map[string]time.Time
	// static maps group.instance.id to the current member id (KIP-345).
	static map[string]string

	// rebalanceDeadline ends the join phase of PreparingRebalance.
	rebalanceDeadline time.Time
	// initialDelay marks a join phase started from Empty, during which the
	// group waits for group.initial.rebalance.delay.ms.
	initialDelay bool
	initialStart time.Time
	// syncDeadline ends CompletingRebalance: members in pendingSync that
	// have not sent SyncGroup by then are removed.
	syncDeadline time.Time
	pendingSync  map[string]bool

	// cg is the KIP-848 state of a consumer group (consumer.go); the
	// classic state is then Empty. It stays when its last member leaves
	// (an empty consumer group) until a classic member joins.
	cg *consumerGroup

	out []action
}

func newGroupState(id string, limits Limits, now time.Time) *groupState {
	return &groupState{id: id, limits: limits, newMemberID: randomMemberID, stateTime: now,
		members: map[string]*member{}, pending: map[string]time.Time{}, static: map[string]string{},
		pendingSync: map[string]bool{}}
}

func randomMemberID(clientID string) string {
	var b [16]byte
	rand.Read(b[:])
	return clientID + "-" + hex.EncodeToString(b[:])
}

func (g *groupState) take() []action {
	out := g.out
	g.out = nil
	return out
}

func (g *groupState) transition(s State, now time.Time) {
	g.state = s
	g.stateTime = now
}

func (g *groupState) sortedMembers() []*member {
	out := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// join handles a JoinGroup; its reply goes to ch (now or later) through the
// returned actions.
func (g *groupState) join(req JoinRequest, ch chan JoinResult, now time.Time) []action {
	fail := func(err error) []action {
		g.out = append(g.out, replyJoin{ch, JoinResult{Err: err, MemberID: req.MemberID, Generation: -1}})
		return g.take()
	}
	if req.SessionTimeout < g.limits.MinSessionTimeout || req.SessionTimeout > g.limits.MaxSessionTimeout {
		return fail(ErrInvalidSessionTimeout)
	}
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout
	}
	size := 0
	for _, p := range req.Protocols {
		size += len(p.Name) + len(p.Metadata)
	}
	if g.limits.MaxMemberMetadataBytes > 0 && size > g.limits.MaxMemberMetadataBytes {
		return fail(ErrMemberMetadataTooLarge)
	}
	if g.state == Dead {
		return fail(ErrCoordinatorNotAvailable)
	}
	if !g.supports(req.ProtocolType, req.Protocols) {
		return fail(ErrInconsistentGroupProtocol)
	}
	if req.MemberID == "" {
		return g.joinUnknown(req, ch, now)
	}
	if req.InstanceID != "" {
		if cur, ok := g.static[req.InstanceID]; ok && cur != req.MemberID {
			return fail(ErrFencedInstanceID)
		}
	}
	m := g.members[req.MemberID]
	if m == nil {
		if _, ok := g.pending[req.MemberID]; ok {
			delete(g.pending, req.MemberID)
			if len(g.members) >= g.limits.MaxSize {
				return fail(ErrGroupMaxSizeReached)
			}
			g.addMember(req, req.MemberID, ch, now)
			return g.take()
		}
		return fail(ErrUnknownMemberID)
	}
	switch g.state {
	case PreparingRebalance:
		g.updateMember(m, req, ch, now)
		g.tryCompleteJoin(now)
	case CompletingRebalance:
		if m.sameProtocols(req.Protocols) {
			// A retried join (the response was lost): answer it again.
			m.expires = now.Add(m.session)
			g.out = append(g.out, replyJoin{ch, g.joinResult(m, false)})
		} else {
			g.updateMember(m, req, ch, now)
			g.prepareRebalance(now)
			g.tryCompleteJoin(now)
		}
	case Stable:
		if m.id == g.leader || !m.sameProtocols(req.Protocols) {
			// The leader rejoins to trigger a rebalance (e.g. a metadata
			// change it saw); anyone with new protocols needs one too.
			// A lone member has then rejoined everyone: the join
			// completes at once, as in Kafka, not at the rebalance
			// timeout (librdkafka's 0045_subscribe_many_updates waited
			// max.poll.interval.ms, 300 s, for its new subscription).
			g.updateMember(m, req, ch, now)
			g.prepareRebalance(now)
			g.tryCompleteJoin(now)
		} else {
			m.expires = now.Add(m.session)
			g.out = append(g.out, replyJoin{ch, g.joinResult(m, false)})
		}
	default: // Empty: no members, so m cannot exist.
		return fail(ErrUnknownMemberID)
	}
	return g.take()
}

func (g *groupState) joinUnknown(req JoinRequest, ch chan JoinResult, now time.Time) []action {
	fail := func(err error, id string) []action {
		g.out = append(g.out, replyJoin{ch, JoinResult{Err: err, MemberID: id, Generation: -1}})
		return g.take()
	}
	// Like Kafka, a static member's id starts with its group.instance.id
	// (clients rely on it to recognise a leader id across a restart).
	prefix := req.ClientID
	if req.InstanceID != "" {
		prefix = req.InstanceID
	}
	id := g.newMemberID(prefix)
	if req.InstanceID != "" {
		if old, ok := g.static[req.InstanceID]; ok {
			return g.replaceStatic(req, g.members[old], id, ch, now)
		}
		if len(g.members)+len(g.pending) >= g.limits.MaxSize {
			return fail(ErrGroupMaxSizeReached, "")
		}
		g.addMember(req, id, ch, now)
		return g.take()
	}
	if len(g.members)+len(g.pending) >= g.limits.MaxSize {
		return fail(ErrGroupMaxSizeReached, "")
	}
	if req.RequireKnownMemberID {
		g.pending[id] = now.Add(req.SessionTimeout)
		return fail(ErrMemberIDRequired, id)
	}
	g.addMember(req, id, ch, now)
	return g.take()
}

// replaceStatic gives a rejoining static member (KIP-345) a new member id in
// place of old. In Stable, unless its protocols change the protocol the
// group selects, it gets its assignment back without a rebalance and without
// a new generation (a leader is told to skip assignment, KIP-814); the old
// id is fenced.
func (g *groupState) replaceStatic(req JoinRequest, old *member, id string, ch chan JoinResult, now time.Time) []action {
	if old.join != nil {
		g.out = append(g.out, replyJoin{old.join, JoinResult{Err: ErrFencedInstanceID, MemberID: old.id, Generation: -1}})
		old.join = nil
	}
	if old.sync != nil {
		g.out = append(g.out, replySync{old.sync, SyncResult{Err: ErrFencedInstanceID}})
		old.sync = nil
	}
	delete(g.members, old.id)
	wasLeader := g.leader == old.id
	sync := g.pendingSync[old.id]
	delete(g.pendingSync, old.id)
	m := *old
	m.id = id
	m.clientID, m.clientHost = req.ClientID, req.ClientHost
	m.session, m.rebalance = req.SessionTimeout, req.RebalanceTimeout
	m.expires = now.Add(req.SessionTimeout)
	g.members[id] = &m
	g.static[req.InstanceID] = id
	if wasLeader {
		g.leader = id
	}
	if sync {
		g.pendingSync[id] = true
	}
	switch {
	case g.state == Stable && g.keepsProtocol(&m, req):
		// Kafka compares only the protocol the next generation would
		// select, not the metadata bytes: a restarted client's
		// subscription differs in fields such as its generation
		// (ConsumerProtocolSubscription v2+), which must not cost the
		// other members a rebalance.
		m.protocolType = req.ProtocolType
		m.protocols = slices.Clone(req.Protocols)
		g.out = append(g.out, persistGroup{})
		g.out = append(g.out, replyJoin{ch, g.joinResult(&m, wasLeader)})
	case g.state == PreparingRebalance:
		g.updateMember(&m, req, ch, now)
		g.tryCompleteJoin(now)
	default:
		g.updateMember(&m, req, ch, now)
		g.prepareRebalance(now)
		g.tryCompleteJoin(now)
	}
	return g.take()
}

// keepsProtocol reports whether the group would still select its current
// protocol with m's protocols replaced by req's.
func (g *groupState) keepsProtocol(m *member, req JoinRequest) bool {
	saved := m.protocols
	m.protocols = req.Protocols
	defer func() { m.protocols = saved }()
	return g.selectProtocol() == g.protocol
}

func (g *groupState) addMember(req JoinRequest, id string, ch chan JoinResult, now time.Time) {
	m := &member{id: id, instanceID: req.InstanceID, clientID: req.ClientID, clientHost: req.ClientHost}
	g.members[id] = m
	if req.InstanceID != "" {
		g.static[req.InstanceID] = id
	}
	if g.leader == "" {
		g.leader = id
	}
	if len(g.members) == 1 {
		g.protocolType = req.ProtocolType
	}
	g.updateMember(m, req, ch, now)
	if g.state == PreparingRebalance && g.initialDelay {
		// Each member joining during the initial delay extends it, up to
		// the rebalance timeout from the start.
		g.rebalanceDeadline = minTime(now.Add(g.limits.InitialRebalanceDelay), g.initialStart.Add(req.RebalanceTimeout))
	}
	g.prepareRebalance(now)
	g.tryCompleteJoin(now)
}

func (g *groupState) updateMember(m *member, req JoinRequest, ch chan JoinResult, now time.Time) {
	if m.join != nil && m.join != ch {
		// A second join for the same member replaces the parked one.
		g.out = append(g.out, replyJoin{m.join, JoinResult{Err: ErrRebalanceInProgress, MemberID: m.id, Generation: -1}})
	}
	m.protocolType = req.ProtocolType
	m.protocols = slices.Clone(req.Protocols)
	m.session, m.rebalance = req.SessionTimeout, req.RebalanceTimeout
	m.clientID, m.clientHost = req.ClientID, req.ClientHost
	m.join = ch
	m.expires = now.Add(m.session)
}

// supports reports whether a member with these protocols can join: the
// protocol type matches and at least one protocol is supported by everyone.
func (g *groupState) supports(ptype string, ps []Protocol) bool {
	if ptype == "" || len(ps) == 0 {
		return false
	}
	if len(g.members) == 0 {
		return true
	}
	if ptype != g.protocolType {
		return false
	}
	for _, p := range ps {
		if g.allSupport(p.Name) {
			return true
		}
	}
	return false
}

func (g *groupState) allSupport(name string) bool {
	for _, m := range g.members {
		if m.metadataFor(name) == nil && !slices.ContainsFunc(m.protocols, func(p Protocol) bool { return p.Name == name }) {
			return false
		}
	}
	return true
}

// selectProtocol picks the protocol every member supports by vote: each
// member votes for its most preferred candidate; ties go to the leader's
// preference order.
func (g *groupState) selectProtocol() string {
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if g.allSupport(p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best, bestVotes := "", -1
	order := g.members[g.leader]
	if order == nil {
		order = g.sortedMembers()[0]
	}
	for _, p := range order.protocols {
		if v, ok := votes[p.Name]; ok && v > bestVotes {
			best, bestVotes = p.Name, v
		}
	}
	return best
}

func (g *groupState) prepareRebalance(now time.Time) {
	switch g.state {
	case PreparingRebalance, Dead:
		return
	case CompletingRebalance:
		for _, m := range g.members {
			if m.sync != nil {
				g.out = append(g.out, replySync{m.sync, SyncResult{Err: ErrRebalanceInProgress}})
				m.sync = nil
			}
			m.assignment = nil
		}
		clear(g.pendingSync)
	}
	g.initialDelay = g.state == Empty && g.limits.InitialRebalanceDelay > 0
	timeout := time.Duration(0)
	for _, m := range g.members {
		timeout = max(timeout, m.rebalance)
	}
	if g.initialDelay {
		g.initialStart = now
		g.rebalanceDeadline = minTime(now.Add(g.limits.InitialRebalanceDelay), now.Add(timeout))
	} else {
		g.rebalanceDeadline = now.Add(timeout)
	}
	g.transition(PreparingRebalance, now)
}

// tryCompleteJoin completes the join phase once every member has rejoined
// and no KIP-394 id is outstanding (not during the initial delay).
func (g *groupState) tryCompleteJoin(now time.Time) {
	if g.state != PreparingRebalance || g.initialDelay {
		return
	}
	if len(g.pending) > 0 {
		return
	}
	for _, m := range g.members {
		if m.join == nil {
			return
		}
	}
	g.completeJoin(now)
}

// completeJoin ends the join phase: members that did not rejoin are removed,
// the generation advances and every parked join is answered.
func (g *groupState) completeJoin(now time.Time) {
	g.initialDelay = false
	for _, m := range g.sortedMembers() {
		if m.join == nil {
			g.removeMember(m)
		}
	}
	// KIP-394 ids handed out stay valid until their own expiry, as in
	// Kafka: a member that got one just before the deadline joins the
	// next generation instead of being told it is unknown.
	g.generation++
	if len(g.members) == 0 {
		g.protocol, g.leader = "", ""
		g.transition(Empty, now)
		g.out = append(g.out, persistGroup{})
		return
	}
	if g.members[g.leader] == nil {
		g.leader = g.sortedMembers()[0].id
	}
	g.protocol = g.selectProtocol()
	g.transition(CompletingRebalance, now)
	timeout := time.Duration(0)
	for _, m := range g.sortedMembers() {
		g.out = append(g.out, replyJoin{m.join, g.joinResult(m, false)})
		m.join = nil
		m.expires = now.Add(m.session)
		g.pendingSync[m.id] = true
		timeout = max(timeout, m.rebalance)
	}
	g.syncDeadline = now.Add(timeout)
}

func (g *groupState) joinResult(m *member, skip bool) JoinResult {
	res := JoinResult{Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol,
		LeaderID: g.leader, MemberID: m.id, SkipAssignment: skip}
	if m.id == g.leader {
		for _, o := range g.sortedMembers() {
			res.Members = append(res.Members, JoinedMember{MemberID: o.id, InstanceID: o.instanceID,
				Metadata: o.metadataFor(g.protocol)})
		}
	}
	return res
}

func (g *groupState) removeMember(m *member) {
	if m.join != nil {
		g.out = append(g.out, replyJoin{m.join, JoinResult{Err: ErrUnknownMemberID, MemberID: m.id, Generation: -1}})
	}
	if m.sync != nil {
		g.out = append(g.out, replySync{m.sync, SyncResult{Err: ErrUnknownMemberID}})
	}
	delete(g.members, m.id)
	delete(g.pendingSync, m.id)
	if m.instanceID != "" && g.static[m.instanceID] == m.id {
		delete(g.static, m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
		if ms := g.sortedMembers(); len(ms) > 0 {
			g.leader = ms[0].id
		}
	}
}

// memberGone updates the group after members left or expired.
func (g *groupState) memberGone(now time.Time) {
	switch g.state {
	case Stable, CompletingRebalance:
		g.prepareRebalance(now)
		g.tryCompleteJoin(now)
	case PreparingRebalance:
		g.tryCompleteJoin(now)
	}
}

// checkMember validates a member's identity and generation.
func (g *groupState) checkMember(memberID, instanceID string, generation int32) (*member, error) {
	if instanceID != "" {
		if cur, ok := g.static[instanceID]; ok && cur != memberID {
			return nil, ErrFencedInstanceID
		}
	}
	m := g.members[memberID]
	if m == nil {
		return nil, ErrUnknownMemberID
	}
	if generation != g.generation {
		return m, ErrIllegalGeneration
	}
	return m, nil
}

// syncGroup handles a SyncGroup.
func (g *groupState) syncGroup(req SyncRequest, ch chan SyncResult, now time.Time) []action {
	fail := func(err error) []action {
		g.out = append(g.out, replySync{ch, SyncResult{Err: err}})
		return g.take()
	}
	m, err := g.checkMember(req.MemberID, req.InstanceID, req.Generation)
	if err != nil {
		return fail(err)
	}
	if (req.ProtocolType != nil && *req.ProtocolType != g.protocolType) || (req.Protocol != nil && *req.Protocol != g.protocol) {
		return fail(ErrInconsistentGroupProtocol)
	}
	m.expires = now.Add(m.session)
	switch g.state {
	case PreparingRebalance:
		return fail(ErrRebalanceInProgress)
	case CompletingRebalance:
		if m.sync != nil {
			g.out = append(g.out, replySync{m.sync, SyncResult{Err: ErrRebalanceInProgress}})
		}
		m.sync = ch
		delete(g.pendingSync, m.id)
		if m.id == g.leader {
			for _, o := range g.members {
				o.assignment = slices.Clone(req.Assignments[o.id])
			}
			g.transition(Stable, now)
			clear(g.pendingSync)
			g.out = append(g.out, persistGroup{})
			var answered []string
			for _, o := range g.sortedMembers() {
				if o.sync != nil {
					g.out = append(g.out, replySync{o.sync, SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: o.assignment}})
					o.sync = nil
					answered = append(answered, o.id)
				}
			}
			// Their sessions restart once they have the assignment,
			// after the persist (Kafka's propagateAssignment): time
			// spent waiting for the leader or the log is not theirs.
			g.out = append(g.out, restartSessions{answered})
		}
	case Stable:
		delete(g.pendingSync, m.id)
		g.out = append(g.out, replySync{ch, SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: m.assignment}})
	default:
		return fail(ErrUnknownMemberID)
	}
	return g.take()
}

// heartbeat handles a Heartbeat.
func (g *groupState) heartbeat(memberID, instanceID string, generation int32, now time.Time) error {
	m, err := g.checkMember(memberID, instanceID, generation)
	if m != nil && (err == nil || g.state == PreparingRebalance) {
		m.expires = now.Add(m.session)
	}
	if err != nil {
		if errors.Is(err, ErrIllegalGeneration) && g.state == PreparingRebalance {
			return ErrRebalanceInProgress
		}
		return err
	}
	if g.state == PreparingRebalance {
		return ErrRebalanceInProgress
	}
	return nil
}

// leave handles a LeaveGroup; it returns one error (or nil) per member.
func (g *groupState) leave(ms []MemberLeave, now time.Time) ([]error, []action) {
	errs := make([]error, len(ms))
	removed := false
	for i, l := range ms {
		id := l.MemberID
		if l.InstanceID != "" {
			cur, ok := g.static[l.InstanceID]
			switch {
			case !ok:
				errs[i] = ErrUnknownMemberID
				continue
			case id != "" && cur != id:
				errs[i] = ErrFencedInstanceID
				continue
			}
			id = cur
		}
		m := g.members[id]
		if m == nil {
			errs[i] = ErrUnknownMemberID
			continue
		}
		g.removeMember(m)
		removed = true
	}
	if removed {
		g.memberGone(now)
	}
	return errs, g.take()
}

// deadline is the next time tick has work, zero when none.
func (g *groupState) deadline() time.Time {
	var d time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	for _, t := range g.pending {
		consider(t)
	}
	for _, m := range g.members {
		if !g.keepAlive(m) {
			consider(m.expires)
		}
	}
	if g.cg != nil {
		consider(g.cg.deadline())
	}
	switch g.state {
	case PreparingRebalance:
		consider(g.rebalanceDeadline)
	case CompletingRebalance:
		consider(g.syncDeadline)
	}
	return d
}

// keepAlive: a member parked in JoinGroup or SyncGroup is not expired by
// its session (the rebalance timeout bounds it instead), as in Kafka's
// MemberMetadata.shouldKeepAlive: a follower waiting for a slow leader's
// assignment must not lose its membership meanwhile.
func (g *groupState) keepAlive(m *member) bool {
	return m.join != nil || m.sync != nil
}

// tick fires the deadlines that have passed at now.
func (g *groupState) tick(now time.Time) []action {
	for id, t := range g.pending {
		if !now.Before(t) {
			delete(g.pending, id)
		}
	}
	if g.cg != nil {
		g.cg.tick(now)
	}
	gone := false
	for _, m := range g.sortedMembers() {
		if !g.keepAlive(m) && !now.Before(m.expires) {
			g.removeMember(m)
			gone = true
		}
	}
	if gone {
		g.memberGone(now)
	}
	switch {
	case g.state == PreparingRebalance && !now.Before(g.rebalanceDeadline):
		g.completeJoin(now)
	case g.state == PreparingRebalance:
		g.tryCompleteJoin(now)
	case g.state == CompletingRebalance && !now.Before(g.syncDeadline):
		// Members that never sent SyncGroup are removed (the leader among
		// them means nobody gets an assignment), then rebalance.
		for id := range g.pendingSync {
			if m := g.members[id]; m != nil {
				g.removeMember(m)
			}
		}
		clear(g.pendingSync)
		g.prepareRebalance(now)
		g.tryCompleteJoin(now)
	}
	return g.take()
}

// consumerActive reports whether the group is a consumer group with
// members: the classic protocol cannot have it then.
func (g *groupState) consumerActive() bool {
	return g.cg != nil && len(g.cg.members) > 0
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
