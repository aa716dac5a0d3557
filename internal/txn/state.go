package txn

import (
	"errors"
	"math"
	"sort"
	"time"
)

// State is a transactional id's state, with Kafka's on-disk values
// (TransactionState in __transaction_state).
type State int8

// The states of a transactional id.
const (
	Empty State = iota
	Ongoing
	PrepareCommit
	PrepareAbort
	CompleteCommit
	CompleteAbort
	Dead
	PrepareEpochFence
)

var stateNames = [...]string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit",
	"CompleteAbort", "Dead", "PrepareEpochFence"}

// String is the state's name as DescribeTransactions and ListTransactions
// report it.
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "Unknown"
}

// ParseState parses a state name; false when unknown.
func ParseState(name string) (State, bool) {
	for i, n := range stateNames {
		if n == name {
			return State(i), true
		}
	}
	return 0, false
}

// Errors of the transaction coordinator; the broker maps them to Kafka codes.
var (
	ErrInvalidProducerIDMapping  = errors.New("txn: producer id does not match the transactional id")
	ErrProducerFenced            = errors.New("txn: producer fenced by a newer epoch")
	ErrInvalidTxnState           = errors.New("txn: invalid transaction state for the request")
	ErrConcurrentTransactions    = errors.New("txn: a previous transaction is still completing")
	ErrInvalidTransactionTimeout = errors.New("txn: invalid transaction timeout")
	ErrTransactionalIDNotFound   = errors.New("txn: transactional id not found")
	ErrNotCoordinator            = errors.New("txn: not the coordinator")
	ErrCoordinatorNotAvailable   = errors.New("txn: coordinator not available")
	ErrCorruptRecord             = errors.New("txn: corrupt __transaction_state record")
	ErrClosed                    = errors.New("txn: coordinator closed")
)

// TopicPartition names one partition of a transaction.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Metadata is one transactional id's state, as persisted.
type Metadata struct {
	ID            string
	ProducerID    int64
	ProducerEpoch int16
	Timeout       time.Duration
	State         State
	Partitions    map[TopicPartition]struct{}
	// Groups are the consumer groups added with AddOffsetsToTxn (memory
	// only: what persists is their __consumer_offsets partition, in
	// Partitions, where the transactional offsets are written).
	Groups     map[string]struct{}
	TxnStart   time.Time // zero unless a transaction is open
	LastUpdate time.Time
}

func (m Metadata) clone() Metadata {
	c := m
	c.Partitions = make(map[TopicPartition]struct{}, len(m.Partitions))
	for tp := range m.Partitions {
		c.Partitions[tp] = struct{}{}
	}
	c.Groups = make(map[string]struct{}, len(m.Groups))
	for g := range m.Groups {
		c.Groups[g] = struct{}{}
	}
	return c
}

