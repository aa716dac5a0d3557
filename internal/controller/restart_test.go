package controller

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestControllerWaitReadyAfterRestartCoversItsLog: a restarted follower
// learns the leader from a heartbeat, which carries no commit index
// (hashicorp/raft), and its commit index starts at 0 whatever snapshot it
// restored. Until an AppendEntries says how far the log is committed, its
// image is the snapshot's; WaitReady must not return with it (a broker then
// took the partitions created after the snapshot for strays and deleted
// their directories).
func TestControllerWaitReadyAfterRestartCoversItsLog(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node quorum")
	}
	addrs := freeAddrs(t, 3)
	voters := []Voter{{1, addrs[0]}, {2, addrs[1]}, {3, addrs[2]}}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	nodes := make([]*Controller, 3)
	for i := range nodes {
		c, err := Open(Config{NodeID: int32(i + 1), Dir: dirs[i], Addr: addrs[i], Voters: voters})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		nodes[i] = c
	}
	for _, c := range nodes {
		if err := c.WaitReady(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	leader := activeController(t, nodes)
	f := 0
	for nodes[f] == leader {
		f++
	}
	follower := nodes[f]
	registerBrokers(t, leader, 1, 2, 3)
	create := func(name string) {
		t.Helper()
		if _, err := leader.CreateTopic(testCtx(t), TopicSpec{Name: name, NumPartitions: 1, ReplicationFactor: 3}); err != nil {
			t.Fatal(err)
		}
		checkFor(t, "the follower has "+name, func() bool { return follower.Image().Topic(name) != nil })
	}
	create("before")
	if err := follower.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	create("after")
	if err := follower.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen it with every AppendEntries refused; heartbeats still arrive.
	// Once it knows the leader and a few AppendEntries were refused, the
	// first WaitReady is given up.
	var reopened atomic.Pointer[Controller]
	var hold atomic.Bool
	var refused atomic.Int32
	hold.Store(true)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	// Its state machine runs late, as on a loaded machine: Raft counts
	// an entry applied once it queued it for the state machine, and a
	// WaitReady that trusted that returned before the image had the
	// entries (seen in CI).
	slowApply := func() { time.Sleep(20 * time.Millisecond) }
	c, err := Open(Config{NodeID: int32(f + 1), Dir: dirs[f], Addr: addrs[f], Voters: voters, applyDelay: slowApply, dropAppend: func() bool {
		if !hold.Load() {
			return false
		}
		if c := reopened.Load(); c != nil {
			if _, ok := c.Leader(); ok && refused.Add(1) >= 5 {
				cancel()
			}
		}
		return true
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	reopened.Store(c)
	err = c.WaitReady(ctx)
	if err == nil && c.Image().Topic("after") == nil {
		t.Fatalf("WaitReady returned with the snapshot's image (leader known: %v): topic %q missing", func() bool { _, ok := c.Leader(); return ok }(), "after")
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	hold.Store(false)
	if err := c.WaitReady(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if c.Image().Topic("after") == nil || !c.CaughtUp() {
		t.Fatalf("after WaitReady: topic %q missing or not caught up", "after")
	}
}
