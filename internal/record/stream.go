package record

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Streaming validation of compressed batches: the records are checked as
// they come out of the decompressor, through a small buffer, and keys,
// values and header values are skipped rather than held. Memory stays a few
// KiB whatever the batch expands to, so a decompression bomb costs CPU up to
// maxUncompressed bytes of output and no heap; the record walk is the same as
// walkRecord's, field by field.

const streamBufBytes = 16 << 10

var streamBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, streamBufBytes) }}

// streamCursor reads a record area from a decompressor, counting bytes
// against the cap and keeping the first error.
type streamCursor struct {
	br   *bufio.Reader
	left int64 // bytes still allowed by the cap
	err  error
}

func (c *streamCursor) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

func (c *streamCursor) readByte(what string) byte {
	if c.err != nil {
		return 0
	}
	if c.left <= 0 {
		c.fail(ErrTooLarge)
		return 0
	}
	b, err := c.br.ReadByte()
	if err != nil {
		c.fail(c.readErr(err, what))
		return 0
	}
	c.left--
	return b
}

func (c *streamCursor) readErr(err error, what string) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTooLarge) {
		return err
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
}

// uvarint reads at most maxLen bytes of an unsigned varint; it returns the
// value and how many bytes it took.
func (c *streamCursor) uvarint(maxLen int, what string) (uint64, int) {
	var u uint64
	for i := 0; i < maxLen; i++ {
		b := c.readByte(what)
		if c.err != nil {
			return 0, 0
		}
		u |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if i == 9 && b > 1 {
				break
			}
			return u, i + 1
		}
	}
	c.fail(fmt.Errorf("%w: bad %s", ErrCorrupt, what))
	return 0, 0
}

func (c *streamCursor) varint(what string) (int32, int) {
	u, n := c.uvarint(5, what)
	if c.err == nil && u > 0xffffffff {
		c.fail(fmt.Errorf("%w: bad %s", ErrCorrupt, what))
	}
	return int32(uint32(u)>>1) ^ -int32(uint32(u)&1), n
}

func (c *streamCursor) varlong(what string) (int64, int) {
	u, n := c.uvarint(10, what)
	return int64(u>>1) ^ -int64(u&1), n
}

func (c *streamCursor) skip(n int64, what string) {
	if c.err != nil {
		return
	}
	if n > c.left {
		c.fail(ErrTooLarge)
		return
	}
	d, err := c.br.Discard(int(n))
	c.left -= int64(d)
	if err != nil {
		c.fail(c.readErr(err, what))
	}
}

// field reads a length-prefixed bytes field (-1: null) within a record whose
// remaining length is *rest, skipping its bytes. It reports whether the field
// was null.
func (c *streamCursor) field(rest *int64, what string) bool {
	n, k := c.varint(what)
	*rest -= int64(k)
	if c.err != nil {
		return false
	}
	if n == -1 {
		return true
	}
	if n < 0 || int64(n) > *rest {
		c.fail(fmt.Errorf("%w: bad %s", ErrCorrupt, what))
		return false
	}
	c.skip(int64(n), what)
	*rest -= int64(n)
	return false
}

// validateStream walks the records of a compressed batch as they are
// decompressed.
func validateStream(r io.Reader, h Header, maxUncompressed int) (Timestamps, error) {
	var span tsSpan
	err := walkStream(r, h, maxUncompressed, &span)
	return span.timestamps(h), err
}

func walkStream(r io.Reader, h Header, maxUncompressed int, span *tsSpan) error {
	br := streamBufs.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		streamBufs.Put(br)
	}()
	c := &streamCursor{br: br, left: int64(maxUncompressed)}
	var count int32
	for {
		if _, err := br.Peek(1); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return c.readErr(err, "records")
		}
		if count >= h.NumRecords {
			return fmt.Errorf("%w: more records than the count %d", ErrCorrupt, h.NumRecords)
		}
		length, _ := c.varint("record length")
		if c.err != nil {
			return c.err
		}
		if length < 0 || int64(length) > c.left {
			if length >= 0 {
				return ErrTooLarge
			}
			return fmt.Errorf("%w: record length %d", ErrCorrupt, length)
		}
		rest := int64(length)
		c.readByte("record attributes")
		rest--
		ts, k := c.varlong("timestamp delta")
		rest -= int64(k)
		span.add(ts)
		off, k := c.varint("offset delta")
		rest -= int64(k)
		if c.err == nil && off != count {
			return fmt.Errorf("%w: offset delta %d at record %d", ErrCorrupt, off, count)
		}
		if c.err == nil && rest < 0 {
			return fmt.Errorf("%w: record %d overruns its length", ErrCorrupt, count)
		}
		c.field(&rest, "key")
		c.field(&rest, "value")
		nh, k := c.varint("header count")
		rest -= int64(k)
		if c.err != nil {
			return c.err
		}
		if nh < 0 || int64(nh) > rest/2 {
			return fmt.Errorf("%w: header count %d", ErrCorrupt, nh)
		}
		for i := int32(0); i < nh; i++ {
			if c.field(&rest, "header key") && c.err == nil {
				return fmt.Errorf("%w: null header key", ErrCorrupt)
			}
			c.field(&rest, "header value")
			if c.err != nil {
				return c.err
			}
		}
		if c.err != nil {
			return c.err
		}
		if rest != 0 {
			return fmt.Errorf("%w: %d bytes left over in record %d", ErrCorrupt, rest, count)
		}
		count++
	}
	if count != h.NumRecords {
		return fmt.Errorf("%w: %d records, header says %d", ErrCorrupt, count, h.NumRecords)
	}
	return nil
}
