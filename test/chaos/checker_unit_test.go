package chaos

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These run with plain `go test`: the checker's own parts, on made-up
// histories and logs, so a checker that cannot fail is caught here.

func TestCheckerLinearizability(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	prod := func(seq int64, call, ret int, off int64) prodOp {
		return prodOp{w: 0, p: linPartition, seq: seq, call: ms(call), ret: ms(ret), offset: off}
	}
	log := []uint64{recID(0, 0), recID(0, 1)}
	where := map[[2]uint64]int64{{linPartition, recID(0, 0)}: 0, {linPartition, recID(0, 1)}: 1}
	prods := []prodOp{prod(0, 0, 10, 0), prod(1, 20, 30, 1)}
	good := []readOp{{call: ms(5), ret: ms(6), hw: 0}, {call: ms(40), ret: ms(50), hw: 2}, {call: ms(60), ret: ms(70), hw: 2}}
	if got := checkLinearizable(prods, good, log, where); strings.HasPrefix(got, "NOT") {
		t.Errorf("a linearizable history: %s", got)
	}
	for name, reads := range map[string][]readOp{
		// The high watermark went back after an acknowledged write.
		"stale read": {{call: ms(40), ret: ms(50), hw: 2}, {call: ms(60), ret: ms(70), hw: 1}},
		// A read saw the second record before its produce was called.
		"read from the future": {{call: ms(12), ret: ms(15), hw: 2}},
	} {
		if got := checkLinearizable(prods, reads, log, where); !strings.HasPrefix(got, "NOT") {
			t.Errorf("%s: judged %q", name, got)
		}
		if why := explainLinearizability(prods, reads); name == "stale read" && (len(why) == 0 || !strings.HasPrefix(why[0], "stale read")) {
			t.Errorf("%s: explained as %q", name, why)
		}
	}
	// Offsets against real time: the produce answered first got the
	// higher offset.
	swapped := []prodOp{prod(0, 0, 10, 1), prod(1, 20, 30, 0)}
	if got := checkLinearizable(swapped, nil, log, map[[2]uint64]int64{{linPartition, recID(0, 0)}: 1, {linPartition, recID(0, 1)}: 0}); !strings.HasPrefix(got, "NOT") {
		t.Errorf("offsets against real time: judged %q", got)
	}
	// A failed produce whose record is in the log took effect some time
	// after its call.
	failed := []prodOp{prod(0, 0, 10, 0), {w: 0, p: linPartition, seq: 1, call: ms(20), ret: ms(25), offset: -1}}
	if got := checkLinearizable(failed, []readOp{{call: ms(100), ret: ms(110), hw: 2}}, log, where); strings.HasPrefix(got, "NOT") {
		t.Errorf("a failed produce that took effect: %s", got)
	}
}

// batch makes a fake record batch: the header fields the checker reads
// (base offset, length, last offset delta) and a filler body.
func batch(base int64, records int, fill byte) []byte {
	b := bytes.Repeat([]byte{fill}, 61+10*records)
	binary.BigEndian.PutUint64(b[0:], uint64(base))
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[23:], uint32(records-1))
	return b
}

func TestCheckerReplicaBytes(t *testing.T) {
	dir := t.TempDir()
	seg0 := append(batch(0, 2, 'a'), batch(2, 3, 'b')...)
	seg1 := append(batch(5, 1, 'c'), batch(6, 4, 'd')...)
	os.WriteFile(filepath.Join(dir, "00000000000000000000.log"), seg0, 0o644)
	os.WriteFile(filepath.Join(dir, "00000000000000000005.log"), append(seg1, 1, 2, 3), 0o644) // a torn tail
	got, upTo, err := batchesBelow(dir, 6)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(append([]byte{}, seg0...), batch(5, 1, 'c')...); !bytes.Equal(got, want) || upTo != 6 {
		t.Errorf("below 6: %d bytes up to %d, want %d bytes up to 6", len(got), upTo, len(want))
	}
	// The batch holding offsets 6-9 straddles a high watermark of 8: it is
	// not below it, so the replica only proves it holds up to 6.
	if _, upTo, _ := batchesBelow(dir, 8); upTo != 6 {
		t.Errorf("below 8: up to %d, want 6", upTo)
	}

	// flipTail damages the last complete batch of the newest segment only,
	// after its CRC field.
	what, err := flipTail(dir, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "00000000000000000005.log"))
	last := len(batch(5, 1, 'c'))
	for i := range seg1 {
		if after[i] != seg1[i] && (i < last+21) {
			t.Errorf("%s: byte %d changed, outside the last batch's body", what, i)
		}
	}
	if bytes.Equal(after[:len(seg1)], seg1) {
		t.Errorf("%s: nothing changed", what)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "00000000000000000000.log")); !bytes.Equal(b, seg0) {
		t.Error("an older segment changed")
	}
}

