package chaos

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The producer workload writes to logTopic: every record's value names its
// producer, partition and a per-(producer, partition) sequence number, so
// the checker knows what each offset must hold.
const (
	logTopic      = "chaos-log"
	logPartitions = 6
	producers     = 3
	valueSize     = 100
	linPartition  = 0 // the partition whose history porcupine checks
)

// recID packs a record's producer and sequence (the partition is where it
// is); 0 means "nothing known".
func recID(w int, seq int64) uint64 { return 1<<63 | uint64(w)<<40 | uint64(seq) }

func splitID(id uint64) (w int, seq int64) {
	return int(id >> 40 & 0xffff), int64(id & (1<<40 - 1))
}

func encodeValue(w int, p int32, seq int64) []byte {
	v := make([]byte, valueSize)
	n := copy(v, fmt.Sprintf("%d/%d/%d/", w, p, seq))
	for i := n; i < len(v); i++ {
		v[i] = 'x'
	}
	return v
}

// decodeValue parses a value; ok is false for anything the workload did
// not write (or wrote to another partition).
func decodeValue(v []byte, p int32) (uint64, bool) {
	f := strings.SplitN(string(v), "/", 4)
	if len(f) != 4 {
		return 0, false
	}
	w, err1 := strconv.Atoi(f[0])
	pp, err2 := strconv.Atoi(f[1])
	seq, err3 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || int32(pp) != p || w < 0 || w > 0xffff || seq < 0 {
		return 0, false
	}
	return recID(w, seq), true
}

// prodOp is one produce: when it was called and answered, relative to the
// run's start, and the offset acknowledged (-1: failed, outcome unknown).
type prodOp struct {
	w      int
	p      int32
	seq    int64
	call   time.Duration
	ret    time.Duration
	offset int64
}

// readOp is one high-watermark read of linPartition (ListOffsets latest).
type readOp struct {
	call, ret time.Duration
	hw        int64
}

// recorder collects everything the workloads observed.
type recorder struct {
	start time.Time

	mu    sync.Mutex
	prods []prodOp
	reads []readOp
	// seen[p][o] is what a live reader saw at offset o of partition p.
	seen       [logPartitions][]uint64
	conflicts  []string
	lastAck    [logPartitions]time.Duration // time of the latest ack per partition
	acked      atomic.Int64
	failedProd atomic.Int64
}

func newRecorder() *recorder { return &recorder{start: time.Now()} }

func (r *recorder) now() time.Duration { return time.Since(r.start) }

// observe notes that offset o of partition p holds id, whoever read it.
func (r *recorder) observe(p int32, o int64, id uint64, who string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seen[p]
	for int64(len(s)) <= o {
		s = append(s, 0)
	}
	if s[o] != 0 && s[o] != id {
		w1, q1 := splitID(s[o])
		w2, q2 := splitID(id)
		r.conflicts = append(r.conflicts, fmt.Sprintf("%s[%d]@%d: held %d/%d, %s saw %d/%d", logTopic, p, o, w1, q1, who, w2, q2))
	} else {
		s[o] = id
	}
	r.seen[p] = s
}

// lastAckAfter reports whether every partition had an ack answered after t.
func (r *recorder) ackedAllAfter(t time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.lastAck {
		if a <= t {
			return false
		}
	}
	return true
}

// proxyDialer sends a workload client's connections to a node through that
// node's toxiproxy proxy (nil map: direct).
func proxyDialer(proxies map[string]string) kgo.Opt {
	d := &net.Dialer{Timeout: 3 * time.Second}
	return kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		if p, ok := proxies[host]; ok {
			host = p
		}
		return d.DialContext(ctx, network, host)
	})
}

