package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/testkit"
)

// localCluster is a running `gregor cluster local`.
type localCluster struct {
	base    int
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	mu      sync.Mutex
	stderr  bytes.Buffer
	summary struct {
		Size      int    `json:"size"`
		Started   int    `json:"started"`
		Bootstrap string `json:"bootstrap"`
		Nodes     []struct {
			ID    int      `json:"node_id"`
			PID   int      `json:"pid"`
			Kafka string   `json:"kafka"`
			Log   string   `json:"log"`
			Serve []string `json:"serve"`
		} `json:"nodes"`
		Restart []string `json:"restart"`
	}
}

func (lc *localCluster) stderrText() string {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.stderr.String()
}

func (lc *localCluster) Write(p []byte) (int, error) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.stderr.Write(p)
}

// startLocalCluster runs `gregor --json cluster local` on dir with args
// and waits for its JSON summary (printed once every node is ready). With
// base 0 it picks free ports below the ephemeral range (testkit.FreeRange:
// a killed node started again binds the same ones, which an outgoing
// connection could otherwise take meanwhile, as one did in a run), and a
// port taken between the probe and the
// bind makes it try another range; a restart passes the base it had, since
// the voters' addresses are part of the cluster's metadata.
func startLocalCluster(t *testing.T, dir string, base int, args ...string) *localCluster {
	t.Helper()
	pick := base == 0
	for attempt := 0; ; attempt++ {
		if pick {
			base = testkit.FreeRange(t, 9)
		}
		full := append([]string{"--json", "cluster", "local", "--data-dir", dir,
			"--base-port", strconv.Itoa(base), "--port-step", "3"}, args...)
		lc := &localCluster{base: base, cmd: exec.Command(gregorBin, full...), exited: make(chan struct{})}
		lc.cmd.Stderr = lc
		stdout, err := lc.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := lc.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		decoded := make(chan error, 1)
		go func() {
			decoded <- json.NewDecoder(stdout).Decode(&lc.summary)
			_, _ = bytes.NewBuffer(nil).ReadFrom(stdout) // drain until exit
			lc.exitErr = lc.cmd.Wait()
			close(lc.exited)
		}()
		t.Cleanup(func() {
			select {
			case <-lc.exited:
			default:
				lc.cmd.Process.Kill()
				<-lc.exited
			}
			if t.Failed() {
				t.Logf("cluster local stderr:\n%s", lc.stderrText())
				for i := 1; i <= 3; i++ {
					b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node-%d.log", i)))
					if len(b) > 6000 {
						b = b[len(b)-6000:]
					}
					t.Logf("node-%d.log (tail):\n%s", i, b)
				}
			}
		})
		if err := <-decoded; err == nil {
			t.Cleanup(func() {
				for _, n := range lc.summary.Nodes {
					if gone(n.PID) != nil {
						syscall.Kill(n.PID, syscall.SIGKILL)
					}
				}
			})
			return lc
		}
		<-lc.exited
		if pick && attempt < 3 && strings.Contains(lc.stderrText(), "not ready") {
			if b, err := os.ReadFile(filepath.Join(dir, "node-1.log")); err == nil && bytes.Contains(b, []byte("address already in use")) {
				os.RemoveAll(dir)
				continue
			}
		}
		t.Fatalf("cluster local exited before it was ready: %v\n%s", lc.exitErr, lc.stderrText())
	}
}

// gone reports whether pid no longer runs (a zombie no init reaped counts
// as gone).
func gone(pid int) error {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return nil
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
		return nil
	}
	return fmt.Errorf("pid %d still runs", pid)
}

