package bench

import (
	"fmt"
	"sync"
	"time"
)

// progressInterval is how often the live progress line is redrawn.
const progressInterval = 500 * time.Millisecond

// startProgress draws a progress line on cfg.Progress until the returned
// stop function is called; stop erases the line and waits for the drawing
// goroutine. It is safe to call stop more than once. With no cfg.Progress it
// starts nothing.
func startProgress(cfg Config, c *counters, total int64) (stop func()) {
	if cfg.Progress == nil {
		return func() {}
	}
	stopc := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() {
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-stopc:
				fmt.Fprint(cfg.Progress, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprint(cfg.Progress, "\r\033[K"+progressLine(c.records.Load(), c.bytes.Load(), total, time.Since(start), cfg.Duration))
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() { close(stopc); wg.Wait() })
	}
}

// progressLine formats one progress update. The ETA is the sooner of the
// record-count bound at the current rate and the duration bound.
func progressLine(records, bytes, total int64, elapsed, limit time.Duration) string {
	s := elapsed.Seconds()
	var rate, mib float64
	if s > 0 {
		rate = float64(records) / s
		mib = float64(bytes) / (1 << 20) / s
	}
	eta := limit - elapsed
	if rate > 0 && total > records {
		eta = min(eta, time.Duration(float64(total-records)/rate*float64(time.Second)))
	}
	eta = max(eta, 0)
	return fmt.Sprintf("%d/%d records  %.0f rec/s  %.2f MiB/s  elapsed %s  ETA %s",
		records, total, rate, mib, elapsed.Round(100*time.Millisecond), eta.Round(time.Second))
}
