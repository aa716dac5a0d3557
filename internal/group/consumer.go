package group

// KIP-848 consumer groups: the coordinator computes each member's target
// assignment and hands it out through ConsumerGroupHeartbeat, one step at a
// time, so that a partition is never owned by two members at once.
//
// The state lives in consumerGroup, hung off the group's groupState while
// the group has consumer-protocol members (the actor owns it; no I/O here).
// Kafka's model, as implemented:
//   - the group epoch is bumped by every change of membership, of a
//     member's subscription, or of the subscribed topics' partitions; the
//     target assignment is recomputed by the group's assignor when the
//     group epoch passes the assignment epoch;
//   - a member moves to the assignment epoch on its own heartbeats. If it
//     holds partitions its target no longer has, it is first told to
//     revoke them (its epoch stays) and moves on only once a heartbeat
//     reports them released, or it is removed when its rebalance timeout
//     passes first. A partition of its target still held by another
//     member is withheld until that member releases it;
//   - a heartbeat at a stale epoch is FENCED_MEMBER_EPOCH, except at the
//     previous epoch with no partition beyond the current assignment (the
//     answer that bumped it may have been lost);
//   - a static member (group.instance.id) that leaves with epoch -2 keeps
//     its assignment until its session ends; a member joining with the
//     same instance id takes it over, epoch and partitions.
//
// Every change is written to __consumer_offsets in Kafka's record formats
// (consumercodec.go) and a heartbeat is answered once it is committed, so
// the coordinator that loads the partition next has the members, their
// epochs and assignments, and the members carry on without rejoining.

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// Errors of the consumer group protocol.
var (
	ErrFencedMemberEpoch    = errors.New("group: fenced member epoch")
	ErrStaleMemberEpoch     = errors.New("group: stale member epoch")
	ErrUnreleasedInstanceID = errors.New("group: unreleased instance id")
	ErrUnsupportedAssignor  = errors.New("group: unsupported assignor")
	ErrInvalidRegex         = errors.New("group: invalid regular expression")
	ErrInvalidRequest       = errors.New("group: invalid request")
	ErrUnsupportedVersion   = errors.New("group: unsupported version")
	ErrNotConsumerGroup     = errors.New("group: not a consumer group")
)

// Member epochs of a leave (ConsumerGroupHeartbeat).
const (
	LeaveEpoch       = -1
	StaticLeaveEpoch = -2
)

// ConsumerLimits are the broker settings of consumer groups.
type ConsumerLimits struct {
	// Disabled: group.coordinator.rebalance.protocols lacks "consumer";
	// heartbeats are answered UNSUPPORTED_VERSION, so clients fall back
	// to the classic protocol.
	Disabled bool
	// SessionTimeout is group.consumer.session.timeout.ms.
	SessionTimeout time.Duration
	// HeartbeatInterval is group.consumer.heartbeat.interval.ms.
	HeartbeatInterval time.Duration
	// MaxSize is group.consumer.max.size.
	MaxSize int
	// Assignors is group.consumer.assignors: the first is the default.
	Assignors []string
}

// Group configs (config resource type 32) that override ConsumerLimits
// for one group.
const (
	GroupSessionTimeoutConfig    = "consumer.session.timeout.ms"
	GroupHeartbeatIntervalConfig = "consumer.heartbeat.interval.ms"
)

// forGroup returns the limits with a group's own configs (the image's
// GroupConfigs[id]) applied; values were checked when they were set.
func (l ConsumerLimits) forGroup(configs map[string]string) ConsumerLimits {
	ms := func(name string, d time.Duration) time.Duration {
		if v, err := strconv.ParseInt(configs[name], 10, 32); err == nil && v > 0 {
			return time.Duration(v) * time.Millisecond
		}
		return d
	}
	l.SessionTimeout = ms(GroupSessionTimeoutConfig, l.SessionTimeout)
	l.HeartbeatInterval = ms(GroupHeartbeatIntervalConfig, l.HeartbeatInterval)
	return l
}

// DefaultConsumerLimits are Kafka's defaults.
func DefaultConsumerLimits() ConsumerLimits {
	return ConsumerLimits{SessionTimeout: 45 * time.Second, HeartbeatInterval: 5 * time.Second,
		MaxSize: 1<<31 - 1, Assignors: []string{"uniform", "range"}}
}

