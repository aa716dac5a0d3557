package node_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/testkit"
	"github.com/gregor-dev/gregor/internal/vfs"
)

// fsCluster is three combined nodes whose data directories are on in-memory
// filesystems (node.Options.FS), so that a test can cut the power of all three.
type fsCluster struct {
	cluster
	fss   []vfs.FS
	props map[string]string
}

func (c *fsCluster) voters() string {
	return fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", c.ctrlPorts[0], c.ctrlPorts[1], c.ctrlPorts[2])
}

// startNodeOn starts node i on c.fss[i].
func (c *fsCluster) startNodeOn(i int) (*node.Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := map[string]string{"broker.rack": fmt.Sprintf("rack-%d", i+1)}
	for k, v := range c.props {
		p[k] = v
	}
	return node.Start(ctx, clusterNodeConfig(c.dirs[i], int32(i+1), c.ctrlPorts[i], c.voters(), p), nil, node.Options{FS: c.fss[i]})
}

// startAll starts the three nodes concurrently on c.fss.
func (c *fsCluster) startAll(t *testing.T) {
	t.Helper()
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { c.nodes[i], errs[i] = c.startNodeOn(i) })
	}
	wg.Wait()
	for i, n := range c.nodes {
		if n != nil {
			t.Cleanup(func() { n.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i+1, errs[i])
		}
	}
}

func startFSCluster(t *testing.T, props map[string]string, fss []vfs.FS) *fsCluster {
	t.Helper()
	c := &fsCluster{cluster: cluster{nodes: make([]*node.Node, 3), ctrlPorts: freePorts(t, 3)}, fss: fss, props: props}
	for i := range 3 {
		c.dirs = append(c.dirs, fmt.Sprintf("/data/node-%d", i+1))
	}
	c.startAll(t)
	return c
}

// memSegmentBytes is segmentBytes on a vfs.FS.
func memSegmentBytes(t *testing.T, fs vfs.FS, dir string) []byte {
	t.Helper()
	ents, err := fs.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") {
			b, err := fs.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
	}
	return out
}

type powerAck struct {
	partition int32
	offset    int64
}

// TestClusterPowerLoss: three nodes, RF=3, min.insync.replicas=2, an
// idempotent acks=all producer running; at one instant every node loses
// every write it had not fsynced (vfs.CrashCloneAll of the three
// filesystems), and the three restart on what survived. Every record
// acknowledged before the power loss is read back exactly once at its
// acknowledged offset, no value appears twice, production resumes, and the
// replicas end byte-identical. The seed varies the crash instant and the
// segment size (rolls, index and snapshot writes in flight at the crash).
func TestClusterPowerLoss(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) { powerLoss(t, seed) })
	}
}

