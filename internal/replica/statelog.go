package replica

import (
	"fmt"
	"time"

	"github.com/gregor-dev/gregor/internal/record"
)

// The coordinators keep their state as key/value records in internal
// compacted topics (__consumer_offsets, __transaction_state): they write
// with AppendKeyValues and rebuild by replaying with ScanKeyValues.

// KeyValue is one record of a state log; a nil Value is a tombstone.
type KeyValue struct {
	Key, Value []byte
}

// maxStateBatchBytes bounds what one state-log batch may expand to on replay.
const maxStateBatchBytes = 16 << 20

// AppendKeyValues appends kvs as one uncompressed batch stamped now and
// returns the offset after it; WaitDurable(next) makes it durable.
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

// ScanKeyValues calls fn with the key and value of every record from the log
// start to the high watermark, in offset order, skipping control batches.
// key and value are valid only during the call. An error from fn stops the
// scan and is returned.
func (p *Partition) ScanKeyValues(fn func(key, value []byte) error) error {
	off, hw := p.LogStartOffset(), p.HighWatermark()
	for off < hw {
		data, err := p.Read(off, 1<<20)
		if err != nil {
			return fmt.Errorf("replica: scan %s-%d at %d: %w", p.Topic, p.Index, off, err)
		}
		if len(data) == 0 {
			return nil
		}
		sp := record.Split(data)
		for b, ok := sp.Next(); ok; b, ok = sp.Next() {
			h, err := record.ParseHeader(b)
			if err != nil {
				return err
			}
			off = h.NextOffset()
			if h.IsControl() {
				continue
			}
			if err := record.Records(b, h, maxStateBatchBytes, func(r record.Record) error {
				return fn(r.Key, r.Value)
			}); err != nil {
				return err
			}
		}
		if err := sp.Err(); err != nil {
			return err
		}
	}
	return nil
}
