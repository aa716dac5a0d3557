package chaos

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/twmb/franz-go/pkg/kadm"
)

// result is what the checker found.
type result struct {
	seed          int64
	nodes         int
	faults        []fault
	acked         int64
	failed        int64 // produces answered with an error (outcome unknown)
	writtenFailed int   // of those, found in the log
	lost          int
	duplicated    int
	inconsistent  int // offsets that held two values, whoever read them
	reordered     int // producer order broken
	abortedReads  int
	divergent     int // partitions whose replicas differ below the HW
	regressions   int // committed group offset reads no order of the commits explains
	groupCommits  int
	groupJoins    int
	txn           string // the transactional chain's outcome
	linearizable  string // porcupine's verdict
	finalRecovery time.Duration
	violations    []string
	notes         []string
}

// check reads everything back and counts violations. Every count above
// zero is also a violation line with the details.
func check(t *testing.T, c *cluster, adm *kadm.Client, rec *recorder, grps []*groupWorkload) *result {
	res := &result{acked: rec.acked.Load(), failed: rec.failedProd.Load()}
	violate := func(kind string, details []string) {
		const show = 10
		for i, d := range details {
			if i == show {
				res.violations = append(res.violations, fmt.Sprintf("%s: ... and %d more", kind, len(details)-show))
				break
			}
			res.violations = append(res.violations, kind+": "+d)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	final, err := readAll(ctx, c.seeds(), logTopic)
	if err != nil {
		res.violations = append(res.violations, fmt.Sprintf("final read of %s: %v", logTopic, err))
	}
	// finalIDs[p][o] is what the final read found at offset o.
	var finalIDs [logPartitions][]uint64
	for p, recs := range final {
		for _, r := range recs {
			id, ok := decodeValue(r.Value, p)
			if !ok {
				res.violations = append(res.violations, fmt.Sprintf("%s[%d]@%d holds a value nobody wrote: %q", logTopic, p, r.Offset, r.Value))
				continue
			}
			for int64(len(finalIDs[p])) <= r.Offset {
				finalIDs[p] = append(finalIDs[p], 0)
			}
			finalIDs[p][r.Offset] = id
			rec.observe(p, r.Offset, id, "the final read")
		}
	}

	rec.mu.Lock()
	prods := slices.Clone(rec.prods)
	conflicts := slices.Clone(rec.conflicts)
	reads := slices.Clone(rec.reads)
	rec.mu.Unlock()

	// No acknowledged record lost.
	var lost []string
	for _, op := range prods {
		if op.offset < 0 {
			continue
		}
		want := recID(op.w, op.seq)
		if op.offset >= int64(len(finalIDs[op.p])) || finalIDs[op.p][op.offset] != want {
			lost = append(lost, fmt.Sprintf("%s[%d]@%d: producer %d seq %d acknowledged at %.1fs", logTopic, op.p, op.offset, op.w, op.seq, op.ret.Seconds()))
		}
	}
	res.lost = len(lost)
	violate("lost", lost)

	// Failed produces may or may not be in the log; note how many are.
	where := map[[2]uint64]int64{} // (partition, id) -> offset in the final log
	var dups, order []string
	for p := range finalIDs {
		last := map[int]int64{} // producer -> last seq seen in offset order
		for o, id := range finalIDs[p] {
			if id == 0 {
				continue
			}
			if prev, ok := where[[2]uint64{uint64(p), id}]; ok {
				w, s := splitID(id)
				dups = append(dups, fmt.Sprintf("producer %d seq %d at %s[%d]@%d and @%d", w, s, logTopic, p, prev, o))
				continue
			}
			where[[2]uint64{uint64(p), id}] = int64(o)
			w, s := splitID(id)
			if l, ok := last[w]; ok && s <= l {
				order = append(order, fmt.Sprintf("%s[%d]@%d: producer %d seq %d after seq %d", logTopic, p, o, w, s, l))
			}
			last[w] = s
		}
	}
	res.duplicated = len(dups)
	violate("duplicated", dups)
	res.reordered = len(order)
	violate("producer order", order)
	for _, op := range prods {
		if op.offset < 0 {
			if _, ok := where[[2]uint64{uint64(op.p), recID(op.w, op.seq)}]; ok {
				res.writtenFailed++
			}
		}
	}
	res.inconsistent = len(conflicts)
	violate("one value per offset", conflicts)

	// Replicas byte-identical below the high watermark.
	div, notes := checkReplicas(ctx, c, adm)
	res.divergent = len(div)
	violate("divergent replicas", div)
	res.notes = append(res.notes, notes...)

	// Linearizability of one partition's produce and high-watermark history.
	res.linearizable = checkLinearizable(prods, reads, finalIDs[linPartition], where)
	if strings.HasPrefix(res.linearizable, "NOT") {
		res.violations = append(res.violations, "porcupine: "+res.linearizable)
		violate("porcupine, an anomaly of a simple shape", explainLinearizability(prods, reads))
	}

	for _, grp := range grps {
		bad := grp.checkOffsets()
		grp.mu.Lock()
		res.regressions += len(bad)
		res.groupCommits += grp.commits
		res.groupJoins += grp.joins
		violate(grp.name+": committed group offsets not explained by the commits", bad)
		for e, n := range grp.errs {
			res.notes = append(res.notes, fmt.Sprintf("%s: commit error %dx: %s", grp.name, n, e))
		}
		if grp.commits == 0 {
			res.violations = append(res.violations, grp.name+": no commit succeeded during the whole run")
		}
		grp.mu.Unlock()
	}
	return res
}

// checkReplicas waits until every partition of logTopic has its full ISR,
// then compares each node's log files batch by batch below the high
// watermark.
func checkReplicas(ctx context.Context, c *cluster, adm *kadm.Client) (div, notes []string) {
	deadline := time.Now().Add(90 * time.Second)
	var hws map[int32]int64
	replicas := map[int32][]int32{}
	for {
		md, err := adm.Metadata(ctx, logTopic)
		full := err == nil
		if err == nil {
			for _, p := range md.Topics[logTopic].Partitions {
				full = full && len(p.ISR) == len(p.Replicas) && p.Leader >= 1
				replicas[p.Partition] = p.Replicas
			}
		}
		if full {
			ends, err := adm.ListEndOffsets(ctx, logTopic)
			if err == nil && ends.Error() == nil {
				hws = map[int32]int64{}
				ends.Each(func(o kadm.ListedOffset) { hws[o.Partition] = o.Offset })
				break
			}
		}
		if time.Now().After(deadline) {
			return []string{fmt.Sprintf("the ISRs of %s did not all become full within 90s of the end (%v)", logTopic, err)}, nil
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
	// A follower may be a fetch behind the HW it reported: give each log a
	// moment to reach it.
	for p := int32(0); p < logPartitions; p++ {
		var ref []byte
		refNode := 0
		for _, n := range c.nodes {
			if !slices.Contains(replicas[p], int32(n.id)) {
				continue
			}
			dir := filepath.Join(n.dir, fmt.Sprintf("%s-%d", logTopic, p))
			var b []byte
			var upTo int64
			var err error
			for try := 0; ; try++ {
				b, upTo, err = batchesBelow(dir, hws[p])
				if (err == nil && upTo >= hws[p]) || try == 50 {
					break
				}
				time.Sleep(100 * time.Millisecond) // poll interval
			}
			if err != nil {
				div = append(div, fmt.Sprintf("%s[%d] on node %d: %v", logTopic, p, n.id, err))
				continue
			}
			if upTo < hws[p] {
				div = append(div, fmt.Sprintf("%s[%d] on node %d: its log ends at %d, below the high watermark %d", logTopic, p, n.id, upTo, hws[p]))
				continue
			}
			if ref == nil {
				ref, refNode = b, n.id
				continue
			}
			if !bytes.Equal(ref, b) {
				at := 0
				for at < len(ref) && at < len(b) && ref[at] == b[at] {
					at++
				}
				div = append(div, fmt.Sprintf("%s[%d]: node %d and node %d differ below the high watermark %d, first at byte %d of %d/%d",
					logTopic, p, refNode, n.id, hws[p], at, len(ref), len(b)))
			}
		}
		notes = append(notes, fmt.Sprintf("%s[%d]: replicas %v compared below the high watermark %d (%d bytes)", logTopic, p, replicas[p], hws[p], len(ref)))
	}
	return div, notes
}

// batchesBelow concatenates, in offset order, every batch of the log in dir
// whose last offset is below hw; upTo is the end offset of the batches
// found (reaching hw means the replica holds everything below it).
func batchesBelow(dir string, hw int64) ([]byte, int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	var out []byte
	var upTo int64 = -1
	for _, e := range ents { // sorted by name: 20-digit base offsets
		if !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, 0, err
		}
		for pos := 0; pos+61 <= len(b); {
			base := int64(binary.BigEndian.Uint64(b[pos:]))
			l := int(binary.BigEndian.Uint32(b[pos+8:]))
			if l < 49 || pos+12+l > len(b) {
				break
			}
			last := base + int64(int32(binary.BigEndian.Uint32(b[pos+23:])))
			if last < hw {
				out = append(out, b[pos:pos+12+l]...)
				upTo = max(upTo, last+1)
			}
			pos += 12 + l
		}
	}
	if upTo < 0 {
		upTo = 0
	}
	return out, upTo, nil
}

// The linearizability model of one partition: the state is the log's
// length (values at offsets are checked above, one per offset); a produce
// acknowledged at offset o takes effect when the length is o, and a
// high-watermark read returning h happens when the length is h.
type linIn struct {
	read bool
}

type linOut struct {
	offset int64 // produce: its offset; read: the high watermark
}

// checkLinearizable checks the history in windows of offsets (a window's
// restriction of a linearizable history is linearizable, with the window's
// base as the initial length), so the search stays small however long the
// run. Produces that failed but whose record is in the log happened at
// their offset some time after their call: they return at infinity.
func checkLinearizable(prods []prodOp, reads []readOp, log []uint64, where map[[2]uint64]int64) string {
	var ops []porcupine.Operation
	for _, op := range prods {
		if op.p != linPartition {
			continue
		}
		o, ret := op.offset, int64(op.ret)
		if o < 0 {
			at, ok := where[[2]uint64{linPartition, recID(op.w, op.seq)}]
			if !ok {
				continue // never took effect
			}
			o, ret = at, math.MaxInt64
		}
		ops = append(ops, porcupine.Operation{ClientId: op.w, Input: linIn{}, Call: int64(op.call), Output: linOut{o}, Return: ret})
	}
	for _, r := range reads {
		ops = append(ops, porcupine.Operation{ClientId: producers, Input: linIn{read: true}, Call: int64(r.call), Output: linOut{r.hw}, Return: int64(r.ret)})
	}
	const window = 1000
	end := int64(len(log))
	var bad []string
	unknown := 0
	windows := 0
	for base := int64(0); base < end; base += window {
		top := min(base+window, end)
		var w []porcupine.Operation
		for _, op := range ops {
			o := op.Output.(linOut).offset
			if op.Input.(linIn).read {
				if o >= base && o <= top {
					w = append(w, op)
				}
			} else if o >= base && o < top {
				w = append(w, op)
			}
		}
		sort.Slice(w, func(i, j int) bool { return w[i].Call < w[j].Call })
		b := base
		model := porcupine.Model{
			Init: func() interface{} { return b },
			Step: func(state, input, output interface{}) (bool, interface{}) {
				n := state.(int64)
				o := output.(linOut).offset
				if input.(linIn).read {
					return o == n, n
				}
				return o == n, n + 1
			},
			Equal: func(a, b interface{}) bool { return a.(int64) == b.(int64) },
		}
		windows++
		switch porcupine.CheckOperationsTimeout(model, w, 30*time.Second) {
		case porcupine.Illegal:
			bad = append(bad, fmt.Sprintf("offsets %d-%d", base, top))
		case porcupine.Unknown:
			unknown++
		}
	}
	if len(bad) > 0 {
		return fmt.Sprintf("NOT linearizable: %s[%d] in %d of %d windows: %s", logTopic, linPartition, len(bad), windows, strings.Join(bad, ", "))
	}
	if unknown > 0 {
		return fmt.Sprintf("linearizable in %d of %d windows, %d timed out (unknown)", windows-unknown, windows, unknown)
	}
	return fmt.Sprintf("linearizable (%d produces and %d high-watermark reads of %s[%d], %d windows)", countProds(ops), len(reads), logTopic, linPartition, windows)
}

func countProds(ops []porcupine.Operation) int {
	n := 0
	for _, op := range ops {
		if !op.Input.(linIn).read {
			n++
		}
	}
	return n
}

func (r *result) summary() string {
	kinds := map[string]int{}
	var maxRec time.Duration
	for _, f := range r.faults {
		kinds[f.kind]++
		maxRec = max(maxRec, f.recovery)
	}
	maxRec = max(maxRec, r.finalRecovery)
	var parts []string
	for _, k := range faultKinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, kinds[k]))
	}
	verdict := "ok"
	if len(r.violations) > 0 {
		verdict = fmt.Sprintf("FAILED, %d violations", len(r.violations))
	}
	return fmt.Sprintf("chaos: %d nodes, seed %d, %d faults (%s), %d acked, %d lost, %d duplicated, %d inconsistent offsets, %d reordered, %d aborted reads, %d divergent replicas, %d group offset regressions, max recovery %.1fs, %s",
		r.nodes, r.seed, len(r.faults), strings.Join(parts, ", "), r.acked, r.lost, r.duplicated, r.inconsistent, r.reordered, r.abortedReads, r.divergent, r.regressions, maxRec.Seconds(), verdict)
}

