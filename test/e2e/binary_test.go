package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// gregorBin is the binary built once by TestMain.
var gregorBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gregor-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	gregorBin = filepath.Join(dir, "gregor")
	build := exec.Command("go", "build", "-o", gregorBin, "github.com/gregor-dev/gregor/cmd/gregor")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building gregor:", err)
		return 1
	}
	return m.Run()
}

// proc is one running gregor process.
type proc struct {
	cmd       *exec.Cmd
	dataDir   string
	kafkaAddr string
	httpAddr  string
	exited    chan struct{} // closed once Wait returned
	exitErr   error
	started   chan [2]string // the Kafka and HTTP addresses, once logged

	mu  sync.Mutex
	log strings.Builder
}

var startedRE = regexp.MustCompile(`msg="gregor node started".* kafka=(\S+) .* http=(\S+)`)

// startBinary runs `gregor serve` on dataDir with free ports and waits until
// it logs that it started and /readyz answers 200. The process is killed
// when the test ends if it is still running.
func startBinary(t *testing.T, dataDir string, sets ...string) *proc {
	t.Helper()
	return startBinaryOn(t, dataDir, "127.0.0.1:0", sets...)
}

// startBinaryOn is startBinary with a given Kafka listen address, so a
// restarted broker can come back where its clients expect it.
func startBinaryOn(t *testing.T, dataDir, kafkaAddr string, sets ...string) *proc {
	t.Helper()
	args := []string{"serve", "--data-dir", dataDir, "--kafka-addr", kafkaAddr,
		"--controller-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	p := spawn(t, dataDir, args...)
	p.awaitStarted(t)
	waitReady(t, p)
	return p
}

// spawn starts `gregor` with args without waiting for it; the process is
// killed (by its PID) when the test ends if it is still running, and its log
// is printed if the test failed.
func spawn(t *testing.T, dataDir string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(gregorBin, args...), dataDir: dataDir, exited: make(chan struct{}),
		started: make(chan [2]string, 1)}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start gregor: %v", err)
	}
	started := p.started
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := startedRE.FindStringSubmatch(line); m != nil {
				select {
				case started <- [2]string{m[1], m[2]}:
				default:
				}
			}
		}
	}()
	go func() {
		<-scanDone // Wait closes the pipe: read it all first
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() || os.Getenv("GREGOR_TEST_LOG") != "" {
			t.Logf("gregor log (%s):\n%s", dataDir, p.logText())
		}
	})
	return p
}

// awaitStarted waits until p logs that it started and records its addresses.
func (p *proc) awaitStarted(t *testing.T) {
	t.Helper()
	select {
	case addrs := <-p.started:
		p.kafkaAddr, p.httpAddr = addrs[0], addrs[1]
	case <-p.exited:
		t.Fatalf("gregor exited before starting: %v\n%s", p.exitErr, p.logText())
	case <-time.After(30 * time.Second):
		t.Fatalf("gregor did not start within 30s\n%s", p.logText())
	}
}

func waitReady(t *testing.T, p *proc) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		resp, err := hc.Get("http://" + p.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 within 15s: %v", err)
		}
		select {
		case <-p.exited:
			t.Fatalf("gregor exited while waiting for /readyz: %v", p.exitErr)
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// stop sends SIGTERM and waits up to 20s for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.exited:
		if p.exitErr != nil {
			t.Fatalf("gregor exited with %v after SIGTERM\n%s", p.exitErr, p.logText())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("gregor did not exit within 20s of SIGTERM")
	}
}

func newClient(t *testing.T, p *proc, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(p.kafkaAddr), kgo.RetryTimeout(10 * time.Second)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func createTopic(t *testing.T, p *proc, name string, partitions int32, configs map[string]*string) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, p))
	resp, err := adm.CreateTopic(testCtx(t, 15*time.Second), partitions, 1, configs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %q: %v", name, err)
	}
}

// endOffsets lists the end offsets of a topic's partitions.
func endOffsets(t *testing.T, p *proc, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(newClient(t, p))
	lo, err := adm.ListEndOffsets(testCtx(t, 15*time.Second), topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset %s[%d]: %v", o.Topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// readAll reads every partition of topic from the start to its current end offset.
func readAll(t *testing.T, p *proc, topic string) []*kgo.Record {
	t.Helper()
	ends := endOffsets(t, p, topic)
	offs := map[int32]kgo.Offset{}
	want := 0
	for part, end := range ends {
		offs[part] = kgo.NewOffset().AtStart()
		want += int(end) // the start offset is 0: nothing is deleted in these tests
	}
	cl := newClient(t, p, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	ctx := testCtx(t, 30*time.Second)
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d of %d records before the deadline", topic, len(out), want)
		}
		fs.EachError(func(tp string, part int32, err error) { t.Fatalf("read %s[%d]: %v", tp, part, err) })
		out = append(out, fs.Records()...)
	}
	if len(out) != want {
		t.Fatalf("read %s: %d records, end offsets say %d", topic, len(out), want)
	}
	return out
}

// clientLog keeps a client's debug log and prints it if the test failed
// or GREGOR_TEST_LOG is set, as spawn does with the nodes' logs.
func clientLog(t *testing.T) kgo.Opt {
	var mu sync.Mutex
	var b strings.Builder
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("GREGOR_TEST_LOG") != "" {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("client log:\n%s", b.String())
		}
	})
	return kgo.WithLogger(kgo.BasicLogger(&lockedWriter{mu: &mu, w: &b}, kgo.LogLevelDebug,
		func() string { return time.Now().UTC().Format("15:04:05.000 ") }))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
