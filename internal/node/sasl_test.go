package node_test

import (
	"context"
	"errors"
	"maps"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/node"
	"github.com/gregor-dev/gregor/internal/testkit"
)

// saslProps enable PLAIN (user alice) and SCRAM on the SASL_PLAINTEXT
// listener.
var saslProps = map[string]string{
	"sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
	"listener.name.sasl_plaintext.plain.sasl.jaas.config": `org.apache.kafka.common.security.plain.PlainLoginModule required ` +
		`username="admin" password="admin-secret" user_alice="alice-secret";`,
	"connection.failed.authentication.delay.ms": "10",
}

func withSASLListener(c *config.Node) {
	c.ExtraListeners = []config.Listener{{Name: "SASL_PLAINTEXT", Addr: "127.0.0.1:0", SASL: true}}
}

// startSASLNode starts a node with a PLAINTEXT listener (brokers and the
// admin) and a SASL_PLAINTEXT one offering PLAIN (user alice) and SCRAM.
func startSASLNode(t *testing.T) *node.Node {
	t.Helper()
	return startNodeWith(t, t.TempDir(), maps.Clone(saslProps), withSASLListener)
}

// saslRoundTrip produces one record as mech over the SASL listener and
// reads it back: every broker the client is sent to must be the SASL
// listener's, or the handshake fails.
func saslRoundTrip(ctx context.Context, n *node.Node, topic string, mech sasl.Mechanism) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.ListenerAddr("SASL_PLAINTEXT").String()), kgo.SASL(mech),
		kgo.DefaultProduceTopic(topic), kgo.ConsumeTopics(topic), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(mech.Name())}).FirstErr(); err != nil {
		return err
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return err
		}
		for _, r := range fs.Records() {
			if string(r.Value) == mech.Name() {
				return nil
			}
		}
	}
}

// saslLogin lists topics as mech over the SASL listener: an admin request
// fails at once when the login does (a produce would be retried).
func saslLogin(ctx context.Context, n *node.Node, mech sasl.Mechanism) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.ListenerAddr("SASL_PLAINTEXT").String()), kgo.SASL(mech), kgo.RetryTimeout(2*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	_, err = kadm.NewClient(cl).ListTopics(ctx)
	return err
}

func TestSASLPlainAndScramLogins(t *testing.T) {
	n := startSASLNode(t)
	adm, _ := newAdmin(t, n)
	ctx := testCtx(t, 60*time.Second)
	createTopic(t, adm, "secured", 1, nil)

	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "bob", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "bob-secret"}})
	if err != nil || res.Error() != nil {
		t.Fatalf("upsert bob: %v %v", err, res.Error())
	}
	desc, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil || len(desc) != 1 || len(desc["bob"].CredInfos) != 1 || desc["bob"].CredInfos[0].Iterations != 8192 ||
		desc["bob"].CredInfos[0].Mechanism != kadm.ScramSha512 {
		t.Fatalf("describe: %v %+v", err, desc)
	}

	for name, mech := range map[string]sasl.Mechanism{
		"plain":         plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism(),
		"scram-sha-512": scram.Auth{User: "bob", Pass: "bob-secret"}.AsSha512Mechanism(),
	} {
		if err := saslRoundTrip(ctx, n, "secured", mech); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for name, mech := range map[string]sasl.Mechanism{
		"plain, wrong password":       plain.Auth{User: "alice", Pass: "nope"}.AsMechanism(),
		"plain, unknown user":         plain.Auth{User: "mallory", Pass: "alice-secret"}.AsMechanism(),
		"scram-sha-512, wrong":        scram.Auth{User: "bob", Pass: "nope"}.AsSha512Mechanism(),
		"scram-sha-256, no such cred": scram.Auth{User: "bob", Pass: "bob-secret"}.AsSha256Mechanism(),
	} {
		if err := saslLogin(ctx, n, mech); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("%s: %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
	}

	// A client that does not authenticate is cut off at its first request.
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.ListenerAddr("SASL_PLAINTEXT").String()), kgo.RetryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	shortCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = kadm.NewClient(cl).ListTopics(shortCtx)
	cancel()
	cl.Close()
	if err == nil {
		t.Fatal("a client without SASL listed topics on the SASL listener")
	}

	// A deleted credential logs in no more.
	if res, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "bob", Mechanism: kadm.ScramSha512}}, nil); err != nil || res.Error() != nil {
		t.Fatalf("delete bob: %v %v", err, res.Error())
	}
	if err := saslLogin(ctx, n, scram.Auth{User: "bob", Pass: "bob-secret"}.AsSha512Mechanism()); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("deleted bob: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}

func TestAlterUserScramCredentialsErrors(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	adm, cl := newAdmin(t, n)
	ctx := testCtx(t, 30*time.Second)
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	del := func(user string, mech int8) {
		d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
		d.Name, d.Mechanism = user, mech
		req.Deletions = append(req.Deletions, d)
	}
	up := func(user string, mech int8, iterations int32) {
		u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		u.Name, u.Mechanism, u.Iterations, u.Salt, u.SaltedPassword = user, mech, iterations, []byte("salt"), []byte("salted")
		req.Upsertions = append(req.Upsertions, u)
	}
	del("ghost", 1)
	del("", 1)
	up("few", 1, 1000)
	up("many", 1, 20000)
	up("twice", 2, 4096)
	up("twice", 1, 4096)
	up("unknown", 3, 4096)
	up("ok", 1, 4096)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]error{
		"ghost": kerr.ResourceNotFound, "twice": kerr.DuplicateResource, "": kerr.UnacceptableCredential,
		"few": kerr.UnacceptableCredential, "many": kerr.UnacceptableCredential,
		"unknown": kerr.UnsupportedSaslMechanism, "ok": nil,
	}
	if len(resp.Results) != len(want) {
		t.Errorf("%d results, want %d: %+v", len(resp.Results), len(want), resp.Results)
	}
	for _, r := range resp.Results {
		if w, ok := want[r.User]; !ok || !errors.Is(kerr.ErrorForCode(r.ErrorCode), w) {
			t.Errorf("%q: error %d, want %v", r.User, r.ErrorCode, w)
		}
	}
	desc, err := adm.DescribeUserSCRAMs(ctx, "ok", "ghost")
	if err != nil || desc["ok"].Err != nil || len(desc["ok"].CredInfos) != 1 || !errors.Is(desc["ghost"].Err, kerr.ResourceNotFound) {
		t.Fatalf("describe: %v %+v", err, desc)
	}
	dreq := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	for range 2 {
		u := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
		u.Name = "ok"
		dreq.Users = append(dreq.Users, u)
	}
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil || len(dresp.Results) != 1 || dresp.Results[0].ErrorCode != kerr.DuplicateResource.Code {
		t.Fatalf("describing a user twice: %v %+v", err, dresp)
	}
}

