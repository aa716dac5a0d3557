package node_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/testkit"
)

// startACLNode starts a node with the SASL listener and an authorizer, and
// props over those; the unauthenticated admin on the PLAINTEXT listener
// (User:ANONYMOUS, as the brokers themselves) is a super user.
func startACLNode(t *testing.T, props map[string]string) *node.Node {
	t.Helper()
	p := maps.Clone(saslProps)
	p["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
	p["super.users"] = "User:admin;User:ANONYMOUS"
	maps.Copy(p, props)
	return startNodeWith(t, t.TempDir(), p, withSASLListener)
}

// TestACLsAuthorizeClients: with an authorizer, the ACLs in the metadata
// log decide what a SASL user may do; the unauthenticated admin on the
// PLAINTEXT listener (User:ANONYMOUS, as the brokers themselves) is a super
// user. alice may write and read one topic and use one group: a produce
// elsewhere is TOPIC_AUTHORIZATION_FAILED, another group
// GROUP_AUTHORIZATION_FAILED, Metadata hides the topics she may not
// describe, a DENY wins over an ALLOW, and without ACLs nothing is allowed.
func TestACLsAuthorizeClients(t *testing.T) {
	n := startACLNode(t, nil)
	adm, admCl := newAdmin(t, n)
	ctx := testCtx(t, 60*time.Second)
	createTopic(t, adm, "orders", 1, nil)
	createTopic(t, adm, "secret", 1, nil)

	acls := kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpWrite, kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)
	groupACL := kadm.NewACLs().Allow("User:alice").Groups("g").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)
	for _, b := range []*kadm.ACLBuilder{acls, groupACL} {
		res, err := adm.CreateACLs(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("create ACL %+v: %v", r, r.Err)
			}
		}
	}
	describeAll := func(cl *kgo.Client) (*kmsg.DescribeACLsResponse, error) {
		req := kmsg.NewPtrDescribeACLsRequest()
		req.ResourceType, req.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
		req.Operation, req.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		return req.RequestWith(ctx, cl)
	}
	described, err := describeAll(admCl)
	if err != nil || described.ErrorCode != 0 || len(described.Resources) != 2 || len(described.Resources[0].ACLs) != 2 {
		t.Fatalf("describe: %v %+v", err, described)
	}

	alice := func(opts ...kgo.Opt) *kgo.Client {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.ListenerAddr("SASL_PLAINTEXT").String()),
			kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()), kgo.RetryTimeout(3 * time.Second)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	produce := func(topic string) error {
		cl := alice(kgo.RecordDeliveryTimeout(5*time.Second), kgo.DisableIdempotentWrite())
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
	}
	if err := produce("orders"); err != nil {
		t.Fatalf("alice produces to orders: %v", err)
	}
	if err := produce("secret"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice produces to secret: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	topics, err := kadm.NewClient(alice()).ListTopics(ctx)
	if err != nil || !topics.Has("orders") || topics.Has("secret") {
		t.Fatalf("alice lists %v (%v), want orders alone", topics.Names(), err)
	}
	cl := alice(kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("g"))
	if fs := cl.PollFetches(ctx); fs.Err0() != nil || fs.NumRecords() != 1 {
		t.Fatalf("alice consumes orders in group g: %v, %d records", fs.Err0(), fs.NumRecords())
	}
	if _, err := kadm.NewClient(alice()).FetchOffsets(ctx, "h"); !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Fatalf("alice fetches group h's offsets: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	if resp, err := describeAll(alice()); err != nil || resp.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("alice describes ACLs: %v %+v, want CLUSTER_AUTHORIZATION_FAILED", err, resp)
	}

	if _, err := adm.CreateACLs(ctx, kadm.NewACLs().Deny("User:alice").DenyHosts("*").Topics("orders").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral)); err != nil {
		t.Fatal(err)
	}
	if err := produce("orders"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice produces to orders despite a DENY: %v", err)
	}
	del := kmsg.NewPtrDeleteACLsRequest()
	f := kmsg.NewDeleteACLsRequestFilter()
	f.ResourceType, f.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	f.Principal = kmsg.StringPtr("User:alice")
	f.Operation, f.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	del.Filters = append(del.Filters, f)
	deleted, err := del.RequestWith(ctx, admCl)
	if err != nil || len(deleted.Results) != 1 || deleted.Results[0].ErrorCode != 0 || len(deleted.Results[0].MatchingACLs) != 4 {
		t.Fatalf("delete alice's ACLs: %v %+v, want 4 deleted", err, deleted)
	}
	if resp, err := describeAll(admCl); err != nil || len(resp.Resources) != 0 {
		t.Fatalf("ACLs left: %v %+v", err, resp)
	}
	if err := produce("orders"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice produces to orders without ACLs: %v", err)
	}
	if err := kgoProduceAsAdmin(ctx, n.KafkaAddr().String(), "orders"); err != nil {
		t.Fatalf("the super user produces: %v", err)
	}
}

