package replica

import (
	"fmt"
	"time"

	"github.com/gregor-dev/gregor/internal/record"
)

// The coordinators keep their state as key/value records in internal
// compacted topics (__consumer_offsets, __transaction_state): they write
// with AppendKeyValues and rebuild by replaying with ScanKeyValues (or
// ScanStateLog, which also shows transactional batches and their markers:
// the group coordinator's transactional offset commits, KIP-98).

// KeyValue is one record of a state log; a nil Value is a tombstone.
type KeyValue struct {
	Key, Value []byte
}

// maxStateBatchBytes bounds what one state-log batch may expand to on replay.
const maxStateBatchBytes = 16 << 20

// AppendKeyValues appends kvs as one uncompressed batch stamped now and
// returns the offset after it; WaitDurable(next) makes it durable. Record i
// has offset next-len(kvs)+i.
func (p *Partition) AppendKeyValues(now time.Time, kvs ...KeyValue) (next int64, err error) {
	recs := make([]record.Record, len(kvs))
	for i, kv := range kvs {
		recs[i] = record.Record{Key: kv.Key, Value: kv.Value}
	}
	batch, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: now.UnixMilli(), ProducerID: -1,
		ProducerEpoch: -1, BaseSequence: -1, Records: recs})
	if err != nil {
		return 0, err
	}
	h, err := record.Validate(batch)
	if err != nil {
		return 0, err
	}
	res, err := p.Append(batch, h, -1)
	if err != nil {
		return 0, err
	}
	return res.LastOffset + 1, nil
}

// AppendTxnKeyValues appends kvs as one transactional batch of producer
// pid/epoch, as a coordinator writes records that belong to a producer's
// transaction (Kafka's TxnOffsetCommit: the offsets take effect only when
// the transaction coordinator's COMMIT marker reaches this partition). The
// batch opens (or continues) the producer's transaction here, so the
// partition's last stable offset stays below it until AppendTxnMarker.
//
// As Kafka's coordinator-origin appends, the batch carries no sequence
// number and is not checked against the producer's sequences; an epoch
// older than the producer's current one (a marker of a newer epoch was
// written) fails with ErrInvalidProducerEpoch. It returns the offset after
// the batch; record i has offset next-len(kvs)+i; WaitDurable(next) makes it
// durable.
func (p *Partition) AppendTxnKeyValues(now time.Time, pid int64, epoch int16, kvs ...KeyValue) (next int64, err error) {
	return p.appendTxnKeyValues(now, pid, epoch, nil, kvs)
}

// AppendTxnKeyValuesVerified is AppendTxnKeyValues for a write whose
// transaction was verified with a coordinator on another broker (KIP-890):
// a batch that would open its producer's transaction here fails with
// ErrTxnNotVerified unless guard, from StartTxnVerification, is still
// current (no end marker of the producer was written since it was taken).
func (p *Partition) AppendTxnKeyValuesVerified(now time.Time, pid int64, epoch int16, guard VerificationGuard, kvs ...KeyValue) (next int64, err error) {
	return p.appendTxnKeyValues(now, pid, epoch, &guard, kvs)
}

