package chaos

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

var faultColor = map[string]string{
	"kill": "#e45756", "stop": "#f58518", "partition": "#4c78a8", "link": "#72b7b2", "corrupt": "#b279a2", "disk": "#9d755d", "crash": "#54a24b",
}

// writeReport writes report.md (the summary, every fault, every violation)
// and timeline.svg: acknowledged records per second and produce latency
// (p50, p99) per second, with each fault's window shaded in its kind's
// colour and its recovery hatched after it.
func writeReport(out string, res *result, rec *recorder, prof profile) error {
	rec.mu.Lock()
	prods := slices.Clone(rec.prods)
	rec.mu.Unlock()
	secs := 1
	for _, op := range prods {
		secs = max(secs, int(op.ret/time.Second)+1)
	}
	acks := make([]int, secs)
	lat := make([][]float64, secs)
	for _, op := range prods {
		if op.offset < 0 {
			continue
		}
		s := int(op.ret / time.Second)
		acks[s]++
		lat[s] = append(lat[s], float64(op.ret-op.call)/float64(time.Millisecond))
	}
	p50, p99 := make([]float64, secs), make([]float64, secs)
	for s, l := range lat {
		if len(l) == 0 {
			p50[s], p99[s] = math.NaN(), math.NaN()
			continue
		}
		slices.Sort(l)
		p50[s], p99[s] = l[len(l)/2], l[min(len(l)-1, len(l)*99/100)]
	}
	if err := os.WriteFile(filepath.Join(out, "timeline.svg"), []byte(timelineSVG(res, acks, p50, p99)), 0o644); err != nil {
		return err
	}

	// The history porcupine checked, for a closer look at a violation:
	// kind, call and answer (ns since the start), offset or high watermark.
	var h strings.Builder
	h.WriteString("op,call_ns,return_ns,offset_or_hw,producer,seq\n")
	for _, op := range prods {
		if op.p == linPartition {
			fmt.Fprintf(&h, "produce,%d,%d,%d,%d,%d\n", op.call, op.ret, op.offset, op.w, op.seq)
		}
	}
	rec.mu.Lock()
	for _, r := range rec.reads {
		fmt.Fprintf(&h, "hw,%d,%d,%d,,\n", r.call, r.ret, r.hw)
	}
	rec.mu.Unlock()
	if err := os.WriteFile(filepath.Join(out, "history-p0.csv"), []byte(h.String()), 0o644); err != nil {
		return err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# Chaos run, seed %d\n\n", res.seed)
	fmt.Fprintf(&b, "```\n%s\n```\n\n", res.summary())
	fmt.Fprintf(&b, "Profile: %v of faults (at least %d faults and %d acknowledged records), %d records/s offered.\n\n",
		prof.duration, prof.faults, prof.records, prof.rate)
	fmt.Fprintf(&b, "![timeline](timeline.svg)\n\n")
	fmt.Fprintf(&b, "- produces answered with an error (outcome unknown): %d, of which %d are in the log\n", res.failed, res.writtenFailed)
	if res.groupJoins > 0 {
		fmt.Fprintf(&b, "- consumer groups (classic and KIP-848): %d members joined over the run, %d partition commits succeeded\n", res.groupJoins, res.groupCommits)
	}
	fmt.Fprintf(&b, "- transactional chain: %s\n", orNone(res.txn))
	fmt.Fprintf(&b, "- porcupine: %s\n", res.linearizable)
	fmt.Fprintf(&b, "- writes on every partition %.1fs after the last heal\n", res.finalRecovery.Seconds())
	fmt.Fprintf(&b, "\n## Violations\n\n")
	if len(res.violations) == 0 {
		b.WriteString("None.\n")
	}
	for _, v := range res.violations {
		fmt.Fprintf(&b, "- %s\n", v)
	}
	fmt.Fprintf(&b, "\n## Faults\n\n| # | start s | heal s | recovery s | kind | what |\n|---|---|---|---|---|---|\n")
	for _, f := range res.faults {
		fmt.Fprintf(&b, "| %d | %.1f | %.1f | %.1f | %s | %s |\n", f.n, f.start.Seconds(), f.heal.Seconds(), f.recovery.Seconds(), f.kind, f.desc)
	}
	fmt.Fprintf(&b, "\n## Notes\n\n")
	for _, n := range res.notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return os.WriteFile(filepath.Join(out, "report.md"), []byte(b.String()), 0o644)
}

func orNone(s string) string {
	if s == "" {
		return "not run"
	}
	return s
}

// timelineSVG draws two panels sharing the time axis.
func timelineSVG(res *result, acks []int, p50, p99 []float64) string {
	const (
		w, left, right = 1200, 60, 20
		top1, h1       = 44, 200 // throughput panel
		top2, h2       = 290, 200
		height         = 540
	)
	secs := len(acks)
	x := func(s float64) float64 { return left + s*float64(w-left-right)/float64(max(secs, 1)) }
	maxAck := 1
	for _, a := range acks {
		maxAck = max(maxAck, a)
	}
	maxLat := 1.0
	for _, l := range p99 {
		if !math.IsNaN(l) {
			maxLat = max(maxLat, l)
		}
	}
	// Latency on a log scale from 1 ms.
	ly := func(ms float64) float64 {
		return top2 + h2 - h2*math.Log10(max(ms, 1))/math.Log10(max(maxLat, 10))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	// The summary, wrapped at a comma near 150 characters.
	sum, y := res.summary(), 16
	for len(sum) > 0 {
		cut := len(sum)
		if cut > 150 {
			cut = strings.LastIndex(sum[:150], ", ") + 2
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13">%s</text>`+"\n", left, y, xmlEscape(sum[:cut]))
		sum, y = sum[cut:], y+16
	}
	for _, f := range res.faults {
		x0, x1 := x(f.start.Seconds()), x(f.heal.Seconds())
		col := faultColor[f.kind]
		for _, top := range []int{top1, top2} {
			h := h1
			if top == top2 {
				h = h2
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="0.25"><title>%s</title></rect>`+"\n",
				x0, top, max(x1-x0, 1), h, col, xmlEscape(fmt.Sprintf("#%d %s", f.n, f.desc)))
			if f.recovery > 0 {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="0.08"/>`+"\n",
					x1, top, max(x(f.heal.Seconds()+f.recovery.Seconds())-x1, 1), h, col)
			}
		}
	}
	// Axes.
	for _, p := range [][2]int{{top1, h1}, {top2, h2}} {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", left, p[0], w-left-right, p[1])
	}
	step := max(10, (secs/12+9)/10*10)
	for s := 0; s <= secs; s += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%ds</text>`+"\n", x(float64(s)), top2+h2+16, s)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d">acknowledged records/s (max %d)</text>`+"\n", left+4, top1+14, maxAck)
	fmt.Fprintf(&b, `<text x="%d" y="%d">produce latency, ms, log scale: p50 (blue), p99 (red); max p99 %.0f ms</text>`+"\n", left+4, top2+14, maxLat)
	fmt.Fprintf(&b, `<text x="4" y="%d">0</text><text x="4" y="%d">%d</text>`+"\n", top1+h1, top1+10, maxAck)
	for ms := 1.0; ms <= max(maxLat, 10); ms *= 10 {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="4" y="%.1f">%g ms</text>`+"\n",
			left, w-right, ly(ms), ly(ms), ly(ms)+4, ms)
	}
	// Throughput.
	var pts []string
	for s, a := range acks {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(s)+0.5), float64(top1+h1)-float64(h1)*float64(a)/float64(maxAck)))
	}
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#333" stroke-width="1" points="%s"/>`+"\n", strings.Join(pts, " "))
	// Latency.
	for _, l := range []struct {
		v   []float64
		col string
	}{{p50, "#1f77b4"}, {p99, "#d62728"}} {
		var seg []string
		flush := func() {
			if len(seg) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1" points="%s"/>`+"\n", l.col, strings.Join(seg, " "))
			}
			seg = nil
		}
		for s, v := range l.v {
			if math.IsNaN(v) {
				flush()
				continue
			}
			seg = append(seg, fmt.Sprintf("%.1f,%.1f", x(float64(s)+0.5), ly(v)))
		}
		flush()
	}
	// Legend.
	lx := left
	for _, k := range faultKinds {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s" fill-opacity="0.5"/><text x="%d" y="%d">%s</text>`+"\n",
			lx, height-16, faultColor[k], lx+16, height-6, k)
		lx += 100
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
