package group

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrCorruptRecord is a __consumer_offsets record that does not decode.
var ErrCorruptRecord = errors.New("group: corrupt __consumer_offsets record")

// Record key versions (the key's leading int16), as Kafka writes them.
const (
	offsetKeyVersion   = 1
	groupKeyVersion    = 2
	offsetValueVersion = 3
	groupValueVersion  = 3
)

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Offset is a committed offset.
type Offset struct {
	Offset          int64
	LeaderEpoch     int32
	Metadata        string
	CommitTimestamp int64 // unix ms
	// record is the log offset of the record that committed it: of two
	// commits of a partition, plain and transactional, the later record
	// wins when the transaction commits (Kafka's recordOffset).
	record int64
}

func offsetKey(group string, tp TopicPartition) []byte {
	k := kmsg.NewOffsetCommitKey()
	k.Version = offsetKeyVersion
	k.Group, k.Topic, k.Partition = group, tp.Topic, tp.Partition
	return k.AppendTo(nil)
}

func offsetValue(o Offset) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueVersion
	v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = o.Offset, o.LeaderEpoch, o.Metadata, o.CommitTimestamp
	return v.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.NewGroupMetadataKey()
	k.Version = groupKeyVersion
	k.Group = group
	return k.AppendTo(nil)
}

// groupValue encodes a group's metadata; members carry their metadata for
// the chosen protocol and their assignment.
func groupValue(g *groupState) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupValueVersion
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		p := g.protocol
		v.Protocol = &p
	}
	if g.leader != "" {
		l := g.leader
		v.Leader = &l
	}
	v.CurrentStateTimestamp = g.stateTime.UnixMilli()
	for _, m := range g.sortedMembers() {
		mm := kmsg.NewGroupMetadataValueMember()
		mm.MemberID = m.id
		if m.instanceID != "" {
			id := m.instanceID
			mm.InstanceID = &id
		}
		mm.ClientID, mm.ClientHost = m.clientID, m.clientHost
		mm.RebalanceTimeoutMillis = int32(m.rebalance.Milliseconds())
		mm.SessionTimeoutMillis = int32(m.session.Milliseconds())
		mm.Subscription = m.metadataFor(g.protocol)
		if mm.Subscription == nil {
			mm.Subscription = []byte{}
		}
		mm.Assignment = m.assignment
		if mm.Assignment == nil {
			mm.Assignment = []byte{}
		}
		v.Members = append(v.Members, mm)
	}
	return v.AppendTo(nil)
}

// decoded is one __consumer_offsets record.
type decoded struct {
	group string
	// isOffset: an offset commit (tp, offset); else group metadata (meta).
	isOffset bool
	tp       TopicPartition
	offset   *Offset                  // nil: tombstone
	meta     *kmsg.GroupMetadataValue // nil: tombstone
	// cg: a consumer group (KIP-848) record.
	cg *cgRecord
}

// decodeRecord decodes a key and value (nil value: tombstone). kmsg's
// decoders bound every length by the bytes left.
// The newest value versions Kafka defines (OffsetCommitValue and
// GroupMetadataValue); a value claiming another version is corrupt, as in
// Kafka's GroupMetadataManager.
const (
	maxOffsetValueVersion = 4
	maxGroupValueVersion  = 4
)

func checkValueVersion(value []byte, maxVersion int16) error {
	if len(value) < 2 {
		return fmt.Errorf("value of %d bytes", len(value))
	}
	if v := int16(uint16(value[0])<<8 | uint16(value[1])); v < 0 || v > maxVersion {
		return fmt.Errorf("unknown value version %d", v)
	}
	return nil
}

func decodeRecord(key, value []byte) (decoded, error) {
	if len(key) < 2 {
		return decoded{}, fmt.Errorf("%w: key of %d bytes", ErrCorruptRecord, len(key))
	}
	version := int16(uint16(key[0])<<8 | uint16(key[1]))
	switch version {
	case 0, 1:
		k := kmsg.NewOffsetCommitKey()
		if err := k.ReadFrom(key); err != nil {
			return decoded{}, fmt.Errorf("%w: offset key: %w", ErrCorruptRecord, err)
		}
		d := decoded{group: k.Group, isOffset: true, tp: TopicPartition{k.Topic, k.Partition}}
		if value != nil {
			v := kmsg.NewOffsetCommitValue()
			if err := checkValueVersion(value, maxOffsetValueVersion); err != nil {
				return decoded{}, fmt.Errorf("%w: offset value: %w", ErrCorruptRecord, err)
			}
			if err := v.ReadFrom(value); err != nil {
				return decoded{}, fmt.Errorf("%w: offset value: %w", ErrCorruptRecord, err)
			}
			d.offset = &Offset{Offset: v.Offset, LeaderEpoch: v.LeaderEpoch, Metadata: v.Metadata, CommitTimestamp: v.CommitTimestamp}
			if v.Version < 3 {
				d.offset.LeaderEpoch = -1
			}
		}
		return d, nil
	case 2:
		k := kmsg.NewGroupMetadataKey()
		if err := k.ReadFrom(key); err != nil {
			return decoded{}, fmt.Errorf("%w: group key: %w", ErrCorruptRecord, err)
		}
		d := decoded{group: k.Group}
		if value != nil {
			v := kmsg.NewGroupMetadataValue()
			if err := checkValueVersion(value, maxGroupValueVersion); err != nil {
				return decoded{}, fmt.Errorf("%w: group value: %w", ErrCorruptRecord, err)
			}
			if err := v.ReadFrom(value); err != nil {
				return decoded{}, fmt.Errorf("%w: group value: %w", ErrCorruptRecord, err)
			}
			d.meta = &v
		}
		return d, nil
	case cgMetadataKey, cgPartitionMetaKey, cgMemberKey, cgTargetMetaKey, cgTargetMemberKey, cgCurrentMemberKey:
		rec, err := decodeConsumerRecord(version, key, value)
		if err != nil {
			return decoded{}, err
		}
		return decoded{group: rec.group, cg: &rec}, nil
	default:
		// Other record kinds (share and streams groups) are not ours.
		return decoded{}, nil
	}
}
