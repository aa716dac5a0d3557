package replica

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"sort"
	"sync/atomic"
)

// Errors of the idempotent-producer checks, mapped to Kafka codes by the broker.
var (
	ErrOutOfOrderSequence   = errors.New("replica: out of order sequence number")
	ErrInvalidProducerEpoch = errors.New("replica: producer epoch is older than the current one")
	ErrDuplicateSequence    = errors.New("replica: duplicate sequence number")
	// ErrTxnNotVerified: a transactional batch would open its producer's
	// transaction on the partition without a verification that is still
	// valid (KIP-890 part 1).
	ErrTxnNotVerified = errors.New("replica: partition was not verified as part of the producer's transaction")
)

// batchesKept is how many recent batches per producer are remembered for
// duplicate detection; Kafka clients keep at most five requests in flight
// per connection with idempotence, so five is enough (KIP-98).
const batchesKept = 5

// noEpoch marks a producer whose state was lost (retention, DeleteRecords):
// any sequence is accepted from it, as Kafka does.
const noEpoch = -1

type batchMeta struct {
	FirstSeq, LastSeq       int32
	FirstOffset, LastOffset int64
	Timestamp               int64
}

type producerEntry struct {
	Epoch   int16
	Batches []batchMeta // oldest first, at most batchesKept
	// LastTimestamp feeds DescribeProducers.
	LastTimestamp int64
	// CurrentTxnFirstOffset is the first offset of the producer's ongoing
	// transaction on this partition, -1 when none is open. It pins the last
	// stable offset.
	CurrentTxnFirstOffset int64
	// CoordinatorEpoch is the transaction coordinator epoch of the
	// producer's last end-transaction marker here, -1 before any: a marker
	// from an older coordinator epoch is fenced (Kafka's
	// ProducerStateEntry.coordinatorEpoch).
	CoordinatorEpoch int32
}

// Transaction verification (KIP-890 part 1). Before a transactional batch
// opens its producer's transaction on a partition, the broker asks the
// transaction coordinator whether the partition is in that transaction
// (or, for transaction.version 2, adds it). StartTxnVerification hands out
// a guard for the question; the append that opens the transaction must
// present it, and an end-transaction marker for the producer written in
// between withdraws it. So a late or retried produce that was verified
// just before its transaction ended cannot open a new, hanging one.

// VerificationGuard identifies one verification; NoVerification means the
// producer's transaction is already open here and none is needed.
type VerificationGuard uint64

// NoVerification: no coordinator round trip is needed.
const NoVerification VerificationGuard = 0

var lastGuard atomic.Uint64

// StartTxnVerification starts verifying that partition p is in the ongoing
// transaction of producer pid at epoch. It returns NoVerification when that
// transaction is already open on p.
func (p *Partition) StartTxnVerification(pid int64, epoch int16) VerificationGuard {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.mu.producers[pid]; e != nil && e.CurrentTxnFirstOffset >= 0 && e.Epoch == epoch {
		return NoVerification
	}
	g := VerificationGuard(lastGuard.Add(1))
	if p.mu.guards == nil {
		p.mu.guards = map[int64]VerificationGuard{}
	}
	p.mu.guards[pid] = g
	return g
}

// checkVerifiedLocked refuses a transactional batch of pid that would open
// its transaction here without guard g being current.
func (p *Partition) checkVerifiedLocked(pid int64, epoch int16, g VerificationGuard) error {
	if e := p.mu.producers[pid]; e != nil && e.CurrentTxnFirstOffset >= 0 && e.Epoch == epoch {
		return nil
	}
	if cur, ok := p.mu.guards[pid]; !ok || cur != g || g == NoVerification {
		return ErrTxnNotVerified
	}
	return nil
}

// CancelTxnVerification withdraws guard g of pid after a failed check, so
// that producer ids a coordinator refused leave nothing behind.
func (p *Partition) CancelTxnVerification(pid int64, g VerificationGuard) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.mu.guards[pid]; ok && cur == g {
		delete(p.mu.guards, pid)
	}
}

