package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// partitionLog concatenates a partition's segment files in offset order.
func partitionLog(dir string) ([]byte, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, e := range ents { // sorted by name: 20-digit base offsets
		if strings.HasSuffix(e.Name(), ".log") {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			out = append(out, b...)
		}
	}
	return out, nil
}

// replicatedCluster is three `gregor serve` processes forming one cluster
// and a topic with one partition, replication factor 3 and
// min.insync.replicas=2.
type replicatedCluster struct {
	procs  map[int]*proc
	start  func(id int) *proc
	dir    func(id int) string
	adm    *kadm.Client
	seeds  kgo.Opt
	leader int32
}

const replicatedTopic = "replicated"

func startReplicatedCluster(t *testing.T, sets ...string) *replicatedCluster {
	t.Helper()
	ports := freePorts(t, 9)
	kafkaPort := func(id int) int { return ports[3*(id-1)] }
	ctrlPort := func(id int) int { return ports[3*(id-1)+1] }
	httpPort := func(id int) int { return ports[3*(id-1)+2] }
	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", ctrlPort(1), ctrlPort(2), ctrlPort(3))
	base := t.TempDir()
	c := &replicatedCluster{procs: map[int]*proc{}}
	c.dir = func(id int) string { return filepath.Join(base, fmt.Sprintf("node-%d", id)) }
	c.start = func(id int) *proc {
		args := []string{"serve", "--node-id", strconv.Itoa(id), "--data-dir", c.dir(id),
			"--kafka-addr", fmt.Sprintf("127.0.0.1:%d", kafkaPort(id)),
			"--controller-addr", fmt.Sprintf("127.0.0.1:%d", ctrlPort(id)),
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort(id)),
			"--set", "controller.quorum.voters=" + voters}
		for _, kv := range sets {
			args = append(args, "--set", kv)
		}
		p := spawn(t, c.dir(id), args...)
		c.procs[id] = p
		return p
	}
	for id := 1; id <= 3; id++ {
		c.start(id)
	}
	for id := 1; id <= 3; id++ {
		c.procs[id].awaitStarted(t)
		waitReady(t, c.procs[id])
	}
	eventually(t, 15*time.Second, "three brokers listed", func() error {
		v, err := viewCluster(c.procs[1].kafkaAddr)
		if err != nil {
			return err
		}
		if !slices.Equal(v.brokers, []int32{1, 2, 3}) {
			return fmt.Errorf("brokers %v", v.brokers)
		}
		return nil
	})
	c.adm = kadm.NewClient(newClient(t, c.procs[1]))
	resp, err := c.adm.CreateTopic(testCtx(t, 15*time.Second), 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, replicatedTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	c.leader = c.awaitLeader(t, -1)
	c.seeds = kgo.SeedBrokers(c.procs[1].kafkaAddr, c.procs[2].kafkaAddr, c.procs[3].kafkaAddr)
	return c
}

// awaitLeader waits for partition 0 to have a leader other than not and
// returns it.
func (c *replicatedCluster) awaitLeader(t *testing.T, not int32) int32 {
	t.Helper()
	var leader int32
	eventually(t, 30*time.Second, "the partition's leader", func() error {
		for id, p := range c.procs {
			select {
			case <-p.exited:
				continue // killed
			default:
			}
			adm := kadm.NewClient(newClient(t, p))
			md, err := adm.Metadata(testCtx(t, 5*time.Second), replicatedTopic)
			adm.Close()
			if err != nil {
				continue
			}
			pm, ok := md.Topics[replicatedTopic].Partitions[0]
			if !ok || pm.Err != nil || pm.Leader < 1 || pm.Leader == not || len(pm.Replicas) != 3 {
				return fmt.Errorf("partition 0 on node %d: %+v", id, pm)
			}
			leader = pm.Leader
			return nil
		}
		return fmt.Errorf("no live node answered")
	})
	return leader
}

