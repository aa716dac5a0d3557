package commitlog

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/record"
)

// fakeClock is an injectable Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// makeBatch builds a batch of n records with valueSize-byte values at ts.
func makeBatch(t testing.TB, n, valueSize int, ts int64) []byte {
	t.Helper()
	rs := make([]record.Record, n)
	for i := range rs {
		rs[i] = record.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: bytes.Repeat([]byte{'v'}, valueSize), TimestampDelta: int64(i)}
	}
	b, err := record.AppendBatch(nil, record.Batch{BaseTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Records: rs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openLog opens a log without fsyncs (fast on slow disks); see openLogFsync.
func openLog(t testing.TB, cfg Config) *Log {
	t.Helper()
	cfg.UnsafeNoFsync = true
	return openLogFsync(t, cfg)
}

func openLogFsync(t testing.TB, cfg Config) *Log {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	l, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// crash abandons l without the clean shutdown steps.
func crash(l *Log) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.closeSegments()
}

func mustAppend(t testing.TB, l *Log, b []byte, epoch int32) AppendInfo {
	t.Helper()
	info, err := l.Append(b, epoch, 0)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return info
}

// readAll returns the base offsets of every batch from the log start, after
// checking each batch's CRC.
func readAll(t testing.TB, l *Log) []int64 {
	t.Helper()
	var bases []int64
	err := l.ScanBatches(l.LogStartOffset(), func(b []byte) error {
		h, err := record.Validate(b)
		if err != nil {
			return err
		}
		if n := len(bases); n > 0 && h.BaseOffset <= bases[n-1] {
			return fmt.Errorf("offset %d after %d", h.BaseOffset, bases[n-1])
		}
		bases = append(bases, h.BaseOffset)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanBatches: %v", err)
	}
	return bases
}