// Assignment is a member's partitions by topic id, each list sorted.
type Assignment map[[16]byte][]int32

// ConsumerHeartbeat is a ConsumerGroupHeartbeat request. Nil fields (and a
// negative RebalanceTimeout) are unchanged since the last heartbeat.
type ConsumerHeartbeat struct {
	Version          int16
	MemberID         string
	MemberEpoch      int32
	InstanceID       *string
	RackID           *string
	RebalanceTimeout time.Duration
	Topics           []string
	Regex            *string
	Assignor         *string
	Owned            Assignment // nil: unchanged
	ClientID         string
	ClientHost       string
	// MayDescribe reports whether the member's principal may describe a
	// topic (nil: every topic, no authorizer). As Kafka (KAFKA-18813), a
	// regex resolution the heartbeat starts leaves out the topics it may
	// not describe; it applies to the whole group, as Kafka's does.
	MayDescribe func(topic string) bool
}

// ConsumerHeartbeatResult is the answer to a ConsumerHeartbeat.
type ConsumerHeartbeatResult struct {
	Err               error
	Message           string
	MemberID          string
	MemberEpoch       int32
	HeartbeatInterval time.Duration
	// Assignment is set when the member must be told it (a join, a full
	// request, or a change).
	Assignment Assignment
}

type memberState int8

const (
	memberStable     memberState = iota
	memberUnrevoked              // told to revoke; waiting for it
	memberUnreleased             // at the target epoch, waiting for partitions others hold
)

type consumerMember struct {
	id, instanceID, rack, clientID, clientHost string
	epoch, prevEpoch                           int32
	rebalanceTimeout                           time.Duration
	topics                                     []string
	regex                                      string
	assignor                                   string
	state                                      memberState
	// departed: a static member that left with epoch -2; it keeps its
	// place until its session ends or its instance id rejoins.
	departed           bool
	assigned, revoking Assignment
	// since is the member epoch at which each partition it holds was
	// assigned to it (KIP-1251): a commit at an older epoch is accepted
	// for partitions it has held since.
	since    map[topicPart]int32
	expires  time.Time
	revokeBy time.Time
}

type topicPart struct {
	id [16]byte
	p  int32
}

// consumerGroup is a KIP-848 group's state.
type consumerGroup struct {
	limits          ConsumerLimits
	epoch           int32
	assignmentEpoch int32
	members         map[string]*consumerMember
	static          map[string]string // instance id -> member id
	target          map[string]Assignment
	owner           map[topicPart]string // partition -> member holding it (assigned or revoking)
	assignor        string
	// subTopics are the subscribed topics (sorted by name) when the group
	// epoch was last compared: a new partition or topic bumps it.
	subTopics []cgTopicMeta
	// subTopicsValue is subTopics encoded (its record's value), nil
	// until needed after a change.
	subTopicsValue []byte
	// subs are the members' resolved subscriptions, and matches each
	// regex's topics, as of seenImage; subsDirty: a member or a
	// subscription changed since.
	subs      map[string][]*metadata.Topic
	matches   map[string][]*metadata.Topic
	seenImage *metadata.Image
	subsDirty bool
	// regexes holds each subscribed regex's resolution (topic names) as
	// Kafka's coordinator resolves them: off the heartbeat that asks
	// (here, in effect from the group's next heartbeat), and again when
	// topics changed, at most every regexRefreshInterval. pending is a
	// resolution taken at resolveGen pendingGen, not yet in effect;
	// regexAt and regexImage are the last resolution's time and image.
	// regexSync: resolve at once (a group loaded from the log, whose
	// resolutions Kafka would have kept).
	regexes    map[string][]string
	pending    map[string][]string
	pendingGen int
	resolveGen int
	regexAt    time.Time
	regexImage *metadata.Image
	regexSync  bool
	// touched are the members whose records may have changed since they
	// were last written; touchAll: every member's (a new target).
	touched  map[string]bool
	touchAll bool
}

