package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// xerialMagic opens the framing the Java client's snappy-java writes:
// magic (8 bytes), version (4), compatible version (4), then blocks of
// a 4-byte big-endian length and a raw snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const (
	xerialHeaderLen = 16
	// xerialBlockSize is the uncompressed size of each block we write,
	// snappy-java's default.
	xerialBlockSize = 32 << 10
)

var (
	gzipReaders sync.Pool // *gzip.Reader
	lz4Readers  = sync.Pool{New: func() any { return lz4.NewReader(nil) }}
	zstdReaders sync.Pool // *zstd.Decoder
)

// Decompress appends the decompressed form of src to dst and returns the
// extended slice. It stops with ErrTooLarge as soon as the output would
// exceed max bytes, so a decompression bomb costs at most max bytes.
func Decompress(codec Codec, src, dst []byte, max int) ([]byte, error) {
	switch codec {
	case CodecNone:
		if len(src) > max {
			return dst, ErrTooLarge
		}
		return append(dst, src...), nil
	case CodecSnappy:
		return decodeSnappy(src, dst, max)
	case CodecGzip, CodecLZ4, CodecZstd:
		r, release, err := streamDecompressor(codec, src)
		if err != nil {
			return dst, err
		}
		out, err := readCapped(r, dst, max)
		release()
		return out, err
	}
	return dst, ErrUnknownCodec
}

// streamDecompressor returns a pooled streaming decoder of src for gzip, lz4
// and zstd; release returns it to its pool. Callers bound what they read.
func streamDecompressor(codec Codec, src []byte) (io.Reader, func(), error) {
	switch codec {
	case CodecGzip:
		var zr *gzip.Reader
		if v := gzipReaders.Get(); v != nil {
			zr = v.(*gzip.Reader)
			if err := zr.Reset(bytes.NewReader(src)); err != nil {
				return nil, nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
			}
		} else {
			var err error
			if zr, err = gzip.NewReader(bytes.NewReader(src)); err != nil {
				return nil, nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
			}
		}
		return zr, func() { gzipReaders.Put(zr) }, nil
	case CodecLZ4:
		zr := lz4Readers.Get().(*lz4.Reader)
		zr.Reset(bytes.NewReader(src))
		return zr, func() { zr.Reset(nil); lz4Readers.Put(zr) }, nil
	case CodecZstd:
		var zr *zstd.Decoder
		if v := zstdReaders.Get(); v != nil {
			zr = v.(*zstd.Decoder)
			if err := zr.Reset(streamOnly{bytes.NewReader(src)}); err != nil {
				return nil, nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
			}
		} else {
			var err error
			// One synchronous decoder: no goroutines to leak from the
			// pool. The window bound caps what a hostile frame header can
			// make it allocate.
			zr, err = zstd.NewReader(streamOnly{bytes.NewReader(src)}, zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(zstdMaxWindow))
			if err != nil {
				return nil, nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
			}
		}
		return zr, func() { _ = zr.Reset(nil); zstdReaders.Put(zr) }, nil
	}
	return nil, nil, ErrUnknownCodec
}

// zstdMaxWindow bounds the zstd window a frame may ask for, and so the
// memory one decoder holds. zstd never needs a window larger than the
// frame's content, and Kafka batches are at most a few MiB.
const zstdMaxWindow = 16 << 20

// streamOnly hides bytes.Reader's Len method: given a reader with a Len,
// the zstd decoder decodes the whole input at once, ignoring our cap.
type streamOnly struct{ r io.Reader }

func (s streamOnly) Read(p []byte) (int, error) { return s.r.Read(p) }

// readCapped reads r to EOF, appending to dst, failing with ErrTooLarge past
// max appended bytes.
func readCapped(r io.Reader, dst []byte, max int) ([]byte, error) {
	start := len(dst)
	stalls := 0
	for {
		if len(dst) == cap(dst) {
			grow := cap(dst) - start
			if grow < 4096 {
				grow = 4096
			}
			// Never allocate much beyond what the cap allows.
			if limit := start + max + 1 - cap(dst); grow > limit {
				grow = limit
			}
			if grow <= 0 {
				return dst, ErrTooLarge
			}
			dst = append(dst[:cap(dst)], make([]byte, grow)...)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if n == 0 && err == nil {
			if stalls++; stalls > 100 {
				return dst[:start], fmt.Errorf("%w: decompressor makes no progress", ErrCorrupt)
			}
		} else {
			stalls = 0
		}
		if len(dst)-start > max {
			return dst[:start], ErrTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst[:start], fmt.Errorf("%w: decompress: %v", ErrCorrupt, err)
		}
	}
}

func decodeSnappy(src, dst []byte, max int) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		return snappyBlock(src, dst, max, len(dst))
	}
	if len(src) < xerialHeaderLen {
		return dst, fmt.Errorf("%w: short xerial snappy header", ErrCorrupt)
	}
	start := len(dst)
	src = src[xerialHeaderLen:]
	for len(src) > 0 {
		if len(src) < 4 {
			return dst[:start], fmt.Errorf("%w: xerial snappy block length", ErrCorrupt)
		}
		n := binary.BigEndian.Uint32(src)
		src = src[4:]
		if uint64(n) > uint64(len(src)) {
			return dst[:start], fmt.Errorf("%w: xerial snappy block of %d bytes with %d left", ErrCorrupt, n, len(src))
		}
		var err error
		if dst, err = snappyBlock(src[:n], dst, max, start); err != nil {
			return dst[:start], err
		}
		src = src[n:]
	}
	return dst, nil
}

