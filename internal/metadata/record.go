package metadata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// RecordType identifies a record in the encoded form.
type RecordType uint8

// Record types. The numbers are part of the on-disk format: never reuse one.
const (
	TypeRegisterBroker   RecordType = 1
	TypeFenceBroker      RecordType = 2
	TypeUnfenceBroker    RecordType = 3
	TypeTopic            RecordType = 4
	TypePartition        RecordType = 5
	TypePartitionChange  RecordType = 6
	TypeRemoveTopic      RecordType = 7
	TypeConfig           RecordType = 8
	TypeProducerIDs      RecordType = 9
	TypeCluster          RecordType = 10
	TypeUnregisterBroker RecordType = 11
)

// recordVersion is the version of every record but a PartitionRecord or
// PartitionChangeRecord that carries a reassignment: those are written as
// reassignVersion, which appends the adding and removing replicas.
const (
	recordVersion   = 0
	reassignVersion = 1
	// listenersVersion is a RegisterBrokerRecord's with its listeners.
	listenersVersion = 1
)

// Config resource types, numbered as Kafka's ConfigResource types.
const (
	ResourceTopic  int8 = 2
	ResourceBroker int8 = 4
	ResourceGroup  int8 = 32
)

// NoLeader is the leader id of a partition that has no leader.
const NoLeader int32 = -1

// Record is one entry of the metadata log. Records are plain values; the
// concrete types below are the only implementations.
type Record interface {
	// Type returns the record's type number.
	Type() RecordType
	appendFields(dst []byte) []byte
}

// RegisterBrokerRecord registers a broker (or re-registers it with a higher
// epoch).
type RegisterBrokerRecord struct {
	NodeID int32
	Host   string
	Port   int32
	Rack   string
	Epoch  int64
	Fenced bool
	// Listeners are every client listener of a broker with more than one,
	// or whose one is not PLAINTEXT; nil otherwise (Host:Port is then its
	// only listener).
	Listeners []Endpoint
}

// FenceBrokerRecord fences a broker: it no longer receives new leaderships.
type FenceBrokerRecord struct {
	NodeID int32
	Epoch  int64
}

// UnfenceBrokerRecord unfences a broker.
type UnfenceBrokerRecord struct {
	NodeID int32
	Epoch  int64
}

// TopicRecord creates a topic with no partitions; PartitionRecords follow.
type TopicRecord struct {
	Name string
	ID   [16]byte
}

// PartitionRecord creates (or replaces) a partition of a topic. A new
// partition's id must be the topic's current partition count.
type PartitionRecord struct {
	TopicID        [16]byte
	Partition      int32
	Replicas       []int32
	ISR            []int32
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
	// AddingReplicas and RemovingReplicas describe a reassignment in
	// progress, as KRaft's fields of the same names: Replicas holds the
	// target replicas followed by the ones being removed.
	AddingReplicas   []int32
	RemovingReplicas []int32
}

// PartitionChangeRecord changes the leader, ISR or replicas of a partition.
// Nil fields are unchanged (an empty AddingReplicas or RemovingReplicas
// clears it). A leader change bumps LeaderEpoch, and so does a replica set
// that drops a replica (KRaft's bump that fences a removed replica's
// fetches); every change bumps PartitionEpoch.
type PartitionChangeRecord struct {
	TopicID          [16]byte
	Partition        int32
	Leader           *int32
	ISR              []int32
	Replicas         []int32
	AddingReplicas   []int32
	RemovingReplicas []int32
}

// RemoveTopicRecord deletes a topic, its partitions and its configs.
type RemoveTopicRecord struct {
	TopicID [16]byte
}

// ConfigRecord sets (Value non-nil) or deletes (Value nil) one config key of
// a resource: a topic (ResourceTopic, by name), a broker (ResourceBroker;
// name "" is the cluster default, otherwise the broker id in decimal) or a
// group (ResourceGroup, by group id; Kafka 4.0's group configs).
type ConfigRecord struct {
	ResourceType int8
	ResourceName string
	Name         string
	Value        *string
}

// ProducerIDsRecord records that producer ids below NextProducerID have been
// handed out (to BrokerID).
type ProducerIDsRecord struct {
	BrokerID       int32
	NextProducerID int64
}

// UnregisterBrokerRecord removes a broker's registration (UnregisterBroker,
// key 64). Epoch must be the registered epoch.
type UnregisterBrokerRecord struct {
	NodeID int32
	Epoch  int64
}

