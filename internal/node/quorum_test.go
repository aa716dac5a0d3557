package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/testkit"
)

func addRaftVoter(ctx context.Context, cl *kgo.Client, id int32, port int) error {
	req := kmsg.NewPtrAddRaftVoterRequest()
	req.VoterID = id
	l := kmsg.NewAddRaftVoterRequestListener()
	l.Name, l.Host, l.Port = "CONTROLLER", "127.0.0.1", uint16(port)
	req.Listeners = append(req.Listeners, l)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.ErrorCode)
}

func removeRaftVoter(ctx context.Context, cl *kgo.Client, id int32) error {
	req := kmsg.NewPtrRemoveRaftVoterRequest()
	req.VoterID = id
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.ErrorCode)
}

func quorumVoters(q kmsg.DescribeQuorumResponseTopicPartition) []int32 {
	var ids []int32
	for _, v := range q.CurrentVoters {
		ids = append(ids, v.ReplicaID)
	}
	return ids
}

// TestQuorumReplaceLostVoter follows the documented procedure for a voter
// whose disk is lost (KIP-853): voter 3 is stopped and its data directory
// wiped; a new controller, node 4, starts with
// controller.quorum.bootstrap.servers and waits; AddRaftVoter adds it and
// RemoveRaftVoter removes 3. The quorum is then {1, 2, 4}: it survives the
// loss of one more voter (the active controller), and topics can still be
// created and written.
func TestQuorumReplaceLostVoter(t *testing.T) {
	c := startCluster(t, map[string]string{"broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "200"})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.nodes[0].KafkaAddr().String(), c.nodes[1].KafkaAddr().String()),
		kgo.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t, 90*time.Second)

	// Refusals: a voter already present, a voter that does not exist.
	if err := addRaftVoter(ctx, cl, 2, c.ctrlPorts[1]); !errors.Is(err, kerr.DuplicateVoter) {
		t.Fatalf("add voter 2 again: %v, want DUPLICATE_VOTER", err)
	}
	if err := removeRaftVoter(ctx, cl, 9); !errors.Is(err, kerr.VoterNotFound) {
		t.Fatalf("remove voter 9: %v, want VOTER_NOT_FOUND", err)
	}

	// Voter 3 loses its disk.
	if err := c.nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(c.dirs[2]); err != nil {
		t.Fatal(err)
	}

	// A new controller joins through the bootstrap servers and waits to be
	// added.
	port4 := freePorts(t, 1)[0]
	cfg := clusterNodeConfig(t.TempDir(), 4, port4, "", map[string]string{
		"controller.quorum.bootstrap.servers": fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", c.ctrlPorts[0], c.ctrlPorts[1]),
		"broker.session.timeout.ms":           "2000", "broker.heartbeat.interval.ms": "200",
	})
	type started struct {
		n   *node.Node
		err error
	}
	startedc := make(chan started, 1)
	go func() {
		n, err := node.Start(ctx, cfg, testLogger())
		startedc <- started{n, err}
	}()
	var n4 *node.Node
	defer func() {
		if n4 != nil {
			n4.Close()
		}
	}()
	// Node 4 is up but not a member: a controller joining by bootstrap
	// servers is never added on its own.
	testkit.Eventually(t, 30*time.Second, "node 4's controller listener", func() error {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port4))
		if err == nil {
			c.Close()
		}
		return err
	})
	if q, err := describeQuorum(ctx, cl); err != nil || !slices.Equal(quorumVoters(q), []int32{1, 2, 3}) || len(q.Observers) != 0 {
		t.Fatalf("quorum before add-voter: %+v, %v", q, err)
	}
	select {
	case s := <-startedc:
		t.Fatalf("node 4 started before it was added to the quorum: %v", s.err)
	default:
	}
	testkit.Eventually(t, 30*time.Second, "add voter 4", func() error { return addRaftVoter(ctx, cl, 4, port4) })
	s := <-startedc
	if s.err != nil {
		t.Fatalf("node 4: %v", s.err)
	}
	n4 = s.n
	testkit.Eventually(t, 30*time.Second, "remove voter 3", func() error { return removeRaftVoter(ctx, cl, 3) })
	var leader int32
	checkFor(t, "voters 1, 2, 4, all caught up", func() bool {
		q, err := describeQuorum(ctx, cl)
		if err != nil {
			return false
		}
		for _, v := range q.CurrentVoters {
			if v.LogEndOffset < q.HighWatermark {
				return false
			}
		}
		leader = q.LeaderID
		return slices.Equal(quorumVoters(q), []int32{1, 2, 4}) && len(q.Observers) == 0
	})

	// The new quorum survives the loss of its active controller: the two
	// others are a majority of three.
	survivors := []*node.Node{c.nodes[0], c.nodes[1], n4}
	stopped := survivors[slices.IndexFunc(survivors, func(n *node.Node) bool { return n.NodeID() == leader })]
	if err := stopped.Close(); err != nil {
		t.Fatal(err)
	}
	var seeds []string
	for _, n := range survivors {
		if n != stopped {
			seeds = append(seeds, n.KafkaAddr().String())
		}
	}
	cl2, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	checkFor(t, "a new leader among the remaining voters", func() bool {
		q, err := describeQuorum(ctx, cl2)
		return err == nil && q.LeaderID != leader && slices.Contains([]int32{1, 2, 4}, q.LeaderID)
	})
	adm := kadm.NewClient(cl2)
	testkit.Eventually(t, 30*time.Second, "create a topic on the new quorum", func() error {
		res, err := adm.CreateTopic(ctx, 1, 2, nil, "after-replace")
		if err == nil && res.Err != nil && !errors.Is(res.Err, kerr.TopicAlreadyExists) {
			err = res.Err
		}
		return err
	})
	testkit.Eventually(t, 30*time.Second, "produce to the new topic", func() error {
		return cl2.ProduceSync(ctx, &kgo.Record{Topic: "after-replace", Value: []byte("x")}).FirstErr()
	})
}

