package group

// The __consumer_offsets records of KIP-848 consumer groups, in Kafka's
// formats (group-coordinator/src/main/resources/common/message): keys
// are version-prefixed and not flexible, values are version 0 and
// flexible (compact strings and arrays, tagged fields, none written).
//
//	key v3 {group}         ConsumerGroupMetadataValue {epoch}
//	key v4 {group}         ConsumerGroupPartitionMetadataValue {topics: id, name, partitions}
//	key v5 {group, member} ConsumerGroupMemberMetadataValue {instance, rack, client id and host,
//	                       topics, regex, rebalance timeout, assignor}
//	key v6 {group}         ConsumerGroupTargetAssignmentMetadataValue {assignment epoch}
//	key v7 {group, member} ConsumerGroupTargetAssignmentMemberValue {partitions}
//	key v8 {group, member} ConsumerGroupCurrentMemberAssignmentValue {epoch, previous epoch,
//	                       state, assigned, pending revocation}

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
)

// Key versions of the consumer group records.
const (
	cgMetadataKey       = 3
	cgPartitionMetaKey  = 4
	cgMemberKey         = 5
	cgTargetMetaKey     = 6
	cgTargetMemberKey   = 7
	cgCurrentMemberKey  = 8
	maxConsumerRecordID = 8
)

// cgKey encodes a consumer group record key: the group, and the member for
// the per-member kinds.
func cgKey(version int16, group, member string) []byte {
	b := kbin.AppendInt16(nil, version)
	b = kbin.AppendString(b, group)
	if version == cgMemberKey || version == cgTargetMemberKey || version == cgCurrentMemberKey {
		b = kbin.AppendString(b, member)
	}
	return b
}

// cgRecord is one decoded consumer group record; value nil: a tombstone.
type cgRecord struct {
	kind          int16
	group, member string
	value         any // *cgMeta, []cgTopicMeta, *cgMemberMeta, int32 (target epoch), Assignment, *cgCurrent
}

type cgMemberMeta struct {
	instanceID, rackID, clientID, clientHost string
	topics                                   []string
	regex, assignor                          string
	rebalanceTimeoutMs                       int32
}

type cgTopicMeta struct {
	id         [16]byte
	name       string
	partitions int32
}

type cgCurrent struct {
	epoch, prevEpoch   int32
	state              int8
	assigned, revoking Assignment
}

func valueStart() []byte { return kbin.AppendInt16(nil, 0) }

func appendTags(b []byte) []byte { return kbin.AppendUvarint(b, 0) }

func appendNullable(b []byte, s string) []byte {
	if s == "" {
		return kbin.AppendCompactNullableString(b, nil)
	}
	return kbin.AppendCompactNullableString(b, &s)
}

func appendAssignment(b []byte, a Assignment) []byte {
	ids := a.SortedTopicIDs()
	b = kbin.AppendCompactArrayLen(b, len(ids))
	for _, id := range ids {
		b = kbin.AppendUuid(b, id)
		b = kbin.AppendCompactArrayLen(b, len(a[id]))
		for _, p := range a[id] {
			b = kbin.AppendInt32(b, p)
		}
		b = appendTags(b)
	}
	return b
}

func epochValue(epoch int32) []byte {
	return appendTags(kbin.AppendInt32(valueStart(), epoch))
}

func partitionMetaValue(ts []cgTopicMeta) []byte {
	b := kbin.AppendCompactArrayLen(valueStart(), len(ts))
	for _, t := range ts {
		b = kbin.AppendUuid(b, t.id)
		b = kbin.AppendCompactString(b, t.name)
		b = kbin.AppendInt32(b, t.partitions)
		b = kbin.AppendCompactArrayLen(b, 0) // partition racks: not used by our assignors
		b = appendTags(b)
	}
	return appendTags(b)
}

func memberMetaValue(m *consumerMember) []byte {
	b := appendNullable(valueStart(), m.instanceID)
	b = appendNullable(b, m.rack)
	b = kbin.AppendCompactString(b, m.clientID)
	b = kbin.AppendCompactString(b, m.clientHost)
	b = kbin.AppendCompactArrayLen(b, len(m.topics))
	for _, t := range m.topics {
		b = kbin.AppendCompactString(b, t)
	}
	b = appendNullable(b, m.regex)
	b = kbin.AppendInt32(b, int32(m.rebalanceTimeout.Milliseconds()))
	b = appendNullable(b, m.assignor)
	return appendTags(b)
}

func targetMemberValue(a Assignment) []byte {
	return appendTags(appendAssignment(valueStart(), a))
}

func currentMemberValue(m *consumerMember) []byte {
	b := kbin.AppendInt32(valueStart(), m.epoch)
	b = kbin.AppendInt32(b, m.prevEpoch)
	b = kbin.AppendInt8(b, int8(m.state))
	b = appendAssignment(b, m.assigned)
	b = appendAssignment(b, m.revoking)
	return appendTags(b)
}