// TestE2EClusterLocal runs the one-command local cluster: three nodes form
// a cluster that takes an RF=3 acks=all topic; a node killed with kill -9
// is reported with the command that restarts it while the others keep
// serving, and that command brings it back; SIGTERM stops every node and
// the command exits 0; run again on the same directory it restarts the
// same cluster with the records, and a killed command takes its nodes with
// it.
func TestE2EClusterLocal(t *testing.T) {
	dir := t.TempDir()
	sets := []string{"--set", "broker.session.timeout.ms=3000", "--set", "broker.heartbeat.interval.ms=500"}
	lc := startLocalCluster(t, dir, 0, sets...)
	s := lc.summary
	if s.Size != 3 || s.Started != 3 || len(s.Nodes) != 3 || len(strings.Split(s.Bootstrap, ",")) != 3 {
		t.Fatalf("summary: %+v", s)
	}
	for i, n := range s.Nodes {
		want := []string{"serve", "--node-id", strconv.Itoa(i + 1), "--data-dir", filepath.Join(dir, fmt.Sprintf("node-%d", i+1))}
		if n.ID != i+1 || len(n.Serve) < 6 || !slices.Equal(n.Serve[1:6], want) || !strings.Contains(strings.Join(n.Serve, " "), "controller.quorum.voters=1@") {
			t.Fatalf("node %d: %+v", i+1, n)
		}
	}

	ctx := testCtx(t, 90*time.Second)
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(s.Bootstrap, ",")...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DefaultProduceTopic("local"), kgo.RetryTimeout(30*time.Second), kgo.MetadataMinAge(250*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// A raw Metadata request each time: kadm's BrokerMetadata answers from
	// franz-go's metadata cache, which may hold an answer from before the
	// last broker's unfencing reached the broker that answered.
	testkit.Eventually(t, 30*time.Second, "three brokers in Metadata", func() error {
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		if len(resp.Brokers) != 3 {
			return fmt.Errorf("%d brokers", len(resp.Brokers))
		}
		return nil
	})
	resp, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": strp("2")}, "local")
	if err != nil || resp.Err != nil {
		t.Fatalf("create RF=3 topic: %v %v", err, resp.Err)
	}
	produce := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("v%d", i))}).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}
	produce(0, 30)

	// kill -9 node 3: reported, with the command that restarts it.
	victim := s.Nodes[2]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the dead node reported", func() error {
		if out := lc.stderrText(); !strings.Contains(out, "node 3 (pid "+strconv.Itoa(victim.PID)+") exited: signal: killed") ||
			!strings.Contains(out, "--only 3") {
			return fmt.Errorf("stderr: %q", out)
		}
		return nil
	})
	produce(30, 60) // the other two carry on (min.insync.replicas=2)
	restart := append([]string{"--json"}, s.Restart[1:len(s.Restart)-1]...)
	restart = append(restart, "3")
	if !slices.Equal(restart[1:3], []string{"cluster", "local"}) || s.Restart[len(s.Restart)-2] != "--only" {
		t.Fatalf("restart command: %q", s.Restart)
	}
	again := &localCluster{cmd: exec.Command(gregorBin, restart...), exited: make(chan struct{})}
	again.cmd.Stderr = again
	out, err := again.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := again.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	againReady := make(chan error, 1)
	go func() {
		againReady <- json.NewDecoder(out).Decode(&again.summary)
		_, _ = bytes.NewBuffer(nil).ReadFrom(out)
		again.exitErr = again.cmd.Wait()
		close(again.exited)
	}()
	t.Cleanup(func() { again.cmd.Process.Kill(); <-again.exited })
	select {
	case err := <-againReady:
		if err != nil {
			<-again.exited
			t.Fatalf("--only 3: %v %v\n%s", err, again.exitErr, again.stderrText())
		}
	case <-time.After(90 * time.Second):
		t.Fatal("--only 3 not ready within 90s")
	}
	testkit.Eventually(t, 60*time.Second, "node 3 back in the ISR of every partition", func() error {
		select {
		case <-again.exited:
			t.Fatalf("--only 3 exited: %v\n%s", again.exitErr, again.stderrText())
		default:
		}
		td, err := adm.ListTopics(ctx, "local")
		if err != nil {
			return err
		}
		for _, p := range td["local"].Partitions {
			if len(p.ISR) != 3 {
				return fmt.Errorf("partition %d ISR %v", p.Partition, p.ISR)
			}
		}
		return nil
	})
	if again.summary.Started != 1 || again.summary.Nodes[0].ID != 3 {
		t.Fatalf("--only 3 summary: %+v", again.summary)
	}
	produce(60, 90)

	// SIGTERM to both commands stops every node; both exit 0.
	var pids []int
	for _, c := range []*localCluster{lc, again} {
		for _, n := range c.summary.Nodes {
			if n.PID != victim.PID {
				pids = append(pids, n.PID)
			}
		}
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*localCluster{lc, again} {
		select {
		case <-c.exited:
			if c.exitErr != nil {
				t.Fatalf("cluster local after SIGTERM: %v\n%s", c.exitErr, c.stderrText())
			}
		case <-time.After(60 * time.Second):
			t.Fatal("cluster local did not exit within 60s of SIGTERM")
		}
	}
	for _, pid := range pids {
		if err := gone(pid); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()

	// The same directory again: the same cluster, with its records.
	lc = startLocalCluster(t, dir, lc.base, sets...)
	consumer, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(lc.summary.Bootstrap, ",")...), kgo.ConsumeTopics("local"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < 90 {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 90 records after the restart", len(seen))
		}
		fs.EachRecord(func(r *kgo.Record) {
			if seen[string(r.Value)] {
				t.Fatalf("%s read twice", r.Value)
			}
			seen[string(r.Value)] = true
		})
	}
	consumer.Close()

	// kill -9 of the command: its nodes get SIGTERM from the kernel.
	if err := lc.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-lc.exited
	for _, n := range lc.summary.Nodes {
		testkit.Eventually(t, 30*time.Second, fmt.Sprintf("node %d stopped with its command", n.ID), func() error { return gone(n.PID) })
	}
}