// snappyBlock appends one raw snappy block, keeping the total appended since
// start within max.
func snappyBlock(src, dst []byte, max, start int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return dst, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	if n > max-(len(dst)-start) {
		return dst, ErrTooLarge
	}
	if cap(dst)-len(dst) < n {
		dst = append(dst[:cap(dst)], make([]byte, n-(cap(dst)-len(dst)))...)[:len(dst)]
	}
	out, err := s2.Decode(dst[len(dst):len(dst)+n], src)
	if err != nil {
		return dst, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	return dst[:len(dst)+len(out)], nil
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// Levels are the compression levels of Kafka's compression.gzip.level,
// compression.lz4.level and compression.zstd.level (KIP-390), with Kafka's
// ranges and defaults (DefaultLevels).
type Levels struct{ Gzip, LZ4, Zstd int }

// DefaultLevels are Kafka's defaults: gzip's own default (-1), lz4 9 (lz4's
// fast compressor) and zstd 3.
var DefaultLevels = Levels{Gzip: -1, LZ4: 9, Zstd: 3}

var (
	// gzipLevelWriters[l+1] holds writers of gzip level l (-1..9).
	gzipLevelWriters [11]sync.Pool
	// lz4LevelWriters[0] holds the fast compressor's writers, [l] those
	// of lz4's high-compression level l (1..9).
	lz4LevelWriters [10]sync.Pool
	lz4Levels       = [...]lz4.CompressionLevel{lz4.Fast, lz4.Level1, lz4.Level2, lz4.Level3, lz4.Level4,
		lz4.Level5, lz4.Level6, lz4.Level7, lz4.Level8, lz4.Level9}
	// zstdEncoders holds one encoder per klauspost level (1..4).
	zstdEncoders [5]struct {
		once sync.Once
		enc  *zstd.Encoder
		err  error
	}
)

// Compress appends src compressed with codec at Kafka's default level to
// dst. Snappy output uses the xerial framing, which both the Java client
// and franz-go read.
func Compress(codec Codec, dst, src []byte) ([]byte, error) {
	return CompressLevel(codec, DefaultLevels, dst, src)
}

// CompressLevel is Compress at the levels given. As Kafka: lz4 level 9 is
// lz4's fast compressor and any other level its high-compression mode
// (levels 10-17 compress as 9, the highest the Go library has); zstd levels
// map to the Go encoder's four speeds as zstd's own levels do. A level out
// of its codec's range is the codec's default.
func CompressLevel(codec Codec, lv Levels, dst, src []byte) ([]byte, error) {
	switch codec {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		level := lv.Gzip
		if level < -1 || level > 9 || level == 0 {
			level = -1
		}
		pool := &gzipLevelWriters[level+1]
		zw, _ := pool.Get().(*gzip.Writer)
		if zw == nil {
			var err error
			if zw, err = gzip.NewWriterLevel(nil, level); err != nil {
				return dst, err
			}
		}
		w := &appendWriter{b: dst}
		zw.Reset(w)
		_, err := zw.Write(src)
		if err == nil {
			err = zw.Close()
		}
		pool.Put(zw)
		return w.b, err
	case CodecSnappy:
		dst = append(dst, xerialMagic...)
		dst = binary.BigEndian.AppendUint32(dst, 1)
		dst = binary.BigEndian.AppendUint32(dst, 1)
		for len(src) > 0 {
			chunk := src[:min(len(src), xerialBlockSize)]
			src = src[len(chunk):]
			enc := s2.EncodeSnappy(nil, chunk)
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(enc)))
			dst = append(dst, enc...)
		}
		return dst, nil
	case CodecLZ4:
		hc := 0 // the fast compressor
		if lv.LZ4 >= 1 && lv.LZ4 <= 17 && lv.LZ4 != DefaultLevels.LZ4 {
			hc = min(lv.LZ4, 9)
		}
		pool := &lz4LevelWriters[hc]
		zw, _ := pool.Get().(*lz4.Writer)
		if zw == nil {
			zw = lz4.NewWriter(nil)
			if err := zw.Apply(lz4.CompressionLevelOption(lz4Levels[hc])); err != nil {
				return dst, err
			}
		}
		w := &appendWriter{b: dst}
		zw.Reset(w)
		_, err := zw.Write(src)
		if err == nil {
			err = zw.Close()
		}
		zw.Reset(nil)
		pool.Put(zw)
		return w.b, err
	case CodecZstd:
		level := lv.Zstd
		if level < -131072 || level > 22 {
			level = DefaultLevels.Zstd
		}
		el := zstd.EncoderLevelFromZstd(level)
		e := &zstdEncoders[el]
		e.once.Do(func() {
			e.enc, e.err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(el))
		})
		if e.err != nil {
			return dst, e.err
		}
		return e.enc.EncodeAll(src, dst), nil
	}
	return dst, ErrUnknownCodec
}
