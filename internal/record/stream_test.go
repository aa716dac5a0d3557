package record

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzValidateStreamMatchesBuffered is a differential test: the streaming
// validator used for compressed batches must accept exactly the record areas
// the buffered walk accepts.
func FuzzValidateStreamMatchesBuffered(f *testing.F) {
	good, err := AppendBatch(nil, Batch{Records: []Record{
		{Key: []byte("k"), Value: []byte("v"), Headers: []RecordHeader{{Key: "h", Value: []byte("x")}}},
		{Value: nil},
		{Key: []byte("kk"), Value: bytes.Repeat([]byte("z"), 300)},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[HeaderSize:], int32(3))
	f.Add(good[HeaderSize:], int32(2))
	f.Add(good[HeaderSize:len(good)-1], int32(3))
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, int32(1))
	f.Add([]byte{}, int32(0))
	f.Fuzz(func(t *testing.T, area []byte, n int32) {
		const max = 1 << 20
		bts, buffered := validateArea(area, Header{NumRecords: n})
		sts, streamed := validateStream(bytes.NewReader(area), Header{NumRecords: n}, max)
		if (buffered == nil) != (streamed == nil) {
			t.Fatalf("buffered: %v, streamed: %v", buffered, streamed)
		}
		if buffered == nil && bts != sts {
			t.Fatalf("timestamps buffered %+v, streamed %+v", bts, sts)
		}
		if streamed != nil && !errors.Is(streamed, ErrCorrupt) && !errors.Is(streamed, ErrTooLarge) {
			t.Fatalf("streamed error of unknown kind: %v", streamed)
		}
	})
}

func TestRecordStreamCapsOutput(t *testing.T) {
	big, err := AppendBatch(nil, Batch{Compression: CodecZstd, Records: []Record{{Value: make([]byte, 4<<20)}}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := Validate(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateRecords(big, h, 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("4 MiB record under a 1 MiB cap: %v, want ErrTooLarge", err)
	}
	if err := ValidateRecords(big, h, 8<<20); err != nil {
		t.Fatalf("4 MiB record under an 8 MiB cap: %v", err)
	}
}
