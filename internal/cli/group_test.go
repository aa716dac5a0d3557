package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/testkit"
)

// startGroupNode starts an in-process gregor node (kfake's groups are not
// what these commands are built against) and an admin client on it.
func startGroupNode(t *testing.T) (string, *kadm.Client, *kgo.Client) {
	t.Helper()
	cfg := config.DefaultNode()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr, cfg.ControllerAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Props = map[string]string{"group.initial.rebalance.delay.ms": "0"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	addr := n.KafkaAddr().String()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return addr, kadm.NewClient(cl), cl
}

// tableRow finds the table row whose leading columns are cols, split on
// runs of spaces.
func tableRow(out string, cols ...string) []string {
	for _, l := range lines(out) {
		f := strings.Fields(l)
		if len(f) >= len(cols) && strings.Join(f[:len(cols)], " ") == strings.Join(cols, " ") {
			return f
		}
	}
	return nil
}

func TestE2ECLIGroupCommands(t *testing.T) {
	addr, adm, cl := startGroupNode(t)
	r := cliRunner{t: t, addr: addr}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic, group := "cli-groups", "cli-g1"
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	// 10 records on partition 0, 5 on partition 1.
	var recs []*kgo.Record
	for i := range 15 {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(min(i/10, 1)), Value: []byte(fmt.Sprint(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	commit := func(p0, p1 int64) {
		t.Helper()
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: p0, LeaderEpoch: -1})
		offs.Add(kadm.Offset{Topic: topic, Partition: 1, At: p1, LeaderEpoch: -1})
		resp, err := adm.CommitOffsets(ctx, group, offs)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	committed := func() (int64, int64) {
		t.Helper()
		got, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatalf("fetch offsets: %v", err)
		}
		at := func(p int32) int64 {
			if o, ok := got.Lookup(topic, p); ok {
				return o.At
			}
			return -1 // no commit
		}
		return at(0), at(1)
	}
	commit(4, 5)

	t.Run("list", func(t *testing.T) {
		out := r.ok("", "group", "list").stdout
		if row := tableRow(out, group); len(row) < 2 || row[1] != "Empty" {
			t.Fatalf("group list lacks %s Empty:\n%s", group, out)
		}
	})
	t.Run("describe with lag", func(t *testing.T) {
		out := r.ok("", "group", "describe", group).stdout
		for _, want := range []struct {
			p                      string
			committed, end, lagStr string
		}{{"0", "4", "10", "6"}, {"1", "5", "5", "0"}} {
			row := tableRow(out, topic, want.p)
			if len(row) < 5 || row[2] != want.committed || row[3] != want.end || row[4] != want.lagStr {
				t.Fatalf("partition %s row %v, want committed %s end %s lag %s:\n%s", want.p, row, want.committed, want.end, want.lagStr, out)
			}
		}
		if !strings.Contains(out, "Total lag: 6") {
			t.Fatalf("no total lag 6:\n%s", out)
		}
	})
	t.Run("reset-offsets dry run changes nothing", func(t *testing.T) {
		out := r.ok("", "group", "reset-offsets", group, "--topic", topic, "--to-earliest").stdout
		if row := tableRow(out, topic, "0"); len(row) < 4 || row[2] != "4" || row[3] != "0" {
			t.Fatalf("plan row %v:\n%s", row, out)
		}
		if !strings.Contains(out, "Dry run") {
			t.Fatalf("no dry run notice:\n%s", out)
		}
		if p0, p1 := committed(); p0 != 4 || p1 != 5 {
			t.Fatalf("dry run committed %d %d", p0, p1)
		}
	})
	t.Run("reset-offsets execute", func(t *testing.T) {
		cases := []struct {
			name   string
			args   []string
			p0, p1 int64
		}{
			{"to-earliest", []string{"--to-earliest"}, 0, 0},
			{"shift-by", []string{"--shift-by", "3"}, 3, 3},
			{"to-offset clamped", []string{"--to-offset", "7"}, 7, 5},
			{"to-latest", []string{"--to-latest"}, 10, 5},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				args := append([]string{"group", "reset-offsets", group, "--topic", topic, "--execute"}, c.args...)
				if out := r.ok("", args...).stdout; !strings.Contains(out, "Offsets committed.") {
					t.Fatalf("no confirmation:\n%s", out)
				}
				if p0, p1 := committed(); p0 != c.p0 || p1 != c.p1 {
					t.Fatalf("committed %d %d, want %d %d", p0, p1, c.p0, c.p1)
				}
			})
		}
		r.fail(2, []string{"exactly one"}, "", "group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--to-latest")
	})
	t.Run("reset-offsets refused with members", func(t *testing.T) {
		member, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("cli-busy"), kgo.ConsumeTopics(topic),
			kgo.SessionTimeout(6*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer member.Close()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) { // poll with a deadline
			ds, err := adm.DescribeGroups(ctx, "cli-busy")
			if err == nil && ds["cli-busy"].State == "Stable" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("group never became Stable: %v %v", ds, err)
			}
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Millisecond)
			member.PollFetches(pctx)
			pcancel()
		}
		res := runCLI(t, ctx, addr, "", "group", "reset-offsets", "cli-busy", "--topic", topic, "--to-earliest", "--execute")
		if res.code == 0 || !strings.Contains(res.stderr, "active members") {
			t.Fatalf("reset with an active member: %s", res)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if out := r.ok("", "group", "delete", group).stdout; !strings.Contains(out, "Deleted group "+group) {
			t.Fatalf("delete output:\n%s", out)
		}
		if row := tableRow(r.ok("", "group", "list").stdout, group); row != nil {
			t.Fatalf("deleted group still listed: %v", row)
		}
		if p0, p1 := committed(); p0 != -1 || p1 != -1 {
			t.Fatalf("offsets after delete %d %d", p0, p1)
		}
		r.fail(1, []string{"GROUP_ID_NOT_FOUND"}, "", "group", "delete", group)
	})
}

// TestE2ECLIGroupDescribeConsumerProtocol: `group describe` shows a
// KIP-848 group's members and assignments (from ConsumerGroupDescribe),
// and `group reset-offsets` refuses while it has members.
func TestE2ECLIGroupDescribeConsumerProtocol(t *testing.T) {
	addr, adm, _ := startGroupNode(t)
	r := cliRunner{t: t, addr: addr}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic, group := "cli-848", "cli-g848"
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.Balancers(kgo.StickyBalancer()), kgo.ServerSideBalancer(), kgo.ClientID("cli-848-member"))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	go func() {
		for ctx.Err() == nil {
			cons.PollFetches(ctx)
		}
	}()
	var out string
	testkit.Eventually(t, 20*time.Second, "the member holding both partitions", func() error {
		res := runCLI(t, ctx, addr, "", "group", "describe", group)
		out = res.stdout
		if res.code != 0 || !strings.Contains(out, "consumer protocol (KIP-848), assignor uniform") || !strings.Contains(out, topic+"[0 1]") {
			return fmt.Errorf("describe: %s", res)
		}
		return nil
	})
	if tableRow(out, "MEMBER") == nil || !strings.Contains(out, "cli-848-member") {
		t.Fatalf("no member row:\n%s", out)
	}
	// The lag table (DescribeGroups does not describe a KIP-848 group
	// from v6, so it is computed from the member's assignment and the
	// group's commits) has both partitions, held by the member.
	for _, p := range []string{"0", "1"} {
		if f := tableRow(out, topic, p); len(f) != 6 || f[5] == "-" {
			t.Fatalf("lag row of partition %s: %q\n%s", p, f, out)
		}
	}
	r.fail(1, []string{"active members"}, "", "group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute")
}
