package node_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/testkit"
)

// consumerProps make KIP-848 rebalances quick: a member learns of a new
// assignment at its next heartbeat.
var consumerProps = map[string]string{
	"group.consumer.heartbeat.interval.ms": "200",
	"group.consumer.session.timeout.ms":    "3000",
}

// TestE2EConsumerGroupProtocol (KIP-848): franz-go's server-side balancer
// consumers join, grow to three and shrink to one over six partitions,
// with the coordinator assigning. Members leave cleanly, so every record
// is consumed exactly once and everything is committed; while two are in
// the group ConsumerGroupDescribe shows them Stable, holding disjoint
// halves of the partitions.
func TestE2EConsumerGroupProtocol(t *testing.T) {
	n := startNode(t, t.TempDir(), consumerProps)
	adm, cl := newAdmin(t, n)
	for _, tc := range []struct {
		name, assignor string
		balancer       kgo.GroupBalancer
	}{
		{"uniform", "uniform", kgo.StickyBalancer()},
		{"range", "range", kgo.RangeBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := "kip848-"+tc.name, "g-kip848-"+tc.name
			twoStable := func() {
				testkit.Eventually(t, 20*time.Second, "two members, stable, six partitions between them", func() error {
					req := kmsg.NewPtrConsumerGroupDescribeRequest()
					req.Groups = []string{group}
					resp, err := req.RequestWith(testCtx(t, 5*time.Second), cl)
					if err != nil {
						return err
					}
					g := resp.Groups[0]
					if g.ErrorCode != 0 || g.State != "Stable" || len(g.Members) != 2 || g.AssignorName != tc.assignor {
						return fmt.Errorf("code %d, state %s, %d members, assignor %q", g.ErrorCode, g.State, len(g.Members), g.AssignorName)
					}
					owned := map[int32]int{}
					for _, m := range g.Members {
						if m.MemberEpoch != g.Epoch {
							return fmt.Errorf("member at epoch %d, group at %d", m.MemberEpoch, g.Epoch)
						}
						for _, tp := range m.Assignment.TopicPartitions {
							for _, p := range tp.Partitions {
								owned[p]++
							}
						}
					}
					if len(owned) != 6 {
						return fmt.Errorf("partitions owned: %v", owned)
					}
					for p, k := range owned {
						if k != 1 {
							t.Fatalf("partition %d held by %d members at once", p, k)
						}
					}
					return nil
				})
			}
			growAndShrink(t, n, adm, topic, group, twoStable, kgo.Balancers(tc.balancer), kgo.ServerSideBalancer())
			// Left empty, it is still a consumer group.
			lg := kmsg.NewPtrListGroupsRequest()
			lg.TypesFilter = []string{"consumer"}
			lr, err := lg.RequestWith(testCtx(t, 5*time.Second), cl)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(lr.Groups, func(g kmsg.ListGroupsResponseGroup) bool {
				return g.Group == group && g.GroupType == "consumer" && g.GroupState == "Empty"
			}) {
				t.Fatalf("ListGroups of consumer groups: %+v", lr.Groups)
			}
		})
	}

	// DescribeGroups describes classic groups only: from v6 (KIP-1043) a
	// consumer group or a missing one is GROUP_ID_NOT_FOUND, before it
	// Dead without an error, as Kafka answers both.
	describe := func(cl *kgo.Client, group string) kmsg.DescribeGroupsResponseGroup {
		t.Helper()
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{group}
		resp, err := req.RequestWith(testCtx(t, 5*time.Second), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Groups[0]
	}
	for group, msg := range map[string]string{"g-kip848-range": "is not a classic group.", "g-none": "not found."} {
		g := describe(cl, group)
		if g.ErrorCode != kerr.GroupIDNotFound.Code || g.ErrorMessage == nil || g.ErrorMessage != nil && *g.ErrorMessage != "Group "+group+" "+msg {
			t.Errorf("DescribeGroups v6 of %s: code %d, message %v", group, g.ErrorCode, g.ErrorMessage)
		}
	}
	old, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr().String()), kgo.MaxVersions(kversion.V3_9_0()))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	for _, group := range []string{"g-kip848-range", "g-none"} {
		if g := describe(old, group); g.ErrorCode != 0 || g.State != "Dead" {
			t.Errorf("DescribeGroups v5 of %s: code %d, state %q; want Dead", group, g.ErrorCode, g.State)
		}
	}
}

