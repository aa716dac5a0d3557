package chaos

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// node is one gregor process in its namespace. Its log is appended to
// <out>/node-K.log across restarts.
type node struct {
	id      int
	bin     string
	dir     string
	logPath string
	voters  string
	sets    []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool // SIGSTOPped
}

func (n *node) kafkaAddr() string { return net.JoinHostPort(nodeIP(n.id), strconv.Itoa(kafkaPort)) }

// start runs `gregor serve` inside the node's namespace. `ip netns exec`
// execs the binary in place, so the PID we hold is gregor's.
func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exited != nil {
		select {
		case <-n.exited:
		default:
			return fmt.Errorf("node %d already running", n.id)
		}
	}
	args := []string{"netns", "exec", nodeNS(n.id), n.bin, "serve",
		"--node-id", strconv.Itoa(n.id), "--data-dir", n.dir,
		"--kafka-addr", n.kafkaAddr(),
		"--controller-addr", net.JoinHostPort(nodeIP(n.id), strconv.Itoa(ctrlPort)),
		"--http-addr", net.JoinHostPort(nodeIP(n.id), strconv.Itoa(httpPort)),
		"--set", "controller.quorum.voters=" + n.voters}
	for _, s := range n.sets {
		args = append(args, "--set", s)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "\n==== chaos: start node %d at %s\n", n.id, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	n.cmd, n.exited, n.stopped = cmd, exited, false
	return nil
}

func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the node's process by PID.
func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return fmt.Errorf("node %d not started", n.id)
	}
	if sig == syscall.SIGSTOP {
		n.stopped = true
	}
	if sig == syscall.SIGCONT {
		n.stopped = false
	}
	return n.cmd.Process.Signal(sig)
}

// kill sends SIGKILL and waits until the process is gone.
func (n *node) kill() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil || exited == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Kill()
	<-exited
}

// terminate sends SIGTERM (a clean shutdown) and waits for the exit, up to
// d; then SIGKILL.
func (n *node) terminate(d time.Duration) error {
	n.mu.Lock()
	cmd, exited, stopped := n.cmd, n.exited, n.stopped
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if stopped {
		n.signal(syscall.SIGCONT)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return nil
	case <-time.After(d):
	}
	// Hung: SIGQUIT makes the Go runtime write every goroutine's stack to
	// the node's log, for the report; then SIGKILL.
	cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-exited:
	case <-time.After(3 * time.Second):
		n.kill()
	}
	return fmt.Errorf("node %d did not exit within %v of SIGTERM (goroutine dump in %s)", n.id, d, n.logPath)
}

// ready polls /readyz until it answers 200 or d passes.
func (n *node) ready(d time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	url := fmt.Sprintf("http://%s/readyz", net.JoinHostPort(nodeIP(n.id), strconv.Itoa(httpPort)))
	deadline := time.Now().Add(d)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if !n.running() {
			return fmt.Errorf("node %d exited (log %s)", n.id, n.logPath)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %d /readyz: %v", n.id, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// cluster is the suite's nodes.
type cluster struct {
	nodes []*node
	out   string
}

func newCluster(bin, out string, n int) *cluster {
	var voters []string
	for id := 1; id <= n; id++ {
		voters = append(voters, fmt.Sprintf("%d@%s:%d", id, nodeIP(id), ctrlPort))
	}
	c := &cluster{out: out}
	sets := []string{
		"default.replication.factor=3",
		"min.insync.replicas=2",
		"offsets.topic.replication.factor=3",
		"offsets.topic.num.partitions=6",
		"transaction.state.log.replication.factor=3",
		"transaction.state.log.num.partitions=6",
		"group.initial.rebalance.delay.ms=0",
		// Faults come every few seconds: a broker is fenced after 3 s
		// without heartbeats (Kafka's default is 9 s), and a stalled
		// follower leaves the ISR after 6 s.
		"broker.session.timeout.ms=3000",
		"broker.heartbeat.interval.ms=500",
		"replica.lag.time.max.ms=6000",
		// Small segments: rolls, snapshots and multi-segment recovery
		// happen during the run, and a corrupted segment is a small one.
		"log.segment.bytes=4194304",
	}
	for id := 1; id <= n; id++ {
		ns := sets
		if id%2 == 1 {
			// Odd nodes preallocate (zeros written ahead of the appends,
			// filled in the background): both ways of appending run under
			// the same faults, on leaders and followers alike.
			ns = append(slices.Clip(sets), "log.preallocate=true")
		}
		c.nodes = append(c.nodes, &node{id: id, bin: bin, voters: strings.Join(voters, ","),
			dir:     dataDir(out, id),
			logPath: filepath.Join(out, fmt.Sprintf("node-%d.log", id)),
			sets:    ns})
	}
	return c
}

func (c *cluster) node(id int) *node { return c.nodes[id-1] }

func (c *cluster) seeds() []string {
	var s []string
	for _, n := range c.nodes {
		s = append(s, n.kafkaAddr())
	}
	return s
}

// admin is a direct (un-proxied) admin client for the nemesis and checker.
func (c *cluster) admin() (*kadm.Client, *kgo.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.RetryTimeout(5*time.Second),
		kgo.RequestTimeoutOverhead(3*time.Second), kgo.DialTimeout(2*time.Second))
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl, nil
}

// leaderOf is the broker leading topic's partition p, by the metadata of
// any broker that answers.
func (c *cluster) leaderOf(ctx context.Context, adm *kadm.Client, topic string, p int32) (int, error) {
	l, _, err := c.leaderAndReplicas(ctx, adm, topic, p)
	return l, err
}

// leaderAndReplicas is leaderOf with the partition's replica set.
func (c *cluster) leaderAndReplicas(ctx context.Context, adm *kadm.Client, topic string, p int32) (int, []int32, error) {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return 0, nil, err
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return 0, nil, fmt.Errorf("topic %s: %v", topic, td.Err)
	}
	pd, ok := td.Partitions[p]
	if !ok || pd.Leader < 1 {
		return 0, nil, fmt.Errorf("%s[%d] has no leader", topic, p)
	}
	return int(pd.Leader), pd.Replicas, nil
}

func (c *cluster) controller(ctx context.Context, adm *kadm.Client) (int, error) {
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return 0, err
	}
	if md.Controller < 1 {
		return 0, fmt.Errorf("no active controller known")
	}
	return int(md.Controller), nil
}
