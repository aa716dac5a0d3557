package txn

import (
	"context"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/replica"
)

// TestTxnOffsetsMarkerOnGroupPartition: AddOffsetsToTxn adds the group's
// __consumer_offsets partition to the transaction (persisted), EndTxn
// writes its marker there and reports it before Complete*, and a
// TxnOffsetCommit's write cannot be overtaken by the end of its
// transaction (else its offsets would land after the marker).
func TestTxnOffsetsMarkerOnGroupPartition(t *testing.T) {
	m := replica.NewManager(replica.ManagerConfig{DataDir: t.TempDir(), NodeID: 1})
	t.Cleanup(func() { m.Close() })
	cfg := config.Layers{}.ResolveTopic()
	state := func(id byte) replica.PartitionState {
		return replica.PartitionState{TopicID: [16]byte{id}, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}, Config: cfg}
	}
	if err := m.Reconcile(map[replica.TopicPartition]replica.PartitionState{
		{Topic: Topic, Partition: 0}:                state(1),
		{Topic: "__consumer_offsets", Partition: 0}: state(2),
	}); err != nil {
		t.Fatal(err)
	}
	type marker struct {
		tp     TopicPartition
		commit bool
	}
	markers := make(chan marker, 4)
	c := New(Config{NumPartitions: 1,
		ProducerIDs: NewProducerIDs(func(context.Context) (int64, int64, error) { return 1000, 10, nil }),
		Partition:   func(topic string, p int32) *replica.Partition { return m.Get(topic, p) },
		GroupPartition: func(string) TopicPartition {
			return TopicPartition{Topic: "__consumer_offsets", Partition: 0}
		},
		MarkerWritten: func(_ context.Context, tp TopicPartition, _ int64, commit bool) error {
			markers <- marker{tp, commit}
			return nil
		},
	})
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Start()
	if _, err := c.owner.WaitLoaded(ctx, 0); err != nil {
		t.Fatal(err)
	}
	pid, epoch, err := c.InitProducerID(ctx, "id", time.Minute, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddOffsets(ctx, "id", pid, epoch, "g", false); err != nil {
		t.Fatal(err)
	}
	md, err := c.Describe("id")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := md.Partitions[TopicPartition{Topic: "__consumer_offsets", Partition: 0}]; !ok || md.State != Ongoing {
		t.Fatalf("after AddOffsetsToTxn: %s %v, want Ongoing with the group's partition", md.State, md.Partitions)
	}

	// A TxnOffsetCommit in its write: EndTxn waits for it.
	writing, release := make(chan struct{}), make(chan struct{})
	commitDone := make(chan error, 1)
	go func() {
		commitDone <- c.CommitOffsets("id", pid, epoch, "g", func() error {
			close(writing)
			<-release
			return nil
		})
	}()
	<-writing
	endDone := make(chan error, 1)
	go func() { _, _, err := c.EndTxn(ctx, "id", pid, epoch, true, false); endDone <- err }()
	select {
	case err := <-endDone:
		t.Fatalf("EndTxn returned (%v) while the offsets were being written", err)
	case <-markers:
		t.Fatal("marker written while the offsets were being written")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-commitDone; err != nil {
		t.Fatal(err)
	}
	if err := <-endDone; err != nil {
		t.Fatal(err)
	}
	select {
	case mk := <-markers:
		if mk.tp.Topic != "__consumer_offsets" || !mk.commit {
			t.Fatalf("marker %+v, want COMMIT on __consumer_offsets-0", mk)
		}
	default:
		t.Fatal("no marker reported for the group's partition")
	}
	if md, _ := c.Describe("id"); md.State != CompleteCommit {
		t.Fatalf("state %s, want CompleteCommit", md.State)
	}
	// After the end, a TxnOffsetCommit of the finished transaction is
	// refused before anything is written.
	wrote := false
	if err := c.CommitOffsets("id", pid, epoch, "g", func() error { wrote = true; return nil }); err != ErrInvalidTxnState || wrote {
		t.Fatalf("commit after the end: %v (wrote %v), want ErrInvalidTxnState and no write", err, wrote)
	}
}
