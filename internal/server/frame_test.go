package server

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// TestServerFrameMemoryFollowsBytesReceived checks that a frame's length
// field alone cannot make the server allocate: a client announcing 90 MiB
// and sending 10 bytes costs about a megabyte.
func TestServerFrameMemoryFollowsBytesReceived(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readFrameBody(strings.NewReader("0123456789"), 90<<20)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a short frame must fail")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Fatalf("allocated %d bytes for a frame that sent 10", grew)
	}
	want := bytes.Repeat([]byte{7}, 5<<20+3)
	bp, err := readFrameBody(bytes.NewReader(want), len(want))
	if err != nil || !bytes.Equal(*bp, want) {
		t.Fatalf("large frame read back wrong: %v", err)
	}
}
