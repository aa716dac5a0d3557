package record

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Batch describes a batch to build with AppendBatch. Record OffsetDelta
// fields are ignored: records are numbered from zero in order. Record
// TimestampDelta is relative to BaseTimestamp.
type Batch struct {
	BaseOffset           int64
	PartitionLeaderEpoch int32
	BaseTimestamp        int64
	ProducerID           int64 // -1 for none
	ProducerEpoch        int16 // -1 for none
	BaseSequence         int32 // -1 for none
	Compression          Codec
	Transactional        bool
	Control              bool
	LogAppendTime        bool
	Records              []Record
}

// AppendBatch appends a valid v2 batch built from bb to dst.
func AppendBatch(dst []byte, bb Batch) ([]byte, error) {
	var raw []byte
	maxDelta := int64(0)
	for i, r := range bb.Records {
		if i == 0 || r.TimestampDelta > maxDelta {
			maxDelta = r.TimestampDelta
		}
		raw = appendRecord(raw, int32(i), r)
	}
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	var err error
	if dst, err = Compress(bb.Compression, dst, raw); err != nil {
		return dst[:start], err
	}
	if bb.Compression > CodecZstd || bb.Compression < 0 {
		return dst[:start], fmt.Errorf("%w: %d", ErrUnknownCodec, bb.Compression)
	}
	b := dst[start:]
	attrs := uint16(bb.Compression)
	if bb.LogAppendTime {
		attrs |= attrLogAppendTime
	}
	if bb.Transactional {
		attrs |= attrTransactional
	}
	if bb.Control {
		attrs |= attrControl
	}
	n := int32(len(bb.Records))
	lastDelta := n - 1
	if n == 0 {
		lastDelta = 0
	}
	be := binary.BigEndian
	be.PutUint64(b[offBaseOffset:], uint64(bb.BaseOffset))
	be.PutUint32(b[offBatchLength:], uint32(len(b)-LengthOverhead))
	be.PutUint32(b[offLeaderEpoch:], uint32(bb.PartitionLeaderEpoch))
	b[offMagic] = 2
	be.PutUint16(b[offAttributes:], attrs)
	be.PutUint32(b[offLastOffsetDelta:], uint32(lastDelta))
	be.PutUint64(b[offBaseTimestamp:], uint64(bb.BaseTimestamp))
	be.PutUint64(b[offMaxTimestamp:], uint64(bb.BaseTimestamp+maxDelta))
	be.PutUint64(b[offProducerID:], uint64(bb.ProducerID))
	be.PutUint16(b[offProducerEpoch:], uint16(bb.ProducerEpoch))
	be.PutUint32(b[offBaseSequence:], uint32(bb.BaseSequence))
	be.PutUint32(b[offRecordCount:], uint32(n))
	be.PutUint32(b[offCRC:], CRC(b))
	return dst, nil
}

func appendRecord(dst []byte, index int32, r Record) []byte {
	var body []byte
	body = append(body, byte(r.Attributes))
	body = appendVarlong(body, r.TimestampDelta)
	body = appendVarint(body, index)
	body = appendBytes(body, r.Key)
	body = appendBytes(body, r.Value)
	body = appendVarint(body, int32(len(r.Headers)))
	for _, h := range r.Headers {
		body = appendBytes(body, []byte(h.Key))
		body = appendBytes(body, h.Value)
	}
	dst = appendVarint(dst, int32(len(body)))
	return append(dst, body...)
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return appendVarint(dst, -1)
	}
	dst = appendVarint(dst, int32(len(b)))
	return append(dst, b...)
}

