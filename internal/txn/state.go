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
	ErrCoordinatorLoading        = errors.New("txn: coordinator load in progress")
	ErrCorruptRecord             = errors.New("txn: corrupt __transaction_state record")
	ErrClosed                    = errors.New("txn: coordinator closed")
	// ErrTransactionAbortable: a verified partition is not in the ongoing
	// transaction (KIP-890): the producer must abort.
	ErrTransactionAbortable = errors.New("txn: partition is not part of the ongoing transaction")
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
	// TV2: the transaction runs under transaction.version 2 (KIP-890 part
	// 2): every EndTxn bumps the epoch.
	TV2 bool
	// PreviousProducerID is the producer id before an exhausted epoch
	// moved the id to a new one at the end of a TV2 transaction (so a
	// retried EndTxn is recognised); NextProducerID is that new id while
	// the end is prepared. -1 when unused.
	PreviousProducerID, NextProducerID int64
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
	n.PreviousProducerID, n.NextProducerID = -1, -1
	return n
}

// planAddPartitions returns the metadata after adding tps (and groups), and
// whether it changed (a write is needed). tv2: the add comes from a
// transaction.version 2 producer (a produce's implicit add, KIP-890 part 2),
// so a transaction it opens bumps the epoch when it ends.
func planAddPartitions(m *Metadata, pid int64, epoch int16, tps []TopicPartition, groups []string, tv2 bool, now time.Time) (Metadata, bool, error) {
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
		n.State, n.TxnStart, n.TV2, changed = Ongoing, now, tv2, true
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
	endNothing    endAction = iota // a retry of a completed end: answer success
	endComplete                    // write Prepare*, markers, Complete*
	endEmptyAbort                  // TV2: abort with nothing open: bump the epoch, no markers
)

// planEnd validates an EndTxn. tv2: the request is EndTxn v5+, whose
// producer expects the epoch bumped by every end (KIP-890 part 2); with a
// TV2 transaction a retry carries the epoch before the bump, as in Kafka's
// TransactionCoordinator.endTransaction.
func planEnd(m *Metadata, pid int64, epoch int16, commit, tv2 bool) (endAction, error) {
	if m == nil {
		return endNothing, ErrInvalidProducerIDMapping
	}
	v2 := m.TV2 && m.State != PrepareEpochFence
	retryOverflow := v2 && m.PreviousProducerID == pid && epoch == math.MaxInt16-1 && m.ProducerEpoch == 0
	retryBump := v2 && int32(m.ProducerEpoch) == int32(epoch)+1
	if m.ProducerID != pid && !retryOverflow {
		return endNothing, ErrInvalidProducerIDMapping
	}
	valid := epoch == m.ProducerEpoch
	if v2 {
		switch m.State {
		case PrepareCommit, PrepareAbort:
			valid = retryBump
		case CompleteCommit, CompleteAbort:
			valid = valid || retryBump || retryOverflow
		}
	}
	if !valid {
		return endNothing, ErrProducerFenced
	}
	same := (commit && (m.State == CompleteCommit || m.State == PrepareCommit)) ||
		(!commit && (m.State == CompleteAbort || m.State == PrepareAbort))
	switch m.State {
	case Ongoing:
		return endComplete, nil
	case Empty:
		if tv2 && !commit {
			return endEmptyAbort, nil
		}
	case CompleteCommit, CompleteAbort:
		retry := !tv2 || (v2 && (retryBump || retryOverflow))
		switch {
		case retry && same:
			return endNothing, nil
		case !retry && !commit:
			// A TV2 producer ending a transaction in which nothing was
			// written (or whose produces all failed): aborting is legal and
			// bumps the epoch.
			return endEmptyAbort, nil
		}
	case PrepareCommit, PrepareAbort:
		if same {
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

// preparedV2 is prepared with the TV2 epoch bump: the markers carry the
// new epoch, which fences any late produce of the ending transaction.
// nextPID is the producer id that replaces an exhausted epoch at
// completion (see epochExhausted), else -1.
func preparedV2(m Metadata, commit bool, nextPID int64, now time.Time) Metadata {
	n := prepared(m, commit, now)
	n.TV2 = true
	n.ProducerEpoch++
	n.NextProducerID = nextPID
	return n
}

// epochExhausted: a TV2 end cannot bump further without overflowing, so
// the producer moves to a new id (Kafka's isProducerEpochExhausted).
func epochExhausted(m *Metadata) bool { return m.ProducerEpoch >= math.MaxInt16-1 }

// completed is a prepared m moved to CompleteCommit or CompleteAbort; a
// prepared move to a new producer id takes effect here. The markers are
// written, so the transaction holds no partitions any more (as Kafka's
// prepareComplete: DescribeTransactions lists none).
func completed(m Metadata, now time.Time) Metadata {
	n := m.clone()
	n.Partitions, n.Groups = map[TopicPartition]struct{}{}, map[string]struct{}{}
	n.State = CompleteAbort
	if m.State == PrepareCommit {
		n.State = CompleteCommit
	}
	if n.NextProducerID >= 0 {
		n.PreviousProducerID, n.ProducerID, n.ProducerEpoch = n.ProducerID, n.NextProducerID, 0
		n.NextProducerID = -1
	}
	n.LastUpdate = now
	return n
}

// expired reports whether m is an idle id older than exp: Kafka removes
// ids in Empty, CompleteCommit or CompleteAbort whose last update is at
// least transactional.id.expiration.ms old.
func expired(m *Metadata, now time.Time, exp time.Duration) bool {
	switch m.State {
	case Empty, CompleteCommit, CompleteAbort:
		return !now.Before(m.LastUpdate.Add(exp))
	}
	return false
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
