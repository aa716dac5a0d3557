package bench

import (
	"testing"
	"time"
)

func TestBenchSchedule(t *testing.T) {
	start := time.Unix(1000, 0)
	tests := []struct {
		name string
		rate float64
		i    int64
		want time.Duration
	}{
		{"unthrottled", 0, 12345, 0},
		{"first record at start", 1000, 0, 0},
		{"1k/s", 1000, 1, time.Millisecond},
		{"50k/s", 50000, 50000, time.Second},
		{"50k/s tenth", 50000, 5, 100 * time.Microsecond},
		{"fractional rate", 3, 1, time.Second / 3},
		{"10s at 50k/s", 50000, 499999, 10*time.Second - 20*time.Microsecond},
		{"large index", 1e6, 3_600_000_000, time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Schedule{Start: start, Rate: tc.rate}
			if got := s.Offset(tc.i); got != tc.want {
				t.Fatalf("Offset(%d) = %v, want %v", tc.i, got, tc.want)
			}
			if got := s.Intended(tc.i); !got.Equal(start.Add(tc.want)) {
				t.Fatalf("Intended(%d) = %v, want %v", tc.i, got, start.Add(tc.want))
			}
		})
	}
}

func TestBenchScheduleDue(t *testing.T) {
	start := time.Unix(1000, 0)
	tests := []struct {
		name  string
		rate  float64
		after time.Duration
		limit int64
		want  int64
	}{
		{"before start", 100, -time.Second, 1000, 0},
		{"at start record 0 is due", 100, 0, 1000, 1},
		{"just before second", 100, 9 * time.Millisecond, 1000, 1},
		{"at second", 100, 10 * time.Millisecond, 1000, 2},
		{"one second", 100, time.Second, 1000, 101},
		{"capped", 100, time.Hour, 1000, 1000},
		{"unthrottled", 0, 0, 77, 77},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Schedule{Start: start, Rate: tc.rate}
			if got := s.Due(start.Add(tc.after), tc.limit); got != tc.want {
				t.Fatalf("Due = %d, want %d", got, tc.want)
			}
			// Consistency with Intended: every due record's time has come.
			for i := range min(tc.want, 5) {
				if s.Rate > 0 && s.Intended(i).After(start.Add(tc.after)) {
					t.Fatalf("record %d counted due before its time", i)
				}
			}
		})
	}
}

func TestBenchProgressLine(t *testing.T) {
	got := progressLine(500, 500<<20/1000, 1000, time.Second, time.Minute)
	want := "500/1000 records  500 rec/s  0.50 MiB/s  elapsed 1s  ETA 1s"
	if got != want {
		t.Fatalf("progressLine = %q, want %q", got, want)
	}
}
