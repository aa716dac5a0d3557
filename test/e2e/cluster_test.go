package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gregor-dev/gregor/internal/testkit"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func freePorts(t *testing.T, n int) []int { return testkit.FreePorts(t, n) }

// clusterView is what one broker says about the cluster, from Metadata and
// DescribeCluster, which must agree.
type clusterView struct {
	brokers    []int32
	racks      map[int32]string
	endpoints  map[int32]string
	controller int32
	clusterID  string
}

func viewCluster(addr string) (clusterView, error) {
	var v clusterView
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RetryTimeout(time.Second))
	if err != nil {
		return v, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// Ask the seed itself: a client would otherwise route to any broker.
	seed := cl.SeedBrokers()[0]
	dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, seed)
	if err != nil {
		return v, err
	}
	if err := kerr.ErrorForCode(dc.ErrorCode); err != nil {
		return v, err
	}
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, seed)
	if err != nil {
		return v, err
	}
	v.racks, v.endpoints = map[int32]string{}, map[int32]string{}
	for _, b := range dc.Brokers {
		v.brokers = append(v.brokers, b.NodeID)
		if b.Rack != nil {
			v.racks[b.NodeID] = *b.Rack
		}
		v.endpoints[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	}
	slices.Sort(v.brokers)
	var mdBrokers []int32
	for _, b := range md.Brokers {
		mdBrokers = append(mdBrokers, b.NodeID)
		if got := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))); got != v.endpoints[b.NodeID] {
			return v, fmt.Errorf("broker %d: metadata endpoint %s, describe cluster %s", b.NodeID, got, v.endpoints[b.NodeID])
		}
	}
	slices.Sort(mdBrokers)
	if md.ControllerID != dc.ControllerID || !slices.Equal(mdBrokers, v.brokers) {
		return v, fmt.Errorf("metadata: controller %d brokers %v; describe cluster: controller %d brokers %v",
			md.ControllerID, mdBrokers, dc.ControllerID, v.brokers)
	}
	if md.ClusterID == nil || *md.ClusterID != dc.ClusterID {
		return v, fmt.Errorf("metadata cluster id %v, describe cluster %q", md.ClusterID, dc.ClusterID)
	}
	v.controller, v.clusterID = dc.ControllerID, dc.ClusterID
	return v, nil
}

func eventually(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	testkit.Eventually(t, d, what, cond)
}