// TestClusterConsumerGroupCoordinatorFailover (KIP-848): two server-side
// balanced members consume on a 3-node cluster and the node coordinating
// their group stops. The new coordinator loads the group from
// __consumer_offsets: the same two members, at their epochs, carry on
// without rejoining, and every record produced before and after is
// consumed exactly once.
func TestClusterConsumerGroupCoordinatorFailover(t *testing.T) {
	props := map[string]string{}
	for k, v := range coordFailoverProps {
		props[k] = v
	}
	for k, v := range consumerProps {
		props[k] = v
	}
	// Sessions restart when the new coordinator loads the group; a member
	// still retrying the stopped node (franz-go backs off up to seconds
	// there before it looks for the coordinator again) must not expire
	// meanwhile, as it would with the 3 s of consumerProps.
	props["group.consumer.session.timeout.ms"] = "30000"
	c := startCluster(t, props)
	const topic, groupID = "kip848-failover", "g-kip848-failover"
	createReplicated(t, c, topic, 6, map[string]*string{"min.insync.replicas": strp("2")})
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds(c.nodes)...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	produce := func(from, to int) {
		t.Helper()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Value: []byte(fmt.Sprintf("v%05d", i))})
		}
		if err := prod.ProduceSync(testCtx(t, 30*time.Second), recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	s := &seen{counts: map[string]int{}}
	opts := []kgo.Opt{kgo.SeedBrokers(seeds(c.nodes)...), kgo.Balancers(kgo.StickyBalancer()), kgo.ServerSideBalancer()}
	startMember(t, c.nodes[0], s, groupID, topic, opts...)
	startMember(t, c.nodes[0], s, groupID, topic, opts...)
	produce(0, 200)
	s.waitFor(t, 200, 30*time.Second)

	members := func(n *node.Node) []string {
		t.Helper()
		var ids []string
		testkit.Eventually(t, 30*time.Second, "the group stable with two members", func() error {
			req := kmsg.NewPtrConsumerGroupDescribeRequest()
			req.Groups = []string{groupID}
			resp, err := req.RequestWith(testCtx(t, 5*time.Second), newClient(t, n))
			if err != nil {
				return err
			}
			g := resp.Groups[0]
			if g.ErrorCode != 0 || g.State != "Stable" || len(g.Members) != 2 {
				return fmt.Errorf("code %d, state %s, %d members", g.ErrorCode, g.State, len(g.Members))
			}
			ids = nil
			for _, m := range g.Members {
				ids = append(ids, m.MemberID)
			}
			return nil
		})
		return ids
	}
	before := members(c.nodes[0])

	old := coordinatorOf(t, c.nodes[0], groupID, 0)
	rest := stopNode(t, c, old)
	movedCoordinator(t, rest, groupID, 0, old)
	produce(200, 400)
	s.waitFor(t, 400, 60*time.Second)
	if after := members(rest[0]); !slices.Equal(after, before) {
		t.Fatalf("members %v after the failover, %v before: they rejoined", after, before)
	}
	s.exactlyOnce(t)
}