func newConsumerGroup(limits ConsumerLimits) *consumerGroup {
	return &consumerGroup{limits: limits, members: map[string]*consumerMember{}, static: map[string]string{}, regexes: map[string][]string{},
		target: map[string]Assignment{}, owner: map[topicPart]string{}}
}

// newMemberUUID is a member id for a v0 join (the coordinator names it).
func newMemberUUID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validate checks a heartbeat's fields as Kafka does before touching the
// group.
func (h *ConsumerHeartbeat) validate(limits ConsumerLimits) (string, error) {
	switch {
	case h.InstanceID != nil && *h.InstanceID == "":
		return "InstanceId can't be empty.", ErrInvalidRequest
	case h.RackID != nil && *h.RackID == "":
		return "RackId can't be empty.", ErrInvalidRequest
	case h.MemberEpoch < StaticLeaveEpoch:
		return "MemberEpoch is invalid.", ErrInvalidRequest
	case h.MemberID == "" && (h.Version >= 1 || h.MemberEpoch != 0):
		return "MemberId can't be empty.", ErrInvalidRequest
	case h.MemberEpoch == StaticLeaveEpoch && h.InstanceID == nil:
		return "InstanceId can't be null.", ErrInvalidRequest
	}
	if h.MemberEpoch == 0 {
		switch {
		case h.RebalanceTimeout < 0:
			return "RebalanceTimeoutMs must be provided in first request.", ErrInvalidRequest
		case h.Owned == nil || len(h.Owned) > 0:
			return "TopicPartitions must be empty when (re-)joining.", ErrInvalidRequest
		case h.Topics == nil && h.Regex == nil:
			return "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.", ErrInvalidRequest
		}
	}
	if h.Regex != nil && *h.Regex != "" {
		// The expression alone first: wrapped, one like "a)|(.*" would
		// be valid and match everything.
		if _, err := regexp.Compile(*h.Regex); err != nil {
			return "SubscribedTopicRegex is invalid: " + err.Error(), ErrInvalidRegex
		}
	}
	if h.Assignor != nil && !slices.Contains(limits.Assignors, *h.Assignor) {
		return "ServerAssignor " + *h.Assignor + " is not supported. Supported assignors: " + strings.Join(limits.Assignors, ", ") + ".", ErrUnsupportedAssignor
	}
	return "", nil
}

