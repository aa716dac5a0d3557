package txn

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxRecordPartitions bounds the partitions decoded from one record.
const maxRecordPartitions = 1 << 20

// encodeKey is the __transaction_state key of a transactional id (v0).
func encodeKey(id string) []byte {
	k := kmsg.NewTxnMetadataKey()
	k.Version, k.TransactionalID = 0, id
	return k.AppendTo(nil)
}

// encodeValue is the __transaction_state value of m (v0).
func encodeValue(m Metadata) []byte {
	v := kmsg.NewTxnMetadataValue()
	v.Version = 0
	if m.TV2 {
		// Kafka writes v1 (flexible, with the KIP-890 tagged fields) for
		// transaction.version 2 transactions.
		v.Version = 1
		v.ClientTransactionVersion = 2
		v.PreviousProducerID, v.NextProducerID = m.PreviousProducerID, m.NextProducerID
	}
	v.ProducerID, v.ProducerEpoch = m.ProducerID, m.ProducerEpoch
	v.TimeoutMillis = int32(m.Timeout / time.Millisecond)
	v.State = kmsg.TransactionState(m.State)
	var cur *kmsg.TxnMetadataValueTopic
	for _, tp := range m.SortedPartitions() {
		if cur == nil || cur.Topic != tp.Topic {
			v.Topics = append(v.Topics, kmsg.TxnMetadataValueTopic{Topic: tp.Topic})
			cur = &v.Topics[len(v.Topics)-1]
		}
		cur.Partitions = append(cur.Partitions, tp.Partition)
	}
	v.LastUpdateTimestamp = m.LastUpdate.UnixMilli()
	v.StartTimestamp = -1
	if !m.TxnStart.IsZero() {
		v.StartTimestamp = m.TxnStart.UnixMilli()
	}
	return v.AppendTo(nil)
}

// decodeRecord decodes a __transaction_state record; m is nil for a
// tombstone.
func decodeRecord(key, value []byte) (string, *Metadata, error) {
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return "", nil, fmt.Errorf("%w: key: %v", ErrCorruptRecord, err)
	}
	if k.Version != 0 {
		return "", nil, fmt.Errorf("%w: key version %d", ErrCorruptRecord, k.Version)
	}
	if value == nil {
		return k.TransactionalID, nil, nil
	}
	v := kmsg.NewTxnMetadataValue()
	if err := v.ReadFrom(value); err != nil {
		return "", nil, fmt.Errorf("%w: value: %v", ErrCorruptRecord, err)
	}
	if v.Version < 0 || v.Version > 1 || v.State < 0 || int(v.State) >= len(stateNames) {
		return "", nil, fmt.Errorf("%w: value version %d state %d", ErrCorruptRecord, v.Version, v.State)
	}
	m := &Metadata{ID: k.TransactionalID, ProducerID: v.ProducerID, ProducerEpoch: v.ProducerEpoch,
		Timeout: time.Duration(v.TimeoutMillis) * time.Millisecond, State: State(v.State),
		Partitions: map[TopicPartition]struct{}{}, Groups: map[string]struct{}{},
		LastUpdate: time.UnixMilli(v.LastUpdateTimestamp), PreviousProducerID: -1, NextProducerID: -1}
	if v.Version >= 1 {
		m.TV2 = v.ClientTransactionVersion >= 2
		m.PreviousProducerID, m.NextProducerID = v.PreviousProducerID, v.NextProducerID
	}
	if v.StartTimestamp >= 0 {
		m.TxnStart = time.UnixMilli(v.StartTimestamp)
	}
	n := 0
	for _, t := range v.Topics {
		n += len(t.Partitions)
		if n > maxRecordPartitions {
			return "", nil, fmt.Errorf("%w: too many partitions", ErrCorruptRecord)
		}
		for _, p := range t.Partitions {
			m.Partitions[TopicPartition{t.Topic, p}] = struct{}{}
		}
	}
	return k.TransactionalID, m, nil
}
