// Package chaos is the Jepsen-style safety suite (issue 10): real `gregor`
// processes, each in its own network namespace on a private bridge, under a
// seeded schedule of faults (kill -9, SIGSTOP, network partitions by
// blackhole routes, slow and flaky client links through in-process
// toxiproxy proxies, a corrupted follower segment, a full disk: every
// node's data directory is a loop-mounted filesystem of its own, see
// disk_test.go) while idempotent
// producers, readers, two consumer groups (one classic, one of KIP-848)
// and a transactional chain run. A
// checker then reads everything back and counts violations: lost or
// duplicated acknowledged records, offsets holding two values, producer
// order broken, aborted reads, group offsets going backwards, replicas that
// differ below the high watermark, writes not resuming within 30 s of a
// heal, and a non-linearizable history of one partition (porcupine).
//
// Run it with `make chaos` (CI-sized) or `make soak` (one hour). It needs
// root (network namespaces); without root, or without -chaos.profile, the
// test skips and says why, so `go test ./...` stays fast.
//
// The test process is started twice: the outer one (in the root network
// namespace) builds the binary, creates the namespaces and the bridge, and
// re-executes the test binary inside the client namespace, where every
// client socket and every toxiproxy listener then lives. The outer process
// also mounts the nodes' data directories before that (the namespace's
// mount namespace is a copy). It tears the network down and kills any
// process left in a namespace, by PID, then unmounts, whatever happened to
// the inner one; both clean up stale names (and the outer one stale mounts
// of the suite's images) of an earlier run first.
//
// Power loss (every node loses its unsynced writes at the same instant)
// cannot be done with process signals; it runs in the in-process harness
// of internal/node on the crash-simulating filesystem of internal/vfs.
package chaos