// explainLinearizability names the first anomalies of simple shapes in a
// history porcupine refused: a read whose high watermark is below one an
// earlier read returned (stale read), a read that misses a produce
// acknowledged before it was called, a read that saw a produce not yet
// called, and produces whose offsets go against real time.
func explainLinearizability(prods []prodOp, reads []readOp) []string {
	type done struct {
		ret  time.Duration
		val  int64 // offset+1 of a produce, or the hw of a read
		what string
	}
	var acked, readDone []done
	for _, op := range prods {
		if op.p == linPartition && op.offset >= 0 {
			acked = append(acked, done{op.ret, op.offset + 1, fmt.Sprintf("produce of producer %d seq %d acknowledged at offset %d [%.3fs-%.3fs]", op.w, op.seq, op.offset, op.call.Seconds(), op.ret.Seconds())})
		}
	}
	for _, r := range reads {
		readDone = append(readDone, done{r.ret, r.hw, fmt.Sprintf("read of high watermark %d [%.3fs-%.3fs]", r.hw, r.call.Seconds(), r.ret.Seconds())})
	}
	// prefixMax: for ops sorted by answer time, the op with the largest
	// value among those answered before t.
	prefix := func(ds []done) func(t time.Duration) (done, bool) {
		sort.Slice(ds, func(i, j int) bool { return ds[i].ret < ds[j].ret })
		best := make([]int, len(ds))
		for i := range ds {
			best[i] = i
			if i > 0 && ds[best[i-1]].val >= ds[i].val {
				best[i] = best[i-1]
			}
		}
		return func(t time.Duration) (done, bool) {
			n := sort.Search(len(ds), func(i int) bool { return ds[i].ret >= t })
			if n == 0 {
				return done{}, false
			}
			return ds[best[n-1]], true
		}
	}
	ackedBefore, readBefore := prefix(acked), prefix(readDone)
	var out []string
	for _, r := range reads {
		if d, ok := readBefore(r.call); ok && d.val > r.hw {
			out = append(out, fmt.Sprintf("stale read: read of high watermark %d [%.3fs-%.3fs] after a %s", r.hw, r.call.Seconds(), r.ret.Seconds(), d.what))
		}
		if d, ok := ackedBefore(r.call); ok && d.val > r.hw {
			out = append(out, fmt.Sprintf("read of high watermark %d [%.3fs-%.3fs] misses a %s", r.hw, r.call.Seconds(), r.ret.Seconds(), d.what))
		}
		if len(out) >= 5 {
			return out
		}
	}
	for _, op := range prods {
		if op.p != linPartition || op.offset < 0 {
			continue
		}
		if d, ok := ackedBefore(op.call); ok && d.val > op.offset+1 {
			out = append(out, fmt.Sprintf("produce at offset %d [%.3fs-%.3fs] called after a %s", op.offset, op.call.Seconds(), op.ret.Seconds(), d.what))
		}
		if len(out) >= 5 {
			break
		}
	}
	return out
}
