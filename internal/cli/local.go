package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

type localFlags struct {
	nodes        int
	only         []int
	dataDir      string
	host         string
	basePort     int
	portStep     int
	configFile   string
	set          []string
	logLevel     string
	readyTimeout time.Duration
	stopTimeout  time.Duration
}

// localNode is one node of a local cluster: its id, data directory, log
// file and listen addresses (Kafka, controller, HTTP).
type localNode struct {
	ID         int    `json:"node_id"`
	DataDir    string `json:"data_dir"`
	Log        string `json:"log"`
	Kafka      string `json:"kafka"`
	Controller string `json:"controller"`
	HTTP       string `json:"http"`
	PID        int    `json:"pid"`
	// Serve is the command line that runs this node by hand.
	Serve []string `json:"serve"`
}

type localSummary struct {
	// Size is the number of voters; Started how many of them this
	// command runs (fewer with --only).
	Size      int         `json:"size"`
	Started   int         `json:"started"`
	Bootstrap string      `json:"bootstrap"`
	DataDir   string      `json:"data_dir"`
	Nodes     []localNode `json:"nodes"`
	// Restart is the command that starts one stopped node again, with
	// "N" in place of its id.
	Restart []string `json:"restart"`
}

func (a *app) clusterLocalCmd() *cobra.Command {
	var f localFlags
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run a local cluster of combined broker+controller nodes on loopback, for trying it out",
		Long: `Run N (default 3) gregor nodes, each broker and controller, as child
processes of this command: node i gets --data-dir DIR/node-i, Kafka on
HOST:BASE+(i-1)*STEP, the controller on the port after it and HTTP on the
one after that (9092/9093/9094, 9192/..., 9292/... by default), and one
controller.quorum.voters list. --config and --set are passed to every node.
Each node's log goes to DIR/node-i.log. Data directories are reused, so
running the command again with the same --data-dir, --nodes and ports
restarts the same cluster (the voters' addresses are part of it).

Once every node answers /readyz it prints the bootstrap servers and each
node's serve command. SIGINT or SIGTERM stops every node cleanly. A node
that dies is reported and the others keep running, so you can try a
failover: kill a node's PID, then start it again in another terminal with
--only ID (same flags) or with its serve command.`,
		Example: `  gregor cluster local
  gregor cluster local --data-dir /tmp/gc --set num.partitions=3 --set default.replication.factor=3
  gregor cluster local --only 2            # start node 2 again after it was stopped`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runLocalCluster(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.nodes, "nodes", 3, "number of nodes (all voters)")
	fl.IntSliceVar(&f.only, "only", nil, "start only these node ids (comma-separated or repeated), e.g. to restart one")
	fl.StringVar(&f.dataDir, "data-dir", "gregor-cluster", "parent directory of the nodes' data directories and logs")
	fl.StringVar(&f.host, "host", "127.0.0.1", "address every listener binds and advertises")
	fl.IntVar(&f.basePort, "base-port", 9092, "Kafka port of node 1; controller and HTTP ports follow it")
	fl.IntVar(&f.portStep, "port-step", 100, "distance between the ports of consecutive nodes (at least 3)")
	fl.StringVar(&f.configFile, "config", "", "server.properties file passed to every node")
	fl.StringArrayVar(&f.set, "set", nil, "Kafka property key=value passed to every node (repeatable)")
	fl.StringVar(&f.logLevel, "log-level", "info", "nodes' log level: debug, info, warn or error")
	fl.DurationVar(&f.readyTimeout, "ready-timeout", 60*time.Second, "how long to wait for every node's /readyz")
	fl.DurationVar(&f.stopTimeout, "stop-timeout", 30*time.Second, "how long a node may take to stop before it is killed")
	return cmd
}

