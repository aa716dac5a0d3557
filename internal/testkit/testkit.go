// Package testkit is test support shared by the in-process tests
// (internal/...) and the spawned-binary tests (test/e2e): the one polling
// helper and the reservation of loopback ports. It imports no gregor
// package and holds no state.
package testkit

import (
	"net"
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

// FreePorts reserves n loopback TCP ports by binding and releasing them: a
// voters list names every controller's port before any node starts, so
// those listeners cannot bind port 0.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	lns := make([]net.Listener, 0, n)
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}
