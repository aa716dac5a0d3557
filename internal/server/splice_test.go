package server

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestServerSpliceSendsFileBytes encodes a fetch response with markers,
// sends it with sendfile over real TCP, and decodes what arrives: each
// partition must carry exactly the file bytes of its ranges, for a
// non-flexible (v11) and a flexible (v12) encoding.
func TestServerSpliceSendsFileBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.log")
	content := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	for _, version := range []int16{11, 12} {
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = version
		var splices []Splice
		want := [][]byte{content[100:5000], append(append([]byte(nil), content[0:10]...), content[60000:65536]...)}
		ranges := [][]FileRange{
			{{File: f, Offset: 100, Length: 4900}},
			{{File: f, Offset: 0, Length: 10}, {File: f, Offset: 60000, Length: 5536}},
		}
		topic := kmsg.NewFetchResponseTopic()
		topic.Topic = "t"
		for i := range ranges {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition = int32(i)
			sp := Splice{Marker: NewMarker(), Ranges: ranges[i]}
			p.RecordBatches = sp.Marker
			splices = append(splices, sp)
			topic.Partitions = append(topic.Partitions, p)
		}
		resp.Topics = append(resp.Topics, topic)
		frame := binary.BigEndian.AppendUint32(nil, 0)
		frame = resp.AppendTo(frame)
		binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))

		buf, parts, err := spliceFrame(frame, resp.IsFlexible(), splices)
		if err != nil {
			t.Fatalf("v%d: %v", version, err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan []byte, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- nil
				return
			}
			defer c.Close()
			b, _ := io.ReadAll(c)
			got <- b
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := writeParts(c, buf, parts); err != nil {
			t.Fatal(err)
		}
		c.Close()
		wire := <-got
		ln.Close()
		if size := binary.BigEndian.Uint32(wire); int(size) != len(wire)-4 {
			t.Fatalf("v%d: size prefix %d, frame %d", version, size, len(wire)-4)
		}
		dec := kmsg.NewPtrFetchResponse()
		dec.Version = version
		if err := dec.ReadFrom(wire[4:]); err != nil {
			t.Fatalf("v%d: decode: %v", version, err)
		}
		for i, p := range dec.Topics[0].Partitions {
			if !bytes.Equal(p.RecordBatches, want[i]) {
				t.Fatalf("v%d partition %d: got %d bytes, want %d", version, i, len(p.RecordBatches), len(want[i]))
			}
		}
	}
}

func TestServerSpliceMissingMarker(t *testing.T) {
	frame := []byte{0, 0, 0, 4, 1, 2, 3, 4}
	if _, _, err := spliceFrame(frame, false, []Splice{{Marker: NewMarker()}}); err == nil {
		t.Fatal("a missing marker must fail")
	}
}
