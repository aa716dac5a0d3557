package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupCoordinator asks p which node coordinates group.
func groupCoordinator(t *testing.T, p *proc, group string) (int32, error) {
	t.Helper()
	cl := newClient(t, p)
	defer cl.Close()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey, req.CoordinatorKeys = group, []string{group}
	resp, err := req.RequestWith(testCtx(t, 5*time.Second), cl)
	if err != nil {
		return -1, err
	}
	code, node := resp.ErrorCode, resp.NodeID
	if len(resp.Coordinators) == 1 {
		code, node = resp.Coordinators[0].ErrorCode, resp.Coordinators[0].NodeID
	}
	if code != 0 || node < 0 {
		return -1, fmt.Errorf("FindCoordinator: error %d, node %d", code, node)
	}
	return node, nil
}

// TestE2ECoordinatorKilled: three processes; a consumer group consumes and
// commits; the node coordinating the group is killed with SIGKILL. The
// controller fences it and elects another leader for the group's
// __consumer_offsets partition (replicated on all three by default), which
// loads it: the committed offsets are there, and the consumer, finding the
// new coordinator, consumes and commits the next records.
func TestE2ECoordinatorKilled(t *testing.T) {
	c := startReplicatedCluster(t, "broker.session.timeout.ms=2000", "broker.heartbeat.interval.ms=500",
		"group.initial.rebalance.delay.ms=0", "offsets.topic.num.partitions=3")
	const group, n = "e2e-billing", 50
	prod := newClient(t, c.procs[1], c.seeds, kgo.DefaultProduceTopic(replicatedTopic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(60*time.Second))
	produce := func(from, to int) {
		t.Helper()
		var recs []*kgo.Record
		for _, v := range values(from, to) {
			recs = append(recs, &kgo.Record{Value: []byte(v)})
		}
		if err := prod.ProduceSync(testCtx(t, 90*time.Second), recs...).FirstErr(); err != nil {
			t.Fatalf("produce %d-%d: %v", from, to, err)
		}
	}
	produce(0, n)
	cons := newClient(t, c.procs[1], c.seeds, kgo.ConsumerGroup(group), kgo.ConsumeTopics(replicatedTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.SessionTimeout(10*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.RetryTimeout(60*time.Second))
	consume := func(want []string) {
		t.Helper()
		var got []string
		ctx := testCtx(t, 60*time.Second)
		for len(got) < len(want) && ctx.Err() == nil {
			cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("consumed %d records %v..., want %d from %q", len(got), got[:min(len(got), 3)], len(want), want[0])
		}
		if err := cons.CommitUncommittedOffsets(testCtx(t, 60*time.Second)); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	consume(values(0, n))

	var old int32
	eventually(t, 15*time.Second, "the group's coordinator", func() (err error) {
		old, err = groupCoordinator(t, c.procs[1], group)
		return err
	})
	killed := time.Now()
	c.procs[int(old)].kill()
	survivor := c.procs[int(old)%3+1]
	var now int32
	eventually(t, 30*time.Second, "another coordinator", func() (err error) {
		now, err = groupCoordinator(t, survivor, group)
		if err == nil && now == old {
			err = fmt.Errorf("node %d still named", old)
		}
		return err
	})
	t.Logf("coordinator %d killed: node %d coordinates after %v", old, now, time.Since(killed).Round(time.Millisecond))
	adm := kadm.NewClient(newClient(t, survivor))
	committed := func() int64 {
		var at int64 = -1
		eventually(t, 30*time.Second, "the committed offset", func() error {
			offs, err := adm.FetchOffsets(testCtx(t, 10*time.Second), group)
			if err != nil {
				return err
			}
			o, ok := offs.Lookup(replicatedTopic, 0)
			if !ok || o.Err != nil {
				return fmt.Errorf("offset: %+v", o)
			}
			at = o.At
			return nil
		})
		return at
	}
	if got := committed(); got != n {
		t.Fatalf("committed offset on the new coordinator %d, want %d", got, n)
	}

	produce(n, 2*n)
	consume(values(n, 2*n))
	if got := committed(); got != 2*n {
		t.Fatalf("committed offset after the failover %d, want %d", got, 2*n)
	}
}