func powerLoss(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 4711))
	const topic, partitions = "powerloss", 3
	mems := []*vfs.MemFS{vfs.NewMemFS(), vfs.NewMemFS(), vfs.NewMemFS()}
	props := map[string]string{
		"broker.session.timeout.ms":        "2000",
		"broker.heartbeat.interval.ms":     "300",
		"log.segment.bytes":                fmt.Sprint(8<<10 + rng.IntN(32<<10)),
		"offsets.topic.num.partitions":     "3",
		"offsets.topic.replication.factor": "3",
	}
	c := startFSCluster(t, props, []vfs.FS{mems[0], mems[1], mems[2]})
	createReplicated(t, c.cluster, topic, partitions, map[string]*string{"min.insync.replicas": strp("2")})

	var (
		mu       sync.Mutex
		acked    = map[string]powerAck{}
		produced int
	)
	cl := newClient(t, c.nodes[0], kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(time.Millisecond))
	stop := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := fmt.Sprintf("before-%d", i)
			mu.Lock()
			produced++
			mu.Unlock()
			cl.Produce(context.Background(), &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
				if err != nil {
					return
				}
				mu.Lock()
				acked[v] = powerAck{r.Partition, r.Offset}
				mu.Unlock()
			})
			if i%64 == 63 {
				// Keep the buffer bounded without waiting for each ack.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				cl.Flush(ctx)
				cancel()
			}
		}
	})
	// Offsets of a group committed alongside (the group coordinator's
	// state is records of __consumer_offsets, RF=3 here).
	var lastCommit, maxCommit int64
	acl := newClient(t, c.nodes[1])
	adm := kadm.NewClient(acl)
	pwg.Go(func() {
		for j := int64(1); ; j++ {
			select {
			case <-stop:
				return
			default:
			}
			var offs kadm.Offsets
			offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: j, LeaderEpoch: -1})
			mu.Lock()
			maxCommit = j
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := adm.CommitOffsets(ctx, "powerloss-group", offs)
			cancel()
			if err == nil && resp.Ok() {
				mu.Lock()
				lastCommit = j
				mu.Unlock()
			}
		}
	})
	want := 300 + rng.IntN(1500)
	checkFor(t, fmt.Sprintf("%d acknowledged records and a committed offset", want), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= want && lastCommit > 0
	})

	// The power loss: the acknowledgements seen so far are the ones that
	// must survive; the clones are taken under the same lock, so no
	// callback counted here ran after them.
	mu.Lock()
	clones := vfs.CrashCloneAll(mems...)
	mustHave := make(map[string]powerAck, len(acked))
	for v, a := range acked {
		mustHave[v] = a
	}
	mustCommit, nProduced := lastCommit, produced
	mu.Unlock()
	close(stop)
	t.Logf("power loss after %d acknowledged records (%d produced), offset %d committed", len(mustHave), nProduced, mustCommit)
	// What the old nodes do from here on reaches only the old filesystems.
	var cwg sync.WaitGroup
	for _, n := range c.nodes {
		cwg.Go(func() { n.Close() })
	}
	cl.Close()
	acl.Close()
	pwg.Wait()
	cwg.Wait()

	for i := range 3 {
		c.fss[i] = clones[i]
	}
	c.startAll(t)
	for p := range int32(partitions) {
		checkFor(t, fmt.Sprintf("%s[%d] led after the restart", topic, p), func() bool {
			return leaderOf(c.cluster, topic, p) != nil
		})
	}

	// The committed offset survived: the last acknowledged commit or a
	// later one whose answer the power loss cut off.
	acl2 := newClient(t, c.nodes[2])
	adm2 := kadm.NewClient(acl2)
	testkit.Eventually(t, 30*time.Second, "the group's committed offset", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := adm2.FetchOffsets(ctx, "powerloss-group")
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			// Each node's view of the brokers, to tell a stale image
			// (an old endpoint) from a coordinator that cannot load.
			for i, n := range c.nodes {
				mcl, _ := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr().String()))
				md, merr := kadm.NewClient(mcl).BrokerMetadata(ctx)
				mcl.Close()
				var ports []string
				for _, b := range md.Brokers {
					ports = append(ports, fmt.Sprintf("%d@%d", b.NodeID, b.Port))
				}
				t.Logf("node %d (%s) lists brokers %v, controller %d (%v)", i+1, n.KafkaAddr(), ports, md.Controller, merr)
			}
			return err
		}
		o, ok := resp.Lookup(topic, 0)
		if !ok || o.At < mustCommit || o.At > maxCommit {
			return fmt.Errorf("committed offset %d (found %v), want %d..%d", o.At, ok, mustCommit, maxCommit)
		}
		return nil
	})

	// Production resumes; these acknowledgements must survive too.
	cl2 := newClient(t, c.nodes[0], kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	ctx := testCtx(t, 30*time.Second)
	for i := range 60 {
		v := fmt.Sprintf("after-%d", i)
		r, err := cl2.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).First()
		if err != nil {
			t.Fatalf("produce after the restart: %v", err)
		}
		mustHave[v] = powerAck{r.Partition, r.Offset}
	}

	// Read everything up to each partition's high watermark.
	var total int64
	var leaders [partitions]*node.Node
	for p := range int32(partitions) {
		leaders[p] = leaderOf(c.cluster, topic, p)
		st, _ := leaders[p].Replica(topic, p)
		total += st.HighWatermark
	}
	recs := consumePartitions(t, c.nodes[0], topic, []int32{0, 1, 2}, int(total))
	seen := map[string]powerAck{}
	for _, r := range recs {
		v := string(r.Value)
		if prev, dup := seen[v]; dup {
			t.Fatalf("%q at %d/%d and at %d/%d", v, prev.partition, prev.offset, r.Partition, r.Offset)
		}
		seen[v] = powerAck{r.Partition, r.Offset}
	}
	lost := 0
	for v, a := range mustHave {
		got, ok := seen[v]
		switch {
		case !ok:
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged %q (%d/%d) lost", v, a.partition, a.offset)
			}
		case got != a:
			t.Errorf("acknowledged %q at %d/%d, read at %d/%d", v, a.partition, a.offset, got.partition, got.offset)
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records lost", lost, len(mustHave))
	}

	// Replicas identical: every follower catches up with its leader.
	for p := range int32(partitions) {
		lst, _ := leaders[p].Replica(topic, p)
		for i, n := range c.nodes {
			checkFor(t, fmt.Sprintf("node %d's replica of %s[%d] to catch up", i+1, topic, p), func() bool {
				st, ok := n.Replica(topic, p)
				cur, _ := leaders[p].Replica(topic, p)
				return ok && st.LogEndOffset == cur.LogEndOffset && st.HighWatermark == cur.HighWatermark
			})
		}
		want := memSegmentBytes(t, c.fss[leaderIndex(c.cluster, leaders[p])], lst.Dir)
		for i, n := range c.nodes {
			st, _ := n.Replica(topic, p)
			if got := memSegmentBytes(t, c.fss[i], st.Dir); !bytes.Equal(got, want) {
				t.Fatalf("node %d's log of %s[%d] (%d bytes) differs from the leader's (%d bytes)", i+1, topic, p, len(got), len(want))
			}
		}
	}
}

func leaderIndex(c cluster, n *node.Node) int {
	for i, m := range c.nodes {
		if m == n {
			return i
		}
	}
	return -1
}
