package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gregor-dev/gregor/internal/config"
)

// captureRunNode replaces RunNode for one test and returns the config it was
// called with. Tests using it must not run in parallel (RunNode is global).
func captureRunNode(t *testing.T, ret error) *config.Node {
	t.Helper()
	got := new(config.Node)
	old := RunNode
	RunNode = func(ctx context.Context, cfg config.Node, logger *slog.Logger) error {
		*got = cfg
		if logger == nil {
			t.Error("nil logger")
		}
		logger.Debug("debug line")
		logger.Info("info line")
		return ret
	}
	t.Cleanup(func() { RunNode = old })
	return got
}

func TestCLIServeConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	propsFile := filepath.Join(dir, "server.properties")
	props := `# test file
node.id=5
log.dirs=/from/file,/second
listeners=PLAINTEXT://localhost:19092,CONTROLLER://localhost:19093
num.partitions=3
log.retention.hours=\
  48
`
	if err := os.WriteFile(propsFile, []byte(props), 0o600); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(dir, "bad.properties")
	if err := os.WriteFile(badFile, []byte("a=1\nbroken line\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
		check      func(t *testing.T, n config.Node)
	}{
		{
			name: "defaults",
			args: []string{"serve"},
			check: func(t *testing.T, n config.Node) {
				def := config.DefaultNode()
				if n.NodeID != def.NodeID || n.DataDir != def.DataDir || n.KafkaAddr != def.KafkaAddr ||
					n.ControllerAddr != def.ControllerAddr || n.HTTPAddr != def.HTTPAddr || n.LogLevel != "info" || len(n.Props) != 0 {
					t.Fatalf("got %+v", n)
				}
			},
		},
		{
			name: "file",
			args: []string{"serve", "--config", propsFile},
			check: func(t *testing.T, n config.Node) {
				if n.NodeID != 5 || n.DataDir != "/from/file" || n.KafkaAddr != "localhost:19092" || n.ControllerAddr != "localhost:19093" {
					t.Fatalf("got %+v", n)
				}
				if n.Props["num.partitions"] != "3" || n.Props["log.retention.hours"] != "48" {
					t.Fatalf("props %v", n.Props)
				}
			},
		},
		{
			name: "set overrides file, flags override both",
			args: []string{"serve", "--config", propsFile, "--set", "num.partitions=4", "--set", "node.id=6",
				"--node-id", "9", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--log-level", "debug", "--advertised-addr", "b1:19092"},
			wantStderr: "debug line",
			check: func(t *testing.T, n config.Node) {
				if n.NodeID != 9 || n.DataDir != dir || n.HTTPAddr != "127.0.0.1:0" || n.LogLevel != "debug" || n.AdvertisedAddr != "b1:19092" {
					t.Fatalf("got %+v", n)
				}
				if n.KafkaAddr != "localhost:19092" || n.Props["num.partitions"] != "4" {
					t.Fatalf("file values lost: %+v", n)
				}
			},
		},
		{name: "malformed file", args: []string{"serve", "--config", badFile}, wantCode: 1, wantStderr: "line 2"},
		{name: "missing file", args: []string{"serve", "--config", filepath.Join(dir, "nope")}, wantCode: 1, wantStderr: "no such file"},
		{name: "invalid flag value", args: []string{"serve", "--kafka-addr", "nocolon"}, wantCode: 2, wantStderr: "kafka address"},
		{name: "invalid log level", args: []string{"serve", "--log-level", "loud"}, wantCode: 2, wantStderr: "log level"},
		{name: "bad --set", args: []string{"serve", "--set", "novalue"}, wantCode: 2, wantStderr: "key=value"},
		{name: "extra argument", args: []string{"serve", "now"}, wantCode: 2, wantStderr: "unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := captureRunNode(t, nil)
			res := runCLI(t, context.Background(), "", "", tc.args...)
			if res.code != tc.wantCode || !strings.Contains(res.stderr, tc.wantStderr) {
				t.Fatalf("want exit %d and stderr containing %q, got %s", tc.wantCode, tc.wantStderr, res)
			}
			if tc.check != nil {
				tc.check(t, *got)
			}
		})
	}
}

func TestCLIServeRunNodeOutcome(t *testing.T) {
	tests := []struct {
		name     string
		ret      error
		nilRun   bool
		wantCode int
		want     string
	}{
		{name: "clean stop", ret: nil, wantCode: 0, want: "info line"},
		{name: "cancelled", ret: context.Canceled, wantCode: 0},
		{name: "failure", ret: errors.New("boom"), wantCode: 1, want: "error: serve: boom"},
		{name: "not linked", nilRun: true, wantCode: 1, want: "no node implementation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			captureRunNode(t, tc.ret)
			if tc.nilRun {
				RunNode = nil
			}
			res := runCLI(t, context.Background(), "", "", "serve")
			if res.code != tc.wantCode || !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("want exit %d, stderr containing %q; got %s", tc.wantCode, tc.want, res)
			}
			if strings.Contains(res.stderr, "debug line") {
				t.Fatalf("debug logged at info level: %s", res)
			}
		})
	}
}