// heartbeat runs one ConsumerGroupHeartbeat (validated) against the group.
func (cg *consumerGroup) heartbeat(h ConsumerHeartbeat, img *metadata.Image, now time.Time) ConsumerHeartbeatResult {
	res := ConsumerHeartbeatResult{MemberID: h.MemberID, MemberEpoch: h.MemberEpoch, HeartbeatInterval: cg.limits.HeartbeatInterval}
	fail := func(err error, msg string) ConsumerHeartbeatResult {
		res.Err, res.Message = err, msg
		return res
	}
	if h.MemberEpoch == LeaveEpoch || h.MemberEpoch == StaticLeaveEpoch {
		m, err := cg.member(h)
		if err != nil {
			return fail(err, "")
		}
		if h.MemberEpoch == StaticLeaveEpoch && m.instanceID != "" {
			// Kept, with what it is assigned, until its session ends
			// or another member takes its instance id. What it was
			// revoking is free now, as in Kafka.
			for id, ps := range m.revoking {
				for _, p := range ps {
					if cg.owner[topicPart{id, p}] == m.id {
						delete(cg.owner, topicPart{id, p})
					}
				}
			}
			m.revoking, m.revokeBy, m.state = Assignment{}, time.Time{}, memberStable
			m.departed = true
			m.expires = now.Add(cg.limits.SessionTimeout)
			cg.touch(m.id)
		} else {
			cg.remove(m)
		}
		res.MemberID = m.id
		return res
	}

	var m *consumerMember
	bumped := false
	if h.MemberEpoch == 0 {
		if h.MemberID == "" {
			h.MemberID = newMemberUUID()
			res.MemberID = h.MemberID
		}
		if h.InstanceID != nil {
			if old := cg.members[cg.static[*h.InstanceID]]; old != nil {
				switch {
				case old.departed:
					m = cg.takeOver(old, h.MemberID) // its place, epoch and partitions
				case old.id != h.MemberID:
					return fail(ErrUnreleasedInstanceID, "Static member "+*h.InstanceID+" with a different member id is still in the group.")
				}
			}
		}
		if old := cg.members[h.MemberID]; m == nil && old != nil {
			// A rejoin in place (after a lost answer or a fenced
			// epoch): the client dropped what it held, so that is
			// free, and its target stays.
			cg.release(old)
			old.assigned, old.revoking, old.revokeBy = Assignment{}, Assignment{}, time.Time{}
			old.state, old.epoch, old.prevEpoch = memberStable, 0, 0
			m = old
		}
		if m == nil {
			if len(cg.members) >= cg.limits.MaxSize {
				return fail(ErrGroupMaxSizeReached, "The consumer group has reached its maximum capacity of "+strconv.Itoa(cg.limits.MaxSize)+" members.")
			}
			m = &consumerMember{id: h.MemberID, assigned: Assignment{}, revoking: Assignment{}}
			if h.InstanceID != nil {
				m.instanceID = *h.InstanceID
				cg.static[m.instanceID] = m.id
			}
			cg.members[m.id] = m
			bumped = true
		}
	} else {
		var err error
		if m, err = cg.member(h); err != nil {
			return fail(err, "Member "+h.MemberID+" is not a member of the group.")
		}
		if h.MemberEpoch != m.epoch || m.departed {
			if m.departed || h.MemberEpoch != m.prevEpoch || h.Owned == nil || !subset(h.Owned, m.assigned) {
				return fail(ErrFencedMemberEpoch, "The consumer group member has a member epoch ("+strconv.Itoa(int(h.MemberEpoch))+
					") that is not the one known by the group coordinator ("+strconv.Itoa(int(m.epoch))+"). The member must abandon all its partitions and rejoin.")
			}
		}
	}

	// Fields sent are the new values.
	m.clientID, m.clientHost = h.ClientID, h.ClientHost
	if h.RackID != nil {
		m.rack = *h.RackID
	}
	if h.RebalanceTimeout >= 0 {
		m.rebalanceTimeout = h.RebalanceTimeout
	}
	if h.Topics != nil {
		ts := slices.Clone(h.Topics)
		slices.Sort(ts)
		ts = slices.Compact(ts)
		if !slices.Equal(ts, m.topics) {
			m.topics, bumped = ts, true
		}
	}
	if h.Regex != nil && *h.Regex != m.regex {
		old := m.regex
		m.regex, bumped = *h.Regex, true
		cg.forgetRegex(old)
	}
	if h.Assignor != nil {
		m.assignor = *h.Assignor // used at the next computation, as in Kafka
	}
	m.expires = now.Add(cg.limits.SessionTimeout)
	if bumped {
		cg.epoch++
		cg.subsDirty = true
	}
	cg.refresh(img, now, h.MayDescribe)

	before := copyAssignment(m.assigned)
	cg.reconcile(m, h.Owned, now)
	cg.touch(m.id)
	res.MemberID, res.MemberEpoch = m.id, m.epoch
	full := h.RebalanceTimeout >= 0 && (h.Topics != nil || h.Regex != nil) && h.Owned != nil
	if h.MemberEpoch == 0 || full || !sameAssignment(before, m.assigned) {
		res.Assignment = copyAssignment(m.assigned)
	}
	return res
}

// member finds a heartbeat's member: a static one by its instance id
// (FENCED_INSTANCE_ID when the instance now belongs to another member id,
// as Kafka's throwIfInstanceIdIsFenced), else by member id.
func (cg *consumerGroup) member(h ConsumerHeartbeat) (*consumerMember, error) {
	if h.InstanceID != nil {
		switch m := cg.members[cg.static[*h.InstanceID]]; {
		case m == nil:
			return nil, ErrUnknownMemberID
		case m.id != h.MemberID:
			return nil, ErrFencedInstanceID
		default:
			return m, nil
		}
	}
	if m := cg.members[h.MemberID]; m != nil {
		return m, nil
	}
	return nil, ErrUnknownMemberID
}