// ClusterRecord sets the cluster id, once, at bootstrap.
type ClusterRecord struct {
	ClusterID string
}

// Type implements Record.
func (RegisterBrokerRecord) Type() RecordType { return TypeRegisterBroker }

// Type implements Record.
func (FenceBrokerRecord) Type() RecordType { return TypeFenceBroker }

// Type implements Record.
func (UnfenceBrokerRecord) Type() RecordType { return TypeUnfenceBroker }

// Type implements Record.
func (TopicRecord) Type() RecordType { return TypeTopic }

// Type implements Record.
func (PartitionRecord) Type() RecordType { return TypePartition }

// Type implements Record.
func (PartitionChangeRecord) Type() RecordType { return TypePartitionChange }

// Type implements Record.
func (RemoveTopicRecord) Type() RecordType { return TypeRemoveTopic }

// Type implements Record.
func (ConfigRecord) Type() RecordType { return TypeConfig }

// Type implements Record.
func (ProducerIDsRecord) Type() RecordType { return TypeProducerIDs }

// Type implements Record.
func (ClusterRecord) Type() RecordType { return TypeCluster }

// Type implements Record.
func (UnregisterBrokerRecord) Type() RecordType { return TypeUnregisterBroker }

func (r UnregisterBrokerRecord) appendFields(b []byte) []byte {
	return appendInt64(appendInt32(b, r.NodeID), r.Epoch)
}

// version is the encoding version of rec.
func version(rec Record) uint8 {
	switch r := rec.(type) {
	case PartitionRecord:
		if len(r.AddingReplicas) > 0 || len(r.RemovingReplicas) > 0 {
			return reassignVersion
		}
	case PartitionChangeRecord:
		if r.AddingReplicas != nil || r.RemovingReplicas != nil {
			return reassignVersion
		}
	case RegisterBrokerRecord:
		if r.Listeners != nil {
			return listenersVersion
		}
	}
	return recordVersion
}

func (r RegisterBrokerRecord) appendFields(b []byte) []byte {
	b = appendInt32(b, r.NodeID)
	b = appendString(b, r.Host)
	b = appendInt32(b, r.Port)
	b = appendString(b, r.Rack)
	b = appendInt64(b, r.Epoch)
	b = appendBool(b, r.Fenced)
	if r.Listeners != nil {
		b = binary.AppendUvarint(b, uint64(len(r.Listeners)))
		for _, l := range r.Listeners {
			b = appendInt32(appendString(appendString(b, l.Name), l.Host), l.Port)
		}
	}
	return b
}

func (r FenceBrokerRecord) appendFields(b []byte) []byte {
	return appendInt64(appendInt32(b, r.NodeID), r.Epoch)
}

func (r UnfenceBrokerRecord) appendFields(b []byte) []byte {
	return appendInt64(appendInt32(b, r.NodeID), r.Epoch)
}

func (r TopicRecord) appendFields(b []byte) []byte {
	return append(appendString(b, r.Name), r.ID[:]...)
}

func (r PartitionRecord) appendFields(b []byte) []byte {
	b = append(b, r.TopicID[:]...)
	b = appendInt32(b, r.Partition)
	b = appendInt32s(b, r.Replicas)
	b = appendInt32s(b, r.ISR)
	b = appendInt32(b, r.Leader)
	b = appendInt32(b, r.LeaderEpoch)
	b = appendInt32(b, r.PartitionEpoch)
	if version(r) == reassignVersion {
		b = appendInt32s(b, r.AddingReplicas)
		b = appendInt32s(b, r.RemovingReplicas)
	}
	return b
}

func (r PartitionChangeRecord) appendFields(b []byte) []byte {
	b = append(b, r.TopicID[:]...)
	b = appendInt32(b, r.Partition)
	b = appendBool(b, r.Leader != nil)
	if r.Leader != nil {
		b = appendInt32(b, *r.Leader)
	}
	b = appendInt32s(b, r.ISR)
	b = appendInt32s(b, r.Replicas)
	if version(r) == reassignVersion {
		b = appendInt32s(b, r.AddingReplicas)
		b = appendInt32s(b, r.RemovingReplicas)
	}
	return b
}

func (r RemoveTopicRecord) appendFields(b []byte) []byte { return append(b, r.TopicID[:]...) }

