package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/klauspost/compress/s2"
)

func testRecords(n int) []Record {
	rs := make([]Record, n)
	for i := range rs {
		rs[i] = Record{
			TimestampDelta: int64(i * 3),
			Key:            []byte(fmt.Sprintf("key-%d", i)),
			Value:          bytes.Repeat([]byte{byte(i)}, 50+i),
		}
		if i%3 == 1 {
			rs[i].Key = nil
			rs[i].Headers = []RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "n", Value: nil}}
		}
		if i%5 == 4 {
			rs[i].Value = nil
		}
	}
	return rs
}

func mustBatch(t testing.TB, bb Batch) []byte {
	t.Helper()
	b, err := AppendBatch(nil, bb)
	if err != nil {
		t.Fatalf("AppendBatch: %v", err)
	}
	return b
}

func TestRecordRoundTripCodecs(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			want := testRecords(20)
			b := mustBatch(t, Batch{BaseOffset: 7, BaseTimestamp: 1000, ProducerID: 9, ProducerEpoch: 2, BaseSequence: 5, Compression: codec, Records: want})
			h, err := ValidateProduce(b)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if h.Compression() != codec || h.NumRecords != 20 || h.LastOffsetDelta != 19 || h.BaseOffset != 7 {
				t.Fatalf("header %+v", h)
			}
			if h.MaxTimestamp != 1000+19*3 || h.ProducerID != 9 || h.ProducerEpoch != 2 || h.BaseSequence != 5 {
				t.Fatalf("header %+v", h)
			}
			if err := ValidateRecords(b, h, 1<<20); err != nil {
				t.Fatalf("ValidateRecords: %v", err)
			}
			i := 0
			err = Records(b, h, 1<<20, func(r Record) error {
				w := want[i]
				if r.OffsetDelta != int32(i) || r.TimestampDelta != w.TimestampDelta || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) {
					return fmt.Errorf("record %d: got %+v want %+v", i, r, w)
				}
				if (r.Key == nil) != (w.Key == nil) || (r.Value == nil) != (w.Value == nil) {
					return fmt.Errorf("record %d: null mismatch", i)
				}
				if len(r.Headers) != len(w.Headers) {
					return fmt.Errorf("record %d: %d headers", i, len(r.Headers))
				}
				for j := range r.Headers {
					if r.Headers[j].Key != w.Headers[j].Key || !bytes.Equal(r.Headers[j].Value, w.Headers[j].Value) || (r.Headers[j].Value == nil) != (w.Headers[j].Value == nil) {
						return fmt.Errorf("record %d header %d", i, j)
					}
				}
				i++
				return nil
			})
			if err != nil || i != 20 {
				t.Fatalf("Records: %v after %d", err, i)
			}
			// A cap below the uncompressed size is refused.
			if codec != CodecNone {
				if err := ValidateRecords(b, h, 100); !errors.Is(err, ErrTooLarge) {
					t.Fatalf("small cap: %v", err)
				}
			}
		})
	}
}

func TestRecordValidateErrors(t *testing.T) {
	good := mustBatch(t, Batch{BaseTimestamp: 1, Records: testRecords(3)})
	mod := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	resum := func(b []byte) []byte { binary.BigEndian.PutUint32(b[offCRC:], CRC(b)); return b }
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"short", good[:40], ErrCorrupt},
		{"magic1", mod(func(b []byte) []byte { b[offMagic] = 1; return b }), ErrUnsupportedMagic},
		{"length too long", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[offBatchLength:], uint32(len(b))); return b }), ErrCorrupt},
		{"trailing bytes", append(append([]byte(nil), good...), 0), ErrCorrupt},
		{"crc", mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrCRCMismatch},
		{"negative count", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[offRecordCount:], 0xffffffff); return resum(b) }), ErrCorrupt},
		{"delta below count", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 1); return resum(b) }), ErrCorrupt},
		{"codec 6", mod(func(b []byte) []byte { b[offAttributes+1] |= 6; return resum(b) }), ErrUnknownCodec},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Validate(c.b); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// A stored batch may cover more offsets than it holds records
	// (compaction); a produced one may not.
	gapped := mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 5); return resum(b) })
	if _, err := Validate(gapped); err != nil {
		t.Fatalf("gapped batch Validate: %v", err)
	}
	if _, err := ValidateProduce(gapped); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("gapped batch ValidateProduce: %v", err)
	}
	empty := mustBatch(t, Batch{})
	if _, err := Validate(empty); err != nil {
		t.Fatalf("empty batch Validate: %v", err)
	}
	if _, err := ValidateProduce(empty); !errors.Is(err, ErrEmptyBatch) {
		t.Fatalf("empty batch ValidateProduce: %v", err)
	}
}