// TestE2EClusterThreeProcesses starts three `gregor serve` processes with
// the documented command form (node id, data dir, listeners and
// controller.quorum.voters), in a shuffled order: the first two serve as soon
// as they form a quorum, the third joins; all list three brokers, with their
// racks, and name the same active controller. Then the active controller is
// killed with SIGKILL: another voter takes over within seconds, the survivors
// keep being listed, and the dead broker is fenced once its session
// (broker.session.timeout.ms, 9 s) expires; restarted on its data, it is
// listed again.
func TestE2EClusterThreeProcesses(t *testing.T) {
	ports := freePorts(t, 9) // kafka, controller, http per node
	kafkaPort := func(id int) int { return ports[3*(id-1)] }
	ctrlPort := func(id int) int { return ports[3*(id-1)+1] }
	httpPort := func(id int) int { return ports[3*(id-1)+2] }
	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", ctrlPort(1), ctrlPort(2), ctrlPort(3))
	base := t.TempDir()

	procs := map[int]*proc{}
	start := func(id int) *proc {
		dir := filepath.Join(base, fmt.Sprintf("node-%d", id))
		p := spawn(t, dir, "serve", "--node-id", strconv.Itoa(id), "--data-dir", dir,
			"--kafka-addr", fmt.Sprintf("127.0.0.1:%d", kafkaPort(id)),
			"--controller-addr", fmt.Sprintf("127.0.0.1:%d", ctrlPort(id)),
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort(id)),
			"--set", "controller.quorum.voters="+voters,
			"--set", fmt.Sprintf("broker.rack=rack-%d", id))
		procs[id] = p
		return p
	}
	order := rand.Perm(3)
	for i := range order {
		order[i]++
	}
	t.Logf("start order %v", order)

	// A quorum of two serves without the third.
	first, second := start(order[0]), start(order[1])
	for _, p := range []*proc{first, second} {
		p.awaitStarted(t)
		waitReady(t, p)
	}
	eventually(t, 15*time.Second, "two brokers listed by the first two nodes", func() error {
		for _, p := range []*proc{first, second} {
			v, err := viewCluster(p.kafkaAddr)
			if err != nil {
				return err
			}
			if want := []int32{int32(min(order[0], order[1])), int32(max(order[0], order[1]))}; !slices.Equal(v.brokers, want) {
				return fmt.Errorf("%s lists %v, want %v", p.kafkaAddr, v.brokers, want)
			}
		}
		return nil
	})

	third := start(order[2])
	third.awaitStarted(t)
	waitReady(t, third)
	var leader int32
	var clusterID string
	eventually(t, 15*time.Second, "three brokers and one controller on every node", func() error {
		leader, clusterID = -1, ""
		for id := 1; id <= 3; id++ {
			v, err := viewCluster(procs[id].kafkaAddr)
			if err != nil {
				return err
			}
			if !slices.Equal(v.brokers, []int32{1, 2, 3}) {
				return fmt.Errorf("node %d lists brokers %v", id, v.brokers)
			}
			for b := int32(1); b <= 3; b++ {
				if v.racks[b] != fmt.Sprintf("rack-%d", b) || v.endpoints[b] != fmt.Sprintf("127.0.0.1:%d", kafkaPort(int(b))) {
					return fmt.Errorf("node %d: broker %d rack %q endpoint %s", id, b, v.racks[b], v.endpoints[b])
				}
			}
			if v.controller < 1 || v.controller > 3 || (leader != -1 && v.controller != leader) {
				return fmt.Errorf("node %d names controller %d, another named %d", id, v.controller, leader)
			}
			if clusterID != "" && v.clusterID != clusterID {
				return fmt.Errorf("node %d: cluster id %q, another said %q", id, v.clusterID, clusterID)
			}
			leader, clusterID = v.controller, v.clusterID
		}
		return nil
	})
	t.Logf("active controller %d, cluster %s", leader, clusterID)

	procs[int(leader)].kill() // SIGKILL by PID
	killedAt := time.Now()
	var survivors []*proc
	for id := 1; id <= 3; id++ {
		if int32(id) != leader {
			survivors = append(survivors, procs[id])
		}
	}
	var newLeader int32
	eventually(t, 10*time.Second, "a new active controller", func() error {
		newLeader = -1
		for _, p := range survivors {
			v, err := viewCluster(p.kafkaAddr)
			if err != nil {
				return err
			}
			if v.controller == leader || v.controller < 1 || (newLeader != -1 && v.controller != newLeader) {
				return fmt.Errorf("%s names controller %d (killed: %d)", p.kafkaAddr, v.controller, leader)
			}
			newLeader = v.controller
			for id := 1; id <= 3; id++ {
				if int32(id) != leader && !slices.Contains(v.brokers, int32(id)) {
					return fmt.Errorf("%s no longer lists live broker %d: %v", p.kafkaAddr, id, v.brokers)
				}
			}
		}
		return nil
	})
	t.Logf("controller %d took over %v after the kill", newLeader, time.Since(killedAt).Round(time.Millisecond))

	eventually(t, 20*time.Second, "the killed broker fenced, the others listed", func() error {
		for _, p := range survivors {
			v, err := viewCluster(p.kafkaAddr)
			if err != nil {
				return err
			}
			var want []int32
			for id := int32(1); id <= 3; id++ {
				if id != leader {
					want = append(want, id)
				}
			}
			if !slices.Equal(v.brokers, want) || v.controller != newLeader {
				return fmt.Errorf("%s: brokers %v controller %d, want %v and %d", p.kafkaAddr, v.brokers, v.controller, want, newLeader)
			}
		}
		return nil
	})
	if d := time.Since(killedAt); d < 8*time.Second {
		t.Errorf("the killed broker was fenced after %v, before its 9 s session could expire", d)
	}
	checkFencedVisible(t, survivors[0].kafkaAddr, leader, newLeader, procs[int(newLeader)].httpAddr)

	// The killed node restarts on its data: same cluster, a new broker
	// epoch, listed again by everyone.
	restarted := start(int(leader))
	restarted.awaitStarted(t)
	waitReady(t, restarted)
	eventually(t, 15*time.Second, "the restarted broker listed again", func() error {
		for id := 1; id <= 3; id++ {
			v, err := viewCluster(procs[id].kafkaAddr)
			if err != nil {
				return err
			}
			if !slices.Equal(v.brokers, []int32{1, 2, 3}) || v.clusterID != clusterID {
				return fmt.Errorf("node %d: brokers %v cluster %q", id, v.brokers, v.clusterID)
			}
		}
		return nil
	})
}