func (r ConfigRecord) appendFields(b []byte) []byte {
	b = append(b, byte(r.ResourceType))
	b = appendString(b, r.ResourceName)
	b = appendString(b, r.Name)
	if r.Value == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(*r.Value)))
	return append(b, *r.Value...)
}

func (r ProducerIDsRecord) appendFields(b []byte) []byte {
	return appendInt64(appendInt32(b, r.BrokerID), r.NextProducerID)
}

func (r ClusterRecord) appendFields(b []byte) []byte { return appendString(b, r.ClusterID) }

// Encode returns the encoded form of rec.
func Encode(rec Record) []byte {
	return AppendRecord(nil, rec)
}

// AppendRecord appends the encoded form of rec to dst.
func AppendRecord(dst []byte, rec Record) []byte {
	dst = append(dst, version(rec), byte(rec.Type()))
	return rec.appendFields(dst)
}

// Decoding errors.
var (
	// ErrCorrupt means the bytes are not a valid record, batch or image.
	ErrCorrupt = errors.New("metadata: corrupt encoding")
	// ErrUnknownVersion means the record or image version is not supported.
	ErrUnknownVersion = errors.New("metadata: unknown encoding version")
	// ErrUnknownRecordType means the record type is not known.
	ErrUnknownRecordType = errors.New("metadata: unknown record type")
)

// Decode decodes one record. The result does not alias b.
func Decode(b []byte) (Record, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: record shorter than its header", ErrCorrupt)
	}
	v := b[0]
	t := RecordType(b[1])
	if v != recordVersion && !(v == reassignVersion && (t == TypePartition || t == TypePartitionChange)) &&
		!(v == listenersVersion && t == TypeRegisterBroker) {
		return nil, fmt.Errorf("%w: record version %d of type %d", ErrUnknownVersion, v, b[1])
	}
	r := reader{b: b[2:]}
	var rec Record
	switch RecordType(b[1]) {
	case TypeRegisterBroker:
		rb := RegisterBrokerRecord{
			NodeID: r.int32(), Host: r.string(), Port: r.int32(),
			Rack: r.string(), Epoch: r.int64(), Fenced: r.bool(),
		}
		if v == listenersVersion {
			n := r.uvarint()
			if n > uint64(len(r.b)) {
				r.fail("%d listeners in %d bytes", n, len(r.b))
				n = 0
			}
			rb.Listeners = make([]Endpoint, 0, n)
			for range n {
				rb.Listeners = append(rb.Listeners, Endpoint{Name: r.string(), Host: r.string(), Port: r.int32()})
			}
		}
		rec = rb
	case TypeFenceBroker:
		rec = FenceBrokerRecord{NodeID: r.int32(), Epoch: r.int64()}
	case TypeUnfenceBroker:
		rec = UnfenceBrokerRecord{NodeID: r.int32(), Epoch: r.int64()}
	case TypeTopic:
		rec = TopicRecord{Name: r.string(), ID: r.uuid()}
	case TypePartition:
		pr := PartitionRecord{
			TopicID: r.uuid(), Partition: r.int32(), Replicas: r.int32s(), ISR: r.int32s(),
			Leader: r.int32(), LeaderEpoch: r.int32(), PartitionEpoch: r.int32(),
		}
		if v == reassignVersion {
			// An empty list is no move, as an absent one: nil, so the
			// record reads the same after it is written again (at
			// version 0, which has no lists).
			if adding := r.int32s(); len(adding) > 0 {
				pr.AddingReplicas = adding
			}
			if removing := r.int32s(); len(removing) > 0 {
				pr.RemovingReplicas = removing
			}
		}
		rec = pr
	case TypePartitionChange:
		pc := PartitionChangeRecord{TopicID: r.uuid(), Partition: r.int32()}
		if r.bool() {
			l := r.int32()
			pc.Leader = &l
		}
		pc.ISR = r.int32s()
		pc.Replicas = r.int32s()
		if v == reassignVersion {
			pc.AddingReplicas, pc.RemovingReplicas = r.int32s(), r.int32s()
		}
		rec = pc
	case TypeRemoveTopic:
		rec = RemoveTopicRecord{TopicID: r.uuid()}
	case TypeConfig:
		rec = ConfigRecord{ResourceType: r.int8(), ResourceName: r.string(), Name: r.string(), Value: r.nstring()}
	case TypeProducerIDs:
		rec = ProducerIDsRecord{BrokerID: r.int32(), NextProducerID: r.int64()}
	case TypeCluster:
		rec = ClusterRecord{ClusterID: r.string()}
	case TypeUnregisterBroker:
		rec = UnregisterBrokerRecord{NodeID: r.int32(), Epoch: r.int64()}
	case TypeClientQuota:
		rec = decodeClientQuota(&r)
	case TypeUserScramCredential:
		rec = decodeUserScramCredential(&r)
	case TypeRemoveUserScramCredential:
		rec = RemoveUserScramCredentialRecord{ScramKey: r.scramKey()}
	case TypeAccessControlEntry:
		rec = decodeAccessControlEntry(&r)
	case TypeRemoveAccessControlEntry:
		rec = RemoveAccessControlEntryRecord{ID: r.uuid()}
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownRecordType, b[1])
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after record type %d", ErrCorrupt, len(r.b), b[1])
	}
	return rec, nil
}