// takeOver hands a departed static member's place to a new member id.
func (cg *consumerGroup) takeOver(old *consumerMember, id string) *consumerMember {
	delete(cg.members, old.id)
	m := *old
	m.id, m.departed = id, false
	cg.members[id] = &m
	cg.static[m.instanceID] = id
	cg.subsDirty = true
	cg.touch(old.id)
	cg.touch(id)
	if t, ok := cg.target[old.id]; ok {
		delete(cg.target, old.id)
		cg.target[id] = t
	}
	for tp, o := range cg.owner {
		if o == old.id {
			cg.owner[tp] = id
		}
	}
	return &m
}

// remove takes a member out, freeing its partitions, and bumps the epoch.
func (cg *consumerGroup) remove(m *consumerMember) {
	delete(cg.members, m.id)
	delete(cg.target, m.id)
	if cg.static[m.instanceID] == m.id {
		delete(cg.static, m.instanceID)
	}
	cg.release(m)
	cg.epoch++
	cg.subsDirty = true
	cg.touch(m.id)
	cg.forgetRegex(m.regex)
}

// forgetRegex drops re's resolution once no member subscribes with it,
// as Kafka deletes a resolved regular expression with its last
// subscriber: a member that comes back with it later is resolved afresh.
func (cg *consumerGroup) forgetRegex(re string) {
	if re == "" {
		return
	}
	for _, m := range cg.members {
		if m.regex == re {
			return
		}
	}
	delete(cg.regexes, re)
	delete(cg.pending, re)
}

// regexDue reports whether the group's regexes are to be resolved again:
// the topics changed since the last resolution and the refresh interval
// has passed. It is checked on every heartbeat, not only when the image
// changes, because a change that came within the interval is picked up
// by the first heartbeat after it.
func (cg *consumerGroup) regexDue(img *metadata.Image, now time.Time) bool {
	return cg.regexImage != nil && img != cg.regexImage && now.Sub(cg.regexAt) >= regexRefreshInterval
}

// touch notes that member id's records are to be written again.
func (cg *consumerGroup) touch(id string) {
	if cg.touched == nil {
		cg.touched = map[string]bool{}
	}
	cg.touched[id] = true
}

// release frees every partition m holds.
func (cg *consumerGroup) release(m *consumerMember) {
	for tp, o := range cg.owner {
		if o == m.id {
			delete(cg.owner, tp)
		}
	}
	m.since = nil
}

// resolve resolves every member's subscription against img: the topic
// names that exist and, per distinct regex, the topics it matches whole.
func (cg *consumerGroup) resolve(img *metadata.Image, now time.Time, may func(string) bool) {
	cg.resolveRegexes(img, now, may)
	matches := make(map[string][]*metadata.Topic, len(cg.regexes))
	for re, names := range cg.regexes {
		var ts []*metadata.Topic
		for _, name := range names {
			if t := img.Topics[name]; t != nil {
				ts = append(ts, t)
			}
		}
		matches[re] = ts
	}
	cg.matches = matches
	cg.subs = make(map[string][]*metadata.Topic, len(cg.members))
	for id, m := range cg.members {
		seen := map[string]bool{}
		var out []*metadata.Topic
		for _, name := range m.topics {
			if t := img.Topics[name]; t != nil && !seen[name] {
				seen[name] = true
				out = append(out, t)
			}
		}
		for _, t := range matches[m.regex] {
			if !seen[t.Name] {
				seen[t.Name] = true
				out = append(out, t)
			}
		}
		slices.SortFunc(out, func(a, b *metadata.Topic) int { return strings.Compare(a.Name, b.Name) })
		cg.subs[id] = out
	}
}

// regexRefreshInterval is how often, at most, a group's regexes are
// resolved again when topics change (Kafka's
// REGEX_BATCH_REFRESH_INTERVAL_MS).
const regexRefreshInterval = 10 * time.Second

