package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func TestE2ECLIBenchKfake(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	tests := []struct {
		name     string
		args     []string
		code     int
		wantJSON string // mode in the JSON line; "" for none
		stderr   string
	}{
		{"produce json", []string{"--json", "bench", "produce", "--topic", "cb", "--partitions", "2", "--records", "500", "--size", "50"}, ExitOK, "produce", "produce cb: 500 records"},
		{"e2e json", []string{"--json", "bench", "e2e", "--topic", "cb", "--records", "300", "--rate", "5000", "--producers", "2"}, ExitOK, "e2e", "end-to-end"},
		{"consume", []string{"bench", "consume", "--topic", "cb", "--records", "100000"}, ExitOK, "", ""},
		{"bad acks", []string{"bench", "produce", "--acks", "2"}, ExitUsage, "", "acks"},
		{"e2e too small", []string{"bench", "e2e", "--size", "4"}, ExitUsage, "", "--size"},
		{"bad progress", []string{"bench", "produce", "--progress", "sometimes"}, ExitUsage, "", "--progress"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, ctx, addr, "", tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", r.code, tc.code, r)
			}
			if tc.stderr != "" && !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("stderr lacks %q\n%s", tc.stderr, r)
			}
			if tc.wantJSON != "" {
				var res struct {
					Mode    string  `json:"mode"`
					Records int64   `json:"records"`
					Rate    float64 `json:"records_per_sec"`
				}
				if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Mode != tc.wantJSON || res.Records == 0 || res.Rate <= 0 {
					t.Fatalf("JSON line %+v, %v\n%s", res, err, r)
				}
			}
		})
	}
	// The consume run reads everything the two produce runs wrote.
	r := runCLI(t, ctx, addr, "", "bench", "consume", "--topic", "cb", "--progress", "never")
	if r.code != ExitOK || !strings.Contains(r.stdout, "800 records") {
		t.Fatalf("consume all:\n%s", r)
	}
}
