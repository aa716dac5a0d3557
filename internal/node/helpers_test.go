package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/node"
)

// startNode starts an in-process node on dir with free ports and the given
// broker properties; the node is closed when the test ends (closing twice is
// harmless, so tests may Close it earlier to restart).
func startNode(t *testing.T, dir string, props map[string]string) *node.Node {
	t.Helper()
	return startNodeWith(t, dir, props, nil)
}

// startNodeWith is startNode with the node's config changed by mod (nil:
// unchanged) after the defaults are set.
func startNodeWith(t *testing.T, dir string, props map[string]string, mod func(*config.Node)) *node.Node {
	t.Helper()
	cfg := config.DefaultNode()
	cfg.DataDir = dir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.ControllerAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Props = props
	if mod != nil {
		mod(&cfg)
	}
	var logger *slog.Logger
	if os.Getenv("GREGOR_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("node.Close: %v", err)
		}
	})
	return n
}

// newClient connects a franz-go client to n; it is closed when the test ends.
func newClient(t *testing.T, n *node.Node, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(n.KafkaAddr().String()),
		kgo.RetryTimeout(10 * time.Second),
		kgo.RequestTimeoutOverhead(5 * time.Second),
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func newAdmin(t *testing.T, n *node.Node) (*kadm.Client, *kgo.Client) {
	t.Helper()
	cl := newClient(t, n)
	return kadm.NewClient(cl), cl
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// createTopic creates a topic and fails the test on any error.
func createTopic(t *testing.T, adm *kadm.Client, name string, partitions int32, configs map[string]*string) {
	t.Helper()
	resp, err := adm.CreateTopic(testCtx(t, 15*time.Second), partitions, 1, configs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %q: %v", name, err)
	}
}

// consumePartitions reads every record of topic's partitions from the
// start until want records arrived (or the deadline passes).
func consumePartitions(t *testing.T, n *node.Node, topic string, partitions []int32, want int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	offs := make(map[int32]kgo.Offset, len(partitions))
	for _, p := range partitions {
		offs[p] = kgo.NewOffset().AtStart()
	}
	opts = append([]kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.FetchMaxWait(500 * time.Millisecond)}, opts...)
	cl := newClient(t, n, opts...)
	defer cl.Close()
	ctx := testCtx(t, 15*time.Second)
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume %s: got %d of %d records before the deadline", topic, len(out), want)
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Fatalf("consume %s[%d]: %v", tp, p, err)
		})
		out = append(out, fs.Records()...)
	}
	if len(out) != want {
		t.Fatalf("consume %s: got %d records, want %d", topic, len(out), want)
	}
	return out
}

func strp(s string) *string { return &s }

// rawRequest sends req straight to node 1 and returns the response.
func rawRequest[R kmsg.Response](t *testing.T, cl *kgo.Client, req kmsg.Request) R {
	t.Helper()
	resp, err := cl.Broker(1).Request(testCtx(t, 15*time.Second), req)
	if err != nil {
		t.Fatalf("%T: %v", req, err)
	}
	return resp.(R)
}

// listLatest asks r (a client or one broker) for the latest offset of
// partition 0 of topic at the isolation level (ListOffsets, timestamp -1):
// the offset, or -1 with the error code answered.
func listLatest(ctx context.Context, r kmsg.Requestor, topic string, isolation int8) (int64, int16, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	req.IsolationLevel = isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = 0, -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := r.Request(ctx, req)
	if err != nil {
		return -1, -1, err
	}
	lr := resp.(*kmsg.ListOffsetsResponse)
	if len(lr.Topics) != 1 || len(lr.Topics[0].Partitions) != 1 {
		return -1, -1, fmt.Errorf("ListOffsets: malformed response %+v", lr)
	}
	p := lr.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		return -1, p.ErrorCode, nil
	}
	return p.Offset, 0, nil
}
