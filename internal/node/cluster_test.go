package node_test

import (
	"context"
	"errors"
	"fmt"
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
)

// checkFor polls cond until it holds or 20 s pass (the controller tests'
// helper of the same name).
func checkFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePorts reserves n loopback ports by binding and releasing them: a
// voters list names its controllers' ports before they start.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

func clusterNodeConfig(dir string, id int32, ctrlPort int, voters string, props map[string]string) config.Node {
	cfg := config.DefaultNode()
	cfg.NodeID = id
	cfg.DataDir = dir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.ControllerAddr = fmt.Sprintf("127.0.0.1:%d", ctrlPort)
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Voters = voters
	cfg.Props = props
	return cfg
}

// describe returns the brokers and controller n reports in DescribeCluster
// and in Metadata, which must agree.
func describe(t *testing.T, n *node.Node) (brokers []int32, controller int32, err error) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr().String()))
	if err != nil {
		return nil, 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
	if err != nil {
		return nil, 0, err
	}
	if err := kerr.ErrorForCode(dc.ErrorCode); err != nil {
		return nil, 0, err
	}
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return nil, 0, err
	}
	for _, b := range dc.Brokers {
		brokers = append(brokers, b.NodeID)
	}
	slices.Sort(brokers)
	if md.Controller != dc.ControllerID || !slices.Equal(md.Brokers.NodeIDs(), brokers) {
		return nil, 0, fmt.Errorf("metadata says controller %d brokers %v, describe cluster %d %v", md.Controller, md.Brokers.NodeIDs(), dc.ControllerID, brokers)
	}
	return brokers, dc.ControllerID, nil
}

// TestClusterThreeVotersFormQuorumAndFenceAStoppedBroker starts three
// combined nodes from one voters list, concurrently, and checks that every
// node lists the three brokers and the same active controller; when the
// active controller stops, another voter takes over and fences the stopped
// broker once its session (broker.session.timeout.ms) expires.
func TestClusterThreeVotersFormQuorumAndFenceAStoppedBroker(t *testing.T) {
	ports := freePorts(t, 3)
	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", ports[0], ports[1], ports[2])
	props := map[string]string{"broker.session.timeout.ms": "1500", "broker.heartbeat.interval.ms": "200"}
	nodes := make([]*node.Node, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p := map[string]string{"broker.rack": fmt.Sprintf("rack-%d", i+1)}
			for k, v := range props {
				p[k] = v
			}
			nodes[i], errs[i] = node.Start(ctx, clusterNodeConfig(t.TempDir(), int32(i+1), ports[i], voters, p), nil)
		})
	}
	wg.Wait()
	for i, n := range nodes {
		if n != nil {
			t.Cleanup(func() { n.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i+1, errs[i])
		}
	}

	var leader int32
	for _, n := range nodes {
		checkFor(t, "three brokers and one controller", func() bool {
			brokers, ctrl, err := describe(t, n)
			if err != nil || len(brokers) != 3 || ctrl < 1 || ctrl > 3 {
				return false
			}
			if leader == 0 {
				leader = ctrl
			}
			return ctrl == leader
		})
	}
	// Racks and endpoints come from each broker's own registration.
	cl, err := kgo.NewClient(kgo.SeedBrokers(nodes[0].KafkaAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).BrokerMetadata(testCtx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range md.Brokers {
		n := nodes[b.NodeID-1]
		if want := fmt.Sprintf("rack-%d", b.NodeID); b.Rack == nil || *b.Rack != want {
			t.Errorf("broker %d rack %v, want %s", b.NodeID, b.Rack, want)
		}
		if got, want := net.JoinHostPort(b.Host, fmt.Sprint(b.Port)), n.KafkaAddr().String(); got != want {
			t.Errorf("broker %d endpoint %s, want %s", b.NodeID, got, want)
		}
	}

	// The controller listeners speak Kafka to brokers: followers answer
	// NOT_CONTROLLER, the active controller checks epochs and the cluster id.
	for i := range 3 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(fmt.Sprintf("127.0.0.1:%d", ports[i])))
		if err != nil {
			t.Fatal(err)
		}
		ctrl := cl.SeedBrokers()[0]
		hb := kmsg.NewPtrBrokerHeartbeatRequest()
		hb.BrokerID, hb.BrokerEpoch = 1, 1<<40
		hbResp, err := hb.RequestWith(testCtx(t, 5*time.Second), ctrl)
		if err != nil {
			t.Fatal(err)
		}
		reg := kmsg.NewPtrBrokerRegistrationRequest()
		reg.BrokerID, reg.ClusterID = 9, "not-this-cluster"
		reg.Listeners = []kmsg.BrokerRegistrationRequestListener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 1}}
		regResp, err := reg.RequestWith(testCtx(t, 5*time.Second), ctrl)
		cl.Close()
		if err != nil {
			t.Fatal(err)
		}
		wantHB, wantReg := kerr.NotController.Code, kerr.NotController.Code
		if int32(i+1) == leader {
			wantHB, wantReg = kerr.StaleBrokerEpoch.Code, kerr.InconsistentClusterID.Code
		}
		if hbResp.ErrorCode != wantHB || regResp.ErrorCode != wantReg {
			t.Errorf("controller %d (active %d): heartbeat %v, registration %v; want %v, %v", i+1, leader,
				kerr.ErrorForCode(hbResp.ErrorCode), kerr.ErrorForCode(regResp.ErrorCode), kerr.ErrorForCode(wantHB), kerr.ErrorForCode(wantReg))
		}
	}

	if err := nodes[leader-1].Close(); err != nil {
		t.Fatalf("close the active controller: %v", err)
	}
	var survivors []*node.Node
	for i, n := range nodes {
		if int32(i+1) != leader {
			survivors = append(survivors, n)
		}
	}
	for _, n := range survivors {
		checkFor(t, "a new controller that fenced the stopped broker", func() bool {
			brokers, ctrl, err := describe(t, n)
			if err != nil || ctrl == leader || ctrl < 1 || len(brokers) != 2 {
				return false
			}
			for _, b := range brokers {
				if b == leader {
					return false
				}
			}
			return true
		})
	}
}

