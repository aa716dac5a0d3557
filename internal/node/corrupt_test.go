package node_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregor-dev/gregor/internal/vfs"
)

// flipInMiddleBatch flips the last byte of the middle batch of the last
// segment in dir (a byte of its records, under the batch CRC) and returns
// the batch's base offset.
func flipInMiddleBatch(t *testing.T, fs vfs.FS, dir string) int64 {
	t.Helper()
	ents, err := fs.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") {
			last = e.Name()
		}
	}
	path := filepath.Join(dir, last)
	data, err := fs.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var starts []int
	for pos := 0; pos+12 <= len(data); {
		starts = append(starts, pos)
		pos += 12 + int(binary.BigEndian.Uint32(data[pos+8:]))
	}
	if len(starts) < 3 {
		t.Fatalf("%s holds %d batches, want at least 3", path, len(starts))
	}
	mid := starts[len(starts)/2]
	end := mid + 12 + int(binary.BigEndian.Uint32(data[mid+8:]))
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{data[end-1] ^ 0xff}, int64(end-1)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return int64(binary.BigEndian.Uint64(data[mid:]))
}

// TestClusterCorruptFollowerSegment: a follower crashes, and while it is
// down a byte of a batch in its log flips. On restart its recovery finds
// the batch by its CRC-32C and truncates the log there; it fetches the rest
// again from the leader, rejoins the ISR, and its log ends byte-identical to
// the leader's, every acknowledged record in place.
func TestClusterCorruptFollowerSegment(t *testing.T) {
	const topic = "corrupt"
	mems := []*vfs.MemFS{vfs.NewMemFS(), vfs.NewMemFS(), vfs.NewMemFS()}
	c := startFSCluster(t, map[string]string{"broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "300"},
		[]vfs.FS{mems[0], mems[1], mems[2]})
	createReplicated(t, c.cluster, topic, 1, map[string]*string{"min.insync.replicas": strp("2")})
	leader := leaderOf(c.cluster, topic, 0)
	fi := (leaderIndex(c.cluster, leader) + 1) % 3
	follower := c.nodes[fi]

	cl := newClient(t, leader, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	produce := func(from, to int) {
		t.Helper()
		ctx := testCtx(t, 30*time.Second)
		for i := from; i < to; i += 10 {
			var recs []*kgo.Record
			for k := i; k < min(i+10, to); k++ {
				recs = append(recs, &kgo.Record{Partition: 0, Value: []byte(fmt.Sprintf("v-%d", k))})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}
	produce(0, 300)
	st, _ := follower.Replica(topic, 0)
	dir := st.Dir

	// The follower crashes: what it fsynced survives, on which the flip
	// happens while it is down.
	crashed := mems[fi].CrashClone()
	follower.Close()
	bad := flipInMiddleBatch(t, crashed, dir)
	t.Logf("node %d crashed; flipped a byte of its batch at offset %d", fi+1, bad)
	produce(300, 400)

	c.fss[fi] = crashed
	back, err := c.startNodeOn(fi)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	c.nodes[fi] = back
	checkFor(t, "the follower to rejoin the ISR", func() bool { return len(isrOf(t, leader, topic, 0)) == 3 })
	produce(400, 450)

	checkFor(t, "the follower's log to equal the leader's", func() bool {
		fst, _ := back.Replica(topic, 0)
		cur, _ := leader.Replica(topic, 0)
		if fst.LogEndOffset != cur.LogEndOffset {
			return false
		}
		return bytes.Equal(memSegmentBytes(t, crashed, fst.Dir), memSegmentBytes(t, c.fss[leaderIndex(c.cluster, leader)], cur.Dir))
	})
	recs := consumePartitions(t, leader, topic, []int32{0}, 450)
	for i, r := range recs {
		if w := fmt.Sprintf("v-%d", i); string(r.Value) != w || r.Offset != int64(i) {
			t.Fatalf("record %d: %q at %d, want %q", i, r.Value, r.Offset, w)
		}
	}
}