// clearVerificationLocked withdraws pid's guard: its transaction started
// here, or a marker ended it.
func (p *Partition) clearVerificationLocked(pid int64) { delete(p.mu.guards, pid) }

func (e *producerEntry) lastSeq() int32 {
	if len(e.Batches) == 0 {
		return -1
	}
	return e.Batches[len(e.Batches)-1].LastSeq
}

// duplicateOf returns the cached batch with exactly this sequence range.
func (e *producerEntry) duplicateOf(firstSeq, lastSeq int32) (batchMeta, bool) {
	for _, b := range e.Batches {
		if b.FirstSeq == firstSeq && b.LastSeq == lastSeq {
			return b, true
		}
	}
	return batchMeta{}, false
}

// lastSequence is the sequence number of a batch's last record. Sequences
// wrap from MaxInt32 to 0, as Kafka's DefaultRecordBatch.incrementSequence.
func lastSequence(base, lastOffsetDelta int32) int32 {
	if base > math.MaxInt32-lastOffsetDelta {
		return lastOffsetDelta - (math.MaxInt32 - base) - 1
	}
	return base + lastOffsetDelta
}

func inSequence(last, next int32) bool {
	return next == last+1 || (next == 0 && last == math.MaxInt32)
}

// producerStates is the idempotence state of one partition, guarded by the
// partition's append lock.
type producerStates map[int64]*producerEntry

// check validates an idempotent batch before it is appended. It returns the
// cached batch when the batch is a retry of one already written.
func (ps producerStates) check(pid int64, epoch int16, firstSeq, lastSeq int32) (batchMeta, error) {
	e := ps[pid]
	if e == nil {
		// A producer we do not know (first write, or its state expired): Kafka
		// accepts any sequence so that state lost to retention does not fence it.
		return batchMeta{}, nil
	}
	if epoch < e.Epoch {
		return batchMeta{}, ErrInvalidProducerEpoch
	}
	if epoch > e.Epoch {
		if firstSeq != 0 && e.Epoch != noEpoch {
			return batchMeta{}, ErrOutOfOrderSequence
		}
		return batchMeta{}, nil
	}
	if b, ok := e.duplicateOf(firstSeq, lastSeq); ok {
		return b, ErrDuplicateSequence
	}
	if len(e.Batches) == 0 || inSequence(e.lastSeq(), firstSeq) {
		return batchMeta{}, nil
	}
	return batchMeta{}, ErrOutOfOrderSequence
}

// record notes an appended idempotent batch.
func (ps producerStates) record(pid int64, epoch int16, m batchMeta) {
	e := ps[pid]
	if e == nil {
		e = &producerEntry{Epoch: epoch, CurrentTxnFirstOffset: -1, CoordinatorEpoch: -1}
		ps[pid] = e
	}
	if epoch != e.Epoch {
		e.Epoch = epoch
		e.Batches = e.Batches[:0]
	}
	if len(e.Batches) == batchesKept {
		copy(e.Batches, e.Batches[1:])
		e.Batches = e.Batches[:batchesKept-1]
	}
	e.Batches = append(e.Batches, m)
	e.LastTimestamp = m.Timestamp
}