// localLayout validates f and returns every node of the cluster and the
// voters list they share.
func localLayout(f localFlags) ([]localNode, string, error) {
	switch {
	case f.nodes < 1 || f.nodes > 9:
		return nil, "", usageErrorf("--nodes %d: want 1 to 9", f.nodes)
	case f.portStep < 3:
		return nil, "", usageErrorf("--port-step %d: want at least 3", f.portStep)
	case f.basePort < 1 || f.basePort+(f.nodes-1)*f.portStep+2 > 65535:
		return nil, "", usageErrorf("--base-port %d: the ports of %d nodes do not fit below 65536", f.basePort, f.nodes)
	}
	if _, err := parseLevel(f.logLevel); err != nil {
		return nil, "", usageErrorf("--log-level: %v", err)
	}
	for _, kv := range f.set {
		if _, err := parseKV("--set", []string{kv}); err != nil {
			return nil, "", err
		}
	}
	for _, id := range f.only {
		if id < 1 || id > f.nodes {
			return nil, "", usageErrorf("--only %d: node ids are 1 to %d", id, f.nodes)
		}
	}
	dir, err := filepath.Abs(f.dataDir)
	if err != nil {
		return nil, "", failed("data dir", err)
	}
	nodes := make([]localNode, f.nodes)
	voters := make([]string, f.nodes)
	for i := range nodes {
		port := f.basePort + i*f.portStep
		n := localNode{ID: i + 1,
			DataDir:    filepath.Join(dir, fmt.Sprintf("node-%d", i+1)),
			Log:        filepath.Join(dir, fmt.Sprintf("node-%d.log", i+1)),
			Kafka:      net.JoinHostPort(f.host, strconv.Itoa(port)),
			Controller: net.JoinHostPort(f.host, strconv.Itoa(port+1)),
			HTTP:       net.JoinHostPort(f.host, strconv.Itoa(port+2))}
		nodes[i] = n
		voters[i] = fmt.Sprintf("%d@%s", n.ID, n.Controller)
	}
	return nodes, strings.Join(voters, ","), nil
}

// serveArgs is the serve command line of n, in the form README "Running a
// cluster" documents; the user's --config and --set come after the voters
// list so that they can override any property.
func (n localNode) serveArgs(f localFlags, voters string) []string {
	args := []string{"serve", "--node-id", strconv.Itoa(n.ID), "--data-dir", n.DataDir,
		"--kafka-addr", n.Kafka, "--controller-addr", n.Controller, "--http-addr", n.HTTP,
		"--log-level", f.logLevel, "--set", "controller.quorum.voters=" + voters}
	if f.configFile != "" {
		args = append(args, "--config", f.configFile)
	}
	for _, kv := range f.set {
		args = append(args, "--set", kv)
	}
	return args
}

// restartArgs is this command line with --only N: what starts one node
// again with the same layout.
func restartArgs(cmd *cobra.Command, f localFlags) []string {
	args := []string{"cluster", "local"}
	fl := cmd.Flags()
	add := func(name, value string) {
		if fl.Changed(name) {
			args = append(args, "--"+name, value)
		}
	}
	add("nodes", strconv.Itoa(f.nodes))
	add("data-dir", f.dataDir)
	add("host", f.host)
	add("base-port", strconv.Itoa(f.basePort))
	add("port-step", strconv.Itoa(f.portStep))
	add("config", f.configFile)
	for _, kv := range f.set {
		args = append(args, "--set", kv)
	}
	add("log-level", f.logLevel)
	return append(args, "--only", "N")
}

// localChild is one running node process.
type localChild struct {
	node   localNode
	proc   *os.Process
	exited chan struct{} // closed when the process has been waited for
	err    error         // its exit status, set before exited closes
}

// startChild runs exe with n's serve arguments, its output appended to
// n.Log. The process is started and waited for on one locked OS thread:
// the parent-death signal (Linux) fires when the thread that started the
// child exits, so that thread must live as long as the child does; a
// killed parent then takes its nodes with it.
func startChild(exe string, n localNode, args []string, exits chan<- *localChild) (*localChild, error) {
	logFile, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	c := &localChild{node: n, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the child
		defer logFile.Close()
		cmd := exec.Command(exe, args...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		// Its own process group: a terminal's Ctrl-C reaches only this
		// command, which stops the nodes in order.
		cmd.SysProcAttr = childProcAttr()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		c.proc = cmd.Process
		started <- nil
		c.err = cmd.Wait()
		close(c.exited)
		exits <- c
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return c, nil
}

func (a *app) runLocalCluster(cmd *cobra.Command, f localFlags) error {
	nodes, voters, err := localLayout(f)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return failed("cluster local", err)
	}
	dir := filepath.Dir(nodes[0].DataDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return failed("cluster local", err)
	}
	run := nodes
	if len(f.only) > 0 {
		run = nil
		for _, n := range nodes {
			if slices.Contains(f.only, n.ID) {
				run = append(run, n)
			}
		}
	}
	restart := append([]string{exe}, restartArgs(cmd, f)...)
	var children []*localChild
	exits := make(chan *localChild, len(run))
	defer func() { stopChildren(children, f.stopTimeout) }()
	for _, n := range run {
		args := n.serveArgs(f, voters)
		c, err := startChild(exe, n, args, exits)
		if err != nil {
			return failed(fmt.Sprintf("start node %d", n.ID), err)
		}
		c.node.PID = c.proc.Pid
		c.node.Serve = append([]string{exe}, args...)
		children = append(children, c)
	}
	ctx := cmd.Context()
	if err := waitLocalReady(ctx, children, f.readyTimeout); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting: stopping is all that was asked
		}
		return failed("cluster local", err)
	}
	s := localSummary{Size: len(nodes), Started: len(children), DataDir: dir, Restart: restart}
	var bootstrap []string
	for _, n := range nodes {
		bootstrap = append(bootstrap, n.Kafka)
	}
	s.Bootstrap = strings.Join(bootstrap, ",")
	for _, c := range children {
		s.Nodes = append(s.Nodes, c.node)
	}
	if a.json {
		if err := a.writeJSON(s); err != nil {
			return err
		}
	} else if err := a.printLocal(s); err != nil {
		return err
	}

	for live := len(children); live > 0; {
		select {
		case <-ctx.Done():
			fmt.Fprintln(a.stderr, "stopping every node ...")
			stopChildren(children, f.stopTimeout)
			return nil
		case c := <-exits:
			live--
			fmt.Fprintf(a.stderr, "node %d (pid %d) exited: %v; its log: %s\n", c.node.ID, c.node.PID, exitText(c.err), c.node.Log)
			if live > 0 {
				fmt.Fprintf(a.stderr, "the other nodes keep running; start node %d again with:\n  %s\n",
					c.node.ID, shellJoin(withOnly(restart, c.node.ID)))
			}
		}
	}
	return failed("cluster local", errors.New("every node has exited"))
}