// resolveRegexes keeps cg.regexes as Kafka's coordinator keeps its
// resolved regular expressions: a regex no member resolved before is
// resolved in the background there, so the heartbeat that brings it is
// assigned the literal topics only and a later one the matches (clients'
// tests count on it: librdkafka's 0045_resubscribe_with_regex); topics
// created or deleted later are picked up when a heartbeat comes at least
// regexRefreshInterval after the last resolution, every regex of the group
// at once, so topics created together arrive in one rebalance. may is
// the ACL of the member whose heartbeat resolves (Kafka's too: it
// filters the group's resolutions by the principal that triggered them).
func (cg *consumerGroup) resolveRegexes(img *metadata.Image, now time.Time, may func(string) bool) {
	cg.resolveGen++
	if cg.pending != nil && cg.pendingGen < cg.resolveGen {
		maps.Copy(cg.regexes, cg.pending) // the background resolution is done
		cg.pending = nil
	}
	used := map[string]bool{}
	for _, m := range cg.members {
		if m.regex != "" {
			used[m.regex] = true
		}
	}
	maps.DeleteFunc(cg.regexes, func(re string, _ []string) bool { return !used[re] })
	if len(used) == 0 {
		cg.pending, cg.regexImage = nil, nil
		return
	}
	fresh := false
	for re := range used {
		if _, ok := cg.regexes[re]; !ok {
			if _, ok := cg.pending[re]; !ok {
				fresh = true
			}
		}
	}
	if !fresh && !cg.regexDue(img, now) && !cg.regexSync {
		if cg.pending != nil {
			cg.subsDirty = true // in effect at the next heartbeat
		}
		return
	}
	out := make(map[string][]string, len(used))
	for re := range used {
		var names []string
		// Validated when it came in; one read back from a damaged
		// log matches nothing rather than failing the group.
		if _, err := regexp.Compile(re); err == nil {
			if re, err := regexp.Compile("^(?:" + re + ")$"); err == nil {
				for name := range img.Topics {
					if re.MatchString(name) && (may == nil || may(name)) {
						names = append(names, name)
					}
				}
			}
		}
		slices.Sort(names)
		out[re] = names
	}
	cg.regexAt, cg.regexImage = now, img
	if cg.regexSync {
		cg.regexes, cg.pending, cg.regexSync = out, nil, false
		return
	}
	cg.pending, cg.pendingGen, cg.subsDirty = out, cg.resolveGen, true
}

