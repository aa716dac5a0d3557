package record

import (
	"errors"
	"fmt"
	"testing"
)

func TestRecordFilter(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			recs := testRecords(10)
			for i := range recs {
				recs[i].TimestampDelta = int64(i * 10)
				recs[i].Key = fmt.Appendf(nil, "key-%d", i)
			}
			b := mustBatch(t, Batch{BaseOffset: 100, PartitionLeaderEpoch: 3, BaseTimestamp: 1000, ProducerID: 7,
				ProducerEpoch: 2, BaseSequence: 40, Compression: codec, Records: recs})
			h, err := Validate(b)
			if err != nil {
				t.Fatal(err)
			}
			cases := []struct {
				name string
				keep func(off int64) bool
				want []int64
			}{
				{"all", func(int64) bool { return true }, []int64{100, 101, 102, 103, 104, 105, 106, 107, 108, 109}},
				{"odd", func(o int64) bool { return o%2 == 1 }, []int64{101, 103, 105, 107, 109}},
				{"first", func(o int64) bool { return o == 100 }, []int64{100}},
				{"none", func(int64) bool { return false }, nil},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					out, kept, err := Filter(nil, b, h, 1<<20, func(o int64, _ Record) bool { return c.keep(o) })
					if err != nil || kept != len(c.want) {
						t.Fatalf("Filter: kept %d err %v", kept, err)
					}
					nh, err := Validate(out)
					if err != nil {
						t.Fatalf("Validate: %v", err)
					}
					if nh.BaseOffset != 100 || nh.LastOffsetDelta != 9 || nh.PartitionLeaderEpoch != 3 || nh.ProducerID != 7 ||
						nh.ProducerEpoch != 2 || nh.BaseSequence != 40 || nh.Compression() != codec || int(nh.NumRecords) != len(c.want) {
						t.Fatalf("header %+v", nh)
					}
					if _, err := ValidateProduce(out); len(c.want) != 10 && err == nil {
						t.Fatalf("a gapped batch passed ValidateProduce")
					}
					var got []int64
					err = Records(out, nh, 1<<20, func(r Record) error {
						o := nh.BaseOffset + int64(r.OffsetDelta)
						if want := fmt.Sprintf("key-%d", o-100); string(r.Key) != want {
							return fmt.Errorf("offset %d key %q want %q", o, r.Key, want)
						}
						if r.TimestampDelta != (o-100)*10 {
							return fmt.Errorf("offset %d timestamp delta %d", o, r.TimestampDelta)
						}
						got = append(got, o)
						return nil
					})
					if err != nil {
						t.Fatalf("Records: %v", err)
					}
					if fmt.Sprint(got) != fmt.Sprint(c.want) {
						t.Fatalf("offsets %v want %v", got, c.want)
					}
					if n := len(c.want); n > 0 && nh.MaxTimestamp != 1000+(c.want[n-1]-100)*10 {
						t.Fatalf("max timestamp %d", nh.MaxTimestamp)
					}
				})
			}
		})
	}
}

func TestRecordRecordsRejectsBadGaps(t *testing.T) {
	// Offset deltas must strictly increase and stay <= lastOffsetDelta.
	recs := testRecords(3)
	b := mustBatch(t, Batch{Records: recs})
	h, _ := Validate(b)
	out, _, err := Filter(nil, b, h, 1<<20, func(o int64, _ Record) bool { return o != 1 })
	if err != nil {
		t.Fatal(err)
	}
	nh, _ := Validate(out)
	nh.LastOffsetDelta = 1 // pretend the batch ends before its last record
	if err := Records(out, nh, 1<<20, func(Record) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("delta beyond lastOffsetDelta: %v", err)
	}
	if err := ValidateRecords(out, nh, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ValidateRecords accepted a gap: %v", err)
	}
}

// TestRecordRecompress: a batch recompressed to every codec validates as a
// producer's batch, keeps every header field but the codec, length and
// CRC, and reads back the same records; a bomb stops at the limit.
func TestRecordRecompress(t *testing.T) {
	codecs := []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}
	for _, from := range codecs {
		recs := testRecords(20)
		for i := range recs {
			recs[i].TimestampDelta = int64(i * 7)
			recs[i].Key = fmt.Appendf(nil, "key-%d", i)
			recs[i].Headers = []RecordHeader{{Key: "h", Value: []byte{byte(i)}}}
		}
		b := mustBatch(t, Batch{BaseOffset: 0, PartitionLeaderEpoch: -1, BaseTimestamp: 5000, ProducerID: 9,
			ProducerEpoch: 1, BaseSequence: 60, Compression: from, Transactional: true, Records: recs})
		h, err := Validate(b)
		if err != nil {
			t.Fatal(err)
		}
		want := recordStrings(t, b, h)
		for _, to := range codecs {
			out, err := Recompress([]byte("prefix"), b, h, to, DefaultLevels, 1<<20)
			if err != nil {
				t.Fatalf("%s to %s: %v", from, to, err)
			}
			out = out[len("prefix"):]
			nh, err := ValidateProduce(out)
			if err != nil {
				t.Fatalf("%s to %s: %v", from, to, err)
			}
			if c, ok := PeekCompression(out); !ok || c != to || nh.Compression() != to {
				t.Fatalf("%s to %s: codec %s / %s", from, to, c, nh.Compression())
			}
			same := nh
			same.Attributes, same.CRC, same.BatchLength = h.Attributes, h.CRC, h.BatchLength
			if same != h || nh.Attributes&^attrCodecMask != h.Attributes&^attrCodecMask {
				t.Fatalf("%s to %s: header %+v, want %+v", from, to, nh, h)
			}
			if got := recordStrings(t, out, nh); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s to %s: records %v, want %v", from, to, got, want)
			}
		}
		if from != CodecNone {
			if _, err := Recompress(nil, b, h, CodecNone, DefaultLevels, 100); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%s over the limit: %v", from, err)
			}
		}
	}
}

func recordStrings(t *testing.T, b []byte, h Header) []string {
	t.Helper()
	var out []string
	if err := Records(b, h, 1<<20, func(r Record) error {
		out = append(out, fmt.Sprintf("%d/%d/%s/%s/%v", r.OffsetDelta, r.TimestampDelta, r.Key, r.Value, r.Headers))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