// SortedPartitions lists the transaction's partitions in order.
func (m Metadata) SortedPartitions() []TopicPartition {
	out := make([]TopicPartition, 0, len(m.Partitions))
	for tp := range m.Partitions {
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// checkProducer validates a request's producer id and epoch against m.
func checkProducer(m *Metadata, pid int64, epoch int16) error {
	switch {
	case m == nil || m.ProducerID != pid:
		return ErrInvalidProducerIDMapping
	case m.ProducerEpoch != epoch:
		return ErrProducerFenced
	}
	return nil
}

// initDecision is what InitProducerId must do.
type initDecision struct {
	// abortFirst: an open transaction is aborted (markers with the bumped
	// epoch) before the id is handed out again.
	abortFirst bool
	// newPID: the epoch is exhausted (or the id is new): a fresh producer id
	// with epoch 0.
	newPID bool
}

// planInit validates an InitProducerId against the current metadata (nil:
// unknown id). reqPID/reqEpoch are -1 unless the client (v3+) resumes.
func planInit(m *Metadata, timeout, maxTimeout time.Duration, reqPID int64, reqEpoch int16) (initDecision, error) {
	if timeout <= 0 || timeout > maxTimeout {
		return initDecision{}, ErrInvalidTransactionTimeout
	}
	if m == nil {
		return initDecision{newPID: true}, nil
	}
	if reqPID >= 0 && (reqPID != m.ProducerID || reqEpoch != m.ProducerEpoch) {
		return initDecision{}, ErrProducerFenced
	}
	switch m.State {
	case PrepareCommit, PrepareAbort, PrepareEpochFence:
		return initDecision{}, ErrConcurrentTransactions
	case Ongoing:
		return initDecision{abortFirst: true, newPID: m.ProducerEpoch >= math.MaxInt16-2}, nil
	}
	return initDecision{newPID: m.ProducerEpoch >= math.MaxInt16-1}, nil
}

// bumped returns m reset to Empty under the next epoch (or pid with epoch 0
// when newPID >= 0), ready for a new transaction.
func bumped(m Metadata, newPID int64, timeout time.Duration, now time.Time) Metadata {
	n := m.clone()
	if newPID >= 0 {
		n.ProducerID, n.ProducerEpoch = newPID, 0
	} else {
		n.ProducerEpoch++
	}
	n.Timeout, n.State, n.TxnStart, n.LastUpdate = timeout, Empty, time.Time{}, now
	n.Partitions, n.Groups = map[TopicPartition]struct{}{}, map[string]struct{}{}
	return n
}

// planAddPartitions returns the metadata after adding tps (and groups), and
// whether it changed (a write is needed).
func planAddPartitions(m *Metadata, pid int64, epoch int16, tps []TopicPartition, groups []string, now time.Time) (Metadata, bool, error) {
	if err := checkProducer(m, pid, epoch); err != nil {
		return Metadata{}, false, err
	}
	switch m.State {
	case PrepareCommit, PrepareAbort, PrepareEpochFence:
		return Metadata{}, false, ErrConcurrentTransactions
	case Dead:
		return Metadata{}, false, ErrInvalidTxnState
	}
	n := m.clone()
	changed := false
	if m.State != Ongoing {
		// A new transaction: the previous one's partitions are done.
		n.Partitions, n.Groups = map[TopicPartition]struct{}{}, map[string]struct{}{}
		n.State, n.TxnStart, changed = Ongoing, now, true
	}
	for _, tp := range tps {
		if _, ok := n.Partitions[tp]; !ok {
			n.Partitions[tp], changed = struct{}{}, true
		}
	}
	for _, g := range groups {
		if _, ok := n.Groups[g]; !ok {
			// The group's __consumer_offsets partition, which gets the
			// marker, comes in tps (Coordinator.AddOffsets).
			n.Groups[g] = struct{}{}
		}
	}
	if changed {
		n.LastUpdate = now
	}
	return n, changed, nil
}

// endAction is what EndTxn must do.
type endAction int

const (
	endNothing  endAction = iota // a retry of a completed end: answer success
	endComplete                  // write Prepare*, markers, Complete*
)

// planEnd validates an EndTxn.
func planEnd(m *Metadata, pid int64, epoch int16, commit bool) (endAction, error) {
	if err := checkProducer(m, pid, epoch); err != nil {
		return endNothing, err
	}
	switch m.State {
	case Ongoing:
		return endComplete, nil
	case CompleteCommit:
		if commit {
			return endNothing, nil
		}
	case CompleteAbort:
		if !commit {
			return endNothing, nil
		}
	case PrepareCommit:
		if commit {
			return endNothing, ErrConcurrentTransactions
		}
	case PrepareAbort:
		if !commit {
			return endNothing, ErrConcurrentTransactions
		}
	case PrepareEpochFence:
		return endNothing, ErrConcurrentTransactions
	}
	return endNothing, ErrInvalidTxnState
}

// prepared is m moved to PrepareCommit or PrepareAbort.
func prepared(m Metadata, commit bool, now time.Time) Metadata {
	n := m.clone()
	n.State, n.LastUpdate = PrepareAbort, now
	if commit {
		n.State = PrepareCommit
	}
	return n
}

// completed is a prepared m moved to CompleteCommit or CompleteAbort.
func completed(m Metadata, now time.Time) Metadata {
	n := m.clone()
	n.State = CompleteAbort
	if m.State == PrepareCommit {
		n.State = CompleteCommit
	}
	n.LastUpdate = now
	return n
}

// timedOut reports whether m's open transaction outlived its timeout.
func timedOut(m *Metadata, now time.Time) bool {
	return m.State == Ongoing && !m.TxnStart.IsZero() && now.Sub(m.TxnStart) > m.Timeout
}

// fenced is a timed-out m moved to PrepareAbort under the next epoch, as
// Kafka does, so the producer that outlived its timeout is fenced.
func fenced(m Metadata, now time.Time) Metadata {
	n := prepared(m, false, now)
	if n.ProducerEpoch < math.MaxInt16-1 {
		n.ProducerEpoch++
	}
	return n
}