func TestRecordValidateRecordsCorrupt(t *testing.T) {
	good := mustBatch(t, Batch{BaseTimestamp: 1, Records: testRecords(3)})
	h, _ := Validate(good)
	cases := map[string]func(b []byte) []byte{
		"count too high": func(b []byte) []byte { binary.BigEndian.PutUint32(b[offRecordCount:], 4); return b },
		"count too low":  func(b []byte) []byte { binary.BigEndian.PutUint32(b[offRecordCount:], 2); return b },
		"truncated":      func(b []byte) []byte { return b[:len(b)-3] },
		"record length":  func(b []byte) []byte { b[HeaderSize] = 0x7e; return b },    // huge positive zigzag
		"offset delta":   func(b []byte) []byte { b[HeaderSize+1+1+1] = 2; return b }, // first record offsetDelta=1
		"trailing":       func(b []byte) []byte { return append(b, 0) },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			b := f(append([]byte(nil), good...))
			hh, _ := ParseHeader(b)
			if err := ValidateRecords(b, hh, 1<<20); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v", err)
			}
		})
	}
	if err := ValidateRecords(good, h, 1<<20); err != nil {
		t.Fatal(err)
	}
}

func TestRecordPatchers(t *testing.T) {
	b := mustBatch(t, Batch{BaseTimestamp: 100, Records: testRecords(2)})
	SetBaseOffset(b, 1234)
	SetPartitionLeaderEpoch(b, 7)
	h, err := Validate(b)
	if err != nil {
		t.Fatalf("Validate after patch: %v", err)
	}
	if h.BaseOffset != 1234 || h.PartitionLeaderEpoch != 7 || h.TimestampType() != CreateTime {
		t.Fatalf("header %+v", h)
	}
	SetLogAppendTime(b, 99999)
	h, err = Validate(b)
	if err != nil {
		t.Fatalf("Validate after log append time: %v", err)
	}
	if h.MaxTimestamp != 99999 || h.TimestampType() != LogAppendTime {
		t.Fatalf("header %+v", h)
	}
}

func TestRecordSplit(t *testing.T) {
	var buf []byte
	for i := 0; i < 4; i++ {
		buf = mustBatchAppend(t, buf, Batch{BaseOffset: int64(i * 10), Records: testRecords(i + 1)})
	}
	s := Split(buf)
	n := 0
	for b, ok := s.Next(); ok; b, ok = s.Next() {
		h, err := Validate(b)
		if err != nil || h.BaseOffset != int64(n*10) {
			t.Fatalf("batch %d: %v %+v", n, err, h)
		}
		n++
	}
	if s.Err() != nil || n != 4 {
		t.Fatalf("n=%d err=%v", n, s.Err())
	}
	s = Split(buf[:len(buf)-1])
	n = 0
	for _, ok := s.Next(); ok; _, ok = s.Next() {
		n++
	}
	if n != 3 || !errors.Is(s.Err(), ErrCorrupt) {
		t.Fatalf("truncated: n=%d err=%v", n, s.Err())
	}
}

func mustBatchAppend(t testing.TB, dst []byte, bb Batch) []byte {
	t.Helper()
	b, err := AppendBatch(dst, bb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecordSnappyRaw(t *testing.T) {
	src := bytes.Repeat([]byte("gregor snappy "), 1000)
	raw := s2.EncodeSnappy(nil, src)
	out, err := Decompress(CodecSnappy, raw, nil, 1<<20)
	if err != nil || !bytes.Equal(out, src) {
		t.Fatalf("raw snappy: %v", err)
	}
	framed, _ := Compress(CodecSnappy, nil, src)
	out, err = Decompress(CodecSnappy, framed, []byte("prefix"), 1<<20)
	if err != nil || !bytes.Equal(out, append([]byte("prefix"), src...)) {
		t.Fatalf("xerial snappy: %v", err)
	}
	if _, err := Decompress(CodecSnappy, framed, nil, len(src)-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("cap: %v", err)
	}
}

func TestRecordDecompressBomb(t *testing.T) {
	src := make([]byte, 64<<20) // zeros compress ~1000:1
	for _, codec := range []Codec{CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			comp, err := Compress(codec, nil, src)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Decompress(codec, comp, nil, 1<<20)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("got %v", err)
			}
			if cap(out) > 2<<20 {
				t.Fatalf("allocated %d bytes for a 1 MiB cap", cap(out))
			}
		})
	}
}

func TestRecordVarint(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, -64, 64, 1 << 31, -(1 << 40), 1<<63 - 1, -1 << 63} {
		b := appendVarlong(nil, v)
		got, n := varlong(b)
		if n != len(b) || got != v {
			t.Fatalf("varlong %d: got %d n=%d", v, got, n)
		}
	}
	for _, v := range []int32{0, 1, -1, 1<<31 - 1, -1 << 31} {
		b := appendVarint(nil, v)
		got, n := varint(b)
		if n != len(b) || got != v {
			t.Fatalf("varint %d: got %d n=%d", v, got, n)
		}
	}
	if _, n := varint([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01}); n >= 0 {
		t.Fatal("6-byte varint accepted")
	}
}

