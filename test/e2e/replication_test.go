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

// TestE2EReplicationFollowerKilledCatchesUp: three `gregor serve`
// processes, a topic with replication factor 3 and min.insync.replicas=2.
// An idempotent acks=all producer writes; a follower is killed with
// SIGKILL and restarted on its data; more acks=all writes succeed once it
// is back (the ISR does not shrink yet); the three replicas' logs end
// byte-identical and a consumer reads every record exactly once.
func TestE2EReplicationFollowerKilledCatchesUp(t *testing.T) {
	ports := freePorts(t, 9)
	kafkaPort := func(id int) int { return ports[3*(id-1)] }
	ctrlPort := func(id int) int { return ports[3*(id-1)+1] }
	httpPort := func(id int) int { return ports[3*(id-1)+2] }
	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", ctrlPort(1), ctrlPort(2), ctrlPort(3))
	base := t.TempDir()
	dir := func(id int) string { return filepath.Join(base, fmt.Sprintf("node-%d", id)) }
	procs := map[int]*proc{}
	start := func(id int) *proc {
		p := spawn(t, dir(id), "serve", "--node-id", strconv.Itoa(id), "--data-dir", dir(id),
			"--kafka-addr", fmt.Sprintf("127.0.0.1:%d", kafkaPort(id)),
			"--controller-addr", fmt.Sprintf("127.0.0.1:%d", ctrlPort(id)),
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort(id)),
			"--set", "controller.quorum.voters="+voters)
		procs[id] = p
		return p
	}
	for id := 1; id <= 3; id++ {
		start(id)
	}
	for id := 1; id <= 3; id++ {
		procs[id].awaitStarted(t)
		waitReady(t, procs[id])
	}
	eventually(t, 15*time.Second, "three brokers listed", func() error {
		v, err := viewCluster(procs[1].kafkaAddr)
		if err != nil {
			return err
		}
		if !slices.Equal(v.brokers, []int32{1, 2, 3}) {
			return fmt.Errorf("brokers %v", v.brokers)
		}
		return nil
	})

	const topic = "replicated"
	adm := kadm.NewClient(newClient(t, procs[1]))
	resp, err := adm.CreateTopic(testCtx(t, 15*time.Second), 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	var leader int32
	eventually(t, 15*time.Second, "the partition's leader", func() error {
		md, err := adm.Metadata(testCtx(t, 5*time.Second), topic)
		if err != nil {
			return err
		}
		p, ok := md.Topics[topic].Partitions[0]
		if !ok || p.Err != nil || p.Leader < 1 || len(p.Replicas) != 3 {
			return fmt.Errorf("partition 0: %+v", p)
		}
		leader = p.Leader
		return nil
	})
	follower := int(leader%3) + 1

	seeds := kgo.SeedBrokers(procs[1].kafkaAddr, procs[2].kafkaAddr, procs[3].kafkaAddr)
	produce := func(from, to int) {
		t.Helper()
		cl := newClient(t, procs[int(leader)], seeds, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordDeliveryTimeout(60*time.Second))
		defer cl.Close()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Value: []byte(fmt.Sprintf("v-%d", i))})
		}
		if err := cl.ProduceSync(testCtx(t, 90*time.Second), recs...).FirstErr(); err != nil {
			t.Fatalf("produce %d-%d: %v", from, to, err)
		}
	}
	produce(0, 200)
	procs[follower].kill()
	restarted := start(follower)
	restarted.awaitStarted(t)
	waitReady(t, restarted)
	produce(200, 300)

	partDir := func(id int) string { return filepath.Join(dir(id), topic+"-0") }
	eventually(t, 30*time.Second, "three byte-identical replicas", func() error {
		want, err := partitionLog(partDir(int(leader)))
		if err != nil {
			return err
		}
		for id := 1; id <= 3; id++ {
			got, err := partitionLog(partDir(id))
			if err != nil {
				return err
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("node %d's log has %d bytes, the leader's %d, or differs", id, len(got), len(want))
			}
		}
		return nil
	})

	recs := readAll(t, procs[int(leader)], topic)
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[string(r.Value)] {
			t.Fatalf("record %s read twice", r.Value)
		}
		seen[string(r.Value)] = true
	}
	if len(seen) != 300 {
		t.Fatalf("read %d distinct records, want 300", len(seen))
	}
}
