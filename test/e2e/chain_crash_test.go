package e2e

import (
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/chaintest"
)

// TestBinaryChainCrash (issue 8): the exactly-once chain of
// internal/chaintest on the spawned binary, which is killed (SIGKILL) once
// a third of the records went through and restarted on the same address.
// Members whose sessions fail start again with the same transactional id
// (fencing the old session, aborting its open transaction); the output of
// every stage is still the input exactly, and no read_committed consumer
// is ever served an aborted record.
//
// The transactional offsets are records of the transaction in
// __consumer_offsets, decided by its marker (README, Transactions), so no
// kill point between PrepareCommit and CompleteCommit loses them.
func TestBinaryChainCrash(t *testing.T) {
	dir := t.TempDir()
	sets := []string{"group.initial.rebalance.delay.ms=0", "group.min.session.timeout.ms=500"}
	p := startBinary(t, dir, sets...)
	const keys, perKey = 200, 100
	c := chaintest.Setup(t, chaintest.Config{Addr: p.kafkaAddr, Stages: 3, Keys: keys, PerKey: perKey, Partitions: 6, Restart: true})
	c.Start()
	deadline := time.Now().Add(60 * time.Second)
	for c.Seen() < keys*perKey/3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d records through the chain before the crash", c.Seen())
		}
		time.Sleep(20 * time.Millisecond) // polling a counter with a deadline
	}
	p.kill()
	t.Logf("killed after %d records went through", c.Seen())
	startBinaryOn(t, dir, p.kafkaAddr, sets...)
	c.WaitDone(t, 120*time.Second)
	c.Stop()
	c.Check(t)
}