func TestCheckerValues(t *testing.T) {
	v := encodeValue(2, 5, 123456)
	if len(v) != valueSize {
		t.Fatalf("value of %d bytes", len(v))
	}
	id, ok := decodeValue(v, 5)
	if w, s := splitID(id); !ok || w != 2 || s != 123456 {
		t.Errorf("decoded %v: producer %d seq %d", ok, w, s)
	}
	if _, ok := decodeValue(v, 4); ok {
		t.Error("a value of partition 5 accepted in partition 4")
	}
	if _, ok := decodeValue([]byte("garbage"), 5); ok {
		t.Error("garbage accepted")
	}
}

func TestCheckerReport(t *testing.T) {
	rec := newRecorder()
	for i := range 3000 {
		call := time.Duration(i) * 10 * time.Millisecond
		off := int64(i)
		if i%100 == 7 {
			off = -1
		}
		rec.prods = append(rec.prods, prodOp{p: int32(i % logPartitions), seq: int64(i), call: call, ret: call + time.Duration(1+i%50)*time.Millisecond, offset: off})
	}
	res := &result{seed: 7, nodes: 3, faults: []fault{
		{n: 1, kind: "kill", desc: "kill -9 node 2 <leader>", start: 2 * time.Second, heal: 5 * time.Second, recovery: time.Second},
		{n: 2, kind: "partition", desc: "node 1 isolated", start: 9 * time.Second, heal: 14 * time.Second, recovery: 2 * time.Second},
	}}
	out := t.TempDir()
	if err := writeReport(out, res, rec, runProfile()); err != nil {
		t.Fatal(err)
	}
	svg, _ := os.ReadFile(filepath.Join(out, "timeline.svg"))
	d := xml.NewDecoder(bytes.NewReader(svg))
	rects := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("timeline.svg is not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	if rects < 4+2 { // a window and a recovery per fault and panel, at least
		t.Errorf("timeline.svg has %d rects", rects)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "chaos: 3 nodes, seed 7, 2 faults (kill 1, stop 0, partition 1") {
		t.Errorf("report.md lacks the summary:\n%s", md)
	}
}

// TestCheckerHistoryFile re-checks a saved history-p0.csv of a run
// (GREGOR_CHAOS_HISTORY=path), for a closer look at a violation.
func TestCheckerHistoryFile(t *testing.T) {
	path := os.Getenv("GREGOR_CHAOS_HISTORY")
	if path == "" {
		t.Skip("GREGOR_CHAOS_HISTORY names a history-p0.csv to re-check")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var prods []prodOp
	var reads []readOp
	where := map[[2]uint64]int64{}
	var log []uint64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
		f := strings.Split(line, ",")
		call, _ := strconv.ParseInt(f[1], 10, 64)
		ret, _ := strconv.ParseInt(f[2], 10, 64)
		v, _ := strconv.ParseInt(f[3], 10, 64)
		if f[0] == "hw" {
			reads = append(reads, readOp{call: time.Duration(call), ret: time.Duration(ret), hw: v})
			continue
		}
		w, _ := strconv.Atoi(f[4])
		seq, _ := strconv.ParseInt(f[5], 10, 64)
		prods = append(prods, prodOp{w: w, p: linPartition, seq: seq, call: time.Duration(call), ret: time.Duration(ret), offset: v})
		if v >= 0 {
			for int64(len(log)) <= v {
				log = append(log, 0)
			}
			log[v] = recID(w, seq)
			where[[2]uint64{linPartition, recID(w, seq)}] = v
		}
	}
	t.Logf("%d produces, %d reads: %s", len(prods), len(reads), checkLinearizable(prods, reads, log, where))
	for _, e := range explainLinearizability(prods, reads) {
		t.Log(e)
	}
}

