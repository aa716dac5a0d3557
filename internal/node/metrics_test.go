package node_test

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregor-dev/gregor/internal/node"
)

// scrapeMetric reads one sample from the node's /metrics: the line that
// starts with series followed by a space (series includes its labels).
func scrapeMetric(t *testing.T, n *node.Node, series string) (float64, bool) {
	t.Helper()
	req, _ := http.NewRequestWithContext(testCtx(t, 10*time.Second), "GET", "http://"+n.HTTPAddr().String()+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", sc.Text(), err)
			}
			return f, true
		}
	}
	return 0, false
}

// TestE2EMetrics: the admin listener exposes request latencies per API and
// each partition's offsets, read at scrape time.
func TestE2EMetrics(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	createTopic(t, adm, "metrics", 1, nil)
	cl := newClient(t, n, kgo.DefaultProduceTopic("metrics"))
	for i := 0; i < 3; i++ {
		if err := cl.ProduceSync(testCtx(t, 10*time.Second), &kgo.Record{Value: []byte("m")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// A request is observed just after its response is written, so the
	// last one may land a moment after the client has its answer.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v, ok := scrapeMetric(t, n, `gregor_request_duration_seconds_count{api="Produce"}`)
		if ok && v >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("produce requests observed: %v (found %v), want >= 3", v, ok)
		}
	}
	if v, ok := scrapeMetric(t, n, `gregor_request_duration_seconds_count{api="Metadata"}`); !ok || v < 1 {
		t.Fatalf("metadata requests observed: %v (found %v)", v, ok)
	}
	if v, ok := scrapeMetric(t, n, `gregor_partition_log_end_offset{partition="0",topic="metrics"}`); !ok || v != 3 {
		t.Fatalf("log end offset metric: %v (found %v), want 3", v, ok)
	}
}