func (p *Partition) appendTxnKeyValues(now time.Time, pid int64, epoch int16, guard *VerificationGuard, kvs []KeyValue) (next int64, err error) {
	recs := make([]record.Record, len(kvs))
	for i, kv := range kvs {
		recs[i] = record.Record{Key: kv.Key, Value: kv.Value}
	}
	batch, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: now.UnixMilli(), ProducerID: pid,
		ProducerEpoch: epoch, BaseSequence: -1, Transactional: true, Records: recs})
	if err != nil {
		return 0, err
	}
	h, err := record.Validate(batch)
	if err != nil {
		return 0, err
	}
	if int64(len(batch)) > p.cfg.Load().MaxMessageBytes {
		return 0, ErrMessageTooLarge
	}
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return 0, ErrClosed
	}
	if err := p.log.Err(); err != nil {
		p.mu.Unlock()
		return 0, err
	}
	if e := p.mu.producers[pid]; e != nil && epoch < e.Epoch && e.Epoch != noEpoch {
		p.mu.Unlock()
		return 0, ErrInvalidProducerEpoch
	}
	if p.follower.Load() {
		p.mu.Unlock()
		return 0, ErrNotLeader
	}
	if guard != nil {
		if err := p.checkVerifiedLocked(pid, epoch, *guard); err != nil {
			p.mu.Unlock()
			return 0, err
		}
	}
	info, err := p.log.Append(batch, p.leaderEpoch.Load(), 0)
	if err != nil {
		p.mu.Unlock()
		return 0, err
	}
	p.clearVerificationLocked(pid)
	p.mu.producers.record(pid, epoch, batchMeta{FirstSeq: h.BaseSequence,
		LastSeq:     lastSequence(h.BaseSequence, h.LastOffsetDelta),
		FirstOffset: info.BaseOffset, LastOffset: info.LastOffset, Timestamp: h.MaxTimestamp})
	p.mu.producers.beginTxn(pid, info.BaseOffset)
	p.updateFirstUnstableLocked()
	if err := p.publishLocked(info.LastOffset+1, int64(h.NumRecords), p.cfg.Load().FlushMessages); err != nil {
		return 0, err
	}
	return info.LastOffset + 1, nil
}

// StateRecord is one record met by ScanStateLog: a key/value record, or
// (Marker set) the end-transaction marker of producer ProducerID.
type StateRecord struct {
	// Offset is the record's offset (the marker's, for a marker).
	Offset int64
	// ProducerID is the batch's producer, -1 for a plain (non-transactional)
	// record.
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

// ScanStateLog calls fn for every record from the log start to the high
// watermark in offset order, end-transaction markers included. An error
// from fn stops the scan and is returned.
func (p *Partition) ScanStateLog(fn func(r StateRecord) error) error {
	_, err := p.scanStateLog(p.HighWatermark(), fn)
	return err
}

// ScanStateLogToEnd is ScanStateLog up to the log end at the call, not the
// high watermark: a new leader loading a coordinator's state replays what
// its followers will copy. It returns the offset after the last batch read.
func (p *Partition) ScanStateLogToEnd(fn func(r StateRecord) error) (int64, error) {
	return p.scanStateLog(p.log.LogEndOffset(), fn)
}

func (p *Partition) scanStateLog(end int64, fn func(r StateRecord) error) (int64, error) {
	off := p.LogStartOffset()
	for off < end {
		data, err := p.read(off, 1<<20, end)
		if err != nil {
			return off, fmt.Errorf("replica: scan %s-%d at %d: %w", p.Topic, p.Index, off, err)
		}
		if len(data) == 0 {
			return off, nil
		}
		sp := record.Split(data)
		for b, ok := sp.Next(); ok; b, ok = sp.Next() {
			h, err := record.ParseHeader(b)
			if err != nil {
				return off, err
			}
			off = h.NextOffset()
			r := StateRecord{Offset: h.BaseOffset, ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch,
				Transactional: h.IsTransactional() && h.ProducerID >= 0}
			if !r.Transactional {
				r.ProducerID, r.ProducerEpoch = -1, -1
			}
			if h.IsControl() {
				commit, ok := markerType(b, h)
				if !ok || !r.Transactional {
					continue
				}
				r.Marker, r.Commit, r.Transactional = true, commit, false
				if err := fn(r); err != nil {
					return off, err
				}
				continue
			}
			if err := record.Records(b, h, maxStateBatchBytes, func(rec record.Record) error {
				r.Offset, r.Key, r.Value = h.BaseOffset+int64(rec.OffsetDelta), rec.Key, rec.Value
				return fn(r)
			}); err != nil {
				return off, err
			}
		}
		if err := sp.Err(); err != nil {
			return off, err
		}
	}
	return off, nil
}

// ScanKeyValues calls fn with the key and value of every record from the log
// start to the high watermark, in offset order, skipping control batches.
// key and value are valid only during the call. An error from fn stops the
// scan and is returned.
func (p *Partition) ScanKeyValues(fn func(key, value []byte) error) error {
	return p.ScanStateLog(func(r StateRecord) error {
		if r.Marker {
			return nil
		}
		return fn(r.Key, r.Value)
	})
}
