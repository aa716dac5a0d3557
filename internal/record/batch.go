package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// HeaderSize is the size of a v2 batch header; records start at this offset.
const HeaderSize = 61

// Byte offsets of the header fields.
const (
	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57
)

// LengthOverhead is the number of bytes before and including batchLength:
// a batch occupies batchLength+LengthOverhead bytes.
const LengthOverhead = 12

// Attribute bits.
const (
	attrCodecMask     = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
	// attrDeleteHorizon (KIP-534): log compaction set the batch's delete
	// horizon, which BaseTimestamp then holds.
	attrDeleteHorizon = 0x40
)

// Sentinel errors. Callers classify with errors.Is.
var (
	// ErrCorrupt reports bytes that are not a well-formed batch (bad sizes,
	// bad record framing). ErrCRCMismatch wraps it.
	ErrCorrupt = errors.New("record: corrupt batch")
	// ErrCRCMismatch reports a batch whose CRC-32C does not match its bytes.
	ErrCRCMismatch = fmt.Errorf("record: crc mismatch: %w", ErrCorrupt)
	// ErrUnsupportedMagic reports a batch whose magic byte is not 2.
	ErrUnsupportedMagic = errors.New("record: unsupported magic")
	// ErrUnknownCodec reports a compression codec outside 0..4.
	ErrUnknownCodec = errors.New("record: unknown compression codec")
	// ErrTooLarge reports records whose decompressed size exceeds the cap.
	ErrTooLarge = errors.New("record: decompressed records too large")
	// ErrEmptyBatch reports a produced batch that holds no records.
	ErrEmptyBatch = errors.New("record: empty batch")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Codec is a compression codec as stored in the attribute bits 0-2.
type Codec int8

// Compression codecs.
const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLZ4    Codec = 3
	CodecZstd   Codec = 4
)

// String returns the Kafka name of the codec.
func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecGzip:
		return "gzip"
	case CodecSnappy:
		return "snappy"
	case CodecLZ4:
		return "lz4"
	case CodecZstd:
		return "zstd"
	}
	return "unknown"
}

// TimestampType says whether record timestamps were set by the producer or
// by the broker on append.
type TimestampType int8

// Timestamp types.
const (
	CreateTime    TimestampType = 0
	LogAppendTime TimestampType = 1
)

// Header holds the fixed fields of a v2 batch.
type Header struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Compression returns the codec of the batch's records.
func (h Header) Compression() Codec { return Codec(h.Attributes & attrCodecMask) }

// PeekCompression returns the codec named by the attributes of the batch
// starting b, before anything else of it is checked (false when b is
// shorter than a batch header).
func PeekCompression(b []byte) (Codec, bool) {
	if len(b) < HeaderSize {
		return CodecNone, false
	}
	return Codec(binary.BigEndian.Uint16(b[offAttributes:]) & attrCodecMask), true
}

// IsTransactional reports whether the batch belongs to a transaction.
func (h Header) IsTransactional() bool { return h.Attributes&attrTransactional != 0 }

// IsControl reports whether the batch is a control batch (transaction marker).
func (h Header) IsControl() bool { return h.Attributes&attrControl != 0 }

// DeleteHorizon returns the time (ms) after which log compaction may remove
// the batch's tombstones or transaction marker, when compaction has set it
// (KIP-534; see SetDeleteHorizon).
func (h Header) DeleteHorizon() (int64, bool) {
	if h.Attributes&attrDeleteHorizon == 0 {
		return 0, false
	}
	return h.BaseTimestamp, true
}

// TimestampType reports who set the record timestamps.
func (h Header) TimestampType() TimestampType {
	if h.Attributes&attrLogAppendTime != 0 {
		return LogAppendTime
	}
	return CreateTime
}

