package node_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/gregor-dev/gregor/internal/config"
)

// testCA is a certificate authority made for one test, and certificates it
// signs, as PEM.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gregor test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a key and certificate for cn, as one PEM (key first).
func (ca *testCA) issue(t *testing.T, cn string, server bool) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
}

// TestTLSListeners: an SSL listener that asks for client certificates and
// a SASL_SSL one, side by side, from PEM keystores. Clients produce and
// consume over TLS (fetches are copied through TLS, not sent with
// sendfile); a client certificate's subject is the connection's user (a
// user quota applies to it); a client without a certificate, or one that
// does not trust the broker, gets nowhere.
func TestTLSListeners(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	keystore := filepath.Join(dir, "broker.pem")
	truststore := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(keystore, ca.issue(t, "broker", true), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truststore, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	props := maps.Clone(saslProps)
	props["listener.name.sasl_ssl.plain.sasl.jaas.config"] = props["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
	props["ssl.keystore.type"] = "PEM"
	props["ssl.keystore.location"] = keystore
	props["listener.name.ssl.ssl.client.auth"] = "required"
	props["ssl.truststore.location"] = truststore
	n := startNodeWith(t, t.TempDir(), props, func(c *config.Node) {
		c.ExtraListeners = []config.Listener{
			{Name: "SSL", Addr: "127.0.0.1:0", TLS: true},
			{Name: "SASL_SSL", Addr: "127.0.0.1:0", TLS: true, SASL: true},
		}
	})
	adm, _ := newAdmin(t, n)
	ctx := testCtx(t, 60*time.Second)
	createTopic(t, adm, "encrypted", 1, nil)
	user := "CN=client-one"
	if res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "user", Name: &user}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1000}},
	}}); err != nil || res[0].Err != nil {
		t.Fatalf("alter: %v %v", err, res)
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	one := ca.issue(t, "client-one", false)
	clientPair, err := tls.X509KeyPair(one, one)
	if err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 20000)
	for i := range value {
		value[i] = byte(i*7919 + i>>8)
	}
	roundTrip := func(name string, h *throttleHook, opts ...kgo.Opt) error {
		cl, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic("encrypted"), kgo.ConsumeTopics("encrypted"),
			kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RetryTimeout(3*time.Second), kgo.WithHooks(h))...)
		if err != nil {
			return err
		}
		defer cl.Close()
		if _, err := kadm.NewClient(cl).ListTopics(ctx); err != nil {
			return err
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(name), Value: value}).FirstErr(); err != nil {
			return err
		}
		for {
			fs := cl.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				return err
			}
			for _, r := range fs.Records() {
				if string(r.Key) == name && len(r.Value) == len(value) {
					return nil
				}
			}
		}
	}
	sslAddr, saslAddr := n.ListenerAddr("SSL").String(), n.ListenerAddr("SASL_SSL").String()
	withCert, alice := &throttleHook{}, &throttleHook{}
	if err := roundTrip("ssl", withCert, kgo.SeedBrokers(sslAddr),
		kgo.DialTLSConfig(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientPair}})); err != nil {
		t.Fatalf("SSL with a client certificate: %v", err)
	}
	if err := roundTrip("sasl_ssl", alice, kgo.SeedBrokers(saslAddr), kgo.DialTLSConfig(&tls.Config{RootCAs: roots}),
		kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism())); err != nil {
		t.Fatalf("SASL_SSL as alice: %v", err)
	}
	if withCert.n.Load() == 0 || alice.n.Load() != 0 {
		t.Fatalf("throttled: the certificate's user %d times, alice %d; want the certificate's user only", withCert.n.Load(), alice.n.Load())
	}
	for name, opts := range map[string][]kgo.Opt{
		"SSL without a client certificate": {kgo.SeedBrokers(sslAddr), kgo.DialTLSConfig(&tls.Config{RootCAs: roots})},
		"SASL_SSL not trusting the broker": {kgo.SeedBrokers(saslAddr), kgo.DialTLSConfig(&tls.Config{}),
			kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism())},
		"SSL in plaintext": {kgo.SeedBrokers(sslAddr)},
	} {
		shortCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cl, err := kgo.NewClient(append(opts, kgo.RetryTimeout(time.Second))...)
		if err == nil {
			_, err = kadm.NewClient(cl).ListTopics(shortCtx)
			cl.Close()
		}
		cancel()
		if err == nil {
			t.Fatalf("%s: listed topics", name)
		}
	}
}

// TestDescribeConfigsHidesSecrets: a keystore key or password given in the
// properties is never shown by DescribeConfigs, in its value or in its
// synonyms (a review found the synonyms showing them).
func TestDescribeConfigsHidesSecrets(t *testing.T) {
	n := startNode(t, t.TempDir(), map[string]string{"ssl.keystore.password": "hunter2", "ssl.keystore.key": "-----BEGIN PRIVATE KEY-----secret"})
	_, cl := newAdmin(t, n)
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.IncludeSynonyms = true
	r := kmsg.NewDescribeConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeBroker, "1"
	r.ConfigNames = []string{"ssl.keystore.password", "ssl.keystore.key"}
	req.Resources = append(req.Resources, r)
	configs := rawRequest[*kmsg.DescribeConfigsResponse](t, cl, req).Resources[0].Configs
	if len(configs) != 2 {
		t.Fatalf("%d configs", len(configs))
	}
	for _, c := range configs {
		if c.Value != nil || !c.IsSensitive {
			t.Errorf("%s: value shown or not sensitive: %+v", c.Name, c)
		}
		for _, s := range c.ConfigSynonyms {
			if s.Value != nil {
				t.Errorf("%s: synonym %s shows %q", c.Name, s.Name, *s.Value)
			}
		}
	}
}