func TestCheckerGroupOffsets(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	w := func(off int64, call, ret int) groupWrite {
		return groupWrite{offset: off, call: ms(call), ret: ms(ret), acked: true}
	}
	unknown := func(off int64, call int) groupWrite {
		return groupWrite{offset: off, call: ms(call), ret: unknownReturn}
	}
	r := func(off int64, call, ret int) groupRead { return groupRead{offset: off, call: ms(call), ret: ms(ret)} }
	cases := []struct {
		name   string
		writes []groupWrite
		reads  []groupRead
		bad    bool
	}{
		{"in order", []groupWrite{w(10, 0, 5), w(20, 10, 15)}, []groupRead{r(10, 6, 7), r(20, 16, 17)}, false},
		// Seed 545667's soak: two members committed 2758 and 2793 at
		// overlapping times and 2758 was applied last; reading 2758 after
		// 2787 is explained by that order.
		{"overlapping commits", []groupWrite{w(2787, 0, 5), w(2758, 1, 30), w(2793, 20, 25)},
			[]groupRead{r(2787, 6, 7), r(2758, 40, 41)}, false},
		// A commit whose answer was lost may take effect late.
		{"unknown outcome read late", []groupWrite{unknown(5, 0), w(10, 10, 15)}, []groupRead{r(10, 16, 17), r(5, 30, 31)}, false},
		// Bug 2: a stale coordinator served an offset acknowledged long
		// before a later commit.
		{"stale read", []groupWrite{w(10, 0, 5), w(20, 10, 15)}, []groupRead{r(20, 16, 17), r(10, 30, 31)}, true},
		{"stale first read", []groupWrite{w(10, 0, 5), w(20, 10, 15)}, []groupRead{r(10, 30, 31)}, true},
		// Bug 7: a dirty read of an unacknowledged write, then the old
		// value back.
		{"dirty read then back", []groupWrite{w(15543, 0, 5), unknown(17543, 10)},
			[]groupRead{r(15543, 6, 7), r(17543, 20, 21), r(15543, 30, 31)}, true},
		{"never written", []groupWrite{w(10, 0, 5)}, []groupRead{r(11, 6, 7)}, true},
		{"read before the commit was sent", []groupWrite{w(10, 20, 25)}, []groupRead{r(10, 6, 7)}, true},
	}
	for _, c := range cases {
		got := checkGroupOffsets(logTopic, 1, c.writes, c.reads)
		if (len(got) > 0) != c.bad {
			t.Errorf("%s: violations %q, want bad=%v", c.name, got, c.bad)
		}
	}
}

// TestCheckerGroupHistoryFile re-checks a saved group-history.csv
// (GREGOR_CHAOS_GROUP_HISTORY): commits answered ("commit"), of unknown
// outcome ("commit?", no return time) and offsets read ("read").
func TestCheckerGroupHistoryFile(t *testing.T) {
	path := os.Getenv("GREGOR_CHAOS_GROUP_HISTORY")
	if path == "" {
		t.Skip("GREGOR_CHAOS_GROUP_HISTORY names a group-history.csv to re-check")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writes := map[int32][]groupWrite{}
	reads := map[int32][]groupRead{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
		f := strings.Split(line, ",")
		call, _ := strconv.ParseInt(f[1], 10, 64)
		ret, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			ret = int64(unknownReturn)
		}
		p, _ := strconv.ParseInt(f[3], 10, 32)
		off, _ := strconv.ParseInt(f[4], 10, 64)
		switch f[0] {
		case "commit", "commit?":
			writes[int32(p)] = append(writes[int32(p)], groupWrite{offset: off, call: time.Duration(call), ret: time.Duration(ret), acked: f[0] == "commit"})
		case "read":
			reads[int32(p)] = append(reads[int32(p)], groupRead{offset: off, call: time.Duration(call), ret: time.Duration(ret)})
		}
	}
	n := 0
	for p := range int32(logPartitions) {
		for _, v := range checkGroupOffsets(logTopic, p, writes[p], reads[p]) {
			t.Error(v)
			n++
		}
	}
	t.Logf("%d violations", n)
}