// Filter appends to dst the batch b (header h, from Validate) keeping only
// the records for which keep returns true, as log compaction rewrites a
// batch: base offset, partition leader epoch, attributes (the records are
// recompressed with the same codec), lastOffsetDelta, base timestamp and
// producer id, epoch and base sequence are kept, so the batch still covers
// its offset range and idempotent-producer state replays the same. Retained
// records keep their offset and timestamp deltas. The max timestamp is
// recomputed from the retained records (kept as is for LogAppendTime
// batches and for a batch left empty). When every record is kept, b is
// appended verbatim. When none is, the result is an empty batch (NumRecords
// 0, no records area): the caller drops it or keeps it. keep receives the
// absolute offset; the Record is valid only during the call.
func Filter(dst, b []byte, h Header, maxUncompressed int, keep func(offset int64, r Record) bool) ([]byte, int, error) {
	var raw []byte
	kept := int32(0)
	maxDelta := int64(math.MinInt64)
	err := Records(b, h, maxUncompressed, func(r Record) error {
		if !keep(h.BaseOffset+int64(r.OffsetDelta), r) {
			return nil
		}
		kept++
		maxDelta = max(maxDelta, r.TimestampDelta)
		raw = appendRecord(raw, r.OffsetDelta, r)
		return nil
	})
	if err != nil {
		return dst, 0, err
	}
	if kept == h.NumRecords {
		return append(dst, b...), int(kept), nil
	}
	start := len(dst)
	dst = append(dst, b[:HeaderSize]...)
	if kept > 0 {
		if dst, err = Compress(h.Compression(), dst, raw); err != nil {
			return dst[:start], 0, err
		}
	}
	nb := dst[start:]
	be := binary.BigEndian
	be.PutUint32(nb[offBatchLength:], uint32(len(nb)-LengthOverhead))
	if kept > 0 && h.TimestampType() == CreateTime {
		be.PutUint64(nb[offMaxTimestamp:], uint64(h.BaseTimestamp+maxDelta))
	}
	be.PutUint32(nb[offRecordCount:], uint32(kept))
	be.PutUint32(nb[offCRC:], CRC(nb))
	return dst, int(kept), nil
}

// SetDeleteHorizon appends to dst the batch b (header h, from Validate)
// rewritten as Kafka's log cleaner marks a batch whose tombstones or
// transaction marker may go once horizon (ms) has passed (KIP-534): the
// delete-horizon attribute is set and the base timestamp holds horizon.
// Record timestamp deltas are shifted so every record keeps its timestamp;
// the max timestamp, offsets and producer fields are unchanged.
func SetDeleteHorizon(dst, b []byte, h Header, horizon int64, maxUncompressed int) ([]byte, error) {
	var raw []byte
	shift := h.BaseTimestamp - horizon
	err := Records(b, h, maxUncompressed, func(r Record) error {
		r.TimestampDelta += shift
		raw = appendRecord(raw, r.OffsetDelta, r)
		return nil
	})
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, b[:HeaderSize]...)
	if h.NumRecords > 0 {
		if dst, err = Compress(h.Compression(), dst, raw); err != nil {
			return dst[:start], err
		}
	}
	nb := dst[start:]
	be := binary.BigEndian
	be.PutUint32(nb[offBatchLength:], uint32(len(nb)-LengthOverhead))
	be.PutUint16(nb[offAttributes:], uint16(h.Attributes)|attrDeleteHorizon)
	be.PutUint64(nb[offBaseTimestamp:], uint64(horizon))
	be.PutUint32(nb[offCRC:], CRC(nb))
	return dst, nil
}

// Recompress appends to dst the batch b (header h, from Validate) with its
// records compressed with codec instead of h's, as Kafka's broker rewrites
// a produced batch for a topic whose compression.type names another codec.
// Only the records area, the codec bits, the length and the CRC change:
// offsets, timestamps, producer fields and the records themselves are
// kept, so the batch reads back record for record as it was sent. The
// records are decompressed to at most maxUncompressed bytes (ErrTooLarge)
// and compressed at levels.
func Recompress(dst, b []byte, h Header, codec Codec, levels Levels, maxUncompressed int) ([]byte, error) {
	if codec < CodecNone || codec > CodecZstd {
		return dst, fmt.Errorf("%w: %d", ErrUnknownCodec, codec)
	}
	area, release, err := recordsArea(b, h, maxUncompressed)
	if err != nil {
		return dst, err
	}
	defer release()
	start := len(dst)
	dst = append(dst, b[:HeaderSize]...)
	if h.NumRecords > 0 {
		if dst, err = CompressLevel(codec, levels, dst, area); err != nil {
			return dst[:start], err
		}
	}
	nb := dst[start:]
	be := binary.BigEndian
	be.PutUint32(nb[offBatchLength:], uint32(len(nb)-LengthOverhead))
	be.PutUint16(nb[offAttributes:], uint16(h.Attributes)&^attrCodecMask|uint16(codec))
	be.PutUint32(nb[offCRC:], CRC(nb))
	return dst, nil
}
