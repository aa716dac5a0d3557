package chaos

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/testkit"
)

var (
	flagProfile    = flag.String("chaos.profile", "", "ci or soak; empty skips the suite")
	flagSeed       = flag.Int64("chaos.seed", 0, "nemesis seed (0: from the clock); printed, give it back to replay a schedule")
	flagNodes      = flag.Int("chaos.nodes", 3, "nodes, all voters and brokers (3 or 5)")
	flagDuration   = flag.Duration("chaos.duration", 0, "fault phase length (0: the profile's)")
	flagFaults     = flag.Int("chaos.faults", 0, "minimum faults (0: the profile's)")
	flagRecords    = flag.Int("chaos.records", 0, "minimum acknowledged records (0: the profile's)")
	flagRate       = flag.Int("chaos.rate", 0, "target produce rate, records/s over all producers (0: the profile's)")
	flagGroup      = flag.Bool("chaos.group", true, "run the consumer-group workload")
	flagTxn        = flag.Bool("chaos.txn", true, "run the transactional chain workload")
	flagDiskWeight = flag.Int("chaos.diskweight", 1, "weight of the disk fault in the nemesis's choice (corrupt's is 1; 0: no disk fault)")
	flagOnly       = flag.String("chaos.only", "", "comma-separated fault kinds to inject, the others left out (empty: all; kinds: kill, stop, partition, link, corrupt, disk, crash)")
	flagLinks      = flag.Bool("chaos.links", true, "route clients through toxiproxy and inject link faults")
	flagOut        = flag.String("chaos.out", "", "directory for the report, the timeline, node logs and data (default: a new temp dir; emptied first)")
	flagNetID      = flag.Int("chaos.netid", 0, "namespace set: runs with different ids can run side by side")
	flagBin        = flag.String("chaos.bin", "", "a prebuilt gregor binary to test (default: build this module's)")
)

// profile sizes a run.
type profile struct {
	duration time.Duration // of the fault phase
	faults   int           // at least this many faults, even if it takes longer
	records  int           // at least this many acknowledged records
	rate     int           // records/s over all producers
}

func runProfile() profile {
	p := profile{duration: 8 * time.Minute, faults: 60, records: 100_000, rate: 400}
	if *flagProfile == "soak" {
		p = profile{duration: 60 * time.Minute, faults: 300, records: 1_000_000, rate: 400}
	}
	if *flagDuration > 0 {
		p.duration = *flagDuration
	}
	if *flagFaults > 0 {
		p.faults = *flagFaults
	}
	if *flagRecords > 0 {
		p.records = *flagRecords
	}
	if *flagRate > 0 {
		p.rate = *flagRate
	}
	return p
}

const childEnv = "GREGOR_CHAOS_CHILD"

// TestChaos is the suite. The outer process prepares the network and the
// binary and runs itself again inside the client namespace (see the package
// doc); the inner one (childEnv set) runs the cluster, the workloads, the
// nemesis and the checker.
func TestChaos(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		runInner(t)
		return
	}
	if *flagProfile == "" {
		t.Skip("chaos suite not requested: run `make chaos` (or go test ./test/chaos -args -chaos.profile=ci)")
	}
	if os.Geteuid() != 0 {
		t.Skip("chaos suite needs root (network namespaces, veth pairs, routes); skipped")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("chaos suite needs iproute2's `ip`; skipped")
	}
	if *flagNodes != 3 && *flagNodes != 5 {
		t.Fatalf("-chaos.nodes=%d: 3 or 5", *flagNodes)
	}
	seed := *flagSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000
	}
	out := *flagOut
	if out == "" {
		var err error
		if out, err = os.MkdirTemp("", "gregor-chaos-"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	out, _ = filepath.Abs(out)
	// Stale names, processes and mounts of an earlier run that died go
	// first (its data directories may still be mounted).
	if removed := append(teardownNetwork(), teardownDisks(out)...); len(removed) > 0 {
		t.Logf("removed what an earlier run left: %s", strings.Join(removed, ", "))
	}
	// A new cluster every run: the last run's data, logs and report go.
	var olds []string
	for _, pat := range []string{"data-*", "disk-*.img", "node-*.log", "report.md", "timeline.svg", "history-p0.csv", "group-history.csv", "group-848-history.csv", "summary.txt", "gregor"} {
		m, _ := filepath.Glob(filepath.Join(out, pat))
		olds = append(olds, m...)
	}
	for _, o := range olds {
		if err := os.RemoveAll(o); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("chaos: seed %d (replay with -chaos.seed=%d), output in %s", seed, seed, out)

	// Torn down on every exit: the test's end, a failure, or a signal. The
	// disks after the network (cleanups run last first): tearing the
	// network down kills every process that could hold a mount.
	t.Cleanup(func() {
		if done := teardownDisks(out); len(done) > 0 {
			t.Logf("teardown: %s", strings.Join(done, ", "))
		}
		// A loop device detaches itself once its last mount is gone, which
		// the kernel may finish a moment after umount returns.
		testkit.Eventually(t, 10*time.Second, "loop devices detached after teardown", func() error {
			for _, img := range suiteImages(out) {
				if devs := loopDevices(img); len(devs) > 0 {
					return fmt.Errorf("%s still on %v", img, devs)
				}
			}
			return nil
		})
	})
	t.Cleanup(func() {
		removed := teardownNetwork()
		t.Logf("teardown: %s", strings.Join(removed, ", "))
		if left := suiteNamespaces(); len(left) > 0 {
			t.Errorf("namespaces left after teardown: %v", left)
		}
	})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		if s, ok := <-sigs; ok {
			fmt.Fprintf(os.Stderr, "chaos: %v: tearing down\n", s)
			teardownNetwork()
			teardownDisks(out)
			os.Exit(2)
		}
	}()

	if err := setupNetwork(*flagNodes); err != nil {
		t.Fatalf("network: %v", err)
	}
	disks := "mounted"
	if err := setupDisks(out, *flagNodes); err != nil {
		disks = fmt.Sprintf("the data directories are plain directories (no loop-mounted filesystem: %v), so no disk fault", err)
		t.Logf("chaos: %s", disks)
	}
	bin := *flagBin
	if bin == "" {
		bin = filepath.Join(out, "gregor")
		build := exec.Command("go", "build", "-o", bin, "github.com/gregor-dev/gregor/cmd/gregor")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build gregor: %v\n%s", err, b)
		}
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"netns", "exec", clientNS(), self}
	// Every flag that was set, in -name=value form (the outer process may
	// have been given "-flag value"), but the ones naming this process's
	// own files.
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "test.run", "test.testlogfile", "test.gocoverdir", "test.coverprofile", "test.cpuprofile", "test.memprofile", "test.trace":
			return
		}
		args = append(args, fmt.Sprintf("-%s=%s", f.Name, f.Value.String()))
	})
	args = append(args, "-test.run=^TestChaos$", "-test.v=true", fmt.Sprintf("-chaos.seed=%d", seed), "-chaos.out="+out)
	child := exec.Command("ip", args...)
	child.Env = append(os.Environ(), childEnv+"=1", "GREGOR_CHAOS_BIN="+bin, diskEnv+"="+disks)
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := child.Run(); err != nil {
		t.Fatalf("the suite failed (%v); seed %d, logs and report in %s", err, seed, out)
	}
}
