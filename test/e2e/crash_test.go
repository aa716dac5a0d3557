package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	crashProducers  = 4
	crashPartitions = 4
)

// value encodes producer and sequence so order and duplicates can be checked.
func value(producer, seq int) []byte { return []byte(fmt.Sprintf("p%d-%08d", producer, seq)) }

func parseValue(t *testing.T, v []byte) (producer, seq int) {
	t.Helper()
	if _, err := fmt.Sscanf(string(v), "p%d-%d", &producer, &seq); err != nil {
		t.Fatalf("unparsable value %q: %v", v, err)
	}
	return producer, seq
}

// produceUntilKilled runs idempotent acks=all producers until the broker is
// killed after runFor, and returns which values were acknowledged.
func produceUntilKilled(t *testing.T, p *proc, topic string, runFor time.Duration) map[string]bool {
	t.Helper()
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clients := make([]*kgo.Client, crashProducers)
	for i := range clients {
		clients[i] = newClient(t, p, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(time.Millisecond),
			kgo.RecordDeliveryTimeout(5*time.Second), kgo.MaxBufferedRecords(2000))
	}
	for i, cl := range clients {
		wg.Go(func() {
			for seq := 0; ctx.Err() == nil; seq++ {
				v := value(i, seq)
				r := &kgo.Record{Value: v, Partition: int32(seq % crashPartitions)}
				cl.Produce(ctx, r, func(r *kgo.Record, err error) {
					if err == nil {
						mu.Lock()
						acked[string(r.Value)] = true
						mu.Unlock()
					}
				})
			}
		})
	}
	// Let the producers run, then pull the plug mid-stream.
	time.Sleep(runFor)
	p.kill()
	cancel()
	wg.Wait()
	for _, cl := range clients {
		cl.Close() // fails what is still buffered: those were never acknowledged
	}
	mu.Lock()
	defer mu.Unlock()
	out := make(map[string]bool, len(acked))
	for k := range acked {
		out[k] = true
	}
	return out
}

// checkLog verifies every acknowledged value is present exactly once and
// each producer's values are in increasing order within a partition.
func checkLog(t *testing.T, recs []*kgo.Record, acked map[string]bool, partitions int) {
	t.Helper()
	seen := map[string]int64{}
	last := map[[2]int]int{} // producer, partition -> last seq
	for _, r := range recs {
		v := string(r.Value)
		if off, dup := seen[v]; dup {
			t.Errorf("value %s at offsets %d and %d of partition %d", v, off, r.Offset, r.Partition)
		}
		seen[v] = r.Offset
		prod, seq := parseValue(t, r.Value)
		if int32(seq%partitions) != r.Partition {
			t.Errorf("value %s in partition %d", v, r.Partition)
		}
		k := [2]int{prod, int(r.Partition)}
		if prev, ok := last[k]; ok && seq <= prev {
			t.Errorf("producer %d partition %d: seq %d after %d", prod, r.Partition, seq, prev)
		}
		last[k] = seq
	}
	var missing []string
	for v := range acked {
		if _, ok := seen[v]; !ok {
			missing = append(missing, v)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%d acknowledged records lost after the crash (of %d acked, %d read), first: %v",
			len(missing), len(acked), len(recs), missing[:min(len(missing), 10)])
	}
}

func TestBinaryCrash(t *testing.T) {
	dir := t.TempDir()
	const topic = "crash"
	// Small segments: the crash also lands across segment rolls.
	p := startBinary(t, dir, "log.segment.bytes=262144")
	createTopic(t, p, topic, crashPartitions, nil)
	acked := produceUntilKilled(t, p, topic, 1500*time.Millisecond)
	if len(acked) == 0 {
		t.Fatalf("no record acknowledged before the kill")
	}
	t.Logf("%d records acknowledged before kill -9", len(acked))

	p2 := startBinary(t, dir, "log.segment.bytes=262144")
	recs := readAll(t, p2, topic)
	checkLog(t, recs, acked, crashPartitions)
	segs, _ := filepath.Glob(filepath.Join(dir, topic+"-0", "*.log"))
	t.Logf("%d records read back, %d segments in partition 0", len(recs), len(segs))

	// Reads from the middle of each partition start at the asked offset:
	// the offset index is consistent with the recovered log.
	ends0 := endOffsets(t, p2, topic)
	for part, end := range ends0 {
		mid := end / 2
		cl := newClient(t, p2, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().At(mid)}}))
		fs := cl.PollFetches(testCtx(t, 10*time.Second))
		if err := fs.Err(); err != nil {
			t.Fatalf("read %s[%d] at %d: %v", topic, part, mid, err)
		}
		if recs := fs.Records(); len(recs) == 0 || recs[0].Offset != mid {
			t.Fatalf("read %s[%d] at %d: first record %v", topic, part, mid, recs)
		}
		cl.Close()
	}

	// The broker takes new writes, from new idempotent producers too.
	cl := newClient(t, p2, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ends := endOffsets(t, p2, topic)
	for part := range int32(crashPartitions) {
		r := &kgo.Record{Value: value(99, int(part)), Partition: part}
		if err := cl.ProduceSync(testCtx(t, 15*time.Second), r).FirstErr(); err != nil {
			t.Fatalf("produce after restart: %v", err)
		}
		if r.Offset != ends[part] {
			t.Fatalf("partition %d: new record at %d, end offset was %d", part, r.Offset, ends[part])
		}
	}
}