// runProducer writes to every partition in turn at rate records/s until
// ctx is done, then waits for every outstanding record's answer.
func runProducer(ctx context.Context, r *recorder, seeds []string, dial kgo.Opt, w int, rate int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), dial,
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordDeliveryTimeout(45*time.Second),
		kgo.MaxBufferedRecords(4000),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.RetryTimeout(30*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	var seq [logPartitions]int64
	var sent int64
	begin := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		due := int64(time.Since(begin).Seconds() * float64(rate))
		if due-sent > int64(rate) { // stalled for over a second: do not burst
			sent = due - int64(rate)
		}
		for ; sent < due && ctx.Err() == nil; sent++ {
			p := int32(sent % logPartitions)
			s := seq[p]
			seq[p]++
			rec := &kgo.Record{Topic: logTopic, Partition: p, Value: encodeValue(w, p, s)}
			call := r.now()
			cl.Produce(context.Background(), rec, func(rec *kgo.Record, err error) {
				op := prodOp{w: w, p: p, seq: s, call: call, ret: r.now(), offset: -1}
				if err == nil {
					op.offset = rec.Offset
					r.acked.Add(1)
				} else {
					r.failedProd.Add(1)
				}
				r.mu.Lock()
				r.prods = append(r.prods, op)
				if err == nil && op.ret > r.lastAck[p] {
					r.lastAck[p] = op.ret
				}
				r.mu.Unlock()
				if err == nil {
					r.observe(p, op.offset, recID(w, s), fmt.Sprintf("ack of producer %d", w))
				}
			})
		}
	}
	// Every record gets its answer (ack or error) before the checker runs.
	fctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	return cl.Flush(fctx)
}

// runReader consumes every partition of logTopic from the start until ctx
// is done, noting each record.
func runReader(ctx context.Context, r *recorder, seeds []string, dial kgo.Opt) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), dial, kgo.ConsumeTopics(logTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(rec *kgo.Record) {
			id, ok := decodeValue(rec.Value, rec.Partition)
			if !ok {
				r.mu.Lock()
				r.conflicts = append(r.conflicts, fmt.Sprintf("%s[%d]@%d: a value nobody wrote: %q", logTopic, rec.Partition, rec.Offset, rec.Value))
				r.mu.Unlock()
				return
			}
			r.observe(rec.Partition, rec.Offset, id, "the live reader")
		})
	}
	return nil
}

// runHWReader reads linPartition's high watermark (ListOffsets, latest) in
// a loop: with the produces of that partition it is the history porcupine
// checks. Failed reads are not operations.
func runHWReader(ctx context.Context, r *recorder, seeds []string, dial kgo.Opt) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), dial, kgo.RetryTimeout(2*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for ctx.Err() == nil {
		call := r.now()
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		lo, err := adm.ListEndOffsets(rctx, logTopic)
		cancel()
		ret := r.now()
		if err == nil {
			if o, ok := lo.Lookup(logTopic, linPartition); ok && o.Err == nil {
				r.mu.Lock()
				r.reads = append(r.reads, readOp{call: call, ret: ret, hw: o.Offset})
				r.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // read pacing
		}
	}
	return nil
}

// readAll reads every partition of topic from the start to its current end
// (the high watermark) with a fresh direct client, read_uncommitted, control
// records kept (so every offset below the end is reached) but not returned.
func readAll(ctx context.Context, seeds []string, topic string) (map[int32][]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RetryTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	cl.Close()
	if err != nil {
		return nil, err
	}
	want := map[int32]int64{}
	offsets := map[string]map[int32]kgo.Offset{topic: {}}
	ends.Each(func(o kadm.ListedOffset) {
		want[o.Partition] = o.Offset
		offsets[topic][o.Partition] = kgo.NewOffset().AtStart()
	})
	if err := ends.Error(); err != nil {
		return nil, err
	}
	cl, err = kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(offsets),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.KeepControlRecords())
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	out := map[int32][]*kgo.Record{}
	next := map[int32]int64{}
	done := func() bool {
		for p, e := range want {
			if next[p] < e {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return out, fmt.Errorf("read %s: %w (at %v of %v)", topic, ctx.Err(), next, want)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if rec.Offset < want[rec.Partition] {
				if !rec.Attrs.IsControl() {
					out[rec.Partition] = append(out[rec.Partition], rec)
				}
			}
			next[rec.Partition] = max(next[rec.Partition], rec.Offset+1)
		})
	}
	return out, nil
}
