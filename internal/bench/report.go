package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// WriteSummary prints the human-readable report.
func (r *Result) WriteSummary(w io.Writer) error {
	var err error
	pf := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, args...)
		}
	}
	each := "each"
	if r.Mode == ModeConsume {
		each = "mean"
	}
	pf("%s %s: %d records (%d B %s) in %s\n", r.Mode, r.Topic, r.Records, r.RecordSize, each, r.Elapsed.Round(time.Millisecond))
	pf("  throughput  %.0f records/s  %.2f MiB/s\n", r.RecordsPerSec, r.MiBPerSec)
	if r.Errors > 0 {
		pf("  errors      %d records failed\n", r.Errors)
	}
	if r.TargetRate > 0 {
		pf("  target rate %.0f records/s (latency from intended send time)\n", r.TargetRate)
	}
	for _, l := range []struct {
		name string
		s    *Summary
	}{{"produce", r.ProduceLatency}, {"end-to-end", r.E2ELatency}} {
		if l.s == nil {
			continue
		}
		pf("  %-10s  latency p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, n=%d)\n", l.name,
			fmtDur(l.s.P50), fmtDur(l.s.P90), fmtDur(l.s.P99), fmtDur(l.s.P999), fmtDur(l.s.Max), fmtDur(l.s.Mean), l.s.Count)
	}
	return err
}

// WriteJSON prints the result as one JSON line.
func (r *Result) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// fmtDur rounds a latency to three significant figures' worth of units.
func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}
