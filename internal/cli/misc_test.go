package cli

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestCLIFormat(t *testing.T) {
	rec := &kgo.Record{
		Topic: "t", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte("v"),
		Timestamp: time.UnixMilli(1700000000123),
		Headers:   []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}},
	}
	tests := []struct {
		format, want, wantErr string
	}{
		{format: "%v", want: "v\n"},
		{format: "%k=%v", want: "k=v\n"},
		{format: "%T/%p@%o %t", want: "t/2@41 1700000000123\n"},
		{format: "[%h]", want: "[a=1,b=2]\n"},
		{format: `100%% \t%v\n`, want: "100% \tv\n\n"},
		{format: `a\\b\x`, want: `a\b\x` + "\n"},
		{format: "", want: "\n"},
		{format: "%", wantErr: "lone"},
		{format: "%q", wantErr: "unknown directive %q"},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			f, err := compileFormat(tc.format)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			w := bufio.NewWriter(&b)
			f.render(w, rec)
			w.Flush()
			if b.String() != tc.want {
				t.Fatalf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
}

func TestCLIUsageAndOfflineErrors(t *testing.T) {
	// Nothing listens on port 1, so commands that reach the network fail
	// fast with a connection error.
	const deadAddr = "127.0.0.1:1"
	long := strings.Repeat("x", maxLineBytes+1) + "\n"
	tests := []struct {
		name     string
		addr     string
		stdin    string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{name: "no args prints help", args: nil, wantOut: "Available Commands"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: `unknown command "frobnicate"`},
		{name: "unknown flag", args: []string{"topic", "list", "--nope"}, wantCode: 2, wantErr: "unknown flag"},
		{name: "missing arg", args: []string{"produce"}, wantCode: 2, wantErr: "gregor produce --help"},
		{name: "bad header", args: []string{"produce", "t", "-H", "novalue"}, wantCode: 2, wantErr: "-H"},
		{name: "bad timestamp", args: []string{"consume", "t", "--timestamp", "yesterday"}, wantCode: 2, wantErr: "RFC3339"},
		{name: "bad -c", args: []string{"topic", "create", "t", "-c", "x"}, wantCode: 2, wantErr: "key=value"},
		{name: "empty brokers", args: []string{"-b", " ", "topic", "list"}, wantCode: 2, wantErr: "--brokers"},
		{
			name: "connection refused", addr: deadAddr, args: []string{"--timeout", "2s", "topic", "list"},
			wantCode: 1, wantErr: "hint: nothing is listening at " + deadAddr,
		},
		{
			name: "line too long", addr: deadAddr, stdin: long, args: []string{"produce", "t"},
			wantCode: 1, wantErr: "stdin line 1 is longer than",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.addr != "" {
				args = append([]string{"-b", tc.addr}, args...)
			}
			res := runCLI(t, context.Background(), "", tc.stdin, args...)
			if res.code != tc.wantCode || !strings.Contains(res.stdout, tc.wantOut) || !strings.Contains(res.stderr, tc.wantErr) {
				t.Fatalf("want exit %d, stdout %q, stderr %q; got %s", tc.wantCode, tc.wantOut, tc.wantErr, res)
			}
		})
	}
}

// TestE2ECLIKfakeProduceUnknownTopic is kfake-only: a real broker may
// auto-create the topic (auto.create.topics.enable).
func TestE2ECLIKfakeProduceUnknownTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	res := runCLI(t, context.Background(), c.ListenAddrs()[0], "a\n", "produce", "missing")
	if res.code != 1 || !strings.Contains(res.stderr, "error: produce to missing: UNKNOWN_TOPIC_OR_PARTITION") ||
		!strings.Contains(res.stderr, "gregor topic create") {
		t.Fatalf("got %s", res)
	}
}
