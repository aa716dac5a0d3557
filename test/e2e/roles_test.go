package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// quorumView is what 'gregor quorum describe --json' prints.
type quorumView struct {
	LeaderID    int32 `json:"leader_id"`
	LeaderEpoch int32 `json:"leader_epoch"`
	Voters      []struct {
		NodeID int32 `json:"node_id"`
		Lag    int64 `json:"lag"`
	} `json:"voters"`
	Observers []struct {
		NodeID int32 `json:"node_id"`
		Lag    int64 `json:"lag"`
	} `json:"observers"`
}

func describeQuorumCLI(ctx context.Context, addr string) (quorumView, error) {
	var q quorumView
	out, err := exec.CommandContext(ctx, gregorBin, "-b", addr, "--timeout", "5s", "--json", "quorum", "describe").Output()
	if err != nil {
		return q, fmt.Errorf("gregor quorum describe: %w", err)
	}
	return q, json.Unmarshal(out, &q)
}

func (q quorumView) ids() (voters, observers []int32) {
	for _, v := range q.Voters {
		voters = append(voters, v.NodeID)
	}
	for _, o := range q.Observers {
		observers = append(observers, o.NodeID)
	}
	return voters, observers
}

// TestE2ERolesControllerAndBrokerOnly runs five real processes: three
// controller-only voters and two broker-only nodes, all started at once.
// The brokers serve, the quorum command lists the voters and the brokers as
// observers, and after kill -9 of the active controller another voter takes
// over and a replicated topic can still be created and written.
func TestE2ERolesControllerAndBrokerOnly(t *testing.T) {
	ports := freePorts(t, 13) // controller and http per node, kafka for the brokers
	ctrlPort := func(id int) int { return ports[2*(id-1)] }
	httpPort := func(id int) int { return ports[2*(id-1)+1] }
	kafkaPort := func(id int) int { return ports[10+id-4] }
	voters := fmt.Sprintf("1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", ctrlPort(1), ctrlPort(2), ctrlPort(3))
	base := t.TempDir()

	procs := map[int]*proc{}
	for id := 1; id <= 5; id++ {
		roles := "controller"
		if id > 3 {
			roles = "broker"
		}
		dir := filepath.Join(base, fmt.Sprintf("node-%d", id))
		args := []string{"serve", "--node-id", strconv.Itoa(id), "--data-dir", dir,
			"--controller-addr", fmt.Sprintf("127.0.0.1:%d", ctrlPort(id)),
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort(id)),
			"--set", "controller.quorum.voters=" + voters, "--set", "process.roles=" + roles,
			"--set", "broker.session.timeout.ms=2000", "--set", "broker.heartbeat.interval.ms=200"}
		if roles == "broker" {
			args = append(args, "--kafka-addr", fmt.Sprintf("127.0.0.1:%d", kafkaPort(id)))
		}
		procs[id] = spawn(t, dir, args...)
	}
	for id := 4; id <= 5; id++ {
		procs[id].awaitStarted(t)
		waitReady(t, procs[id])
	}
	for id := 1; id <= 3; id++ { // no client listener, so no kafka= in their log
		procs[id].httpAddr = fmt.Sprintf("127.0.0.1:%d", httpPort(id))
		waitReady(t, procs[id])
	}

	ctx := testCtx(t, 90*time.Second)
	var leader int32
	eventually(t, 20*time.Second, "voters 1-3 and observers 4, 5", func() error {
		q, err := describeQuorumCLI(ctx, procs[4].kafkaAddr)
		if err != nil {
			return err
		}
		v, o := q.ids()
		if !slices.Equal(v, []int32{1, 2, 3}) || !slices.Equal(o, []int32{4, 5}) || q.LeaderID < 1 || q.LeaderID > 3 {
			return fmt.Errorf("quorum %+v", q)
		}
		leader = q.LeaderID
		return nil
	})
	eventually(t, 20*time.Second, "brokers 4 and 5 listed", func() error {
		v, err := viewCluster(procs[5].kafkaAddr)
		if err != nil {
			return err
		}
		if !slices.Equal(v.brokers, []int32{4, 5}) {
			return fmt.Errorf("brokers %v", v.brokers)
		}
		return nil
	})

	procs[int(leader)].kill()
	eventually(t, 20*time.Second, "a new active controller", func() error {
		q, err := describeQuorumCLI(ctx, procs[5].kafkaAddr)
		if err != nil {
			return err
		}
		if q.LeaderID == leader || q.LeaderID < 1 || q.LeaderID > 3 {
			return fmt.Errorf("leader %d", q.LeaderID)
		}
		return nil
	})
	cl := newClient(t, procs[4], kgo.SeedBrokers(procs[4].kafkaAddr, procs[5].kafkaAddr), kgo.RetryTimeout(30*time.Second))
	eventually(t, 30*time.Second, "create an RF=2 topic", func() error {
		res, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 2, nil, "roles")
		if err == nil && res.Err != nil && !errors.Is(res.Err, kerr.TopicAlreadyExists) {
			err = res.Err // an earlier try may have created it
		}
		return err
	})
	eventually(t, 30*time.Second, "produce to it", func() error {
		return cl.ProduceSync(ctx, &kgo.Record{Topic: "roles", Value: []byte("x")}).FirstErr()
	})
}
