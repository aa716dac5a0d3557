package record

import "testing"

func fuzzSeeds(f *testing.F) {
	for _, codec := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		b, err := AppendBatch(nil, Batch{BaseTimestamp: 5, Compression: codec, Records: testRecords(3)})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
}

func FuzzValidate(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Validate(b)
		if err != nil {
			return
		}
		if h.Size() != len(b) {
			t.Fatalf("valid batch size %d != %d", h.Size(), len(b))
		}
		s := Split(b)
		got, ok := s.Next()
		if !ok || len(got) != len(b) {
			t.Fatalf("Split disagrees with Validate: %v", s.Err())
		}
	})
}

func FuzzValidateRecords(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		verr := ValidateRecords(b, h, 1<<20)
		n := 0
		rerr := Records(b, h, 1<<20, func(Record) error { n++; return nil })
		// The produce rules are stricter than the stored-batch rules (which
		// accept the offset gaps left by compaction): what ValidateRecords
		// accepts, Records must accept, given a header Validate would pass
		// (Records also checks deltas against lastOffsetDelta).
		if verr == nil && rerr != nil && h.LastOffsetDelta >= h.NumRecords-1 {
			t.Fatalf("ValidateRecords=%v Records=%v", verr, rerr)
		}
		if verr == nil && rerr == nil && n != int(h.NumRecords) {
			t.Fatalf("%d records, header %d", n, h.NumRecords)
		}
	})
}