// Snapshot file format (all big endian), written atomically (tmp + rename):
//
//	magic "GPS3" | offset int64 | count int32 | entries... | crc32c uint32 (over all before)
//	entry: pid int64 | epoch int16 | lastTimestamp int64 | txnFirstOffset int64 | coordinatorEpoch int32 | n int8 | n x (firstSeq int32 lastSeq int32 firstOffset int64 lastOffset int64 timestamp int64)
//
// "GPS2" (written before markers were fenced by coordinator epoch) is the
// same without coordinatorEpoch, and "GPS1" (before transactions) also
// without txnFirstOffset; both are still read, their producers having no
// known coordinator epoch (and, GPS1, no open transaction).
const (
	snapshotMagic   = "GPS3"
	snapshotMagicV2 = "GPS2"
	snapshotMagicV1 = "GPS1"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (ps producerStates) encode(offset int64) []byte {
	pids := make([]int64, 0, len(ps))
	for pid := range ps {
		pids = append(pids, pid)
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	b := []byte(snapshotMagic)
	b = binary.BigEndian.AppendUint64(b, uint64(offset))
	b = binary.BigEndian.AppendUint32(b, uint32(len(pids)))
	for _, pid := range pids {
		e := ps[pid]
		b = binary.BigEndian.AppendUint64(b, uint64(pid))
		b = binary.BigEndian.AppendUint16(b, uint16(e.Epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.LastTimestamp))
		b = binary.BigEndian.AppendUint64(b, uint64(e.CurrentTxnFirstOffset))
		b = binary.BigEndian.AppendUint32(b, uint32(e.CoordinatorEpoch))
		b = append(b, byte(len(e.Batches)))
		for _, m := range e.Batches {
			b = binary.BigEndian.AppendUint32(b, uint32(m.FirstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(m.LastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(m.FirstOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(m.LastOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(m.Timestamp))
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadSnapshot = errors.New("replica: corrupt producer snapshot")

func decodeProducerSnapshot(b []byte) (producerStates, int64, error) {
	if len(b) < len(snapshotMagic)+16 {
		return nil, 0, errBadSnapshot
	}
	var txnLen, coordLen int
	switch string(b[:4]) {
	case snapshotMagic:
		txnLen, coordLen = 8, 4
	case snapshotMagicV2:
		txnLen = 8
	case snapshotMagicV1:
	default:
		return nil, 0, errBadSnapshot
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, 0, errBadSnapshot
	}
	r := body[4:]
	offset := int64(binary.BigEndian.Uint64(r))
	n := int(binary.BigEndian.Uint32(r[8:]))
	r = r[12:]
	const metaLen = 4 + 4 + 8 + 8 + 8
	entryHead := 8 + 2 + 8 + txnLen + coordLen + 1
	if n < 0 || n > len(r)/entryHead {
		return nil, 0, errBadSnapshot
	}
	ps := make(producerStates, n)
	for i := 0; i < n; i++ {
		if len(r) < entryHead {
			return nil, 0, errBadSnapshot
		}
		pid := int64(binary.BigEndian.Uint64(r))
		e := &producerEntry{
			Epoch:                 int16(binary.BigEndian.Uint16(r[8:])),
			LastTimestamp:         int64(binary.BigEndian.Uint64(r[10:])),
			CurrentTxnFirstOffset: -1,
			CoordinatorEpoch:      -1,
		}
		if txnLen > 0 {
			e.CurrentTxnFirstOffset = int64(binary.BigEndian.Uint64(r[18:]))
			if e.CurrentTxnFirstOffset < -1 {
				return nil, 0, errBadSnapshot
			}
		}
		if coordLen > 0 {
			e.CoordinatorEpoch = int32(binary.BigEndian.Uint32(r[18+txnLen:]))
			if e.CoordinatorEpoch < -1 {
				return nil, 0, errBadSnapshot
			}
		}
		k := int(r[18+txnLen+coordLen])
		r = r[entryHead:]
		if k > batchesKept || len(r) < k*metaLen {
			return nil, 0, errBadSnapshot
		}
		for j := 0; j < k; j++ {
			e.Batches = append(e.Batches, batchMeta{
				FirstSeq:    int32(binary.BigEndian.Uint32(r)),
				LastSeq:     int32(binary.BigEndian.Uint32(r[4:])),
				FirstOffset: int64(binary.BigEndian.Uint64(r[8:])),
				LastOffset:  int64(binary.BigEndian.Uint64(r[16:])),
				Timestamp:   int64(binary.BigEndian.Uint64(r[24:])),
			})
			r = r[metaLen:]
		}
		ps[pid] = e
	}
	if len(r) != 0 {
		return nil, 0, errBadSnapshot
	}
	return ps, offset, nil
}