func TestBinaryCleanRestart(t *testing.T) {
	dir := t.TempDir()
	const topic = "clean"
	p := startBinary(t, dir, "num.partitions=2")
	createTopic(t, p, topic, 3, map[string]*string{"retention.ms": strp("3600000"), "cleanup.policy": strp("delete")})
	cl := newClient(t, p, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var sent []*kgo.Record
	for i := range 300 {
		sent = append(sent, &kgo.Record{Value: value(0, i), Partition: int32(i % 3)})
	}
	if err := cl.ProduceSync(testCtx(t, 15*time.Second), sent...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cl.Close()
	p.stop(t)
	// A requested shutdown is not an error.
	for _, line := range strings.Split(p.logText(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("clean SIGTERM shutdown logged an error: %s", line)
		}
	}

	p2 := startBinary(t, dir, "num.partitions=2")
	recs := readAll(t, p2, topic)
	if len(recs) != len(sent) {
		t.Fatalf("%d records after a clean restart, want %d", len(recs), len(sent))
	}
	acked := map[string]bool{}
	for _, r := range sent {
		acked[string(r.Value)] = true
	}
	checkLog(t, recs, acked, 3)
	adm := kadm.NewClient(newClient(t, p2))
	rcs, err := adm.DescribeTopicConfigs(testCtx(t, 10*time.Second), topic)
	if err != nil || len(rcs) != 1 || rcs[0].Err != nil {
		t.Fatalf("describe configs: %v %+v", err, rcs)
	}
	for _, c := range rcs[0].Configs {
		if c.Key == "retention.ms" && (c.MaybeValue() != "3600000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig) {
			t.Errorf("retention.ms after restart: %q (%v)", c.MaybeValue(), c.Source)
		}
	}
	// A clean shutdown leaves nothing to recover.
	for _, bad := range []string{"truncating torn tail", "rebuilding index", "closed segment damaged"} {
		if strings.Contains(p2.logText(), bad) {
			t.Errorf("log after a clean restart shows %q", bad)
		}
	}
}

// TestBinaryTornTail damages the tail of the active segment after a kill -9
// in the ways a crash can (garbage appended, a header claiming a huge
// length, a batch cut short) and checks the broker keeps the valid prefix and
// appends after it.
func TestBinaryTornTail(t *testing.T) {
	hugeHeader := make([]byte, 61)
	binary.BigEndian.PutUint64(hugeHeader[0:], 1000)  // base offset
	binary.BigEndian.PutUint32(hugeHeader[8:], 1<<30) // batch length: 1 GiB
	binary.BigEndian.PutUint32(hugeHeader[12:], 0)    // leader epoch
	hugeHeader[16] = 2                                // magic
	cases := []struct {
		name     string
		damage   func(t *testing.T, path string)
		lostRecs int // records of the last batch(es) that cannot survive
	}{
		{"garbage appended", func(t *testing.T, path string) {
			appendFile(t, path, append(bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 30), 0, 0, 0))
		}, 0},
		{"huge length header appended", func(t *testing.T, path string) { appendFile(t, path, hugeHeader) }, 0},
		{"zeros appended", func(t *testing.T, path string) { appendFile(t, path, make([]byte, 4096)) }, 0},
		{"last batch cut short", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()-7); err != nil {
				t.Fatal(err)
			}
		}, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			const topic = "torn"
			p := startBinary(t, dir)
			createTopic(t, p, topic, 1, nil)
			cl := newClient(t, p, kgo.DefaultProduceTopic(topic))
			var sent []*kgo.Record
			for i := range 100 {
				r := &kgo.Record{Value: value(0, i)}
				sent = append(sent, r)
				if i%10 == 9 { // ten batches of ten records
					if err := cl.ProduceSync(testCtx(t, 15*time.Second), sent[i-9:]...).FirstErr(); err != nil {
						t.Fatalf("produce: %v", err)
					}
				}
			}
			cl.Close()
			p.kill()

			segs, err := filepath.Glob(filepath.Join(dir, topic+"-0", "*.log"))
			if err != nil || len(segs) == 0 {
				t.Fatalf("no segment files for %s-0: %v", topic, err)
			}
			sort.Strings(segs)
			c.damage(t, segs[len(segs)-1])

			p2 := startBinary(t, dir)
			keep := len(sent) - c.lostRecs
			recs := readAll(t, p2, topic)
			if len(recs) != keep {
				t.Fatalf("%d records after the damage, want %d", len(recs), keep)
			}
			for i, r := range recs {
				if !bytes.Equal(r.Value, sent[i].Value) || r.Offset != int64(i) {
					t.Fatalf("record %d: offset %d value %q", i, r.Offset, r.Value)
				}
			}
			if !strings.Contains(p2.logText(), "truncating torn tail") {
				t.Errorf("no torn-tail truncation logged")
			}
			cl2 := newClient(t, p2, kgo.DefaultProduceTopic(topic))
			more := &kgo.Record{Value: value(1, 0)}
			if err := cl2.ProduceSync(testCtx(t, 15*time.Second), more).FirstErr(); err != nil {
				t.Fatalf("produce after recovery: %v", err)
			}
			if more.Offset != int64(keep) {
				t.Fatalf("append after recovery at offset %d, want %d", more.Offset, keep)
			}
			recs = readAll(t, p2, topic)
			if len(recs) != keep+1 || !bytes.Equal(recs[keep].Value, more.Value) {
				t.Fatalf("after appending: %d records, want %d", len(recs), keep+1)
			}
		})
	}
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func strp(s string) *string { return &s }
