package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/commitlog"
	"github.com/gregor-dev/gregor/internal/record"
)

// replicaPair is a leader (node 1) and a follower (node 2) of one partition,
// each on its own directory.
func replicaPair(t *testing.T) (leader, follower *Partition) {
	t.Helper()
	leader, follower = openTestPartition(t, t.TempDir()), openTestPartition(t, t.TempDir())
	t.Cleanup(func() { leader.close(); follower.close() })
	leader.nodeID, follower.nodeID = 1, 2
	leader.becomeLeader(0, 0, []int32{1, 2}, []int32{1, 2})
	follower.becomeFollower(0, 1)
	return leader, follower
}

// replicate is one fetch round of the follower: read from its log end on
// the leader, append, fsync, report the new end, take the leader's HW.
func replicate(t *testing.T, leader, follower *Partition) {
	t.Helper()
	res, err := leader.log.ReadUpTo(follower.LogEndOffset(), 1<<20, leader.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := follower.AppendReplicated(res.Data); err != nil {
		t.Fatal(err)
	}
	if err := follower.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := leader.UpdateFollower(2, follower.DurableOffset()); err != nil {
		t.Fatal(err)
	}
	follower.SetFollowerHighWatermark(leader.HighWatermark())
}

func logBytes(t *testing.T, p *Partition) []byte {
	t.Helper()
	res, err := p.log.Read(p.LogStartOffset(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return res.Data
}

// TestReplicationFollowerCopiesLeaderLog: the follower's log is the
// leader's byte for byte, the leader's high watermark waits for the
// follower's report, idempotence state follows the replicated batches,
// and acks=all waits for the follower.
func TestReplicationFollowerCopiesLeaderLog(t *testing.T) {
	leader, follower := replicaPair(t)
	for seq := int32(0); seq < 9; seq += 3 {
		b, h := idempotentBatch(t, 7, 0, seq, 3)
		mustAppend(t, leader, b, h)
	}
	if hw := leader.HighWatermark(); hw != 0 {
		t.Fatalf("leader high watermark %d before the follower fetched, want 0", hw)
	}
	replicate(t, leader, follower)
	if leader.HighWatermark() != 9 || follower.HighWatermark() != 9 || follower.LogEndOffset() != 9 {
		t.Fatalf("high watermarks leader %d follower %d, follower end %d; want 9", leader.HighWatermark(), follower.HighWatermark(), follower.LogEndOffset())
	}
	if !bytes.Equal(logBytes(t, leader), logBytes(t, follower)) {
		t.Fatal("the follower's log differs from the leader's")
	}
	// A replayed producer state: the follower knows the producer's last sequence.
	follower.mu.Lock()
	e := follower.mu.producers[7]
	follower.mu.Unlock()
	if e == nil || e.lastSeq() != 8 {
		t.Fatalf("follower producer state %+v, want last sequence 8", e)
	}
	// Batches the follower already has are skipped, not appended twice.
	again, _ := leader.log.Read(0, 1<<20)
	if leo, err := follower.AppendReplicated(again.Data); err != nil || leo != 9 {
		t.Fatalf("re-append: end %d, %v; want 9, nil", leo, err)
	}
	// Clients cannot write to a follower.
	b, h := idempotentBatch(t, -1, -1, -1, 1)
	if _, err := follower.Append(b, h, 1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("append on a follower: %v, want ErrNotLeader", err)
	}
	// Not NOT_ENOUGH_REPLICAS either, whatever its own in-sync count: the
	// Java producer retries that on the same node without refreshing
	// its metadata (Kafka checks leadership first).
	cfg := *follower.cfg.Load()
	cfg.MinInsyncReplicas = 2
	follower.SetConfig(cfg)
	if _, err := follower.Append(b, h, -1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("acks=all append on a follower with min.insync.replicas=2: %v, want ErrNotLeader", err)
	}

	// acks=all waits for the follower's next report.
	b, h = idempotentBatch(t, 7, 0, 9, 1)
	res := mustAppend(t, leader, b, h)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := leader.WaitReplicated(ctx, res.LastOffset+1)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acks=all before the follower fetched: %v, want a timeout", err)
	}
	done := make(chan error, 1)
	go func() { done <- leader.WaitReplicated(context.Background(), res.LastOffset+1) }()
	replicate(t, leader, follower)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("acks=all after the follower fetched: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acks=all not woken by the follower's fetch")
	}
}

// TestReplicationFollowerRefusesBadBatches: a corrupt batch or one that
// does not start at the log end is refused and nothing is written.
func TestReplicationFollowerRefusesBadBatches(t *testing.T) {
	leader, follower := replicaPair(t)
	b, h := idempotentBatch(t, -1, -1, -1, 2)
	mustAppend(t, leader, b, h)
	b, h = idempotentBatch(t, -1, -1, -1, 2)
	mustAppend(t, leader, b, h)
	data := logBytes(t, leader)
	second := data[len(b):]
	if _, err := follower.AppendReplicated(second); !errors.Is(err, commitlog.ErrOffsetMismatch) {
		t.Fatalf("a batch past the log end: %v, want ErrOffsetMismatch", err)
	}
	corrupt := bytes.Clone(data)
	corrupt[len(corrupt)-1] ^= 0xff
	if _, err := follower.AppendReplicated(corrupt[:len(b)]); err != nil {
		t.Fatalf("intact first batch: %v", err)
	}
	if _, err := follower.AppendReplicated(corrupt); !errors.Is(err, record.ErrCRCMismatch) {
		t.Fatalf("a corrupt batch: %v, want ErrCRCMismatch", err)
	}
	if leo := follower.LogEndOffset(); leo != 2 {
		t.Fatalf("follower end %d after refused batches, want 2", leo)
	}
}

// TestReplicationTruncateRewindsState: truncating a divergent tail that
// held a transaction's records and its ABORT marker rewinds the producer
// state, the open transaction and the aborted-transaction index.
func TestReplicationTruncateRewindsState(t *testing.T) {
	leader, follower := replicaPair(t)
	b, h := idempotentBatch(t, 5, 0, 0, 2)
	mustAppend(t, leader, b, h)
	tb, th := txnBatch(t, 9, 0, 0, 2)
	mustAppend(t, leader, tb, th)
	replicate(t, leader, follower) // offsets 0-3
	follower.mu.Lock()
	open := follower.mu.producers[9].CurrentTxnFirstOffset
	follower.mu.Unlock()
	if open != 2 {
		t.Fatalf("follower's open transaction starts at %d, want 2", open)
	}
	mustMarker(t, leader, 9, 0, false) // ABORT at 4
	b, h = idempotentBatch(t, 5, 0, 2, 1)
	mustAppend(t, leader, b, h) // 5
	replicate(t, leader, follower)
	if got := follower.AbortedTransactions(0, 10); len(got) != 1 || got[0].FirstOffset != 2 {
		t.Fatalf("follower aborted transactions %+v, want one from offset 2", got)
	}

	if err := follower.TruncateTo(4); err != nil {
		t.Fatal(err)
	}
	if leo, hw := follower.LogEndOffset(), follower.HighWatermark(); leo != 4 || hw != 4 {
		t.Fatalf("after truncation end %d high watermark %d, want 4 and 4", leo, hw)
	}
	if got := follower.AbortedTransactions(0, 10); len(got) != 0 {
		t.Fatalf("aborted transactions after the marker was truncated: %+v", got)
	}
	follower.mu.Lock()
	open = follower.mu.producers[9].CurrentTxnFirstOffset
	last := follower.mu.producers[5].lastSeq()
	follower.mu.Unlock()
	if open != 2 || last != 1 {
		t.Fatalf("after truncation: open transaction at %d, producer 5 last sequence %d; want 2 and 1", open, last)
	}
	if lso := follower.LastStableOffset(); lso != 2 {
		t.Fatalf("last stable offset %d after truncation, want 2", lso)
	}
	// The follower fetches the leader's tail again and matches it.
	replicate(t, leader, follower)
	if !bytes.Equal(logBytes(t, leader), logBytes(t, follower)) {
		t.Fatal("the follower's log differs from the leader's after refetching")
	}
}

// TestReplicationHighWatermarkCheckpoint: a replicated partition reopens
// with its checkpointed high watermark, not its log end, so records its
// followers never acknowledged stay invisible; a single replica reopens at
// its log end as before.
func TestReplicationHighWatermarkCheckpoint(t *testing.T) {
	dir := t.TempDir()
	var id, id1 [16]byte
	id[0], id1[0] = 4, 5
	want := map[TopicPartition]PartitionState{
		{"r", 0}: {TopicID: id, Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Config: testConfig()},
		{"s", 0}: {TopicID: id1, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}, Config: testConfig()},
	}
	m := NewManager(ManagerConfig{DataDir: dir, NodeID: 1})
	if err := m.Reconcile(want); err != nil {
		t.Fatal(err)
	}
	r, s := m.Get("r", 0), m.Get("s", 0)
	for range 2 {
		b, h := idempotentBatch(t, -1, -1, -1, 2)
		mustAppend(t, r, b, h)
		b, h = idempotentBatch(t, -1, -1, -1, 2)
		mustAppend(t, s, b, h)
	}
	if err := r.UpdateFollower(2, 2); err != nil { // the follower has the first batch only
		t.Fatal(err)
	}
	if r.HighWatermark() != 2 || s.HighWatermark() != 4 {
		t.Fatalf("high watermarks %d and %d, want 2 and 4", r.HighWatermark(), s.HighWatermark())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m = NewManager(ManagerConfig{DataDir: dir, NodeID: 1})
	defer m.Close()
	if err := m.Reconcile(want); err != nil {
		t.Fatal(err)
	}
	r, s = m.Get("r", 0), m.Get("s", 0)
	if r.LogEndOffset() != 4 || r.HighWatermark() != 2 {
		t.Fatalf("replicated partition reopened at end %d high watermark %d, want 4 and 2", r.LogEndOffset(), r.HighWatermark())
	}
	if s.HighWatermark() != 4 {
		t.Fatalf("single replica reopened at high watermark %d, want its log end 4", s.HighWatermark())
	}
	if err := r.UpdateFollower(2, 4); err != nil {
		t.Fatal(err)
	}
	if r.HighWatermark() != 4 {
		t.Fatalf("high watermark %d once the follower has everything, want 4", r.HighWatermark())
	}
}

// TestReplicationRemovedReplicaDeleted: a partition whose replicas no
// longer list this node (a completed reassignment) is closed and its
// directory deleted, while the topic lives on elsewhere.
func TestReplicationRemovedReplicaDeleted(t *testing.T) {
	dir := t.TempDir()
	var id [16]byte
	id[0] = 7
	tp := TopicPartition{"moved", 0}
	m := NewManager(ManagerConfig{DataDir: dir, NodeID: 1})
	defer m.Close()
	if err := m.Reconcile(map[TopicPartition]PartitionState{tp: {TopicID: id, Leader: 2, LeaderEpoch: 0,
		Replicas: []int32{2, 1}, ISR: []int32{2, 1}, Config: testConfig()}}); err != nil {
		t.Fatal(err)
	}
	p := m.Get("moved", 0)
	if p == nil {
		t.Fatal("follower partition not opened")
	}
	if _, err := os.Stat(filepath.Join(dir, "moved-0")); err != nil {
		t.Fatal(err)
	}
	if err := m.Reconcile(map[TopicPartition]PartitionState{tp: {TopicID: id, Leader: 2, LeaderEpoch: 1,
		Replicas: []int32{2, 3}, ISR: []int32{2, 3}, Config: testConfig()}}); err != nil {
		t.Fatal(err)
	}
	if m.Get("moved", 0) != nil {
		t.Fatal("partition still hosted after leaving its replicas")
	}
	if _, err := os.Stat(filepath.Join(dir, "moved-0")); !os.IsNotExist(err) {
		t.Fatalf("directory of the removed replica: %v, want it deleted", err)
	}
	if _, err := p.AppendReplicated(nil); err != ErrClosed {
		t.Fatalf("append to the removed replica: %v, want ErrClosed", err)
	}
}

// parkProduce opens partition 0 of topic, led by node 1 with node 2 in the
// ISR, appends a batch and parks an acks=all wait for it; node 2 never
// fetches, so only what the caller does next ends the wait, whose outcome
// arrives on the returned channel.
func parkProduce(t *testing.T, topic string, idByte byte) (*Manager, TopicPartition, [16]byte, *Partition, AppendResult, <-chan error) {
	t.Helper()
	var id [16]byte
	id[0] = idByte
	tp := TopicPartition{topic, 0}
	m := NewManager(ManagerConfig{DataDir: t.TempDir(), NodeID: 1})
	t.Cleanup(func() { m.Close() })
	if err := m.Reconcile(map[TopicPartition]PartitionState{tp: {TopicID: id, Leader: 1,
		Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Config: testConfig()}}); err != nil {
		t.Fatal(err)
	}
	p := m.Get(topic, 0)
	b, h := idempotentBatch(t, -1, -1, -1, 2)
	res := mustAppend(t, p, b, h)
	done := make(chan error, 1)
	go func() {
		done <- p.WaitReplicatedInEpoch(context.Background(), res.LastOffset+1, res.LeaderEpoch)
	}()
	select {
	case err := <-done:
		t.Fatalf("answered before the follower fetched: %v", err)
	case <-time.After(50 * time.Millisecond): // parked: the follower never fetches
	}
	return m, tp, id, p, res, done
}

// TestReplicationParkedProduceOnRemovedReplica: an acks=all produce parked
// on a leader whose replica is then deleted (a reassignment moved the
// partition off this node) is answered ErrNotLeader at once, so the
// producer retries on the new leader, instead of waiting out its timeout.
func TestReplicationParkedProduceOnRemovedReplica(t *testing.T) {
	m, tp, id, _, _, done := parkProduce(t, "leaving", 8)
	if err := m.Reconcile(map[TopicPartition]PartitionState{tp: {TopicID: id, Leader: 2, LeaderEpoch: 1,
		Replicas: []int32{2, 3}, ISR: []int32{2, 3}, Config: testConfig()}}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotLeader) {
			t.Fatalf("parked produce on the removed replica: %v, want ErrNotLeader", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("parked produce still waiting after its replica was deleted")
	}
}

// TestReplicationStateLogScanPastHighWatermark: a coordinator loading its
// partition reads to the log end, as Kafka's loader does. A leader that
// just restarted may sit at a high watermark below records every ISR member
// holds (its checkpoint lacked the partition); a scan that stopped there
// loaded an empty group after a power loss and never looked again.
func TestReplicationStateLogScanPastHighWatermark(t *testing.T) {
	leader, _ := replicaPair(t)
	next, err := leader.AppendKeyValues(time.Now(), KeyValue{Key: []byte("k1"), Value: []byte("v1")},
		KeyValue{Key: []byte("k2"), Value: []byte("v2")})
	if err != nil {
		t.Fatal(err)
	}
	if hw := leader.HighWatermark(); hw >= next {
		t.Fatalf("high watermark %d already at %d: the follower has not fetched", hw, next)
	}
	var keys []string
	if _, err := leader.ScanStateLogToEnd(func(r StateRecord) error { keys = append(keys, string(r.Key)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("scan saw %v, want both records below the log end", keys)
	}
}

// TestReplicaLedSince: a leader epoch bumped while the node keeps leading
// keeps LedSince (coordinators stay loaded across it); following clears it;
// leading again starts a new leadership at the new epoch.
func TestReplicaLedSince(t *testing.T) {
	leader, follower := replicaPair(t)
	if got := leader.LedSince(); got != 0 {
		t.Fatalf("leader LedSince %d, want 0", got)
	}
	if got := follower.LedSince(); got != -1 {
		t.Fatalf("follower LedSince %d, want -1", got)
	}
	leader.becomeLeader(1, 1, []int32{1}, []int32{1}) // a reassignment dropped node 2
	if got := leader.LedSince(); got != 0 {
		t.Fatalf("LedSince after a same-leader bump %d, want 0", got)
	}
	leader.becomeFollower(2, 2)
	if got := leader.LedSince(); got != -1 {
		t.Fatalf("LedSince while following %d, want -1", got)
	}
	leader.becomeLeader(3, 3, []int32{1, 2}, []int32{1, 2})
	if got := leader.LedSince(); got != 3 {
		t.Fatalf("LedSince when elected again %d, want 3", got)
	}
}

// TestReplicationParkedProduceOnOfflineLogDir: an acks=all produce (or a
// coordinator's write) parked on a leader whose log directory then goes
// offline fails with ErrLogDirOffline (KAFKA_STORAGE_ERROR) at once. Seen
// by the chaos suite's full disk: the node stops reconciling and its
// followers are refused, so no high watermark or leadership change would
// ever end the wait; a group coordinator's write parked there kept the
// group's unload, and so the node's shutdown, waiting until SIGKILL.
func TestReplicationParkedProduceOnOfflineLogDir(t *testing.T) {
	m, _, _, p, res, done := parkProduce(t, "failing", 9)
	m.SetOffline(errors.New("write: no space left on device"))
	select {
	case err := <-done:
		if !errors.Is(err, ErrLogDirOffline) || !errors.Is(err, commitlog.ErrLogFailed) {
			t.Fatalf("parked produce on the offline log directory: %v, want ErrLogDirOffline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("parked produce still waiting after the log directory went offline")
	}
	// A produce parked after it fails at once too.
	if err := p.WaitReplicatedInEpoch(context.Background(), res.LastOffset+1, res.LeaderEpoch); !errors.Is(err, ErrLogDirOffline) {
		t.Fatalf("wait on the offline log directory: %v, want ErrLogDirOffline", err)
	}
}

// TestReplicationNewPartitionVisibleWithItsRole: a partition Reconcile opens
// is visible to Get only once it leads or follows as the metadata says.
// Before, it was visible first, as neither: an acks=1 produce in between
// appended to a future follower as if it led at epoch 0.
func TestReplicationNewPartitionVisibleWithItsRole(t *testing.T) {
	m := NewManager(ManagerConfig{DataDir: t.TempDir(), NodeID: 1})
	defer m.Close()
	// The window was a few instructions wide: several rounds of many
	// partitions give the watcher below a fair chance to land in it.
	const n = 64
	want := make(map[TopicPartition]PartitionState)
	for round := range 4 {
		topic := fmt.Sprintf("fresh-%d", round)
		var id [16]byte
		id[0], id[1] = 9, byte(round)
		for i := range n {
			want[TopicPartition{topic, int32(i)}] = PartitionState{TopicID: id, Leader: 2, LeaderEpoch: 3,
				Replicas: []int32{2, 1}, ISR: []int32{2, 1}, Config: testConfig()}
		}
		done := make(chan error, 1)
		go func() { done <- m.Reconcile(want) }()
		seen, reconciled := 0, false
		for seen < n {
			if !reconciled {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
					reconciled = true
				default:
				}
			}
			seen = 0
			for i := range n {
				p := m.Get(topic, int32(i))
				if p == nil {
					continue
				}
				seen++
				if p.IsLeader() || p.Leader() != 2 || p.LeaderEpoch() != 3 {
					t.Fatalf("%s[%d] visible as leader %v (leader %d, epoch %d), want a follower of 2 at epoch 3",
						topic, i, p.IsLeader(), p.Leader(), p.LeaderEpoch())
				}
			}
			if reconciled && seen < n {
				t.Fatalf("%d of %d partitions of %s hosted after Reconcile", seen, n, topic)
			}
		}
		if !reconciled {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
}