// checkReplicas waits for the three replicas' logs to be byte-identical and
// reads the partition from node from: every value of want exactly once, in
// order.
func (c *replicatedCluster) checkReplicas(t *testing.T, from int, want []string) {
	t.Helper()
	partDir := func(id int) string { return filepath.Join(c.dir(id), replicatedTopic+"-0") }
	eventually(t, 30*time.Second, "three byte-identical replicas", func() error {
		ref, err := partitionLog(partDir(from))
		if err != nil {
			return err
		}
		for id := 1; id <= 3; id++ {
			got, err := partitionLog(partDir(id))
			if err != nil {
				return err
			}
			if !bytes.Equal(got, ref) {
				return fmt.Errorf("node %d's log has %d bytes, node %d's %d, or differs", id, len(got), from, len(ref))
			}
		}
		return nil
	})
	recs := readAll(t, c.procs[from], replicatedTopic)
	if len(recs) != len(want) {
		t.Fatalf("read %d records, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if string(r.Value) != want[i] {
			t.Fatalf("record %d (offset %d) is %q, want %q", i, r.Offset, r.Value, want[i])
		}
	}
}

func values(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("v-%d", i))
	}
	return out
}

// TestE2EReplicationFollowerKilledCatchesUp: an idempotent acks=all
// producer writes; a follower is killed with SIGKILL and restarted on its
// data; more acks=all writes succeed once it is back; the three replicas'
// logs end byte-identical and a consumer reads every record exactly once,
// in order.
func TestE2EReplicationFollowerKilledCatchesUp(t *testing.T) {
	c := startReplicatedCluster(t)
	follower := int(c.leader%3) + 1
	produce := func(from, to int) {
		t.Helper()
		cl := newClient(t, c.procs[int(c.leader)], c.seeds, kgo.DefaultProduceTopic(replicatedTopic), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordDeliveryTimeout(60*time.Second))
		defer cl.Close()
		var recs []*kgo.Record
		for _, v := range values(from, to) {
			recs = append(recs, &kgo.Record{Value: []byte(v)})
		}
		if err := cl.ProduceSync(testCtx(t, 90*time.Second), recs...).FirstErr(); err != nil {
			t.Fatalf("produce %d-%d: %v", from, to, err)
		}
	}
	produce(0, 200)
	c.procs[follower].kill()
	restarted := c.start(follower)
	restarted.awaitStarted(t)
	waitReady(t, restarted)
	produce(200, 300)
	c.checkReplicas(t, int(c.leader), values(0, 300))
}

// TestE2EReplicationLeaderKilled: the partition's leader is killed with
// SIGKILL while an idempotent acks=all producer keeps writing. The
// controller fences it once its heartbeats stop (broker.session.timeout.ms
// 2000 here) and elects a new leader from the ISR; the same producer
// carries on after refreshing metadata. The old leader restarts on its
// data, truncates to the new leader's log and catches up: every
// acknowledged record is read exactly once, in order, and the replicas are
// byte-identical.
func TestE2EReplicationLeaderKilled(t *testing.T) {
	c := startReplicatedCluster(t, "broker.session.timeout.ms=2000", "broker.heartbeat.interval.ms=500")
	old := c.leader
	cl := newClient(t, c.procs[int(old)], c.seeds, kgo.DefaultProduceTopic(replicatedTopic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(60*time.Second))
	defer cl.Close()
	produce := func(from, to int) {
		t.Helper()
		var recs []*kgo.Record
		for _, v := range values(from, to) {
			recs = append(recs, &kgo.Record{Value: []byte(v)})
		}
		if err := cl.ProduceSync(testCtx(t, 90*time.Second), recs...).FirstErr(); err != nil {
			t.Fatalf("produce %d-%d: %v", from, to, err)
		}
	}
	produce(0, 200)
	killed := time.Now()
	c.procs[int(old)].kill()
	produce(200, 201) // the first acknowledged write after the kill
	t.Logf("leader %d killed: first acks=all write acknowledged after %v", old, time.Since(killed).Round(time.Millisecond))
	leader := c.awaitLeader(t, old)
	produce(201, 400)
	restarted := c.start(int(old))
	restarted.awaitStarted(t)
	waitReady(t, restarted)
	c.checkReplicas(t, int(leader), values(0, 400))
}
