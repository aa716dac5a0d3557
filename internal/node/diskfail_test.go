package node_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/vfs"
)

// TestClusterFailingDisk: the fsyncs or the writes of one broker's segment
// files start failing (EIO, a full disk) under an idempotent acks=all
// producer. That broker's log directory goes offline: it answers
// KAFKA_STORAGE_ERROR and asks the controller to fence it, which drops it
// from the ISR at once and, when it led the partition, elects another ISR
// member. The producer carries on, and every acknowledged record is read
// back once at its offset from the two healthy replicas, which are
// byte-identical.
func TestClusterFailingDisk(t *testing.T) {
	for _, tc := range []struct {
		name   string
		leader bool
		op     vfs.Op
	}{
		{"leader fsync", true, vfs.OpSync},
		{"leader write", true, vfs.OpWrite},
		{"follower fsync", false, vfs.OpSync},
	} {
		t.Run(tc.name, func(t *testing.T) { failingDisk(t, tc.leader, tc.op) })
	}
}

func failingDisk(t *testing.T, victimLeads bool, op vfs.Op) {
	const topic = "diskfail"
	ffs := []*vfs.FaultFS{vfs.NewFaultFS(vfs.NewMemFS()), vfs.NewFaultFS(vfs.NewMemFS()), vfs.NewFaultFS(vfs.NewMemFS())}
	// A long session: leadership must move because the broker fences
	// itself, not because its heartbeats stop.
	c := startFSCluster(t, map[string]string{"broker.session.timeout.ms": "60000", "broker.heartbeat.interval.ms": "300"},
		[]vfs.FS{ffs[0], ffs[1], ffs[2]})
	createReplicated(t, c.cluster, topic, 1, map[string]*string{"min.insync.replicas": strp("2")})
	leader0 := leaderOf(c.cluster, topic, 0)
	old := leader0
	if !victimLeads {
		old = c.nodes[(leaderIndex(c.cluster, leader0)+1)%3]
	}
	oi := leaderIndex(c.cluster, old)
	var survivors []*node.Node
	for _, n := range c.nodes {
		if n != old {
			survivors = append(survivors, n)
		}
	}
	_, oldEpoch := metadataLeader(t, survivors[0], topic, 0)

	var (
		mu    sync.Mutex
		acked = map[string]int64{}
	)
	cl := newClient(t, survivors[0], kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(time.Millisecond), kgo.RecordRetries(1<<30))
	stop := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := fmt.Sprintf("v-%d", i)
			cl.Produce(context.Background(), &kgo.Record{Partition: 0, Value: []byte(v)}, func(r *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked[v] = r.Offset
					mu.Unlock()
				}
			})
			if i%32 == 31 {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				cl.Flush(ctx)
				cancel()
			}
		}
	})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	checkFor(t, "300 acknowledged records", func() bool { return count() >= 300 })

	flt := ffs[oi].Add(&vfs.Fault{Op: op, Match: vfs.Suffix(".log"), Fail: true})
	defer ffs[oi].Clear(flt)
	failedAt := time.Now()
	<-flt.Hit()
	var newID, newEpoch int32
	if victimLeads {
		checkFor(t, "a new leader in Metadata", func() bool {
			newID, newEpoch = metadataLeader(t, survivors[0], topic, 0)
			return newID >= 0 && newID != old.NodeID()
		})
		t.Logf("disk of broker %d failed; broker %d leads at epoch %d after %v", old.NodeID(), newID, newEpoch, time.Since(failedAt))
		if newEpoch <= oldEpoch {
			t.Fatalf("leader epoch %d, was %d", newEpoch, oldEpoch)
		}
	} else {
		newID = leader0.NodeID()
		checkFor(t, "the offline follower to leave the ISR", func() bool {
			return !slices.Contains(isrOf(t, leader0, topic, 0), old.NodeID())
		})
		t.Logf("disk of follower %d failed; out of the ISR after %v", old.NodeID(), time.Since(failedAt))
	}

	// The offline broker answers KAFKA_STORAGE_ERROR.
	ocl := newClient(t, old)
	preq := kmsg.NewPtrProduceRequest()
	preq.Acks, preq.TimeoutMillis = -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = topic
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = rawBatch(t, -1, -1, -1, 1, "offline")
	pt.Partitions = append(pt.Partitions, pp)
	preq.Topics = append(preq.Topics, pt)
	// To the seed: a fenced broker is not in Metadata, so not by its id.
	presp, err := preq.RequestWith(testCtx(t, 10*time.Second), ocl.SeedBrokers()[0])
	if err != nil {
		t.Fatal(err)
	}
	if code := presp.Topics[0].Partitions[0].ErrorCode; code != kerr.KafkaStorageError.Code {
		t.Fatalf("produce to the offline broker: %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(code))
	}

	// And is not ready.
	hresp, err := http.Get("http://" + old.HTTPAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	if hresp.StatusCode == http.StatusOK {
		t.Fatal("/readyz of the offline broker answers 200")
	}

	// Production goes on through the new leader.
	before := count()
	checkFor(t, "acknowledgements from the new leader", func() bool { return count() >= before+200 })
	close(stop)
	pwg.Wait()
	if err := cl.Flush(testCtx(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}

	var leader *node.Node
	for _, n := range survivors {
		if n.NodeID() == newID {
			leader = n
		}
	}
	if isr := isrOf(t, leader, topic, 0); len(isr) != 2 {
		t.Fatalf("ISR %v after broker %d went offline", isr, old.NodeID())
	}
	lst, _ := leader.Replica(topic, 0)
	recs := consumePartitions(t, leader, topic, []int32{0}, int(lst.HighWatermark))
	seen := map[string]int64{}
	for _, r := range recs {
		if prev, dup := seen[string(r.Value)]; dup {
			t.Fatalf("%q at %d and %d", r.Value, prev, r.Offset)
		}
		seen[string(r.Value)] = r.Offset
	}
	mu.Lock()
	defer mu.Unlock()
	for v, off := range acked {
		if got, ok := seen[v]; !ok || got != off {
			t.Fatalf("acknowledged %q at %d: read at %d (found %v)", v, off, got, ok)
		}
	}
	want := memSegmentBytes(t, c.fss[leaderIndex(c.cluster, leader)], lst.Dir)
	for _, n := range survivors {
		checkFor(t, fmt.Sprintf("node %d to catch up", n.NodeID()), func() bool {
			st, _ := n.Replica(topic, 0)
			return st.LogEndOffset == lst.LogEndOffset
		})
		st, _ := n.Replica(topic, 0)
		if !bytes.Equal(memSegmentBytes(t, c.fss[leaderIndex(c.cluster, n)], st.Dir), want) {
			t.Fatalf("node %d's log differs from the leader's", n.NodeID())
		}
	}
	t.Logf("%d acknowledged records, all read back", len(acked))
}
