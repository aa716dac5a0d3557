package server

//go:generate go run gen_layouts.go

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Kafka 4.4's decoder limits (MessageUtil.MAX_ARRAY_LENGTH and
// MAX_TAGGED_FIELD_COUNT in the generated readers). Kafka's network thread
// fails to parse such a request and closes the connection without answering;
// so do we, before kmsg allocates anything for it.
const (
	maxArrayLen     = 1_000_000
	maxTaggedFields = 10_000
	maxStringLen    = 1<<15 - 1 // a string's int16 length, also when compact
)

var (
	errArrayTooLong        = errors.New("server: request array too long")
	errTooManyTaggedFields = errors.New("server: too many tagged fields")
	errStringTooLong       = errors.New("server: request string too long")
)

// lkind is how a field is laid out on the wire.
type lkind uint8

const (
	kInt8 lkind = iota // also bool
	kInt16
	kInt32
	kInt64 // also float64
	kUUID
	kVarint         // zigzag varint or varlong
	kString         // int16 length, or compact in flexible versions
	kBytes          // int32 length, or compact in flexible versions
	kArray          // int32 count, or compact in flexible versions
	kStruct         // fields in order, then a tag section in flexible versions
	kNullableStruct // int8 presence marker (-1: null), then a struct
)

// lfield is one field of a request layout (generated into layouts_gen.go).
type lfield struct {
	minV, maxV int16 // versions the field exists in
	tag        int16 // -1: in order; else the tag number in flexible versions
	kind       lkind
	elem       *lfield  // kArray
	fields     []lfield // kStruct, kNullableStruct, kArray of structs via elem
}

// layout is a request's wire layout across its versions.
type layout struct {
	maxVersion   int16
	flexibleFrom int16 // -1: never flexible
	fields       []lfield
}

// walker checks a request body against the decoder limits without
// allocating: it only reads lengths and skips.
type walker struct {
	b        []byte
	version  int16
	flexible bool
}

// checkBodyLimits walks body (a request of key at version) and reports
// errArrayTooLong or errTooManyTaggedFields if it holds an array of more than
// maxArrayLen elements or a tag section of more than maxTaggedFields fields,
// errStringTooLong for a compact string longer than an int16 length allows,
// and errWalkShort if a count or length runs past the end of the body (an
// array count or tag count above the bytes left is refused here, as Kafka
// does, rather than left to kmsg, which would decode tags until the bytes run
// out). It reads only lengths and counts: it allocates nothing, and its work
// is bounded by len(body) because every element and field it steps over
// takes at least one byte. A key or version without a layout is not walked.
func checkBodyLimits(key, version int16, body []byte) error {
	l := requestLayouts[key]
	if l == nil || version > l.maxVersion {
		return nil
	}
	w := walker{b: body, version: version, flexible: l.flexibleFrom >= 0 && version >= l.flexibleFrom}
	return w.structFields(l.fields)
}

var errWalkShort = errors.New("server: request body ends early")

func (w *walker) skip(n uint64) error {
	if n > uint64(len(w.b)) {
		return errWalkShort
	}
	w.b = w.b[n:]
	return nil
}

func (w *walker) uvarint() (uint64, error) {
	v, n := binary.Uvarint(w.b)
	if n <= 0 || n > 5 || v > 1<<32-1 {
		return 0, errWalkShort
	}
	w.b = w.b[n:]
	return v, nil
}

func (w *walker) int16() (int16, error) {
	if len(w.b) < 2 {
		return 0, errWalkShort
	}
	v := int16(binary.BigEndian.Uint16(w.b))
	w.b = w.b[2:]
	return v, nil
}

func (w *walker) int32() (int32, error) {
	if len(w.b) < 4 {
		return 0, errWalkShort
	}
	v := int32(binary.BigEndian.Uint32(w.b))
	w.b = w.b[4:]
	return v, nil
}

// length reads a string, bytes or array length: -1 is null.
func (w *walker) length(k lkind) (int64, error) {
	if w.flexible {
		v, err := w.uvarint()
		return int64(v) - 1, err
	}
	if k == kString {
		v, err := w.int16()
		return int64(v), err
	}
	v, err := w.int32()
	return int64(v), err
}

func (w *walker) structFields(fs []lfield) error {
	for i := range fs {
		f := &fs[i]
		if w.version < f.minV || w.version > f.maxV || f.tag >= 0 {
			continue
		}
		if err := w.field(f); err != nil {
			return err
		}
	}
	if w.flexible {
		return w.tags(fs)
	}
	return nil
}

// tags walks a tag section; a known tagged field is walked as its type
// inside its declared size, an unknown one skipped.
func (w *walker) tags(fs []lfield) error {
	n, err := w.uvarint()
	if err != nil {
		return err
	}
	if n > uint64(len(w.b)) {
		return errWalkShort
	}
	if n > maxTaggedFields {
		return fmt.Errorf("%w: %d, at most %d", errTooManyTaggedFields, n, maxTaggedFields)
	}
	for range n {
		tag, err := w.uvarint()
		if err != nil {
			return err
		}
		size, err := w.uvarint()
		if err != nil {
			return err
		}
		if size > uint64(len(w.b)) {
			return errWalkShort
		}
		var known *lfield
		for i := range fs {
			if fs[i].tag >= 0 && uint64(fs[i].tag) == tag {
				known = &fs[i]
			}
		}
		if known == nil {
			w.b = w.b[size:]
			continue
		}
		inner := walker{b: w.b[:size], version: w.version, flexible: w.flexible}
		if err := inner.field(known); err != nil {
			return err
		}
		w.b = w.b[size:]
	}
	return nil
}

func (w *walker) field(f *lfield) error {
	switch f.kind {
	case kInt8:
		return w.skip(1)
	case kInt16:
		return w.skip(2)
	case kInt32:
		return w.skip(4)
	case kInt64:
		return w.skip(8)
	case kUUID:
		return w.skip(16)
	case kVarint:
		_, n := binary.Varint(w.b)
		if n <= 0 {
			return errWalkShort
		}
		return w.skip(uint64(n))
	case kString, kBytes:
		n, err := w.length(f.kind)
		if err != nil || n < 0 {
			return err
		}
		if f.kind == kString && n > maxStringLen {
			// Only a compact length can say so; Kafka's readers refuse it.
			return fmt.Errorf("%w: %d bytes, at most %d", errStringTooLong, n, maxStringLen)
		}
		return w.skip(uint64(n))
	case kArray:
		n, err := w.length(kArray)
		if err != nil || n < 0 {
			return err
		}
		if n > int64(len(w.b)) {
			return errWalkShort
		}
		if n > maxArrayLen {
			return fmt.Errorf("%w: %d elements, at most %d", errArrayTooLong, n, maxArrayLen)
		}
		for range n {
			if err := w.field(f.elem); err != nil {
				return err
			}
		}
		return nil
	case kNullableStruct:
		if len(w.b) < 1 {
			return errWalkShort
		}
		present := int8(w.b[0])
		w.b = w.b[1:]
		if present == -1 {
			return nil
		}
		return w.structFields(f.fields)
	case kStruct:
		return w.structFields(f.fields)
	}
	return fmt.Errorf("server: layout kind %d", f.kind)
}