// TestE2EConsumerGroupProtocolDisabled: with
// group.coordinator.rebalance.protocols=classic the KIP-848 APIs are not
// advertised, and a client asking for the server-side balancer falls back
// to the classic protocol and consumes.
func TestE2EConsumerGroupProtocolDisabled(t *testing.T) {
	props := map[string]string{"group.coordinator.rebalance.protocols": "classic"}
	for k, v := range groupProps {
		props[k] = v
	}
	n := startNode(t, t.TempDir(), props)
	adm, cl := newAdmin(t, n)
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(testCtx(t, 5*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == 68 || k.ApiKey == 69 {
			t.Fatalf("key %d advertised with the consumer protocol off", k.ApiKey)
		}
	}
	growAndShrink(t, n, adm, "kip848-off", "g-kip848-off", nil, kgo.Balancers(kgo.StickyBalancer()), kgo.ServerSideBalancer())
	ds, err := adm.DescribeGroups(testCtx(t, 5*time.Second), "g-kip848-off")
	if err != nil || ds["g-kip848-off"].ProtocolType != "consumer" {
		t.Fatalf("the group is not a classic consumer group: %+v %v", ds, err)
	}
}

// TestE2EGroupConfigs (Kafka 4.0's group configs, config resource type
// 32): consumer.session.timeout.ms and consumer.heartbeat.interval.ms are
// set per group within the broker's group.consumer.min/max.* bounds,
// described with their source, survive a restart, and the group's members
// are given the group's heartbeat interval from their next heartbeat.
func TestE2EGroupConfigs(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, groupProps)
	adm, cl := newAdmin(t, n)
	ctx := testCtx(t, 30*time.Second)
	createTopic(t, adm, "gcfg", 2, nil)

	type kv struct {
		name string
		v    *string // nil: delete
	}
	alter := func(group string, cfgs ...kv) error {
		t.Helper()
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		r := kmsg.NewIncrementalAlterConfigsRequestResource()
		r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
		for _, c := range cfgs {
			rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			rc.Name, rc.Value, rc.Op = c.name, c.v, kmsg.IncrementalAlterConfigOpSet
			if c.v == nil {
				rc.Op = kmsg.IncrementalAlterConfigOpDelete
			}
			r.Configs = append(r.Configs, rc)
		}
		req.Resources = append(req.Resources, r)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	set := func(name, v string) kv { return kv{name, &v} }
	for _, bad := range []struct {
		cfg  kv
		want error
	}{
		{set("consumer.session.timeout.ms", "30000"), kerr.InvalidConfig},   // below group.consumer.min.session.timeout.ms
		{set("consumer.session.timeout.ms", "70000"), kerr.InvalidConfig},   // above the max
		{set("consumer.heartbeat.interval.ms", "4000"), kerr.InvalidConfig}, // below the min
		{set("share.session.timeout.ms", "50000"), kerr.InvalidConfig},      // no share groups
		{set("consumer.session.timeout.ms", "x"), kerr.InvalidConfig},
	} {
		if err := alter("g-cfg", bad.cfg); !errors.Is(err, bad.want) {
			t.Fatalf("%s=%s: %v, want %v", bad.cfg.name, *bad.cfg.v, err, bad.want)
		}
	}
	if err := alter("", set("consumer.session.timeout.ms", "50000")); !errors.Is(err, kerr.InvalidRequest) {
		t.Fatalf("a group without a name: %v", err)
	}
	if err := alter("g-cfg", set("consumer.session.timeout.ms", "50000"), set("consumer.heartbeat.interval.ms", "7000")); err != nil {
		t.Fatal(err)
	}

	type value struct {
		v   string
		src kmsg.ConfigSource
	}
	describe := func(cl *kgo.Client) map[string]value {
		t.Helper()
		req := kmsg.NewPtrDescribeConfigsRequest()
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "g-cfg"
		req.Resources = append(req.Resources, r)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
			t.Fatalf("describe: %v %+v", err, resp)
		}
		out := map[string]value{}
		for _, c := range resp.Resources[0].Configs {
			if c.Value == nil {
				t.Fatalf("%s has no value", c.Name)
			}
			out[c.Name] = value{*c.Value, c.Source}
		}
		return out
	}
	want := map[string]value{
		"consumer.session.timeout.ms":    {"50000", kmsg.ConfigSourceGroupConfig},
		"consumer.heartbeat.interval.ms": {"7000", kmsg.ConfigSourceGroupConfig},
	}
	if got := describe(cl); !maps.Equal(got, want) {
		t.Fatalf("after the change: %v, want %v", got, want)
	}

	// The heartbeat interval a member is given is the group's.
	hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	hb.Group, hb.MemberID, hb.MemberEpoch, hb.RebalanceTimeoutMillis = "g-cfg", "m-cfg-1", 0, 30000
	hb.SubscribedTopicNames = []string{"gcfg"}
	hb.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	var r *kmsg.ConsumerGroupHeartbeatResponse
	testkit.Eventually(t, 20*time.Second, "the first heartbeat is answered", func() error {
		var err error
		if r, err = hb.RequestWith(ctx, cl); err == nil {
			err = kerr.ErrorForCode(r.ErrorCode) // COORDINATOR_NOT_AVAILABLE while __consumer_offsets starts
		}
		return err
	})
	if r.HeartbeatIntervalMillis != 7000 {
		t.Fatalf("heartbeat interval %d ms, want the group's 7000", r.HeartbeatIntervalMillis)
	}

	// Deleting the group's value brings back the broker's, as a default.
	if err := alter("g-cfg", kv{name: "consumer.heartbeat.interval.ms"}); err != nil {
		t.Fatal(err)
	}
	if got := describe(cl)["consumer.heartbeat.interval.ms"]; got != (value{"5000", kmsg.ConfigSourceDefaultConfig}) {
		t.Fatalf("after the delete: %v, want the broker's 5000 as the default", got)
	}
	if err := alter("g-cfg", set("consumer.heartbeat.interval.ms", "7000")); err != nil {
		t.Fatal(err)
	}

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, dir, groupProps)
	_, cl = newAdmin(t, n)
	if got := describe(cl); !maps.Equal(got, want) {
		t.Fatalf("after a restart: %v, want %v", got, want)
	}
}
