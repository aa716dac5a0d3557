// Package testkit is test support shared by the in-process tests
// (internal/...) and the spawned-binary tests (test/e2e): the one polling
// helper and the reservation of loopback ports. It imports no gregor
// package and holds no state.
package testkit

import (
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Eventually calls cond every 10 ms until it returns nil, and fails the test
// with what and cond's last error when d passes first.
func Eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// FreePorts reserves n loopback TCP ports: a voters list names every
// controller's port before any node starts, so those listeners cannot bind
// port 0. A port that was free when checked can still be taken before the
// node binds it, by anything that gets an ephemeral port (a listener on
// port 0, or the local end of an outgoing connection). So ports come from
// below the kernel's ephemeral range, which those never use, and each is
// held under an flock for the test's lifetime, so test processes running
// side by side never pick the same one (the lock ends with the process,
// even on kill -9).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	lo, hi := reservedPortRange()
	ports := make([]int, 0, n)
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 10000 {
			t.Fatalf("no free loopback port in [%d, %d)", lo, hi)
		}
		p := lo + rand.IntN(hi-lo)
		if slices.Contains(ports, p) {
			continue
		}
		if reservePort(t, p) {
			ports = append(ports, p)
		}
	}
	return ports
}

// FreeRange is FreePorts for n consecutive ports: the first of them (a
// `gregor cluster local --base-port`). A node killed and started again
// binds the same ports, so they too must lie outside the ephemeral range.
func FreeRange(t testing.TB, n int) int {
	t.Helper()
	lo, hi := reservedPortRange()
	for range 1000 {
		base := lo + rand.IntN(hi-lo-n)
		ok := true
		for p := base; p < base+n && ok; p++ {
			ok = reservePort(t, p)
		}
		if ok {
			return base
		}
		// The ports reserved before the one that failed stay reserved
		// until the test ends: harmless, and simpler than undoing them.
	}
	t.Fatalf("no %d consecutive free loopback ports in [%d, %d)", n, lo, hi)
	return 0
}

// reservePort takes p for the test's lifetime when no other test process
// holds it (its flock) and nothing else listens on it.
func reservePort(t testing.TB, p int) bool {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "gregor-test-ports")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		f.Close() // another test process holds it
		return false
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		f.Close() // in use outside the tests
		return false
	}
	ln.Close()
	t.Cleanup(func() { f.Close() })
	return true
}

// reservedPortRange is the range FreePorts draws from: below the kernel's
// ephemeral range (ip_local_port_range), above the well-known ports.
func reservedPortRange() (lo, hi int) {
	lo, hi = 10000, 32768 // Linux's default ephemeral range starts at 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if start, err := strconv.Atoi(f[0]); err == nil && start-lo >= 1000 {
				hi = start
			}
		}
	}
	return lo, hi
}
