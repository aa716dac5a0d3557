package statelog

import (
	"context"
	"errors"
	"time"
)

// Errors a Log returns; a coordinator maps them to its own (Kafka's
// coordinator error mapping: NOT_LEADER_OR_FOLLOWER is NOT_COORDINATOR,
// NOT_ENOUGH_REPLICAS and a timeout are COORDINATOR_NOT_AVAILABLE).
var (
	// ErrNotLeader: this node no longer leads the partition under the
	// Log's epoch (or never did).
	ErrNotLeader = errors.New("statelog: not the leader of the state partition")
	// ErrLoading: this node leads the partition but has not loaded it yet.
	ErrLoading = errors.New("statelog: state partition is loading")
	// ErrNotEnoughReplicas: the in-sync replicas are fewer than
	// min.insync.replicas, before or after the append.
	ErrNotEnoughReplicas = errors.New("statelog: not enough in-sync replicas")
	// ErrStorage: the partition's log failed (a disk error).
	ErrStorage = errors.New("statelog: storage error")
)

// KeyValue is one record; a nil Value is a tombstone.
type KeyValue struct {
	Key, Value []byte
}

// Record is one record met by Scan: a key/value record, or (Marker set) the
// end-transaction marker of producer ProducerID.
type Record struct {
	// Offset is the record's offset (the marker's, for a marker).
	Offset int64
	// ProducerID is the batch's producer, -1 for a plain record.
	ProducerID    int64
	ProducerEpoch int16
	// Transactional: the record belongs to ProducerID's transaction and
	// takes effect only at its COMMIT marker.
	Transactional bool
	// Marker: an end-transaction marker; Commit tells COMMIT from ABORT.
	Marker, Commit bool
	// Key and Value (nil: tombstone) are valid only during the callback.
	Key, Value []byte
}

// Batch is what Append writes: records, as one batch. ProducerID >= 0 makes
// it a transactional batch of that producer and epoch (a TxnOffsetCommit's
// offsets, which the transaction's marker commits or drops).
type Batch struct {
	Now           time.Time
	ProducerID    int64
	ProducerEpoch int16
	Records       []KeyValue
	// Guard, on a transactional batch, is the partition's KIP-890
	// verification guard (replica.VerificationGuard) taken before its
	// transaction was verified with a coordinator on another broker: the
	// batch is refused unless no end marker of its producer was written
	// since. nil: not checked.
	Guard *uint64
}

// Log is one state partition, as the coordinator that leads it sees it.
// A Log is made for one leadership: the leader epochs from the one this
// node was elected in for as long as it leads without a break (an epoch
// bumped meanwhile keeps it). Once leadership moves its writes fail with
// ErrNotLeader, so a deposed coordinator cannot write behind its
// successor's back, even if elected again.
//
// Methods are safe for concurrent use. Append's record bytes are copied
// before it returns.
type Log interface {
	// Epoch is the leader epoch this Log's leadership began in (the
	// coordinator epoch that fences transaction markers).
	Epoch() int32
	// Append writes b as one batch and returns the offset after it:
	// record i has offset next-len(b.Records)+i. The batch is not
	// committed yet: WaitCommitted(next) waits for that.
	Append(b Batch) (next int64, err error)
	// WaitCommitted returns once every record below next is committed:
	// durable here and on every in-sync replica (the high watermark
	// reached it). It fails with ErrNotLeader when leadership moves,
	// ErrNotEnoughReplicas when the in-sync replicas fell below
	// min.insync.replicas, and ctx's error when ctx ends.
	WaitCommitted(ctx context.Context, next int64) error
	// WaitReadable is WaitCommitted for a reader of state already written
	// (OffsetFetch): it does not fail for too few in-sync replicas, which
	// fail writes only, as in Kafka.
	WaitReadable(ctx context.Context, next int64) error
	// Scan calls fn for each record from the log start to the log end at
	// the call (not only the committed ones: a new leader's log is the
	// one its followers will copy), in offset order, markers included.
	// An error from fn stops the scan and is returned. It returns the
	// offset after the last record seen.
	Scan(fn func(Record) error) (end int64, err error)
}
