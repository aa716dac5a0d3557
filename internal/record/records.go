package record

import (
	"fmt"
	"sync"
)

// Record is one decoded record. Key, Value and the header slices alias the
// batch (or a pooled decompression buffer): they are valid only during the
// callback that receives the record; copy anything retained.
type Record struct {
	Attributes     int8
	TimestampDelta int64
	OffsetDelta    int32
	Key            []byte // nil for a null key
	Value          []byte // nil for a null value (a tombstone)
	Headers        []RecordHeader
}

// RecordHeader is one record header.
type RecordHeader struct {
	Key   string
	Value []byte // nil for a null value
}

// uvarint decodes an unsigned LEB128 value of at most maxBytes bytes.
func uvarint(b []byte, maxBytes int) (uint64, int) {
	var x uint64
	var s uint
	for i := 0; i < len(b) && i < maxBytes; i++ {
		c := b[i]
		if c < 0x80 {
			if i == maxBytes-1 && maxBytes == 10 && c > 1 {
				return 0, -1
			}
			return x | uint64(c)<<s, i + 1
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, -1
}

// varint decodes a zigzag int32 (Kafka "varint").
func varint(b []byte) (int32, int) {
	u, n := uvarint(b, 5)
	if n < 0 || u > 0xffffffff {
		return 0, -1
	}
	return int32(uint32(u)>>1) ^ -int32(uint32(u)&1), n
}

// varlong decodes a zigzag int64 (Kafka "varlong").
func varlong(b []byte) (int64, int) {
	u, n := uvarint(b, 10)
	if n < 0 {
		return 0, -1
	}
	return int64(u>>1) ^ -int64(u&1), n
}

func appendUvarint(dst []byte, u uint64) []byte {
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

func appendVarint(dst []byte, v int32) []byte {
	return appendUvarint(dst, uint64(uint32(v<<1)^uint32(v>>31)))
}

func appendVarlong(dst []byte, v int64) []byte {
	return appendUvarint(dst, uint64(v<<1)^uint64(v>>63))
}

// reader is a bounds-checked cursor that keeps the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
}

func (r *reader) varint(what string) int32 {
	if r.err != nil {
		return 0
	}
	v, n := varint(r.b)
	if n < 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varlong(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := varlong(r.b)
	if n < 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) int8(what string) int8 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	v := int8(r.b[0])
	r.b = r.b[1:]
	return v
}

// bytes reads a varint length and that many bytes; -1 yields nil.
func (r *reader) bytes(what string) []byte {
	n := r.varint(what)
	if r.err != nil {
		return nil
	}
	if n == -1 {
		return nil
	}
	if n < 0 || int(n) > len(r.b) {
		r.fail(what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// bufPool holds decompression buffers. Pointers avoid an allocation per Put.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxPooledBuf bounds the buffers returned to the pool so one huge batch does
// not pin memory forever.
const maxPooledBuf = 4 << 20

// recordsArea returns the uncompressed records of the batch, decompressing
// into a pooled buffer when needed. release must be called when done.
func recordsArea(b []byte, h Header, maxUncompressed int) (area []byte, release func(), err error) {
	if len(b) < HeaderSize {
		return nil, nil, fmt.Errorf("%w: short batch", ErrCorrupt)
	}
	raw := b[HeaderSize:]
	codec := h.Compression()
	if codec == CodecNone {
		return raw, func() {}, nil
	}
	bp := bufPool.Get().(*[]byte)
	out, err := Decompress(codec, raw, (*bp)[:0], maxUncompressed)
	if err != nil {
		bufPool.Put(bp)
		return nil, nil, err
	}
	return out, func() {
		if cap(out) <= maxPooledBuf {
			*bp = out[:0]
		}
		bufPool.Put(bp)
	}, nil
}

// ValidateRecords walks every record of the batch b (whose header h came
// from Validate), checking the framing of each field against the bytes that
// remain, that offset deltas count up from zero, and that the number of
// records equals h.NumRecords. gzip, lz4 and zstd batches are checked as
// they stream out of the decompressor (stream.go), holding a few KiB; snappy
// batches, whose expansion is small by construction, are decompressed into a
// pooled buffer; either way the output is capped at maxUncompressed bytes
// (ErrTooLarge). It does not allocate per record.
func ValidateRecords(b []byte, h Header, maxUncompressed int) error {
	_, err := CheckRecords(b, h, maxUncompressed)
	return err
}

// Timestamps are the oldest and newest record timestamps of a batch, which
// a producer's batch header does not give: records need not be in time
// order, and a record's delta from the base timestamp may be negative.
type Timestamps struct{ Min, Max int64 }

// CheckRecords is ValidateRecords, also returning the records' timestamps
// (the base timestamp for a batch without records).
func CheckRecords(b []byte, h Header, maxUncompressed int) (Timestamps, error) {
	if len(b) >= HeaderSize {
		switch h.Compression() {
		case CodecGzip, CodecLZ4, CodecZstd:
			r, release, err := streamDecompressor(h.Compression(), b[HeaderSize:])
			if err != nil {
				return Timestamps{}, err
			}
			defer release()
			return validateStream(r, h, maxUncompressed)
		}
	}
	area, release, err := recordsArea(b, h, maxUncompressed)
	if err != nil {
		return Timestamps{}, err
	}
	defer release()
	return validateArea(area, h)
}

// tsSpan gathers the range of record timestamp deltas during a walk.
type tsSpan struct {
	min, max int64
	any      bool
}

func (s *tsSpan) add(delta int64) {
	if !s.any {
		s.min, s.max, s.any = delta, delta, true
		return
	}
	s.min, s.max = min(s.min, delta), max(s.max, delta)
}

func (s tsSpan) timestamps(h Header) Timestamps {
	return Timestamps{Min: h.BaseTimestamp + s.min, Max: h.BaseTimestamp + s.max}
}

// validateArea walks the uncompressed records area of a batch.
func validateArea(area []byte, h Header) (Timestamps, error) {
	r := reader{b: area}
	var count int32
	var span tsSpan
	for len(r.b) > 0 {
		if count >= h.NumRecords {
			return Timestamps{}, fmt.Errorf("%w: more records than the count %d", ErrCorrupt, h.NumRecords)
		}
		ts, err := walkRecord(&r, count, nil, nil)
		if err != nil {
			return Timestamps{}, err
		}
		span.add(ts)
		count++
	}
	if count != h.NumRecords {
		return Timestamps{}, fmt.Errorf("%w: %d records, header says %d", ErrCorrupt, count, h.NumRecords)
	}
	return span.timestamps(h), nil
}

// deltaGaps lets walkRecord accept the offset gaps of a compacted batch:
// offset deltas strictly increasing, each at most lastOffsetDelta.
type deltaGaps struct {
	prev int32 // previous record's offset delta (-1 before the first)
	last int32 // the batch's lastOffsetDelta
}

// walkRecord reads one record from r. When rec is non-nil it is filled in
// (its Headers slice reused). With gaps nil offset deltas must count up from
// zero (produce rules); otherwise they may skip values (stored batches).
func walkRecord(r *reader, index int32, rec *Record, gaps *deltaGaps) (int64, error) {
	length := r.varint("record length")
	if r.err != nil {
		return 0, r.err
	}
	if length < 0 || int(length) > len(r.b) {
		return 0, fmt.Errorf("%w: record length %d with %d bytes left", ErrCorrupt, length, len(r.b))
	}
	body := reader{b: r.b[:length]}
	r.b = r.b[length:]

	attrs := body.int8("record attributes")
	tsDelta := body.varlong("timestamp delta")
	offDelta := body.varint("offset delta")
	bad := offDelta != index
	if gaps != nil {
		bad = offDelta <= gaps.prev || offDelta > gaps.last
	}
	if body.err == nil && bad {
		return tsDelta, fmt.Errorf("%w: offset delta %d at record %d", ErrCorrupt, offDelta, index)
	}
	if gaps != nil {
		gaps.prev = offDelta
	}
	key := body.bytes("key")
	value := body.bytes("value")
	nh := body.varint("header count")
	if body.err != nil {
		return tsDelta, body.err
	}
	// Every header takes at least two bytes: bound the count before use.
	if nh < 0 || int(nh) > len(body.b)/2 {
		return tsDelta, fmt.Errorf("%w: header count %d", ErrCorrupt, nh)
	}
	if rec != nil {
		rec.Attributes = attrs
		rec.TimestampDelta = tsDelta
		rec.OffsetDelta = offDelta
		rec.Key = key
		rec.Value = value
		rec.Headers = rec.Headers[:0]
	}
	for i := int32(0); i < nh; i++ {
		hk := body.bytes("header key")
		hv := body.bytes("header value")
		if body.err != nil {
			return tsDelta, body.err
		}
		if hk == nil {
			return tsDelta, fmt.Errorf("%w: null header key", ErrCorrupt)
		}
		if rec != nil {
			rec.Headers = append(rec.Headers, RecordHeader{Key: string(hk), Value: hv})
		}
	}
	if len(body.b) != 0 {
		return tsDelta, fmt.Errorf("%w: %d bytes left over in record %d", ErrCorrupt, len(body.b), index)
	}
	return tsDelta, nil
}

// Records decodes the records of batch b (header h) and calls fn for each,
// in order. The Record and everything it points to are valid only during the
// call. Decompression is capped at maxUncompressed bytes. An error from fn
// stops the walk and is returned. It accepts stored batches rewritten by log
// compaction: offset deltas strictly increasing and at most
// h.LastOffsetDelta, not necessarily consecutive (ValidateRecords keeps the
// produce rule), and an empty batch with no records area.
func Records(b []byte, h Header, maxUncompressed int, fn func(r Record) error) error {
	if h.NumRecords == 0 && len(b) == HeaderSize {
		return nil
	}
	area, release, err := recordsArea(b, h, maxUncompressed)
	if err != nil {
		return err
	}
	defer release()
	r := reader{b: area}
	var rec Record
	var count int32
	gaps := deltaGaps{prev: -1, last: h.LastOffsetDelta}
	for len(r.b) > 0 {
		if count >= h.NumRecords {
			return fmt.Errorf("%w: more records than the count %d", ErrCorrupt, h.NumRecords)
		}
		if _, err := walkRecord(&r, count, &rec, &gaps); err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
		count++
	}
	if count != h.NumRecords {
		return fmt.Errorf("%w: %d records, header says %d", ErrCorrupt, count, h.NumRecords)
	}
	return nil
}