// LastOffset is the offset of the batch's last record.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset following the batch.
func (h Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Size is the number of bytes the batch occupies.
func (h Header) Size() int { return int(h.BatchLength) + LengthOverhead }

// ParseHeader reads the 61-byte header of the batch at the start of b without
// checking the CRC or the batch length.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrCorrupt, len(b), HeaderSize)
	}
	be := binary.BigEndian
	return Header{
		BaseOffset:           int64(be.Uint64(b[offBaseOffset:])),
		BatchLength:          int32(be.Uint32(b[offBatchLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[offLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  be.Uint32(b[offCRC:]),
		Attributes:           int16(be.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(b[offLastOffsetDelta:])),
		BaseTimestamp:        int64(be.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:         int64(be.Uint64(b[offMaxTimestamp:])),
		ProducerID:           int64(be.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(be.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(b[offBaseSequence:])),
		NumRecords:           int32(be.Uint32(b[offRecordCount:])),
	}, nil
}

// Validate checks that b holds exactly one well-formed v2 batch as stored in
// a log: sizes, magic, CRC-32C, record count against lastOffsetDelta and a
// known codec. A stored batch may have offset gaps left by log compaction,
// so it accepts NumRecords-1 <= lastOffsetDelta (and an empty batch with any
// lastOffsetDelta >= 0); ValidateProduce keeps the strict produce rule. It
// does not walk the records (see ValidateRecords). It does not allocate.
func Validate(b []byte) (Header, error) {
	if len(b) < offMagic+1 {
		return Header{}, fmt.Errorf("%w: %d bytes is shorter than a batch header", ErrCorrupt, len(b))
	}
	if m := int8(b[offMagic]); m != 2 {
		return Header{}, ErrUnsupportedMagic
	}
	h, err := ParseHeader(b)
	if err != nil {
		return Header{}, err
	}
	if h.BatchLength < HeaderSize-LengthOverhead || int64(h.BatchLength)+LengthOverhead != int64(len(b)) {
		return h, fmt.Errorf("%w: batch length %d does not match %d bytes", ErrCorrupt, h.BatchLength, len(b))
	}
	if crc32.Checksum(b[offAttributes:], castagnoli) != h.CRC {
		return h, ErrCRCMismatch
	}
	if h.NumRecords < 0 {
		return h, fmt.Errorf("%w: negative record count", ErrCorrupt)
	}
	if h.NumRecords > 0 && h.LastOffsetDelta < h.NumRecords-1 {
		return h, fmt.Errorf("%w: lastOffsetDelta %d with %d records", ErrCorrupt, h.LastOffsetDelta, h.NumRecords)
	}
	if h.LastOffsetDelta < 0 {
		return h, fmt.Errorf("%w: negative lastOffsetDelta", ErrCorrupt)
	}
	if h.Compression() > CodecZstd {
		return h, ErrUnknownCodec
	}
	return h, nil
}

// ValidateProduce is Validate plus the rules for a batch arriving in a
// produce request: it must hold at least one record and no offset gap
// (lastOffsetDelta == NumRecords-1).
func ValidateProduce(b []byte) (Header, error) {
	h, err := Validate(b)
	if err != nil {
		return h, err
	}
	if h.NumRecords == 0 {
		return h, ErrEmptyBatch
	}
	if h.LastOffsetDelta != h.NumRecords-1 {
		return h, fmt.Errorf("%w: lastOffsetDelta %d with %d records", ErrCorrupt, h.LastOffsetDelta, h.NumRecords)
	}
	return h, nil
}

// CRC computes the CRC-32C of a batch as stored in its header.
func CRC(b []byte) uint32 { return crc32.Checksum(b[offAttributes:], castagnoli) }

// SetBaseOffset patches the base offset in place. It lies outside the CRC.
func SetBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch patches the partition leader epoch in place. It
// lies outside the CRC.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// SetLogAppendTime marks the batch's timestamps as LogAppendTime, sets its
// maxTimestamp to ts and recomputes the CRC, as Kafka does for topics with
// message.timestamp.type=LogAppendTime. b must hold exactly one batch.
func SetLogAppendTime(b []byte, ts int64) {
	be := binary.BigEndian
	attrs := be.Uint16(b[offAttributes:]) | attrLogAppendTime
	be.PutUint16(b[offAttributes:], attrs)
	be.PutUint64(b[offMaxTimestamp:], uint64(ts))
	be.PutUint32(b[offCRC:], CRC(b))
}

// Splitter walks a buffer of concatenated batches. The zero value is not
// useful: use Split.
//
//	s := record.Split(buf)
//	for b, ok := s.Next(); ok; b, ok = s.Next() { ... }
//	if err := s.Err(); err != nil { ... }
type Splitter struct {
	buf []byte
	err error
}

// Split returns a Splitter over buf. It does not allocate.
func Split(buf []byte) Splitter { return Splitter{buf: buf} }

// Next returns the next batch as a sub-slice of the buffer (header and
// length checked, CRC not checked). It returns false at the end of the buffer
// or on a malformed length, in which case Err reports it.
func (s *Splitter) Next() ([]byte, bool) {
	if s.err != nil || len(s.buf) == 0 {
		return nil, false
	}
	if len(s.buf) < LengthOverhead {
		s.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(s.buf))
		return nil, false
	}
	n := int64(int32(binary.BigEndian.Uint32(s.buf[offBatchLength:])))
	if n < HeaderSize-LengthOverhead || n+LengthOverhead > int64(len(s.buf)) {
		s.err = fmt.Errorf("%w: batch length %d with %d bytes left", ErrCorrupt, n, len(s.buf))
		return nil, false
	}
	b := s.buf[:n+LengthOverhead]
	s.buf = s.buf[n+LengthOverhead:]
	return b, true
}

// Rest returns the bytes not yet consumed.
func (s *Splitter) Rest() []byte { return s.buf }

// Err returns the error that stopped the walk, if any.
func (s *Splitter) Err() error { return s.err }