// TestSASLUserQuota: a user quota applies to the connections that logged in
// as that user, and not to the unauthenticated ones (ANONYMOUS).
func TestSASLUserQuota(t *testing.T) {
	n := startSASLNode(t)
	adm, _ := newAdmin(t, n)
	ctx := testCtx(t, 60*time.Second)
	createTopic(t, adm, "metered", 1, nil)
	alice := "alice"
	if res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "user", Name: &alice}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1000}},
	}}); err != nil || res[0].Err != nil {
		t.Fatalf("alter: %v %v", err, res)
	}
	value := make([]byte, 20000)
	for i := range value {
		value[i] = byte(i*7919 + i>>8) // little for compression to remove
	}
	produce := func(h *throttleHook, opts ...kgo.Opt) {
		t.Helper()
		cl, err := kgo.NewClient(append(opts, kgo.WithHooks(h), kgo.DefaultProduceTopic("metered"),
			kgo.ProducerBatchCompression(kgo.NoCompression()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		// One request over the quota: its answer carries the throttle.
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	asAlice, anonymous := &throttleHook{}, &throttleHook{}
	produce(asAlice, kgo.SeedBrokers(n.ListenerAddr("SASL_PLAINTEXT").String()),
		kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()))
	produce(anonymous, kgo.SeedBrokers(n.KafkaAddr().String()))
	if asAlice.n.Load() == 0 || anonymous.n.Load() != 0 {
		t.Fatalf("throttled: alice %d times, the anonymous client %d times; want alice only", asAlice.n.Load(), anonymous.n.Load())
	}
}

// TestClusterSASLListener: on three nodes, a client that bootstraps on one
// node's SASL listener is told every broker's SASL endpoint (Metadata,
// FindCoordinator), so it produces with acks=all and consumes in a group
// without leaving the listener, while the brokers replicate on PLAINTEXT.
// The SCRAM credential is set through another node (forwarded to the
// active controller) and applies everywhere.
func TestClusterSASLListener(t *testing.T) {
	c := startClusterWith(t, maps.Clone(saslProps), withSASLListener)
	adm, _ := newAdmin(t, c.nodes[0])
	ctx := testCtx(t, 60*time.Second)
	if resp, err := adm.CreateTopic(ctx, 3, 3, nil, "secured"); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	if res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "bob", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "bob-secret"}}); err != nil || res.Error() != nil {
		t.Fatalf("upsert bob: %v %v", err, res.Error())
	}
	saslAddrs := map[int32]string{}
	for i, n := range c.nodes {
		saslAddrs[int32(i+1)] = n.ListenerAddr("SASL_PLAINTEXT").String()
	}
	mech := scram.Auth{User: "bob", Pass: "bob-secret"}.AsSha256Mechanism()
	for id := int32(1); id <= 3; id++ {
		testkit.Eventually(t, 20*time.Second, "bob logs in on every node", func() error {
			c, err := kgo.NewClient(kgo.SeedBrokers(saslAddrs[id]), kgo.SASL(mech))
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = kadm.NewClient(c).BrokerMetadata(ctx)
			return err
		})
	}
	var cl *kgo.Client
	testkit.Eventually(t, 20*time.Second, "bob logs in on node 3", func() error {
		var err error
		cl, err = kgo.NewClient(kgo.SeedBrokers(saslAddrs[3]), kgo.SASL(mech), kgo.DefaultProduceTopic("secured"),
			kgo.ConsumeTopics("secured"), kgo.ConsumerGroup("sasl-group"), kgo.RetryTimeout(10*time.Second))
		if err != nil {
			return err
		}
		if _, err = kadm.NewClient(cl).BrokerMetadata(ctx); err != nil {
			cl.Close()
		}
		return err
	})
	defer cl.Close()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range md.Brokers {
		if got := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))); got != saslAddrs[b.NodeID] {
			t.Fatalf("broker %d at %s on the SASL listener, want %s", b.NodeID, got, saslAddrs[b.NodeID])
		}
	}
	if len(md.Brokers) != 3 {
		t.Fatalf("%d brokers", len(md.Brokers))
	}
	var recs []*kgo.Record
	for i := range 30 {
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte("v")})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	got := 0
	for got < len(recs) {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume: %v", err)
		}
		got += fs.NumRecords()
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
}
