package server

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"
)

// FileRange is a byte range of a file, sent with a positional sendfile: the
// file's shared offset is never used, so concurrent senders of one segment
// do not race.
type FileRange struct {
	File   *os.File
	Offset int64
	Length int64
}

// Splice replaces one bytes field of an encoded response: the field was
// encoded holding Marker, and goes on the wire holding the bytes of Ranges.
type Splice struct {
	Marker []byte
	Ranges []FileRange
}

// SplicedResponse is a response some of whose bytes fields are sent from
// files (zero copy: record batches go from the page cache to the socket
// without entering the heap). Response is encoded with each Splice's marker
// in place of its field's bytes; the server swaps in the real length prefix
// and sends the ranges. Splices must appear in encoding order. Release, when
// non-nil, is called once the response has been written or dropped: until
// then the files must stay open.
type SplicedResponse struct {
	kmsg.Response
	Splices []Splice
	Release func()
}

// markerLen is the length of a splice marker: 8 random bytes fixed per
// process and an 8-byte counter, so a marker cannot occur by accident in the
// few hundred bytes of a response's encoding.
const markerLen = 16

var (
	markerSecret [8]byte
	markerSeq    atomic.Uint64
)

func init() {
	if _, err := rand.Read(markerSecret[:]); err != nil {
		panic(err)
	}
}

// NewMarker returns a fresh splice marker.
func NewMarker() []byte {
	m := make([]byte, markerLen)
	copy(m, markerSecret[:])
	binary.BigEndian.PutUint64(m[8:], markerSeq.Add(1))
	return m
}

var errSplice = errors.New("server: splice marker not found in the encoded response")

// framePart is one piece of an outgoing frame: bytes of the encoding buffer
// or a file range.
type framePart struct {
	start, end int // in the encoding buffer, when file is nil
	file       *FileRange
}

// spliceFrame rewrites the encoded frame in buf (size prefix included) so
// that every marker's field carries the file ranges' length, and returns the
// parts to send. buf may be modified; the parts refer into it.
func spliceFrame(buf []byte, flexible bool, splices []Splice) ([]byte, []framePart, error) {
	var parts []framePart
	out := make([]byte, 0, len(buf)+8*len(splices))
	from := 0
	total := int64(0)
	for _, sp := range splices {
		i := bytes.Index(buf[from:], sp.Marker)
		if i < 0 || len(sp.Marker) != markerLen {
			return nil, nil, errSplice
		}
		i += from
		var n int64
		for _, r := range sp.Ranges {
			n += r.Length
		}
		var prefixLen int
		var prefix []byte
		if flexible {
			prefixLen = 1 // uvarint(markerLen+1) is one byte
			if i < 1 || buf[i-1] != markerLen+1 {
				return nil, nil, errSplice
			}
			prefix = binary.AppendUvarint(nil, uint64(n+1))
		} else {
			prefixLen = 4
			if i < 4 || binary.BigEndian.Uint32(buf[i-4:]) != markerLen {
				return nil, nil, errSplice
			}
			prefix = binary.BigEndian.AppendUint32(nil, uint32(n))
		}
		start := len(out)
		out = append(out, buf[from:i-prefixLen]...)
		out = append(out, prefix...)
		parts = append(parts, framePart{start: start, end: len(out)})
		for k := range sp.Ranges {
			if sp.Ranges[k].Length > 0 {
				parts = append(parts, framePart{file: &sp.Ranges[k]})
			}
		}
		total += n
		from = i + markerLen
	}
	start := len(out)
	out = append(out, buf[from:]...)
	parts = append(parts, framePart{start: start, end: len(out)})
	size := int64(len(out)-4) + total
	if size > 1<<31-1 {
		return nil, nil, fmt.Errorf("server: response of %d bytes is too large", size)
	}
	binary.BigEndian.PutUint32(out, uint32(size))
	return out, parts, nil
}

// writeParts writes a spliced frame: buffered bytes with Write, file ranges
// with sendfile.
func writeParts(nc net.Conn, buf []byte, parts []framePart) (int64, error) {
	var written int64
	for _, p := range parts {
		if p.file == nil {
			if p.end > p.start {
				n, err := nc.Write(buf[p.start:p.end])
				written += int64(n)
				if err != nil {
					return written, err
				}
			}
			continue
		}
		n, err := sendFile(nc, p.file)
		written += n
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// sendFile sends a file range with a positional sendfile(2) where the
// connection allows it, and with pread + write otherwise.
func sendFile(nc net.Conn, r *FileRange) (int64, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return io.Copy(nc, io.NewSectionReader(r.File, r.Offset, r.Length))
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	fd := int(r.File.Fd())
	off := r.Offset
	var written int64
	var serr error
	err = rc.Write(func(sock uintptr) bool {
		for written < r.Length {
			n, e := unix.Sendfile(int(sock), fd, &off, int(min(r.Length-written, 1<<30)))
			if n > 0 {
				written += int64(n)
			}
			switch {
			case e == unix.EAGAIN:
				return false // wait until the socket is writable
			case e == unix.EINTR:
				continue
			case e != nil:
				serr = e
				return true
			case n == 0:
				serr = io.ErrUnexpectedEOF // the file is shorter than the range
				return true
			}
		}
		return true
	})
	if serr != nil {
		return written, serr
	}
	return written, err
}