// skipTags reads a tagged-field section, skipping every field.
func skipTags(r *kbin.Reader) {
	for n := r.Uvarint(); n > 0 && r.Ok(); n-- {
		r.Uvarint()
		r.Span(int(r.Uvarint()))
	}
}

// readArrayLen reads a compact array length, bounded by the bytes left
// (each element takes at least one byte).
func readArrayLen(r *kbin.Reader) int {
	n := int(r.CompactArrayLen())
	if n < 0 || n > len(r.Src) {
		r.Span(len(r.Src) + 1) // fail the reader
		return 0
	}
	return n
}

func readAssignment(r *kbin.Reader) Assignment {
	a := Assignment{}
	for range readArrayLen(r) {
		id := r.Uuid()
		n := readArrayLen(r)
		ps := make([]int32, 0, n)
		for range n {
			ps = append(ps, r.Int32())
		}
		skipTags(r)
		if len(ps) > 0 {
			a[id] = ps
		}
	}
	return a
}

func readNullable(r *kbin.Reader) string {
	if s := r.CompactNullableString(); s != nil {
		return *s
	}
	return ""
}

// decodeConsumerRecord decodes the consumer group record of key version
// kind; a value of a version other than 0 is corrupt.
func decodeConsumerRecord(kind int16, key, value []byte) (cgRecord, error) {
	kr := kbin.Reader{Src: key[2:]}
	rec := cgRecord{kind: kind, group: kr.String()}
	if kind == cgMemberKey || kind == cgTargetMemberKey || kind == cgCurrentMemberKey {
		rec.member = kr.String()
	}
	if err := kr.Complete(); err != nil {
		return rec, fmt.Errorf("%w: consumer group key %d: %w", ErrCorruptRecord, kind, err)
	}
	if value == nil {
		return rec, nil
	}
	r := kbin.Reader{Src: value}
	if v := r.Int16(); v != 0 {
		return rec, fmt.Errorf("%w: consumer group value version %d", ErrCorruptRecord, v)
	}
	switch kind {
	case cgMetadataKey, cgTargetMetaKey:
		rec.value = r.Int32()
	case cgPartitionMetaKey:
		var ts []cgTopicMeta
		for range readArrayLen(&r) {
			t := cgTopicMeta{id: r.Uuid(), name: r.CompactString(), partitions: r.Int32()}
			for range readArrayLen(&r) { // partition racks
				r.Int32()
				for range readArrayLen(&r) {
					r.CompactString()
				}
				skipTags(&r)
			}
			skipTags(&r)
			ts = append(ts, t)
		}
		rec.value = ts
	case cgMemberKey:
		m := &cgMemberMeta{instanceID: readNullable(&r), rackID: readNullable(&r), clientID: r.CompactString(), clientHost: r.CompactString()}
		for range readArrayLen(&r) {
			m.topics = append(m.topics, r.CompactString())
		}
		m.regex = readNullable(&r)
		m.rebalanceTimeoutMs = r.Int32()
		m.assignor = readNullable(&r)
		rec.value = m
	case cgTargetMemberKey:
		rec.value = readAssignment(&r)
	case cgCurrentMemberKey:
		c := &cgCurrent{epoch: r.Int32(), prevEpoch: r.Int32(), state: r.Int8()}
		c.assigned, c.revoking = readAssignment(&r), readAssignment(&r)
		rec.value = c
	}
	skipTags(&r)
	if err := r.Complete(); err != nil {
		return rec, fmt.Errorf("%w: consumer group value %d: %w", ErrCorruptRecord, kind, err)
	}
	return rec, nil
}

// records is the group's consumer state as records, by key: what the log
// holds once it is written.
func (cg *consumerGroup) records(group string) map[string][]byte {
	out := cg.groupRecords(group)
	for id := range cg.members {
		cg.memberRecords(out, group, id)
	}
	return out
}

// groupRecords are the group-level records.
func (cg *consumerGroup) groupRecords(group string) map[string][]byte {
	if cg.subTopicsValue == nil {
		cg.subTopicsValue = partitionMetaValue(cg.subTopics) // one per change: it lists every subscribed topic
	}
	return map[string][]byte{
		string(cgKey(cgMetadataKey, group, "")):      epochValue(cg.epoch),
		string(cgKey(cgPartitionMetaKey, group, "")): cg.subTopicsValue,
		string(cgKey(cgTargetMetaKey, group, "")):    epochValue(cg.assignmentEpoch),
	}
}

// memberRecords adds member id's records to out, nil values when it is
// not a member (its records are to go).
func (cg *consumerGroup) memberRecords(out map[string][]byte, group, id string) {
	keys := [3]string{string(cgKey(cgMemberKey, group, id)), string(cgKey(cgTargetMemberKey, group, id)),
		string(cgKey(cgCurrentMemberKey, group, id))}
	m := cg.members[id]
	if m == nil {
		for _, k := range keys {
			out[k] = nil
		}
		return
	}
	cur := *m
	if m.departed {
		// As Kafka: a static member gone for now is at epoch -2.
		cur.epoch, cur.prevEpoch = StaticLeaveEpoch, m.epoch
	}
	out[keys[0]] = memberMetaValue(m)
	out[keys[1]] = targetMemberValue(cg.target[id])
	out[keys[2]] = currentMemberValue(&cur)
}