func kgoProduceAsAdmin(ctx context.Context, addr, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("admin")}).FirstErr()
}

// TestACLsWithoutAuthorizer: without authorizer.class.name the ACL APIs
// answer SECURITY_DISABLED, as Kafka's.
func TestACLsWithoutAuthorizer(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, _ := newAdmin(t, n)
	ctx := testCtx(t, 30*time.Second)
	res, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil || len(res) != 1 || !errors.Is(res[0].Err, kerr.SecurityDisabled) {
		t.Fatalf("create: %v %+v", err, res)
	}
}

// TestClusterACLs: on three nodes with an authorizer, the brokers, which
// reach each other unauthenticated (User:ANONYMOUS, a super user here as
// Kafka needs its broker principal to be), replicate an RF=3 topic that
// alice may write with acks=all; ACLs created through one node decide on
// every other at once.
func TestClusterACLs(t *testing.T) {
	props := maps.Clone(saslProps)
	props["authorizer.class.name"] = "kafka.security.authorizer.AclAuthorizer"
	props["super.users"] = "User:ANONYMOUS"
	c := startClusterWith(t, props, withSASLListener)
	adm, _ := newAdmin(t, c.nodes[0])
	ctx := testCtx(t, 60*time.Second)
	if resp, err := adm.CreateTopic(ctx, 2, 3, map[string]*string{"min.insync.replicas": kmsg.StringPtr("3")}, "audited"); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	if _, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts("*").Topics("audited").Operations(kadm.OpWrite, kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.nodes[2].ListenerAddr("SASL_PLAINTEXT").String()),
		kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()), kgo.DefaultProduceTopic("audited"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range 20 {
		recs = append(recs, &kgo.Record{Key: []byte{byte(i)}, Value: []byte("v")})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("alice produces with acks=all on RF=3, min.insync.replicas=3: %v", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "elsewhere", Value: []byte("v")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice produces to another topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}

func aliceClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr),
		kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()), kgo.RetryTimeout(3 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func mustCreateACLs(t *testing.T, ctx context.Context, adm *kadm.Client, b *kadm.ACLBuilder) {
	t.Helper()
	res, err := adm.CreateACLs(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("create ACL: %v", r.Err)
		}
	}
}

