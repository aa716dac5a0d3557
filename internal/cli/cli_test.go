package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestE2ECLIKfake runs the client command suite against an in-process kfake
// cluster. runCLITests takes only a bootstrap address, so the same suite can
// run against a real gregor node.
func TestE2ECLIKfake(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	runCLITests(t, c.ListenAddrs()[0])
}

// TestE2ECLIGregor runs the same suite against an in-process gregor node.
func TestE2ECLIGregor(t *testing.T) {
	addr, _, _ := startGroupNode(t)
	runCLITests(t, addr)
}

// TestE2ECLIBroker runs the same suite against a running broker when
// GREGOR_TEST_BROKER is set (for example GREGOR_TEST_BROKER=localhost:9092
// after 'gregor serve'); it creates and deletes topics named cli-*.
func TestE2ECLIBroker(t *testing.T) {
	addr := os.Getenv("GREGOR_TEST_BROKER")
	if addr == "" {
		t.Skip("GREGOR_TEST_BROKER not set")
	}
	runCLITests(t, addr)
}

// cliResult is the outcome of one Main call.
type cliResult struct {
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runCLI calls Main with args after "-b addr" and returns its output. addr ""
// passes no -b.
func runCLI(t *testing.T, ctx context.Context, addr, stdin string, args ...string) cliResult {
	t.Helper()
	if addr != "" {
		args = append([]string{"-b", addr, "--timeout", "10s"}, args...)
	}
	var out, errb bytes.Buffer
	code := Main(ctx, args, strings.NewReader(stdin), &out, &errb)
	return cliResult{stdout: out.String(), stderr: errb.String(), code: code}
}

// cliRunner binds runCLI to one broker and fails the test on a non-zero exit
// unless the caller checks the code itself (want).
type cliRunner struct {
	t    *testing.T
	addr string
}

func (r cliRunner) ok(stdin string, args ...string) cliResult {
	r.t.Helper()
	res := runCLI(r.t, context.Background(), r.addr, stdin, args...)
	if res.code != 0 {
		r.t.Fatalf("gregor %s: %s", strings.Join(args, " "), res)
	}
	return res
}

func (r cliRunner) fail(wantCode int, wantStderr []string, stdin string, args ...string) cliResult {
	r.t.Helper()
	res := runCLI(r.t, context.Background(), r.addr, stdin, args...)
	if res.code != wantCode {
		r.t.Fatalf("gregor %s: want exit %d, got %s", strings.Join(args, " "), wantCode, res)
	}
	for _, s := range wantStderr {
		if !strings.Contains(res.stderr, s) {
			r.t.Fatalf("gregor %s: stderr lacks %q: %s", strings.Join(args, " "), s, res)
		}
	}
	return res
}

var topicSeq struct {
	sync.Mutex
	n int
}

// uniqueTopic returns a topic name no earlier run against the same broker
// used, so the suite can run against a long-lived node.
func uniqueTopic(base string) string {
	topicSeq.Lock()
	defer topicSeq.Unlock()
	topicSeq.n++
	return fmt.Sprintf("cli-%s-%d-%d", base, time.Now().UnixNano()%1e9, topicSeq.n)
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// runCLITests is the client command suite. It needs a cluster reachable at
// brokerAddr where it may create and delete topics named cli-*; it uses
// replication factor 1 and explicit partition counts so it does not depend on
// broker defaults.
func runCLITests(t *testing.T, brokerAddr string) {
	t.Run("ClusterDescribe", func(t *testing.T) {
		r := cliRunner{t: t, addr: brokerAddr}
		res := r.ok("", "--json", "cluster", "describe")
		var s clusterSummary
		if err := json.Unmarshal([]byte(res.stdout), &s); err != nil {
			t.Fatalf("cluster describe --json: %v: %s", err, res)
		}
		if s.ClusterID == "" || len(s.Brokers) == 0 || s.Brokers[0].Port == 0 {
			t.Fatalf("cluster describe: %+v", s)
		}
		res = r.ok("", "cluster", "describe")
		if !strings.Contains(res.stdout, "Cluster: "+s.ClusterID) || !strings.Contains(res.stdout, "BROKER") {
			t.Fatalf("cluster describe table: %s", res)
		}
	})
	t.Run("TopicLifecycle", func(t *testing.T) {
		r := cliRunner{t: t, addr: brokerAddr}
		name := uniqueTopic("life")
		res := r.ok("", "topic", "create", name, "-p", "3", "-r", "1", "-c", "retention.ms=12345")
		if !strings.Contains(res.stdout, "created topic "+name) || !strings.Contains(res.stdout, "partitions 3") {
			t.Fatalf("create output: %s", res)
		}
		r.fail(1, []string{"error: create topic " + name + ": TOPIC_ALREADY_EXISTS: ", "hint: "}, "", "topic", "create", name, "-p", "1", "-r", "1")

		res = r.ok("", "topic", "list")
		found := false
		for _, l := range lines(res.stdout) {
			if f := strings.Fields(l); len(f) == 3 && f[0] == name {
				found = true
				if f[1] != "3" || f[2] != "1" {
					t.Fatalf("list row %q: want 3 partitions, 1 replica", l)
				}
			}
		}
		if !found || !strings.HasPrefix(res.stdout, "TOPIC") {
			t.Fatalf("list lacks %s: %s", name, res)
		}

		res = r.ok("", "--json", "topic", "list")
		var list []topicSummary
		if err := json.Unmarshal([]byte(res.stdout), &list); err != nil {
			t.Fatalf("list --json: %v: %s", err, res)
		}
		if i := slices.IndexFunc(list, func(s topicSummary) bool { return s.Topic == name }); i < 0 || list[i].Partitions != 3 || list[i].ReplicationFactor != 1 {
			t.Fatalf("list --json: %+v", list)
		}

		res = r.ok("", "topic", "describe", name)
		for _, want := range []string{"Topic: " + name, "TopicId: ", "PARTITION", "LOG-END", "retention.ms", "12345", "DYNAMIC_TOPIC_CONFIG"} {
			if !strings.Contains(res.stdout, want) {
				t.Fatalf("describe lacks %q: %s", want, res)
			}
		}
		res = r.ok("", "--json", "topic", "describe", name)
		var ds []topicDescription
		if err := json.Unmarshal([]byte(res.stdout), &ds); err != nil {
			t.Fatalf("describe --json: %v: %s", err, res)
		}
		if len(ds) != 1 || len(ds[0].PartitionDetails) != 3 || ds[0].TopicID == "" {
			t.Fatalf("describe --json: %+v", ds)
		}
		for _, p := range ds[0].PartitionDetails {
			if p.Leader < 0 || len(p.Replicas) != 1 || len(p.ISR) != 1 || p.LogStartOffset != 0 || p.LogEndOffset != 0 {
				t.Fatalf("partition %+v", p)
			}
		}
		if i := slices.IndexFunc(ds[0].Configs, func(c configDescription) bool { return c.Name == "retention.ms" }); i < 0 ||
			*ds[0].Configs[i].Value != "12345" || ds[0].Configs[i].Source != "DYNAMIC_TOPIC_CONFIG" {
			t.Fatalf("describe --json configs: %+v", ds[0].Configs)
		}

		res = r.ok("", "topic", "delete", name)
		if !strings.Contains(res.stdout, "deleted topic "+name) {
			t.Fatalf("delete: %s", res)
		}
		waitFor(t, func() bool {
			res := r.ok("", "topic", "list")
			return !strings.Contains(res.stdout, name+" ")
		})
		r.fail(1, []string{"UNKNOWN_TOPIC_OR_PARTITION", "hint: "}, "", "topic", "describe", name)
		r.fail(1, []string{"error: delete topic " + name + ": UNKNOWN_TOPIC_OR_PARTITION"}, "", "topic", "delete", name)
	})

	t.Run("TopicCreateDefaultsAndValidateOnly", func(t *testing.T) {
		r := cliRunner{t: t, addr: brokerAddr}
		name := uniqueTopic("val")
		res := r.ok("", "topic", "create", name, "-p", "2", "--validate-only")
		if !strings.Contains(res.stdout, "validated") {
			t.Fatalf("validate-only: %s", res)
		}
		r.fail(1, []string{"UNKNOWN_TOPIC_OR_PARTITION"}, "", "topic", "describe", name)

		res = r.ok("", "--json", "topic", "create", name)
		var created struct {
			Topic      string `json:"topic"`
			Partitions int32  `json:"partitions"`
		}
		if err := json.Unmarshal([]byte(res.stdout), &created); err != nil || created.Topic != name || created.Partitions <= 0 {
			t.Fatalf("create with broker defaults: %v %s", err, res)
		}
		r.ok("", "topic", "delete", name)
	})

	t.Run("TopicAlterConfig", func(t *testing.T) {
		r := cliRunner{t: t, addr: brokerAddr}
		name := uniqueTopic("alter")
		r.ok("", "topic", "create", name, "-p", "1", "-r", "1")
		res := r.ok("", "topic", "alter-config", name, "-c", "retention.ms=777", "-c", "cleanup.policy=compact")
		if !strings.Contains(res.stdout, "set retention.ms=777") {
			t.Fatalf("alter-config: %s", res)
		}
		res = r.ok("", "topic", "describe", name)
		if !strings.Contains(res.stdout, "retention.ms    777") || !strings.Contains(res.stdout, "compact") {
			t.Fatalf("describe after set: %s", res)
		}
		r.ok("", "topic", "alter-config", name, "--delete", "retention.ms")
		res = r.ok("", "topic", "describe", name)
		// The topic name is random and may hold "777": look for the config key.
		if strings.Contains(res.stdout, "retention.ms") || !strings.Contains(res.stdout, "compact") {
			t.Fatalf("describe after delete: %s", res)
		}
		r.fail(2, []string{"nothing to change"}, "", "topic", "alter-config", name)
		r.fail(1, []string{"UNKNOWN_TOPIC_OR_PARTITION"}, "", "topic", "alter-config", name+"-missing", "-c", "retention.ms=1")
	})

	t.Run("Scram", func(t *testing.T) {
		r := cliRunner{t: t, addr: brokerAddr}
		res := r.ok("", "scram", "set", "--user", "cli-alice", "--password", "secret", "--iterations", "4096")
		if !strings.Contains(res.stdout, "set the SCRAM-SHA-256 credential of cli-alice (4096 iterations)") {
			t.Fatalf("scram set: %s", res)
		}
		res = r.ok("", "scram", "list", "cli-alice")
		if !strings.Contains(res.stdout, "cli-alice  SCRAM-SHA-256  4096") {
			t.Fatalf("scram list: %s", res)
		}
		r.fail(2, []string{"SCRAM-SHA-256 or SCRAM-SHA-512"}, "", "scram", "set", "--user", "x", "--password", "p", "--mechanism", "MD5")
		r.ok("", "scram", "delete", "--user", "cli-alice")
		r.fail(1, []string{"RESOURCE_NOT_FOUND"}, "", "scram", "delete", "--user", "cli-alice")
	})

	t.Run("Quota", func(t *testing.T) {
		r := cliRunner{t: t, addr: brokerAddr}
		res := r.ok("", "quota", "alter", "--client-id", "cli-billing", "-c", "producer_byte_rate=1048576", "-c", "consumer_byte_rate=2097152")
		if !strings.Contains(res.stdout, "set producer_byte_rate=1048576 for {client-id=cli-billing}") {
			t.Fatalf("quota alter: %s", res)
		}
		r.ok("", "quota", "alter", "--client-default", "-c", "request_percentage=50")
		res = r.ok("", "quota", "list", "--client-id", "cli-billing")
		if !strings.Contains(res.stdout, "{client-id=cli-billing}  consumer_byte_rate  2097152") || strings.Contains(res.stdout, "request_percentage") {
			t.Fatalf("quota list of one client: %s", res)
		}
		r.ok("", "quota", "alter", "--client-id", "cli-billing", "--delete", "producer_byte_rate")
		res = r.ok("", "--json", "quota", "list")
		var listed []struct {
			Entity string             `json:"entity"`
			Quotas map[string]float64 `json:"quotas"`
		}
		if err := json.Unmarshal([]byte(res.stdout), &listed); err != nil {
			t.Fatalf("quota list --json: %v %s", err, res)
		}
		got := map[string]map[string]float64{}
		for _, l := range listed {
			got[l.Entity] = l.Quotas
		}
		if q := got["{client-id=cli-billing}"]; len(q) != 1 || q["consumer_byte_rate"] != 2097152 || got["{client-id=<default>}"]["request_percentage"] != 50 {
			t.Fatalf("quota list after the removal: %v", got)
		}
		r.fail(2, []string{"not a number"}, "", "quota", "alter", "--client-id", "cli-billing", "-c", "producer_byte_rate=fast")
		r.fail(2, []string{"name an entity"}, "", "quota", "alter", "-c", "producer_byte_rate=1")
		r.fail(2, []string{"not both"}, "", "quota", "alter", "--client-id", "x", "--client-default", "-c", "producer_byte_rate=1")
	})

	t.Run("TopicAddPartitions", func(t *testing.T) {
		r := cliRunner{t: t, addr: brokerAddr}
		name := uniqueTopic("addp")
		r.ok("", "topic", "create", name, "-p", "1", "-r", "1")
		res := r.ok("", "topic", "add-partitions", name, "-p", "4")
		if !strings.Contains(res.stdout, "now has 4 partitions") {
			t.Fatalf("add-partitions: %s", res)
		}
		res = r.ok("", "--json", "topic", "describe", name)
		var ds []topicDescription
		if err := json.Unmarshal([]byte(res.stdout), &ds); err != nil || len(ds) != 1 || ds[0].Partitions != 4 {
			t.Fatalf("describe after add-partitions: %v %s", err, res)
		}
		r.fail(1, []string{"INVALID_PARTITIONS", "hint: "}, "", "topic", "add-partitions", name, "-p", "2")
		r.fail(2, []string{"-p TOTAL"}, "", "topic", "add-partitions", name)
	})

	t.Run("ProduceConsumeKeysHeaders", func(t *testing.T) {
		r := cliRunner{t: t, addr: brokerAddr}
		name := uniqueTopic("kv")
		r.ok("", "topic", "create", name, "-p", "1", "-r", "1")
		res := r.ok("k1:v1\r\nk2:v:2\n:empty-key\n", "produce", name, "--key-separator", ":", "-H", "h1=a", "-H", "h2=b=c")
		if !strings.Contains(res.stderr, "produced 3 records to "+name) {
			t.Fatalf("produce: %s", res)
		}
		res = r.ok("", "consume", name, "--from-beginning", "-n", "3", "--format", `%k=%v|%h|%p|%o|%T\t.%%`)
		want := []string{
			"k1=v1|h1=a,h2=b=c|0|0|" + name + "\t.%",
			"k2=v:2|h1=a,h2=b=c|0|1|" + name + "\t.%",
			"=empty-key|h1=a,h2=b=c|0|2|" + name + "\t.%",
		}
		if got := lines(res.stdout); !slices.Equal(got, want) {
			t.Fatalf("consume got %q, want %q", got, want)
		}
		res = r.ok("", "--json", "consume", name, "--from-beginning", "--exit-at-end")
		var recs []jsonRecord
		for _, l := range lines(res.stdout) {
			var jr jsonRecord
			if err := json.Unmarshal([]byte(l), &jr); err != nil {
				t.Fatalf("json line %q: %v", l, err)
			}
			recs = append(recs, jr)
		}
		if len(recs) != 3 || *recs[0].Key != "k1" || *recs[1].Value != "v:2" || recs[2].Offset != 2 ||
			len(recs[0].Headers) != 2 || recs[0].Headers[1] != (jsonHeader{"h2", "b=c"}) || recs[0].Timestamp <= 0 {
			t.Fatalf("json records: %+v", recs)
		}
		r.fail(1, []string{"stdin line 2: no key separator"}, "a:1\nnope\n", "produce", name, "--key-separator", ":")
	})

	t.Run("ProduceCompression", func(t *testing.T) {
		r := cliRunner{t: t, addr: brokerAddr}
		var in strings.Builder
		var want []string
		for i := range 200 {
			l := fmt.Sprintf("record-%03d %s", i, strings.Repeat("x", i%37))
			in.WriteString(l + "\n")
			want = append(want, l)
		}
		for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
			t.Run(codec, func(t *testing.T) {
				r := cliRunner{t: t, addr: brokerAddr}
				name := uniqueTopic("codec-" + codec)
				r.ok("", "topic", "create", name, "-p", "1", "-r", "1")
				res := r.ok(in.String(), "produce", name, "--compression", codec, "--linger", "5ms")
				if !strings.Contains(res.stderr, "produced 200 records") {
					t.Fatalf("produce: %s", res)
				}
				res = r.ok("", "consume", name, "--from-beginning", "--exit-at-end")
				if got := lines(res.stdout); !slices.Equal(got, want) {
					t.Fatalf("consume %s: got %d lines, want %d; first %q", codec, len(got), len(want), got[:min(3, len(got))])
				}
			})
		}
		r.fail(2, []string{"--compression"}, "", "produce", "x", "--compression", "brotli")
	})

	t.Run("ProduceAcks", func(t *testing.T) {
		r := cliRunner{t: t, addr: brokerAddr}
		name := uniqueTopic("acks")
		r.ok("", "topic", "create", name, "-p", "1", "-r", "1")
		r.ok("a\n", "produce", name, "--acks", "all")
		r.ok("b\n", "produce", name, "--acks", "1")
		r.ok("c\n", "produce", name, "--acks", "0")
		// acks=0 is not acknowledged: wait until the record is visible.
		waitFor(t, func() bool {
			return len(lines(r.ok("", "consume", name, "--from-beginning", "--exit-at-end").stdout)) == 3
		})
		r.fail(2, []string{"--acks"}, "", "produce", name, "--acks", "2")
	})

	t.Run("ConsumeOffsetPartitionTimestamp", func(t *testing.T) {
		r := cliRunner{t: t, addr: brokerAddr}
		name := uniqueTopic("pos")
		r.ok("", "topic", "create", name, "-p", "3", "-r", "1")
		before := time.Now().Add(-time.Minute).UnixMilli()
		var in strings.Builder
		for i := range 10 {
			fmt.Fprintf(&in, "v%d\n", i)
		}
		r.ok(in.String(), "produce", name, "--partition", "1")
		r.ok("other\n", "produce", name, "--partition", "2")

		res := r.ok("", "consume", name, "--partition", "1", "--offset", "7", "--exit-at-end", "--format", "%p:%o:%v")
		if got, want := lines(res.stdout), []string{"1:7:v7", "1:8:v8", "1:9:v9"}; !slices.Equal(got, want) {
			t.Fatalf("--offset 7: got %q, want %q", got, want)
		}
		res = r.ok("", "consume", name, "--partition", "0", "--from-beginning", "--exit-at-end")
		if res.stdout != "" {
			t.Fatalf("empty partition printed %q", res.stdout)
		}
		res = r.ok("", "consume", name, "--partition", "0,2", "--from-beginning", "--exit-at-end", "--format", "%p:%v")
		if got, want := lines(res.stdout), []string{"2:other"}; !slices.Equal(got, want) {
			t.Fatalf("--partition 0,2: got %q, want %q", got, want)
		}
		res = r.ok("", "consume", name, "--partition", "1", "--partition", "2", "--from-beginning", "-n", "11")
		if got := lines(res.stdout); len(got) != 11 {
			t.Fatalf("-n 11 over two partitions: got %q", got)
		}
		res = r.ok("", "consume", name, "--from-beginning", "--exit-at-end")
		if got := lines(res.stdout); len(got) != 11 {
			t.Fatalf("all partitions --exit-at-end: got %q", got)
		}
		res = r.ok("", "consume", name, "--timestamp", fmt.Sprint(before), "--exit-at-end", "--partition", "1")
		if got := lines(res.stdout); len(got) != 10 {
			t.Fatalf("--timestamp in the past: got %q", got)
		}
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		res = r.ok("", "consume", name, "--timestamp", future, "--exit-at-end")
		if res.stdout != "" {
			t.Fatalf("--timestamp in the future printed %q", res.stdout)
		}
		// Default start is the end: with --exit-at-end nothing is printed.
		res = r.ok("", "consume", name, "--exit-at-end")
		if res.stdout != "" {
			t.Fatalf("default start printed %q", res.stdout)
		}
		r.fail(2, []string{"--partition 9"}, "", "consume", name, "--partition", "9")
		r.fail(2, []string{"at most one"}, "", "consume", name, "--offset", "1", "--from-beginning")
		r.fail(2, []string{"unknown directive"}, "", "consume", name, "--format", "%z")
		r.fail(1, []string{"UNKNOWN_TOPIC_OR_PARTITION", "gregor topic create"}, "", "consume", name+"-missing", "--exit-at-end")
	})

	t.Run("ConsumeFollowsUntilCancelled", func(t *testing.T) {
		r := cliRunner{t: t, addr: brokerAddr}
		name := uniqueTopic("follow")
		r.ok("", "topic", "create", name, "-p", "1", "-r", "1")
		r.ok("first\n", "produce", name)

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := &syncBuffer{}
		done := make(chan int, 1)
		go func() {
			done <- Main(ctx, []string{"-b", brokerAddr, "consume", name, "--offset", "0"}, strings.NewReader(""), out, &syncBuffer{})
		}()
		waitFor(t, func() bool { return strings.Contains(out.String(), "first\n") })
		r.ok("second\n", "produce", name)
		waitFor(t, func() bool { return strings.Contains(out.String(), "second\n") })
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Fatalf("cancelled consume exit %d", code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("consume did not stop after cancel")
		}
	})
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
