package node_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// throttleHook counts the throttles a client's brokers impose.
type throttleHook struct{ n, longest atomic.Int64 }

func (h *throttleHook) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	h.n.Add(1)
	for {
		cur := h.longest.Load()
		if int64(d) <= cur || h.longest.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

func clientEntity(id *string) kadm.ClientQuotaEntity {
	return kadm.ClientQuotaEntity{{Type: "client-id", Name: id}}
}

// TestClientQuotasAlterDescribeValidate: AlterClientQuotas stores quotas in
// the metadata log, DescribeClientQuotas filters them as Kafka does, and
// the entries Kafka refuses are refused with INVALID_REQUEST while the
// valid ones of the same request apply.
func TestClientQuotasAlterDescribeValidate(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	ctx := testCtx(t, 30*time.Second)
	alice, app := "alice", "app"
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: clientEntity(&app), Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1024}, {Key: "consumer_byte_rate", Value: 2048}}},
		{Entity: clientEntity(nil), Ops: []kadm.AlterClientQuotaOp{{Key: "request_percentage", Value: 12.5}}},
		{Entity: kadm.ClientQuotaEntity{{Type: "user", Name: &alice}, {Type: "client-id", Name: nil}}, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 4096}}},
		// Refused: a fraction of a byte rate, a zero, an unknown key, an
		// IP with a client id, a byte rate on an IP, an unknown type, an
		// empty name.
		{Entity: clientEntity(&alice), Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1.5}}},
		{Entity: clientEntity(&alice), Ops: []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Value: 0}}},
		{Entity: clientEntity(&alice), Ops: []kadm.AlterClientQuotaOp{{Key: "fetch_byte_rate", Value: 10}}},
		{Entity: kadm.ClientQuotaEntity{{Type: "ip", Name: kmsg.StringPtr("10.0.0.1")}, {Type: "client-id", Name: &app}}, Ops: []kadm.AlterClientQuotaOp{{Key: "connection_creation_rate", Value: 10}}},
		{Entity: kadm.ClientQuotaEntity{{Type: "ip", Name: kmsg.StringPtr("10.0.0.1")}}, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 10}}},
		{Entity: kadm.ClientQuotaEntity{{Type: "group", Name: &app}}, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 10}}},
		{Entity: clientEntity(kmsg.StringPtr("")), Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 10}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := error(nil)
		if i >= 3 {
			want = kerr.InvalidRequest
		}
		if !errors.Is(r.Err, want) {
			t.Errorf("entry %d %v: %v, want %v", i, r.Entity, r.Err, want)
		}
	}

	describe := func(strict bool, cs ...kadm.DescribeClientQuotaComponent) map[string]map[string]float64 {
		t.Helper()
		d, err := adm.DescribeClientQuotas(ctx, strict, cs)
		if err != nil {
			t.Fatalf("describe %v: %v", cs, err)
		}
		out := map[string]map[string]float64{}
		for _, q := range d {
			vals := map[string]float64{}
			for _, v := range q.Values {
				vals[v.Key] = v.Value
			}
			out[q.Entity.String()] = vals
		}
		return out
	}
	all := describe(false)
	if len(all) != 3 || all["{client-id=app}"]["consumer_byte_rate"] != 2048 || all["{client-id=<default>}"]["request_percentage"] != 12.5 ||
		all["{user=alice, client-id=<default>}"]["producer_byte_rate"] != 4096 {
		t.Fatalf("all quotas: %v", all)
	}
	if got := describe(false, kadm.DescribeClientQuotaComponent{Type: "client-id", MatchType: 1}); len(got) != 2 {
		t.Fatalf("default client id, not strict: %v", got)
	}
	if got := describe(true, kadm.DescribeClientQuotaComponent{Type: "client-id", MatchType: 1}); len(got) != 1 || got["{client-id=<default>}"] == nil {
		t.Fatalf("default client id, strict: %v", got)
	}
	if got := describe(false, kadm.DescribeClientQuotaComponent{Type: "client-id", MatchType: 0, MatchName: &app}); len(got) != 1 || got["{client-id=app}"]["producer_byte_rate"] != 1024 {
		t.Fatalf("client id app: %v", got)
	}
	if got := describe(false, kadm.DescribeClientQuotaComponent{Type: "user", MatchType: 2}); len(got) != 1 {
		t.Fatalf("any user: %v", got)
	}
	if _, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "ip", MatchType: 2}, {Type: "user", MatchType: 2}}); !errors.Is(err, kerr.InvalidRequest) {
		t.Fatalf("ip with user filter: %v, want INVALID_REQUEST", err)
	}

	// Removing a key; an entity left without keys is gone.
	if res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: clientEntity(nil), Ops: []kadm.AlterClientQuotaOp{{Key: "request_percentage", Remove: true}}},
	}); err != nil || res[0].Err != nil {
		t.Fatalf("remove: %v %v", err, res)
	}
	if got := describe(false); len(got) != 2 || got["{client-id=<default>}"] != nil {
		t.Fatalf("after the removal: %v", got)
	}
	// A validation alone changes nothing.
	if res, err := adm.ValidateAlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: clientEntity(nil), Ops: []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Value: 1}}},
	}); err != nil || res[0].Err != nil {
		t.Fatalf("validate: %v %v", err, res)
	}
	if got := describe(false); len(got) != 2 {
		t.Fatalf("after a validation: %v", got)
	}
}