// EncodeBatch encodes records as one batch: the unit of one Raft log entry,
// applied all-or-nothing.
func EncodeBatch(recs []Record) []byte {
	b := binary.AppendUvarint(nil, uint64(len(recs)))
	var scratch []byte
	for _, rec := range recs {
		scratch = AppendRecord(scratch[:0], rec)
		b = binary.AppendUvarint(b, uint64(len(scratch)))
		b = append(b, scratch...)
	}
	return b
}

// DecodeBatch decodes a batch written by EncodeBatch.
func DecodeBatch(b []byte) ([]Record, error) {
	r := reader{b: b}
	n := r.uvarint()
	// Every record takes at least 3 bytes (length, version, type).
	if r.err == nil && n > uint64(len(r.b))/3 {
		return nil, fmt.Errorf("%w: batch count %d larger than its bytes allow", ErrCorrupt, n)
	}
	if r.err != nil {
		return nil, r.err
	}
	recs := make([]Record, 0, n)
	for i := uint64(0); i < n; i++ {
		raw := r.bytes()
		if r.err != nil {
			return nil, r.err
		}
		rec, err := Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("batch record %d: %w", i, err)
		}
		recs = append(recs, rec)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after batch", ErrCorrupt, len(r.b))
	}
	return recs, nil
}

func appendInt32(b []byte, v int32) []byte { return binary.BigEndian.AppendUint32(b, uint32(v)) }
func appendInt64(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendInt32s(b []byte, vs []int32) []byte {
	if vs == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(vs)))
	for _, v := range vs {
		b = appendInt32(b, v)
	}
	return b
}

// reader decodes fields, keeping the first error; after an error every read
// returns a zero value.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	r.b = nil
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("need %d bytes, have %d", n, len(r.b))
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) int8() int8 {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return int8(v[0])
}

func (r *reader) bool() bool {
	v := r.take(1)
	if v == nil {
		return false
	}
	switch v[0] {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail("bool byte %d", v[0])
	return false
}

func (r *reader) int32() int32 {
	v := r.take(4)
	if v == nil {
		return 0
	}
	return int32(binary.BigEndian.Uint32(v))
}

func (r *reader) int64() int64 {
	v := r.take(8)
	if v == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func (r *reader) uint64() uint64 {
	v := r.take(8)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (r *reader) uuid() (id [16]byte) {
	copy(id[:], r.take(16))
	return id
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes reads a uvarint length and that many bytes, aliasing r.b.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("length %d larger than the %d bytes left", n, len(r.b))
		return nil
	}
	return r.take(int(n))
}

func (r *reader) string() string { return string(r.bytes()) }

func (r *reader) nstring() *string {
	n := r.varint()
	if r.err != nil || n == -1 {
		return nil
	}
	if n < 0 || n > int64(len(r.b)) {
		r.fail("string length %d with %d bytes left", n, len(r.b))
		return nil
	}
	s := string(r.take(int(n)))
	return &s
}

func (r *reader) int32s() []int32 {
	n := r.varint()
	if r.err != nil || n == -1 {
		return nil
	}
	if n < 0 || n > math.MaxInt32 || n > int64(len(r.b)/4) {
		r.fail("array count %d with %d bytes left", n, len(r.b))
		return nil
	}
	vs := make([]int32, n)
	for i := range vs {
		vs[i] = r.int32()
	}
	return vs
}