// changedRecords are the records of what changed since the last call: the
// group-level ones and those of the members touched (every member's after
// a new target assignment). Encoding only these keeps a heartbeat's cost
// independent of the group's size.
func (cg *consumerGroup) changedRecords(group string) map[string][]byte {
	out := cg.groupRecords(group)
	if cg.touchAll {
		for id := range cg.members {
			cg.memberRecords(out, group, id)
		}
	}
	for id := range cg.touched {
		cg.memberRecords(out, group, id)
	}
	cg.touchAll, cg.touched = false, nil
	return out
}

// cgAcc accumulates a group's consumer records during a replay.
type cgAcc struct {
	epoch, assignmentEpoch int32
	topics                 []cgTopicMeta
	members                map[string]*cgMemberMeta
	targets                map[string]Assignment
	current                map[string]*cgCurrent
	// raw is every live record by key, as the log holds it.
	raw map[string][]byte
}

func newCgAcc() *cgAcc {
	return &cgAcc{members: map[string]*cgMemberMeta{}, targets: map[string]Assignment{},
		current: map[string]*cgCurrent{}, raw: map[string][]byte{}}
}

// apply folds one record (r.value nil: a tombstone) into the accumulator.
func (a *cgAcc) apply(r cgRecord, key, value []byte) {
	if value == nil {
		delete(a.raw, string(key))
	} else {
		a.raw[string(key)] = value
	}
	switch r.kind {
	case cgMetadataKey:
		a.epoch, _ = r.value.(int32)
	case cgTargetMetaKey:
		a.assignmentEpoch, _ = r.value.(int32)
	case cgPartitionMetaKey:
		a.topics, _ = r.value.([]cgTopicMeta)
	case cgMemberKey:
		if m, ok := r.value.(*cgMemberMeta); ok {
			a.members[r.member] = m
		} else {
			delete(a.members, r.member)
		}
	case cgTargetMemberKey:
		if t, ok := r.value.(Assignment); ok {
			a.targets[r.member] = t
		} else {
			delete(a.targets, r.member)
		}
	case cgCurrentMemberKey:
		if c, ok := r.value.(*cgCurrent); ok {
			a.current[r.member] = c
		} else {
			delete(a.current, r.member)
		}
	}
}

// build makes the consumer group a replay found, nil when it has no
// member. Sessions (and revocations in progress) start again at now, as
// Kafka's do when a coordinator loads a group.
func (a *cgAcc) build(limits ConsumerLimits, now time.Time) *consumerGroup {
	if len(a.members) == 0 && len(a.raw) == 0 {
		return nil
	}
	cg := newConsumerGroup(limits)
	cg.epoch, cg.assignmentEpoch, cg.subTopics, cg.subsDirty = a.epoch, a.assignmentEpoch, a.topics, true
	cg.regexSync = true // Kafka keeps the resolutions in the log: resolve at once
	for id, mm := range a.members {
		m := &consumerMember{id: id, instanceID: mm.instanceID, rack: mm.rackID, clientID: mm.clientID, clientHost: mm.clientHost,
			topics: mm.topics, regex: mm.regex, assignor: mm.assignor,
			rebalanceTimeout: time.Duration(mm.rebalanceTimeoutMs) * time.Millisecond,
			assigned:         Assignment{}, revoking: Assignment{}, expires: now.Add(limits.SessionTimeout)}
		if c := a.current[id]; c != nil {
			m.epoch, m.prevEpoch, m.state = c.epoch, c.prevEpoch, memberState(c.state)
			m.assigned, m.revoking = c.assigned, c.revoking
			if m.epoch == StaticLeaveEpoch {
				m.departed, m.epoch = true, c.prevEpoch
			}
			if m.state < memberStable || m.state > memberUnreleased {
				m.state = memberStable
			}
			if m.state == memberUnrevoked {
				m.revokeBy = now.Add(max(m.rebalanceTimeout, time.Second))
			}
		}
		for _, as := range []Assignment{m.assigned, m.revoking} {
			for tid, ps := range as {
				for _, p := range ps {
					cg.owner[topicPart{tid, p}] = id
					if m.since == nil {
						m.since = map[topicPart]int32{}
					}
					// Not persisted: commits at an older epoch
					// than the loaded one are refused for now.
					m.since[topicPart{tid, p}] = m.epoch
				}
			}
		}
		if m.instanceID != "" {
			cg.static[m.instanceID] = id
		}
		if t, ok := a.targets[id]; ok {
			cg.target[id] = t
		}
		cg.members[id] = m
	}
	cg.assignor = cg.chooseAssignor()
	return cg
}