// TestClientQuotasThrottleProduceAndFetch: a client id with a producer and
// a consumer byte rate gets throttle times in its responses once over it
// (kgo reports them and waits them out); another client id is never
// throttled.
func TestClientQuotasThrottleProduceAndFetch(t *testing.T) {
	// A rate judged over one or two seconds rather than Kafka's ten, so
	// that little data goes over the quota and the test waits little.
	n := startNode(t, t.TempDir(), map[string]string{"quota.window.num": "2", "quota.window.size.seconds": "1"})
	adm, _ := newAdmin(t, n)
	ctx := testCtx(t, 60*time.Second)
	createTopic(t, adm, "metered", 1, nil)
	slow := "slow"
	if res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: clientEntity(&slow),
		Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 20000}, {Key: "consumer_byte_rate", Value: 20000}}}}); err != nil || res[0].Err != nil {
		t.Fatalf("alter: %v %v", err, res)
	}

	// Random bytes: kgo compresses batches, and a repeated byte would
	// shrink to nothing.
	value := make([]byte, 10000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range value {
		value[i] = byte(r.Uint32())
	}
	produce := func(clientID string, h *throttleHook, records int) {
		t.Helper()
		cl := newClient(t, n, kgo.ClientID(clientID), kgo.WithHooks(h), kgo.DefaultProduceTopic("metered"))
		defer cl.Close()
		// One burst, so that the rate is over the quota however slowly
		// the machine answers; then as much again, which kgo holds back
		// for the throttle time.
		for range 2 {
			var recs []*kgo.Record
			for range records {
				recs = append(recs, &kgo.Record{Value: value})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce as %s: %v", clientID, err)
			}
		}
	}
	// Bursts of 6 records of 10 kB: 60 kB, three times the quota of the
	// second the rate is judged over at first.
	fast, throttled := &throttleHook{}, &throttleHook{}
	produce("fast", fast, 6)
	produce(slow, throttled, 6)
	if fast.n.Load() != 0 {
		t.Fatalf("a client without a quota was throttled %d times", fast.n.Load())
	}
	if throttled.n.Load() == 0 {
		t.Fatal("60 kB at once from a client with a 20 kB/s quota was never throttled")
	}

	// Raw produces as the throttled client until one is answered with a
	// throttle time (kgo waited the last one out). That the broker then
	// reads nothing from the connection for that time is the server's
	// TestServerThrottleMutesConnection.
	cl := newClient(t, n, kgo.ClientID(slow))
	br := cl.Broker(int(n.NodeID()))
	var resp *kmsg.ProduceResponse
	for i := 0; resp == nil || resp.ThrottleMillis == 0; i++ {
		if i == 40 {
			t.Fatal("40 raw produces of 10 kB at a 20 kB/s quota were never throttled")
		}
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = 1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "metered"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = rawBatch(t, -1, -1, -1, 1, string(value))
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		var err error
		if resp, err = req.RequestWith(ctx, br); err != nil {
			t.Fatal(err)
		}
	}

	// Fetch: the consumer of the throttled client id is throttled too, and
	// still reads every record.
	consumed := &throttleHook{}
	end := latestOffset(t, cl, "metered", 0)
	got := consumePartitions(t, n, "metered", []int32{0}, int(end), kgo.ClientID(slow), kgo.WithHooks(consumed))
	if int64(len(got)) != end {
		t.Fatalf("consumed %d records, want %d", len(got), end)
	}
	if consumed.n.Load() == 0 {
		t.Fatalf("%d records of 10 kB read by a client with a 20 kB/s fetch quota were never throttled", end)
	}
}

// TestClusterClientQuotasForwarded: AlterClientQuotas sent to a broker
// that is not the active controller is forwarded to it, and every node's
// DescribeClientQuotas shows the quota from its own metadata.
func TestClusterClientQuotasForwarded(t *testing.T) {
	c := startCluster(t, nil)
	ctrl := activeController(t, c.nodes[0])
	var via int
	for i, n := range c.nodes {
		if n.NodeID() != ctrl {
			via = i
			break
		}
	}
	adm := kadm.NewClient(newClient(t, c.nodes[via]))
	ctx := testCtx(t, 30*time.Second)
	app := "app"
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: clientEntity(&app),
		Ops: []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Value: 5e6}}}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("alter through node %d: %v %v", c.nodes[via].NodeID(), err, res)
	}
	for _, n := range c.nodes {
		nadm := kadm.NewClient(newClient(t, n))
		checkFor(t, fmt.Sprintf("node %d describing the quota", n.NodeID()), func() bool {
			d, err := nadm.DescribeClientQuotas(ctx, false, nil)
			return err == nil && len(d) == 1 && len(d[0].Values) == 1 && d[0].Values[0].Value == 5e6
		})
	}
}
