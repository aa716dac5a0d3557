package cli

import (
	"slices"
	"strings"
	"testing"
)

// TestClusterLocalLayout checks the ports, directories and serve command
// lines of a local cluster, and that bad flags are usage errors before
// anything starts (the running cluster is tested in test/e2e).
func TestClusterLocalLayout(t *testing.T) {
	f := localFlags{nodes: 3, dataDir: "/d", host: "127.0.0.1", basePort: 9092, portStep: 100, logLevel: "info",
		set: []string{"num.partitions=3"}}
	nodes, voters, err := localLayout(f)
	if err != nil {
		t.Fatal(err)
	}
	if voters != "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293" {
		t.Fatalf("voters %s", voters)
	}
	n := nodes[1]
	if n.Kafka != "127.0.0.1:9192" || n.HTTP != "127.0.0.1:9194" || n.DataDir != "/d/node-2" || n.Log != "/d/node-2.log" {
		t.Fatalf("node 2: %+v", n)
	}
	want := "serve --node-id 2 --data-dir /d/node-2 --kafka-addr 127.0.0.1:9192 --controller-addr 127.0.0.1:9193 " +
		"--http-addr 127.0.0.1:9194 --log-level info --set controller.quorum.voters=" + voters + " --set num.partitions=3"
	if got := strings.Join(n.serveArgs(f, voters), " "); got != want {
		t.Fatalf("serve args\n got %s\nwant %s", got, want)
	}
	if got := shellJoin([]string{"a b", "x=1", "it's"}); got != `'a b' x=1 'it'\''s'` {
		t.Fatalf("shellJoin: %s", got)
	}
	if got := withOnly([]string{"gregor", "cluster", "local", "--only", "N"}, 2); !slices.Equal(got, []string{"gregor", "cluster", "local", "--only", "2"}) {
		t.Fatalf("withOnly: %q", got)
	}

	r := cliRunner{t: t}
	for _, bad := range [][]string{
		{"--nodes", "0"}, {"--only", "4"}, {"--port-step", "2"}, {"--base-port", "65530"},
		{"--log-level", "loud"}, {"--set", "novalue"}, {"extra-arg"},
	} {
		r.fail(ExitUsage, nil, "", append([]string{"cluster", "local"}, bad...)...)
	}
}