// TestACLsReviewFindings: what a review of the authorizer found, each a
// regression test. alice may READ topics prefixed "app-" and the topic
// "orders", nothing else: Metadata v0-3 may not auto-create for her, a
// topic she asks for by id is not named back, a refused fetch carries its
// error on the partitions only, an incremental fetch session does not keep
// reading a topic after a DENY, and DescribeCluster needs no ACL.
func TestACLsReviewFindings(t *testing.T) {
	n := startACLNode(t, nil)
	adm, admCl := newAdmin(t, n)
	ctx := testCtx(t, 60*time.Second)
	createTopic(t, adm, "orders", 1, nil)
	createTopic(t, adm, "secret", 1, nil)
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Allow("User:alice").Topics("app-").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternPrefixed))
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	saslAddr := n.ListenerAddr("SASL_PLAINTEXT").String()

	// 1. Metadata v4+ with auto-creation: refused (no CREATE) ...
	alice := aliceClient(t, saslAddr)
	m4 := kmsg.NewPtrMetadataRequest()
	m4.AllowAutoTopicCreation = true
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("app-v4")
	m4.Topics = append(m4.Topics, mt)
	if resp, err := m4.RequestWith(ctx, alice); err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("metadata v%d auto-create app-v4: %v %+v, want TOPIC_AUTHORIZATION_FAILED", m4.Version, err, resp)
	}
	// ... but Metadata v3 (no AllowAutoTopicCreation field: kmsg leaves it
	// false, the handler auto-creates for v<4) creates it.
	v3 := kversion.Stable()
	v3.SetMaxKeyVersion(3, 3)
	alice3 := aliceClient(t, saslAddr, kgo.MaxVersions(v3))
	m3 := kmsg.NewPtrMetadataRequest()
	mt3 := kmsg.NewMetadataRequestTopic()
	mt3.Topic = kmsg.StringPtr("app-v3")
	m3.Topics = append(m3.Topics, mt3)
	if _, err := m3.RequestWith(ctx, alice3); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if topics, _ := adm.ListTopics(ctx); topics.Has("app-v3") {
		t.Errorf("alice (no CREATE) auto-created app-v3 with Metadata v3")
	}

	// 2. Metadata by topic id (v12) of a topic alice may not describe: Kafka
	// answers TOPIC_AUTHORIZATION_FAILED with a null name and the id.
	details, err := adm.ListTopics(ctx, "secret")
	if err != nil {
		t.Fatal(err)
	}
	m12 := kmsg.NewPtrMetadataRequest()
	mid := kmsg.NewMetadataRequestTopic()
	mid.TopicID = details["secret"].ID
	m12.Topics = append(m12.Topics, mid)
	if resp, err := m12.RequestWith(ctx, alice); err != nil {
		t.Fatal(err)
	} else {
		for _, rt := range resp.Topics {
			if rt.Topic != nil && *rt.Topic == "secret" {
				t.Errorf("metadata v%d by the id of secret names it: %+v", m12.Version, rt)
			}
		}
	}

	// 3. Fetch of a topic alice may not read: Kafka's top-level error is 0.
	f := kmsg.NewPtrFetchRequest()
	f.ReplicaID, f.MaxBytes, f.MaxWaitMillis, f.SessionEpoch = -1, 1<<20, 10, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "secret"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	f.Topics = append(f.Topics, ft)
	if resp, err := f.RequestWith(ctx, alice); err != nil {
		t.Fatal(err)
	} else if resp.ErrorCode != 0 {
		t.Errorf("fetch v%d of secret: top-level error %d, Kafka answers 0 and TOPIC_AUTHORIZATION_FAILED per partition (Java/librdkafka drop the partitions)", f.Version, resp.ErrorCode)
	}

	// 4. A fetch session outlives a revocation.
	if err := admCl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("one")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fetch := func(sessionID, epoch int32, offset int64, withTopic bool) *kmsg.FetchResponse {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxBytes, req.MaxWaitMillis, req.MinBytes = -1, 1<<20, 200, 1
		req.SessionID, req.SessionEpoch = sessionID, epoch
		if withTopic {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = "orders"
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.FetchOffset, rp.PartitionMaxBytes = offset, 1<<20
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := fetch(0, 0, 0, true)
	if first.ErrorCode != 0 || first.SessionID == 0 {
		t.Fatalf("opening fetch: %+v", first)
	}
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Deny("User:alice").DenyHosts("*").Topics("orders").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	if err := admCl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("two")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if full := fetch(0, -1, 0, true); len(full.Topics) == 0 || full.Topics[0].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("full fetch after the DENY: %+v", full)
	}
	inc := fetch(first.SessionID, 1, 0, false)
	for _, rt := range inc.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode == 0 && len(rp.RecordBatches) > 0 {
				t.Errorf("incremental fetch of session %d after DENY READ returned %d bytes of %s", first.SessionID, len(rp.RecordBatches), rt.Topic)
			}
		}
	}

	// 5. DescribeCluster needs no ACL in Kafka (AuthHelper.computeDescribeClusterResponse).
	dc := kmsg.NewPtrDescribeClusterRequest()
	if resp, err := dc.RequestWith(ctx, alice); err != nil || resp.ErrorCode != 0 {
		t.Errorf("describe cluster: %v %+v, Kafka answers it", err, resp)
	}
}

