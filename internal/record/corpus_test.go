package record

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzCorpus regenerates the committed seed corpora in
// testdata/fuzz when GREGOR_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("GREGOR_WRITE_CORPUS") != "1" {
		t.Skip("set GREGOR_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	for _, target := range []string{"FuzzValidate", "FuzzValidateRecords"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, codec := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
			b, err := AppendBatch(nil, Batch{BaseTimestamp: 5, Compression: codec, Records: testRecords(4)})
			if err != nil {
				t.Fatal(err)
			}
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, "seed-"+codec.String()), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