// TestClusterStorageIdentity covers meta.properties: a new data directory
// gets one, and a node refuses another node's or another cluster's data, and
// a formatted directory whose metadata log is gone.
func TestClusterStorageIdentity(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	meta, err := config.ReadMetaProperties(dir)
	if err != nil {
		t.Fatalf("meta.properties after the first start: %v", err)
	}
	if meta.NodeID != 1 || meta.ClusterID == "" || meta.DirectoryID == "" {
		t.Fatalf("meta.properties = %+v", meta)
	}
	startNode(t, dir, nil).Close() // same node, same cluster: accepted

	start := func(t *testing.T, dir string, id int32) error {
		cfg := config.DefaultNode()
		cfg.NodeID, cfg.DataDir = id, dir
		cfg.KafkaAddr, cfg.ControllerAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n, err := node.Start(ctx, cfg, nil)
		if err == nil {
			n.Close()
		}
		return err
	}
	t.Run("another node id", func(t *testing.T) {
		err := start(t, dir, 2)
		if !errors.Is(err, config.ErrStorageIdentity) || !strings.Contains(err.Error(), "belongs to node 1") {
			t.Fatalf("start as node 2 on node 1's data: %v", err)
		}
	})
	t.Run("another cluster", func(t *testing.T) {
		other := t.TempDir()
		if err := start(t, other, 1); err != nil {
			t.Fatal(err)
		}
		m, err := config.ReadMetaProperties(other)
		if err != nil {
			t.Fatal(err)
		}
		m.ClusterID = "AAAAAAAAAAAAAAAAAAAAAA"
		if err := config.WriteMetaProperties(other, m); err != nil {
			t.Fatal(err)
		}
		err = start(t, other, 1)
		if !errors.Is(err, config.ErrStorageIdentity) || !strings.Contains(err.Error(), "belongs to cluster AAAAAAAAAAAAAAAAAAAAAA") {
			t.Fatalf("start on another cluster's data: %v", err)
		}
	})
	t.Run("metadata log wiped", func(t *testing.T) {
		wiped := t.TempDir()
		if err := start(t, wiped, 1); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(wiped, "__cluster_metadata")); err != nil {
			t.Fatal(err)
		}
		err := start(t, wiped, 1)
		if err == nil || !strings.Contains(err.Error(), "lost its metadata log") {
			t.Fatalf("start with a wiped metadata log: %v", err)
		}
		// The refused start left empty Raft stores behind; a second start
		// must refuse again, not take them for a new node's.
		if err := start(t, wiped, 1); err == nil || !strings.Contains(err.Error(), "lost its metadata log") {
			t.Fatalf("second start with a wiped metadata log: %v", err)
		}
	})
}
