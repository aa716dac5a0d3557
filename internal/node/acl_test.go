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
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// TestACLsAuthorizeClients: with an authorizer, the ACLs in the metadata
// log decide what a SASL user may do; the unauthenticated admin on the
// PLAINTEXT listener (User:ANONYMOUS, as the brokers themselves) is a super
// user. alice may write and read one topic and use one group: a produce
// elsewhere is TOPIC_AUTHORIZATION_FAILED, another group
// GROUP_AUTHORIZATION_FAILED, Metadata hides the topics she may not
// describe, a DENY wins over an ALLOW, and without ACLs nothing is allowed.
func TestACLsAuthorizeClients(t *testing.T) {
	props := maps.Clone(saslProps)
	props["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
	props["super.users"] = "User:admin;User:ANONYMOUS"
	n := startNodeWith(t, t.TempDir(), props, withSASLListener)
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
