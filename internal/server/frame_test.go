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

// TestServerFrameBuffersReused: a multi-megabyte request frame, once
// released, is reused by the next frame of its size class instead of being
// allocated, zeroed and regrown again; frames above the pooled sizes are not
// kept.
func TestServerFrameBuffersReused(t *testing.T) {
	want := bytes.Repeat([]byte{9}, 3<<20+5)
	bp, err := readFrameBody(bytes.NewReader(want), len(want))
	if err != nil || !bytes.Equal(*bp, want) {
		t.Fatalf("large frame read back wrong: %v", err)
	}
	if cap(*bp) != 4<<20 {
		t.Fatalf("a %d-byte frame has capacity %d, want the pooled 4 MiB", len(want), cap(*bp))
	}
	putBuf(bp)
	next := bytes.Repeat([]byte{3}, 3<<20)
	rd := bytes.NewReader(next)
	same := true
	// sync.Pool may drop an item at a garbage collection; the common case
	// must not allocate.
	allocs := testing.AllocsPerRun(10, func() {
		rd.Reset(next)
		got, err := readFrameBody(rd, len(next))
		if err != nil {
			t.Fatal(err)
		}
		same = same && bytes.Equal(*got, next)
		putBuf(got)
	})
	if allocs >= 1 && !raceEnabled {
		t.Fatalf("%.1f allocations per reused large frame, want 0", allocs)
	}
	if !same {
		t.Fatal("reused frame read back wrong")
	}
	huge := make([]byte, 0, 32<<20)
	putBuf(&huge)
	if bp := getFrame(20 << 20); bp != nil {
		t.Fatalf("a %d-byte frame came from a pool", cap(*bp))
	}
}