func TestRecordValidateNoAlloc(t *testing.T) {
	b := mustBatch(t, Batch{Records: testRecords(50)})
	h, _ := Validate(b)
	n := testing.AllocsPerRun(100, func() {
		if _, err := Validate(b); err != nil {
			t.Fatal(err)
		}
		if err := ValidateRecords(b, h, 1<<20); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocs per validation", n)
	}
}

func BenchmarkValidate(b *testing.B) {
	batch := mustBatch(b, Batch{Records: testRecords(100)})
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		h, err := Validate(batch)
		if err != nil {
			b.Fatal(err)
		}
		if err := ValidateRecords(batch, h, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCheckRecordsTimestamps: the records' oldest and newest timestamps,
// which the header does not give when records are out of time order (a
// negative delta), from every codec's walk.
func TestCheckRecordsTimestamps(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		b, err := AppendBatch(nil, Batch{BaseTimestamp: 1_000_000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Compression: codec,
			Records: []Record{{TimestampDelta: 0}, {TimestampDelta: -86_400_000}, {TimestampDelta: 5}}})
		if err != nil {
			t.Fatal(err)
		}
		h, err := ValidateProduce(b)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := CheckRecords(b, h, 1<<20)
		if err != nil {
			t.Fatalf("%v: %v", codec, err)
		}
		if want := (Timestamps{Min: 1_000_000 - 86_400_000, Max: 1_000_005}); ts != want {
			t.Errorf("%v: timestamps %+v, want %+v (header max %d)", codec, ts, want, h.MaxTimestamp)
		}
	}
}

// TestRecordCompressLevels: every Kafka level of every codec round-trips,
// and the level is applied: gzip 1 and 9, lz4's fast compressor (9) and
// its high-compression mode, zstd 1 and 19 each give different bytes for
// the same text; out-of-range levels fall back to the default.
func TestRecordCompressLevels(t *testing.T) {
	var src []byte
	for i := range 4000 {
		src = fmt.Appendf(src, "record %d of gregor's level test, value %d; ", i, i*i%97)
	}
	cases := []struct {
		codec  Codec
		levels []Levels
	}{
		{CodecGzip, []Levels{{Gzip: -1}, {Gzip: 1}, {Gzip: 5}, {Gzip: 9}, {Gzip: 0}, {Gzip: 42}}},
		{CodecLZ4, []Levels{{LZ4: 1}, {LZ4: 9}, {LZ4: 12}, {LZ4: 17}, {LZ4: 0}, {LZ4: 99}}},
		{CodecZstd, []Levels{{Zstd: -5}, {Zstd: 1}, {Zstd: 3}, {Zstd: 19}, {Zstd: 22}, {Zstd: 1 << 20}}},
	}
	for _, c := range cases {
		out := map[Levels][]byte{}
		for _, lv := range c.levels {
			for range 2 { // the second from a pooled writer
				b, err := CompressLevel(c.codec, lv, nil, src)
				if err != nil {
					t.Fatalf("%s %+v: %v", c.codec, lv, err)
				}
				back, err := Decompress(c.codec, b, nil, 1<<22)
				if err != nil || !bytes.Equal(back, src) {
					t.Fatalf("%s %+v: round trip: %v", c.codec, lv, err)
				}
				out[lv] = b
			}
		}
		differ := func(a, b Levels) {
			t.Helper()
			if bytes.Equal(out[a], out[b]) {
				t.Errorf("%s: levels %+v and %+v gave the same %d bytes", c.codec, a, b, len(out[a]))
			}
		}
		same := func(a, b Levels) {
			t.Helper()
			if !bytes.Equal(out[a], out[b]) {
				t.Errorf("%s: levels %+v and %+v differ (%d and %d bytes)", c.codec, a, b, len(out[a]), len(out[b]))
			}
		}
		switch c.codec {
		case CodecGzip:
			differ(Levels{Gzip: 1}, Levels{Gzip: 9})
			same(Levels{Gzip: 0}, Levels{Gzip: -1})
			same(Levels{Gzip: 42}, Levels{Gzip: -1})
		case CodecLZ4:
			differ(Levels{LZ4: 9}, Levels{LZ4: 1})
			same(Levels{LZ4: 12}, Levels{LZ4: 17})
			same(Levels{LZ4: 0}, Levels{LZ4: 9})
		case CodecZstd:
			differ(Levels{Zstd: 1}, Levels{Zstd: 19})
			same(Levels{Zstd: 1 << 20}, Levels{Zstd: 3})
		}
	}
	if b, _ := Compress(CodecLZ4, nil, src); !bytes.Equal(b, mustLevel(t, CodecLZ4, DefaultLevels, src)) {
		t.Errorf("Compress is not CompressLevel at Kafka's defaults")
	}
}

func mustLevel(t *testing.T, c Codec, lv Levels, src []byte) []byte {
	t.Helper()
	b, err := CompressLevel(c, lv, nil, src)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