// TestQuorumWipedVoter: a voter whose metadata log is wiped but whose
// meta.properties survives refuses to start; one whose whole data directory
// is wiped starts again with the same voters list without bootstrapping a
// second cluster: it finds the running quorum, rejoins it with no vote
// until it has caught up, and ends with the cluster's id and the full log.
func TestQuorumWipedVoter(t *testing.T) {
	c := startCluster(t, map[string]string{"broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "200"})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.nodes[0].KafkaAddr().String()), kgo.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t, 90*time.Second)
	clusterID, err := config.ReadMetaProperties(c.dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", c.ctrlPorts[0], c.ctrlPorts[1], c.ctrlPorts[2])
	logs := &lockedBuffer{}
	restart := func() (*node.Node, error) {
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		return node.Start(sctx, clusterNodeConfig(c.dirs[2], 3, c.ctrlPorts[2], voters,
			map[string]string{"broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "200"}),
			slog.New(slog.NewTextHandler(logs, nil)))
	}
	if err := c.nodes[2].Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.RemoveAll(filepath.Join(c.dirs[2], "__cluster_metadata")); err != nil {
		t.Fatal(err)
	}
	if n, err := restart(); err == nil || !strings.Contains(err.Error(), "lost its metadata log") {
		if n != nil {
			n.Close()
		}
		t.Fatalf("restart with the metadata log wiped: %v", err)
	}

	entries, err := os.ReadDir(c.dirs[2])
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(c.dirs[2], e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	// The cluster moves on while voter 3 is gone, so its log has more to
	// catch up with.
	res, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 2, nil, "while-3-is-down")
	if err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	n3, err := restart()
	if err != nil {
		t.Fatalf("restart with the data directory wiped: %v", err)
	}
	defer n3.Close()
	meta, err := config.ReadMetaProperties(c.dirs[2])
	if err != nil {
		t.Fatal(err)
	}
	if meta.ClusterID != clusterID.ClusterID {
		t.Fatalf("voter 3 is in cluster %s, the others in %s: a second cluster", meta.ClusterID, clusterID.ClusterID)
	}
	checkFor(t, "voter 3 back among the voters, caught up", func() bool {
		q, err := describeQuorum(ctx, cl)
		if err != nil || !slices.Equal(quorumVoters(q), []int32{1, 2, 3}) {
			return false
		}
		for _, v := range q.CurrentVoters {
			if v.LogEndOffset < q.HighWatermark {
				return false
			}
		}
		return true
	})
	if out := logs.String(); !strings.Contains(out, "rejoining a running quorum") || !strings.Contains(out, "caught up with the quorum; voting again") {
		t.Fatalf("voter 3 did not rejoin without voting:\n%s", out)
	}
	cl3, err := kgo.NewClient(kgo.SeedBrokers(n3.KafkaAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl3.Close()
	checkFor(t, "voter 3 sees the topic created while it was down", func() bool {
		td, err := kadm.NewClient(cl3).ListTopics(ctx, "while-3-is-down")
		return err == nil && td["while-3-is-down"].Err == nil
	})
}

// lockedBuffer is a log sink written by several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestQuorumReplaceLostVoterSameID replaces a voter that lost its disk by a
// new node with the same id: remove-voter first, then the new node starts
// with bootstrap servers and is added.
func TestQuorumReplaceLostVoterSameID(t *testing.T) {
	c := startCluster(t, map[string]string{"broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "200"})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.nodes[0].KafkaAddr().String(), c.nodes[1].KafkaAddr().String()),
		kgo.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t, 90*time.Second)
	if err := c.nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	// Node 3 may have been the active controller: the request is refused
	// (NOT_LEADER_OR_FOLLOWER) until another voter takes over.
	testkit.Eventually(t, 30*time.Second, "remove voter 3", func() error { return removeRaftVoter(ctx, cl, 3) })
	cfg := clusterNodeConfig(t.TempDir(), 3, c.ctrlPorts[2], "", map[string]string{
		"controller.quorum.bootstrap.servers": fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", c.ctrlPorts[0], c.ctrlPorts[1]),
		"broker.session.timeout.ms":           "2000", "broker.heartbeat.interval.ms": "200",
	})
	type started struct {
		n   *node.Node
		err error
	}
	startedc := make(chan started, 1)
	go func() {
		n, err := node.Start(ctx, cfg, testLogger())
		startedc <- started{n, err}
	}()
	testkit.Eventually(t, 30*time.Second, "add the new voter 3", func() error { return addRaftVoter(ctx, cl, 3, c.ctrlPorts[2]) })
	s := <-startedc
	if s.err != nil {
		t.Fatalf("new node 3: %v", s.err)
	}
	defer s.n.Close()
	checkFor(t, "voters 1, 2, 3, all caught up", func() bool {
		q, err := describeQuorum(ctx, cl)
		if err != nil || !slices.Equal(quorumVoters(q), []int32{1, 2, 3}) {
			return false
		}
		for _, v := range q.CurrentVoters {
			if v.LogEndOffset < q.HighWatermark {
				return false
			}
		}
		return true
	})
	checkFor(t, "the new node 3 is a broker again", func() bool {
		ids, _, err := describe(t, s.n)
		return err == nil && slices.Equal(ids, []int32{1, 2, 3})
	})
}