// waitLocalReady polls every child's /readyz until all answer 200; it
// fails when a child exits first or d passes.
func waitLocalReady(ctx context.Context, children []*localChild, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	ready := make([]bool, len(children))
	for {
		done := true
		for i, c := range children {
			select {
			case <-c.exited:
				return fmt.Errorf("node %d exited before it was ready: %v (see %s)", c.node.ID, exitText(c.err), c.node.Log)
			default:
			}
			if !ready[i] {
				ready[i] = probeReady(ctx, hc, c.node.HTTP)
				done = done && ready[i]
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			var waiting []string
			for i, c := range children {
				if !ready[i] {
					waiting = append(waiting, strconv.Itoa(c.node.ID))
				}
			}
			return fmt.Errorf("nodes %s not ready (GET /readyz) within %v; see their logs in %s",
				strings.Join(waiting, ","), d, filepath.Dir(children[0].node.Log))
		case <-time.After(200 * time.Millisecond): // poll interval
		}
	}
}

func probeReady(ctx context.Context, hc *http.Client, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stopChildren sends SIGTERM to every child still running and waits for
// each; one that has not exited after d is killed.
func stopChildren(children []*localChild, d time.Duration) {
	for _, c := range children {
		select {
		case <-c.exited:
		default:
			_ = c.proc.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	expired := false
	for _, c := range children {
		if !expired {
			select {
			case <-c.exited:
				continue
			case <-deadline.C:
				expired = true
			}
		}
		_ = c.proc.Kill() // a no-op error if it has exited meanwhile
		<-c.exited
	}
}

func (a *app) printLocal(s localSummary) error {
	if s.Started == s.Size {
		fmt.Fprintf(a.stdout, "Local cluster of %d nodes ready; data and logs in %s\n\n", s.Size, s.DataDir)
	} else {
		fmt.Fprintf(a.stdout, "%d of the local cluster's %d nodes started here and ready; data and logs in %s\n\n", s.Started, s.Size, s.DataDir)
	}
	fmt.Fprintf(a.stdout, "Bootstrap servers: %s\n", s.Bootstrap)
	fmt.Fprintf(a.stdout, "  e.g. gregor -b %s topic create orders -p 3 -r 3\n\n", s.Bootstrap)
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPID\tKAFKA\tCONTROLLER\tHTTP\tLOG")
	for _, n := range s.Nodes {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\n", n.ID, n.PID, n.Kafka, n.Controller, n.HTTP, n.Log)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, "\nEach node runs as:")
	for _, n := range s.Nodes {
		fmt.Fprintf(a.stdout, "  %s\n", shellJoin(n.Serve))
	}
	fmt.Fprintf(a.stdout, "\nTry a failover: kill -9 a node's PID; the others keep running. Start it again with\n  %s\n", shellJoin(s.Restart))
	fmt.Fprintln(a.stdout, "Ctrl-C stops every node.")
	return nil
}

func withOnly(restart []string, id int) []string {
	out := slices.Clone(restart)
	out[len(out)-1] = strconv.Itoa(id)
	return out
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// shellJoin quotes args for a POSIX shell where needed.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, s := range args {
		if s != "" && strings.IndexFunc(s, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r))
		}) < 0 {
			out[i] = s
			continue
		}
		out[i] = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
