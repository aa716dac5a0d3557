package record

import (
	"fmt"
	"testing"
)

// TestSetDeleteHorizon: the rewritten batch is valid, carries the horizon,
// and every record keeps its timestamp, key and value.
func TestRecordSetDeleteHorizon(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			b, err := AppendBatch(nil, Batch{BaseOffset: 40, BaseTimestamp: 1000, ProducerID: 3, ProducerEpoch: 1, BaseSequence: -1,
				Transactional: true, Compression: codec, Records: []Record{
					{TimestampDelta: 0, Key: []byte("a"), Value: []byte("1")},
					{TimestampDelta: 25, Key: []byte("b"), Value: nil},
				}})
			if err != nil {
				t.Fatal(err)
			}
			h, err := Validate(b)
			if err != nil {
				t.Fatal(err)
			}
			if _, set := h.DeleteHorizon(); set {
				t.Fatalf("new batch has a delete horizon")
			}
			out, err := SetDeleteHorizon(nil, b, h, 86_401_000, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			nh, err := Validate(out)
			if err != nil {
				t.Fatal(err)
			}
			if hz, set := nh.DeleteHorizon(); !set || hz != 86_401_000 {
				t.Fatalf("horizon %d, %v", hz, set)
			}
			if nh.MaxTimestamp != h.MaxTimestamp || nh.BaseOffset != 40 || nh.LastOffsetDelta != 1 || nh.NumRecords != 2 ||
				nh.ProducerID != 3 || !nh.IsTransactional() || nh.Compression() != codec {
				t.Fatalf("header %+v from %+v", nh, h)
			}
			var got []string
			err = Records(out, nh, 1<<20, func(r Record) error {
				got = append(got, fmt.Sprintf("%s=%q@%d", r.Key, r.Value, nh.BaseTimestamp+r.TimestampDelta))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{`a="1"@1000`, `b=""@1025`}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("records %v, want %v", got, want)
			}
		})
	}
}
