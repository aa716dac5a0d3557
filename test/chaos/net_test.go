package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// The suite's network: namespace gch-hub holds the bridge, every node gets
// gch-nK (10.213.77.K/24) and the clients gch-cli (10.213.77.100/24), each
// joined to the bridge by a veth pair. No namespace has a route outside the
// subnet, and the root namespace has no address on it.
const (
	bridge    = "gchbr"
	subnet    = "10.213.77."
	clientIP  = subnet + "100"
	kafkaPort = 9092
	ctrlPort  = 9093
	httpPort  = 9644
)

// nsPrefix names this run's namespaces: -chaos.netid=N gives gchN-, so
// runs with different ids can share a machine (each hub is its own L2
// network, so the addresses repeat harmlessly).
func nsPrefix() string {
	if *flagNetID == 0 {
		return "gch-"
	}
	return fmt.Sprintf("gch%d-", *flagNetID)
}

func hubNS() string        { return nsPrefix() + "hub" }
func clientNS() string     { return nsPrefix() + "cli" }
func nodeNS(id int) string { return fmt.Sprintf("%sn%d", nsPrefix(), id) }
func nodeIP(id int) string { return subnet + strconv.Itoa(id) }

// run runs a command and returns its combined output as the error text.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupNetwork creates the hub with its bridge, and one namespace per node
// and for the clients.
func setupNetwork(nodes int) error {
	cmds := [][]string{
		{"netns", "add", hubNS()},
		{"-n", hubNS(), "link", "set", "lo", "up"},
		{"-n", hubNS(), "link", "add", bridge, "type", "bridge"},
		{"-n", hubNS(), "link", "set", bridge, "up"},
	}
	attach := func(ns, veth, ip string) {
		cmds = append(cmds,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", hubNS(), "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", hubNS(), "link", "set", veth, "master", bridge},
			[]string{"-n", hubNS(), "link", "set", veth, "up"},
			[]string{"-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"})
	}
	for id := 1; id <= nodes; id++ {
		attach(nodeNS(id), fmt.Sprintf("gchv%d", id), nodeIP(id))
	}
	attach(clientNS(), "gchvc", clientIP)
	for _, c := range cmds {
		if err := run("ip", c...); err != nil {
			return err
		}
	}
	return nil
}

// suiteNamespaces lists the namespaces that carry this run's prefix,
// whoever created them (a run that died leaves them behind).
func suiteNamespaces() []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], nsPrefix()) {
			names = append(names, f[0])
		}
	}
	return names
}

// teardownNetwork kills, by PID, every process still inside one of the
// suite's namespaces (only the suite starts processes there), then deletes
// the namespaces; deleting the hub takes the bridge and every veth with it.
// It returns what it removed, for the log.
func teardownNetwork() []string {
	var removed []string
	for _, ns := range suiteNamespaces() {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
				removed = append(removed, "pid "+f)
			}
		}
	}
	for _, ns := range suiteNamespaces() {
		// A process just killed may still hold the namespace for a moment;
		// deletion only unlinks the name, the kernel frees it once empty.
		if err := run("ip", "netns", "del", ns); err == nil {
			removed = append(removed, "netns "+ns)
		}
	}
	return removed
}

// blackhole makes node from drop every packet it sends to ip (a one-way
// cut); unblackhole undoes it.
func blackhole(from int, ip string) error {
	return run("ip", "-n", nodeNS(from), "route", "add", "blackhole", ip+"/32")
}

func unblackhole(from int, ip string) error {
	return run("ip", "-n", nodeNS(from), "route", "del", "blackhole", ip+"/32")
}