// refresh bumps the group epoch when the subscribed topics changed, and
// recomputes the target assignment when the group epoch passed it.
// Subscriptions are resolved again only when the image, the membership or
// a subscription changed: a keepalive heartbeat costs no topic scan.
func (cg *consumerGroup) refresh(img *metadata.Image, now time.Time, may func(string) bool) {
	if img != cg.seenImage || cg.subsDirty || cg.regexDue(img, now) {
		cg.seenImage, cg.subsDirty = img, false
		cg.resolve(img, now, may)
		all := map[string]*metadata.Topic{}
		for _, ts := range cg.subs {
			for _, t := range ts {
				all[t.Name] = t
			}
		}
		ts := make([]cgTopicMeta, 0, len(all))
		for _, t := range all {
			ts = append(ts, cgTopicMeta{id: t.ID, name: t.Name, partitions: int32(len(t.Partitions))})
		}
		slices.SortFunc(ts, func(a, b cgTopicMeta) int { return strings.Compare(a.name, b.name) })
		if !slices.Equal(ts, cg.subTopics) {
			cg.subTopics, cg.subTopicsValue = ts, nil
			cg.epoch++
		}
	}
	if cg.epoch <= cg.assignmentEpoch {
		return
	}
	cg.assignor = cg.chooseAssignor()
	in := make([]assignMember, 0, len(cg.members))
	for id := range cg.members {
		am := assignMember{id: id, prev: cg.target[id]}
		for _, t := range cg.subs[id] {
			am.topics = append(am.topics, assignTopic{id: t.ID, name: t.Name, partitions: int32(len(t.Partitions))})
		}
		in = append(in, am)
	}
	slices.SortFunc(in, func(a, b assignMember) int { return strings.Compare(a.id, b.id) })
	if cg.assignor == "range" {
		cg.target = assignRange(in)
	} else {
		cg.target = assignUniform(in)
	}
	cg.assignmentEpoch = cg.epoch
	cg.touchAll = true
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// chooseAssignor is the assignor most members ask for, else the default.
func (cg *consumerGroup) chooseAssignor() string {
	counts := map[string]int{}
	for _, m := range cg.members {
		if m.assignor != "" {
			counts[m.assignor]++
		}
	}
	best := cg.limits.Assignors[0]
	for _, a := range cg.limits.Assignors {
		if counts[a] > counts[best] {
			best = a
		}
	}
	return best
}

// reconcile moves a member one step towards its target assignment. owned
// is what its heartbeat says it holds (nil: unchanged since the last).
func (cg *consumerGroup) reconcile(m *consumerMember, owned Assignment, now time.Time) {
	if m.state == memberUnrevoked {
		if owned == nil || intersects(owned, m.revoking) {
			return // still revoking
		}
		for id, ps := range m.revoking {
			for _, p := range ps {
				if cg.owner[topicPart{id, p}] == m.id {
					delete(cg.owner, topicPart{id, p})
				}
				delete(m.since, topicPart{id, p})
			}
		}
		m.revoking, m.revokeBy = Assignment{}, time.Time{}
		m.state = memberStable
	}
	if m.epoch == cg.assignmentEpoch && m.state == memberStable {
		return
	}
	target := cg.target[m.id]
	inTarget := target.set()
	keep, revoke := Assignment{}, Assignment{}
	for id, ps := range m.assigned {
		for _, p := range ps {
			if inTarget[topicPart{id, p}] {
				keep[id] = append(keep[id], p)
			} else {
				revoke[id] = append(revoke[id], p)
			}
		}
	}
	if len(revoke) > 0 {
		m.assigned, m.revoking = keep, revoke
		m.state = memberUnrevoked
		m.revokeBy = now.Add(max(m.rebalanceTimeout, time.Second))
		return
	}
	if m.epoch != cg.assignmentEpoch {
		m.prevEpoch, m.epoch = m.epoch, cg.assignmentEpoch
	}
	withheld := false
	for id, ps := range target {
		for _, p := range ps {
			tp := topicPart{id, p}
			switch o := cg.owner[tp]; o {
			case m.id:
			case "":
				cg.owner[tp] = m.id
				keep[id] = append(keep[id], p)
				if m.since == nil {
					m.since = map[topicPart]int32{}
				}
				m.since[tp] = m.epoch
			default:
				withheld = true
			}
		}
	}
	for id := range keep {
		slices.Sort(keep[id])
	}
	m.assigned = keep
	m.state = memberStable
	if withheld {
		m.state = memberUnreleased
	}
}

// deadline is the group's next session or revocation deadline.
func (cg *consumerGroup) deadline() time.Time {
	var d time.Time
	for _, m := range cg.members {
		for _, t := range []time.Time{m.expires, m.revokeBy} {
			if !t.IsZero() && (d.IsZero() || t.Before(d)) {
				d = t
			}
		}
	}
	return d
}

// tick removes members whose session ended or who did not revoke in time;
// it reports the ids removed.
func (cg *consumerGroup) tick(now time.Time) []string {
	var gone []string
	for _, m := range mapValues(cg.members) {
		if !now.Before(m.expires) || (!m.revokeBy.IsZero() && !now.Before(m.revokeBy)) {
			cg.remove(m)
			gone = append(gone, m.id)
		}
	}
	return gone
}

// state is the group's state as Kafka names it for consumer groups.
func (cg *consumerGroup) state() string {
	switch {
	case len(cg.members) == 0:
		return "Empty"
	case cg.epoch > cg.assignmentEpoch:
		return "Assigning"
	}
	for _, m := range cg.members {
		if m.epoch != cg.assignmentEpoch || m.state != memberStable {
			return "Reconciling"
		}
	}
	return "Stable"
}

// validateCommit checks an OffsetCommit (or TxnOffsetCommit) of a member
// at epoch, as Kafka's ConsumerGroup.validateOffsetCommit: without an
// epoch only while the group has no member, else the member's epoch.
func (cg *consumerGroup) validateCommit(memberID string, epoch int32) error {
	if epoch < 0 && len(cg.members) == 0 {
		return nil
	}
	return cg.checkEpoch(memberID, epoch)
}

// validateFetch checks an OffsetFetch (v9+ names the member), as Kafka's
// validateOffsetFetch: one without member and epoch is always served.
func (cg *consumerGroup) validateFetch(memberID string, epoch int32) error {
	if memberID == "" && epoch < 0 {
		return nil
	}
	return cg.checkEpoch(memberID, epoch)
}

// MinConsumerCommitVersion is the first OffsetCommit version a member of
// a consumer group (KIP-848) may commit with: older ones cannot carry its
// member epoch as such.
const MinConsumerCommitVersion = 9

// commitCheck checks an OffsetCommit (of the given version) of memberID at
// epoch as Kafka does with KIP-1251: at the member's epoch every partition
// may be committed; at an older one only the partitions it has held since
// that epoch or before (ok reports which; the others are
// STALE_MEMBER_EPOCH), so a commit racing the answer that moved the member
// on is not refused.
func (cg *consumerGroup) commitCheck(memberID string, epoch int32, version int16) (ok func(id [16]byte, p int32) bool, err error) {
	if epoch < 0 && len(cg.members) == 0 {
		return nil, nil
	}
	m := cg.members[memberID]
	switch {
	case m == nil:
		return nil, ErrUnknownMemberID
	case version < MinConsumerCommitVersion:
		return nil, ErrUnsupportedVersion
	case m.departed || epoch < 0 || epoch > m.epoch:
		return nil, ErrStaleMemberEpoch
	case epoch == m.epoch:
		return nil, nil
	}
	return func(id [16]byte, p int32) bool {
		tp := topicPart{id, p}
		since, held := m.since[tp]
		return held && cg.owner[tp] == m.id && since <= epoch
	}, nil
}

// validateTxnCommit checks a TxnOffsetCommit, as Kafka's
// validateTransactionalOffsetCommit: one naming no member is accepted, and
// an epoch mismatch is ILLEGAL_GENERATION (which transactional clients
// handle; STALE_MEMBER_EPOCH is fatal to the Java producer).
func (cg *consumerGroup) validateTxnCommit(memberID, instanceID string, epoch int32) error {
	if memberID == "" && instanceID == "" && epoch < 0 {
		return nil
	}
	if err := cg.validateCommit(memberID, epoch); err != nil {
		if errors.Is(err, ErrStaleMemberEpoch) {
			return ErrIllegalGeneration
		}
		return err
	}
	return nil
}

func (cg *consumerGroup) checkEpoch(memberID string, epoch int32) error {
	m := cg.members[memberID]
	switch {
	case m == nil:
		return ErrUnknownMemberID
	case epoch != m.epoch || m.departed: // a departed member is at epoch -2
		return ErrStaleMemberEpoch
	}
	return nil
}

// subscribesTo reports whether any member's subscription names topic.
func (cg *consumerGroup) subscribesTo(topic string) bool {
	for _, m := range cg.members {
		if slices.Contains(m.topics, topic) {
			return true
		}
		if slices.ContainsFunc(cg.matches[m.regex], func(t *metadata.Topic) bool { return t.Name == topic }) {
			return true
		}
	}
	return false
}

// set is an assignment's partitions as a set: a heartbeat's owned list is
// the client's to size, so comparisons stay linear.
func (a Assignment) set() map[topicPart]bool {
	s := make(map[topicPart]bool)
	for id, ps := range a {
		for _, p := range ps {
			s[topicPart{id, p}] = true
		}
	}
	return s
}

func subset(a, b Assignment) bool {
	in := b.set()
	for id, ps := range a {
		for _, p := range ps {
			if !in[topicPart{id, p}] {
				return false
			}
		}
	}
	return true
}

func intersects(a, b Assignment) bool {
	in := b.set()
	for id, ps := range a {
		for _, p := range ps {
			if in[topicPart{id, p}] {
				return true
			}
		}
	}
	return false
}

func sameAssignment(a, b Assignment) bool {
	return subset(a, b) && subset(b, a)
}

func copyAssignment(a Assignment) Assignment {
	out := make(Assignment, len(a))
	for id, ps := range a {
		if len(ps) > 0 {
			out[id] = slices.Clone(ps)
		}
	}
	return out
}

// SortedTopicIDs lists an assignment's topic ids in order, for a stable
// answer.
func (a Assignment) SortedTopicIDs() [][16]byte {
	ids := make([][16]byte, 0, len(a))
	for id := range a {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y [16]byte) int {
		for i := range x {
			if c := cmp.Compare(x[i], y[i]); c != 0 {
				return c
			}
		}
		return 0
	})
	return ids
}