// TestACLsIdempotentProducerWithOpenTopics: with allow.everyone.if.no.acl.found=true and
// an ACL on the cluster only (none on topics), Kafka lets an idempotent producer's
// InitProducerId through (authorizeByResourceType first authorizes the
// topic "hardcode", which no ACL covers).
func TestACLsIdempotentProducerWithOpenTopics(t *testing.T) {
	n := startACLNode(t, map[string]string{"allow.everyone.if.no.acl.found": "true"})
	adm, _ := newAdmin(t, n)
	ctx := testCtx(t, 60*time.Second)
	createTopic(t, adm, "orders", 1, nil)
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Allow("User:bob").Clusters().Operations(kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral))
	alice := aliceClient(t, n.ListenerAddr("SASL_PLAINTEXT").String(), kgo.RecordDeliveryTimeout(5*time.Second))
	if err := alice.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("v")}).FirstErr(); err != nil {
		t.Errorf("idempotent produce to an ACL-less topic with allow.everyone.if.no.acl.found: %v", err)
	}
}

// TestACLsRefusePerElement: as Kafka, a request naming a topic (or group,
// or config resource) the principal may not use is refused for that one
// only: a produce to orders and secret writes orders; a fetch, a
// ListOffsets, a DescribeConfigs and a DescribeGroups answer the allowed
// part and refuse the rest; an AddPartitionsToTxn takes nothing and
// answers OPERATION_NOT_ATTEMPTED for the allowed topic.
func TestACLsRefusePerElement(t *testing.T) {
	n := startACLNode(t, nil)
	adm, _ := newAdmin(t, n)
	ctx := testCtx(t, 60*time.Second)
	createTopic(t, adm, "orders", 1, nil)
	createTopic(t, adm, "secret", 1, nil)
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Allow("User:alice").Topics("orders").
		Operations(kadm.OpWrite, kadm.OpRead, kadm.OpDescribeConfigs).ResourcePatternType(kadm.ACLPatternLiteral))
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Allow("User:alice").Groups("g").Operations(kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral))
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Allow("User:alice").TransactionalIDs("tx").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	// Raw requests go to the node itself: the client would split them by
	// partition leader, which needs metadata alice may not see.
	alice := aliceClient(t, n.ListenerAddr("SASL_PLAINTEXT").String()).Broker(int(n.NodeID()))
	codes := func(what string, got map[string]int16, want map[string]int16) {
		t.Helper()
		if !maps.Equal(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	ok, denied := int16(0), kerr.TopicAuthorizationFailed.Code

	produce := kmsg.NewPtrProduceRequest()
	produce.Acks, produce.TimeoutMillis = -1, 10000
	for _, topic := range []string{"secret", "orders"} {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = rawBatch(t, -1, -1, -1, 2, topic)
		rt.Partitions = append(rt.Partitions, rp)
		produce.Topics = append(produce.Topics, rt)
	}
	presp, err := produce.RequestWith(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int16{}
	for _, rt := range presp.Topics {
		for _, rp := range rt.Partitions {
			got[rt.Topic] = rp.ErrorCode
		}
	}
	codes("produce", got, map[string]int16{"orders": ok, "secret": denied})
	if end := endOffset(t, adm, "orders", 0); end != 2 {
		t.Errorf("orders ends at %d after the mixed produce, want 2", end)
	}
	if end := endOffset(t, adm, "secret", 0); end != 0 {
		t.Errorf("secret ends at %d after the mixed produce, want 0", end)
	}

	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxWaitMillis, fetch.MaxBytes, fetch.SessionEpoch = 0, 1<<20, -1
	for _, topic := range []string{"orders", "secret"} {
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 20
		ft.Partitions = append(ft.Partitions, fp)
		fetch.Topics = append(fetch.Topics, ft)
	}
	fv := kversion.Stable()
	fv.SetMaxKeyVersion(1, 12) // by topic name
	alice12 := aliceClient(t, n.ListenerAddr("SASL_PLAINTEXT").String(), kgo.MaxVersions(fv)).Broker(int(n.NodeID()))
	fresp, err := fetch.RequestWith(ctx, alice12)
	if err != nil || fresp.ErrorCode != 0 {
		t.Fatalf("fetch: %v %+v", err, fresp)
	}
	got = map[string]int16{}
	for _, rt := range fresp.Topics {
		for _, rp := range rt.Partitions {
			got[rt.Topic] = rp.ErrorCode
			if rt.Topic == "orders" && (rp.HighWatermark != 2 || len(rp.RecordBatches) == 0) {
				t.Errorf("fetch of orders: high watermark %d, %d bytes", rp.HighWatermark, len(rp.RecordBatches))
			}
		}
	}
	codes("fetch", got, map[string]int16{"orders": ok, "secret": denied})

	lo := kmsg.NewPtrListOffsetsRequest()
	for _, topic := range []string{"secret", "orders"} {
		lt := kmsg.NewListOffsetsRequestTopic()
		lt.Topic = topic
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Timestamp = -1
		lt.Partitions = append(lt.Partitions, lp)
		lo.Topics = append(lo.Topics, lt)
	}
	loresp, err := lo.RequestWith(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	got = map[string]int16{}
	for _, rt := range loresp.Topics {
		for _, rp := range rt.Partitions {
			got[rt.Topic] = rp.ErrorCode
		}
	}
	codes("list offsets", got, map[string]int16{"orders": ok, "secret": denied})

	dc := kmsg.NewPtrDescribeConfigsRequest()
	for _, res := range []struct {
		typ  kmsg.ConfigResourceType
		name string
	}{{kmsg.ConfigResourceTypeTopic, "orders"}, {kmsg.ConfigResourceTypeTopic, "secret"}, {kmsg.ConfigResourceTypeBroker, "1"}} {
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName = res.typ, res.name
		dc.Resources = append(dc.Resources, r)
	}
	dcresp, err := dc.RequestWith(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	got = map[string]int16{}
	for _, r := range dcresp.Resources {
		got[r.ResourceName] = r.ErrorCode
		if r.ResourceName == "orders" && len(r.Configs) == 0 {
			t.Errorf("describe configs of orders: no configs")
		}
	}
	codes("describe configs", got, map[string]int16{"orders": ok, "secret": denied, "1": kerr.ClusterAuthorizationFailed.Code})

	// DeleteTopics of an id no topic has: UNKNOWN_TOPIC_ID, as Kafka
	// answers before it authorizes, not a refusal.
	dt := kmsg.NewPtrDeleteTopicsRequest()
	dtt := kmsg.NewDeleteTopicsRequestTopic()
	dtt.TopicID = [16]byte{1, 2, 3}
	dt.Topics, dt.TimeoutMillis = append(dt.Topics, dtt), 10000
	dv := kversion.Stable()
	dv.SetMaxKeyVersion(20, 6)
	aliceIDs := aliceClient(t, n.ListenerAddr("SASL_PLAINTEXT").String(), kgo.MaxVersions(dv)).Broker(int(n.NodeID()))
	if resp, err := dt.RequestWith(ctx, aliceIDs); err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Errorf("delete topic of an unknown id: %v %+v, want UNKNOWN_TOPIC_ID", err, resp)
	}

	// The coordinators' topics are created by the first FindCoordinator.
	findCoordinator := func(typ int8, key string) {
		checkFor(t, "a coordinator for "+key, func() bool {
			fc := kmsg.NewPtrFindCoordinatorRequest()
			fc.CoordinatorType, fc.CoordinatorKeys = typ, []string{key}
			resp, err := fc.RequestWith(ctx, alice)
			return err == nil && len(resp.Coordinators) == 1 && resp.Coordinators[0].ErrorCode == 0
		})
	}
	findCoordinator(0, "g")

	// OffsetFetch v8+: group by group, and topic by topic inside an
	// allowed group.
	of := kmsg.NewPtrOffsetFetchRequest()
	for _, g := range []string{"g", "h"} {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = g
		for _, topic := range []string{"orders", "secret"} {
			rt := kmsg.NewOffsetFetchRequestGroupTopic()
			rt.Topic, rt.Partitions = topic, []int32{0}
			rg.Topics = append(rg.Topics, rt)
		}
		of.Groups = append(of.Groups, rg)
	}
	ofresp, err := of.RequestWith(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	got = map[string]int16{}
	for _, g := range ofresp.Groups {
		got[g.Group] = g.ErrorCode
		for _, rt := range g.Topics {
			for _, rp := range rt.Partitions {
				got[g.Group+"/"+rt.Topic] = rp.ErrorCode
			}
		}
	}
	codes("offset fetch v8", got, map[string]int16{"g": ok, "g/orders": ok, "g/secret": denied, "h": kerr.GroupAuthorizationFailed.Code})

	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{"g", "h"}
	dgresp, err := dg.RequestWith(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	got = map[string]int16{}
	for _, g := range dgresp.Groups {
		got[g.Group] = g.ErrorCode
	}
	// g passes authorization and is then looked up: it never formed, so
	// DescribeGroups v6 (KIP-1043) answers GROUP_ID_NOT_FOUND, as Kafka
	// 4.0 does; h is refused before any lookup.
	codes("describe groups", got, map[string]int16{"g": kerr.GroupIDNotFound.Code, "h": kerr.GroupAuthorizationFailed.Code})

	apv := kversion.Stable()
	apv.SetMaxKeyVersion(24, 3) // AddPartitionsToTxn as a client sends it
	aliceTxn := aliceClient(t, n.ListenerAddr("SASL_PLAINTEXT").String(), kgo.MaxVersions(apv)).Broker(int(n.NodeID()))
	findCoordinator(1, "tx")
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = kmsg.StringPtr("tx"), 30000
	iresp, err := init.RequestWith(ctx, aliceTxn)
	if err != nil || iresp.ErrorCode != 0 {
		t.Fatalf("init producer id: %v %+v", err, iresp)
	}
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = "tx", iresp.ProducerID, iresp.ProducerEpoch
	for _, topic := range []string{"orders", "secret"} {
		at := kmsg.NewAddPartitionsToTxnRequestTopic()
		at.Topic, at.Partitions = topic, []int32{0}
		add.Topics = append(add.Topics, at)
	}
	aresp, err := add.RequestWith(ctx, aliceTxn)
	if err != nil {
		t.Fatal(err)
	}
	got = map[string]int16{}
	for _, rt := range aresp.Topics {
		for _, rp := range rt.Partitions {
			got[rt.Topic] = rp.ErrorCode
		}
	}
	codes("add partitions to txn", got, map[string]int16{"orders": kerr.OperationNotAttempted.Code, "secret": denied})
}

// TestACLsFetchSessionKeepsRefusedPartitions: as Kafka, a consumer's fetch
// refuses partition by partition and its session keeps the refused ones,
// answered TOPIC_AUTHORIZATION_FAILED on every incremental fetch and read
// once READ is granted (the ACL reaches the node's image before CreateAcls
// answers); an incremental fetch adding a forbidden topic leaves the
// allowed ones alone. (Found by review: the refused partitions were taken
// out of the request, so the session lost them and they went silent.)
func TestACLsFetchSessionKeepsRefusedPartitions(t *testing.T) {
	n := startACLNode(t, nil)
	adm, admCl := newAdmin(t, n)
	ctx := testCtx(t, 60*time.Second)
	createTopic(t, adm, "orders", 1, nil)
	createTopic(t, adm, "secret", 1, nil)
	createTopic(t, adm, "hidden", 1, nil)
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Allow("User:alice").Topics("orders").
		Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	if err := admCl.ProduceSync(ctx, &kgo.Record{Topic: "secret", Value: []byte("s")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fv := kversion.Stable()
	fv.SetMaxKeyVersion(1, 12)
	alice := aliceClient(t, n.ListenerAddr("SASL_PLAINTEXT").String(), kgo.MaxVersions(fv)).Broker(int(n.NodeID()))

	var lastSession int32
	fetch := func(sid, epoch int32, topics ...string) map[string]int16 {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MaxBytes, req.SessionID, req.SessionEpoch = 0, 1<<20, sid, epoch
		for _, topic := range topics {
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic = topic
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.PartitionMaxBytes = 1 << 20
			ft.Partitions = append(ft.Partitions, fp)
			req.Topics = append(req.Topics, ft)
		}
		resp, err := req.RequestWith(ctx, alice)
		if err != nil || resp.ErrorCode != 0 {
			t.Fatalf("fetch: %v %+v", err, resp)
		}
		lastSession = resp.SessionID
		got := map[string]int16{}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				got[rt.Topic] = rp.ErrorCode
			}
		}
		return got
	}

	// A session opened on orders and secret keeps secret: refused on
	// every fetch, read once alice may.
	got := fetch(0, 0, "orders", "secret")
	sid := lastSession
	if sid == 0 || got["secret"] != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("full fetch: %v", got)
	}
	got = fetch(sid, 1)
	if _, ok := got["secret"]; !ok {
		t.Errorf("incremental fetch: secret not answered (%v); Kafka answers TOPIC_AUTHORIZATION_FAILED again", got)
	}
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Allow("User:alice").Topics("secret").
		Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	got = fetch(sid, 2)
	if code, ok := got["secret"]; !ok || code != 0 {
		t.Errorf("incremental fetch after READ on secret was granted: %v; Kafka now fetches secret", got)
	}

	// An incremental fetch adding a forbidden topic refuses that one
	// alone.
	got = fetch(0, 0, "orders")
	sid = lastSession
	got = fetch(sid, 1, "hidden")
	if got["orders"] == kerr.TopicAuthorizationFailed.Code || got["hidden"] != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("incremental fetch adding a forbidden topic: %v; want hidden refused, orders not", got)
	}
}

// TestACLsConsumerGroupHeartbeat: as Kafka's KafkaApis, a KIP-848
// heartbeat needs READ on its group (GROUP_AUTHORIZATION_FAILED) and
// DESCRIBE on every topic it subscribes to (TOPIC_AUTHORIZATION_FAILED,
// the top-level error); ConsumerGroupDescribe needs DESCRIBE on each group.
// As Kafka since KAFKA-18813, a regex resolves to what the member may
// describe, and a group holding a topic the caller may not describe is
// described as TOPIC_AUTHORIZATION_FAILED.
func TestACLsConsumerGroupHeartbeat(t *testing.T) {
	n := startACLNode(t, nil)
	adm, admin := newAdmin(t, n)
	ctx := testCtx(t, 60*time.Second)
	createTopic(t, adm, "orders", 1, nil)
	createTopic(t, adm, "secret", 1, nil)
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Allow("User:alice").Topics("orders").
		Operations(kadm.OpRead, kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral))
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Allow("User:alice").Groups("g").
		Operations(kadm.OpRead, kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral))
	alice := aliceClient(t, n.ListenerAddr("SASL_PLAINTEXT").String())
	join := func(group string, topics ...string) int16 {
		t.Helper()
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.RebalanceTimeoutMillis = group, "m-"+group, 30000
		req.SubscribedTopicNames, req.Topics = topics, []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		var code int16
		testkit.Eventually(t, 20*time.Second, "a heartbeat answered by the coordinator", func() error {
			r, err := req.RequestWith(ctx, alice)
			var ke *kerr.Error
			switch {
			case errors.As(err, &ke) && ke.Code == kerr.GroupAuthorizationFailed.Code:
				code = ke.Code // refused finding the coordinator already
				return nil
			case err != nil:
				return err
			case r.ErrorCode == kerr.CoordinatorLoadInProgress.Code || r.ErrorCode == kerr.CoordinatorNotAvailable.Code ||
				r.ErrorCode == kerr.NotCoordinator.Code:
				return kerr.ErrorForCode(r.ErrorCode)
			}
			code = r.ErrorCode
			return nil
		})
		return code
	}
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Allow("User:alice").Groups("h").
		Operations(kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral))
	for _, g := range []string{"other", "h"} { // h: found, not read
		if code := join(g, "orders"); code != kerr.GroupAuthorizationFailed.Code {
			t.Errorf("group %s, which alice may not read: %v", g, kerr.ErrorForCode(code))
		}
	}
	if code := join("g", "orders", "secret"); code != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("a topic alice may not describe: %v", kerr.ErrorForCode(code))
	}
	if code := join("g", "orders"); code != 0 {
		t.Errorf("allowed: %v", kerr.ErrorForCode(code))
	}
	describe := func(group string) int16 {
		t.Helper()
		desc := kmsg.NewPtrConsumerGroupDescribeRequest()
		desc.Groups = []string{group}
		resp, err := desc.RequestWith(ctx, alice)
		var ke *kerr.Error
		if errors.As(err, &ke) {
			return ke.Code // refused finding the coordinator
		}
		if err != nil {
			t.Fatal(err)
		}
		return resp.Groups[0].ErrorCode
	}
	if code := describe("g"); code != 0 {
		t.Errorf("describe g: %v", kerr.ErrorForCode(code))
	}
	if code := describe("other"); code != kerr.GroupAuthorizationFailed.Code {
		t.Errorf("describe other: %v", kerr.ErrorForCode(code))
	}

	// A regex alice's heartbeat resolves keeps only what she may
	// describe (KAFKA-18813): secret matches too but is not assigned.
	mustCreateACLs(t, ctx, adm, kadm.NewACLs().Allow("User:alice").Groups("r").
		Operations(kadm.OpRead, kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral))
	topics, err := adm.ListTopics(ctx, "orders", "secret")
	if err != nil {
		t.Fatal(err)
	}
	re := "orders|secret"
	beat := func(cl *kgo.Client, member string, epoch int32, regex *string, topics ...string) *kmsg.ConsumerGroupHeartbeatResponse {
		t.Helper()
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.MemberEpoch, req.RebalanceTimeoutMillis = "r", member, epoch, 30000
		req.SubscribedTopicNames, req.SubscribedTopicRegex = topics, regex
		if epoch == 0 {
			req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		} else {
			req.RebalanceTimeoutMillis = -1
		}
		var resp *kmsg.ConsumerGroupHeartbeatResponse
		testkit.Eventually(t, 20*time.Second, "a heartbeat answered", func() error {
			r, err := req.RequestWith(ctx, cl)
			if err != nil {
				return err
			}
			if r.ErrorCode != 0 {
				return kerr.ErrorForCode(r.ErrorCode)
			}
			resp = r
			return nil
		})
		return resp
	}
	r := beat(alice, "alice-1", 0, &re)
	var assigned map[[16]byte]bool
	testkit.Eventually(t, 20*time.Second, "the regex's matches assigned", func() error {
		r = beat(alice, "alice-1", r.MemberEpoch, nil)
		if r.Assignment == nil {
			return errors.New("no new assignment in the answer")
		}
		assigned = map[[16]byte]bool{}
		for _, at := range r.Assignment.Topics {
			assigned[at.TopicID] = true
		}
		if !assigned[topics["orders"].ID] {
			return errors.New("orders not assigned yet")
		}
		return nil
	})
	if assigned[topics["secret"].ID] {
		t.Errorf("alice's regex was assigned secret, which she may not describe")
	}
	if code := describe("r"); code != 0 {
		t.Errorf("describe r, holding only orders: %v", kerr.ErrorForCode(code))
	}
	// Once a member the admin runs holds secret, alice may not see the
	// group: its assignments would name a topic she may not describe.
	ra := beat(admin, "admin-1", 0, nil, "secret")
	held := ra.Assignment
	testkit.Eventually(t, 20*time.Second, "secret assigned to the admin's member", func() error {
		if held != nil && len(held.Topics) > 0 {
			return nil
		}
		ra = beat(admin, "admin-1", ra.MemberEpoch, nil)
		if ra.Assignment != nil {
			held = ra.Assignment
		}
		return errors.New("nothing assigned yet")
	})
	if code := describe("r"); code != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("describe r, holding secret: %v, want TOPIC_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
}
