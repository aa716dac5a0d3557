package node

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/auth"
	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/server"
)

// extraListener is a client listener besides the inter-broker one (a
// SASL_PLAINTEXT listener, say): its own server, the same broker behind it.
type extraListener struct {
	cfg  config.Listener
	ln   net.Listener
	sasl *server.SASL // nil without SASL
	tls  *tls.Config  // nil without TLS
	srv  *server.Server
}

// Kafka's security protocol ids, as BrokerRegistration carries them.
const (
	securityPlaintext     = 0
	securitySSL           = 1
	securitySASLPlaintext = 2
	securitySASLSSL       = 3
)

// bindExtraListeners binds every extra listener and prepares its SASL
// mechanisms; image is read at each login, for SCRAM credentials.
func bindExtraListeners(cfg config.Node, image func() *metadata.Image) ([]*extraListener, error) {
	var out []*extraListener
	fail := func(err error) ([]*extraListener, error) {
		for _, l := range out {
			l.ln.Close()
		}
		return nil, err
	}
	for _, l := range cfg.ExtraListeners {
		el := &extraListener{cfg: l}
		if l.SASL {
			s, err := saslFor(cfg.Props, l.Name, image)
			if err != nil {
				return fail(err)
			}
			el.sasl = s
		}
		if l.TLS {
			c, err := tlsFor(cfg.Props, l.Name, l.SASL)
			if err != nil {
				return fail(err)
			}
			el.tls = c
		}
		ln, err := net.Listen("tcp", listenAddr(l.Addr))
		if err != nil {
			return fail(fmt.Errorf("node: listener %s: %w", l.Name, err))
		}
		el.ln = ln
		out = append(out, el)
	}
	return out, nil
}

// registration is the listener as the broker registers it.
func (l *extraListener) registration() kmsg.BrokerRegistrationRequestListener {
	host, port := advertised(config.AdvertisedFor(l.cfg), l.ln.Addr())
	proto := int16(securityPlaintext)
	switch {
	case l.sasl != nil && l.tls != nil:
		proto = securitySASLSSL
	case l.sasl != nil:
		proto = securitySASLPlaintext
	case l.tls != nil:
		proto = securitySSL
	}
	return kmsg.BrokerRegistrationRequestListener{Name: l.cfg.Name, Host: host, Port: uint16(port), SecurityProtocol: proto}
}

// saslFor reads a SASL_PLAINTEXT listener's mechanisms as Kafka does:
// sasl.enabled.mechanisms (or its listener.name.<listener>. form), PLAIN's
// users from listener.name.<listener>.plain.sasl.jaas.config, and SCRAM
// credentials from the metadata (AlterUserScramCredentials).
func saslFor(p map[string]string, listener string, image func() *metadata.Image) (*server.SASL, error) {
	mechs, ok := config.ListenerProp(p, listener, "sasl.enabled.mechanisms")
	if !ok {
		mechs = config.BrokerDefs["sasl.enabled.mechanisms"].Default
	}
	s := &server.SASL{
		FailureDelay: time.Duration(config.Int64(props(p, "connection.failed.authentication.delay.ms"), 100)) * time.Millisecond,
	}
	var plainUsers map[string]string
	for _, m := range strings.Split(mechs, ",") {
		m = strings.ToUpper(strings.TrimSpace(m))
		switch {
		case m == "":
			continue
		case m == auth.MechanismPlain:
			key := "listener.name." + strings.ToLower(listener) + ".plain.sasl.jaas.config"
			jaas, ok := p[key]
			if !ok {
				return nil, fmt.Errorf("node: listener %s enables PLAIN but %s is not set (its user_<name>=\"<password>\" options are the users)", listener, key)
			}
			users, err := auth.PlainUsers(jaas)
			if err != nil {
				return nil, fmt.Errorf("node: %s: %w", key, err)
			}
			plainUsers = users
		case metadata.ScramMechanismNamed(m) != 0:
		default:
			return nil, fmt.Errorf("node: listener %s: SASL mechanism %s is not supported (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are; set sasl.enabled.mechanisms)", listener, m)
		}
		s.Mechanisms = append(s.Mechanisms, m)
	}
	if len(s.Mechanisms) == 0 {
		return nil, fmt.Errorf("node: listener %s is SASL_PLAINTEXT but enables no SASL mechanism", listener)
	}
	lookup := func(k metadata.ScramKey) (metadata.ScramCredential, bool) {
		c, ok := image().ScramCredentials[k]
		return c, ok
	}
	s.Start = func(m string) server.SASLExchange {
		if m == auth.MechanismPlain {
			return auth.NewPlain(plainUsers)
		}
		return auth.NewScram(metadata.ScramMechanismNamed(m), lookup)
	}
	return s, nil
}

// tlsFor reads an SSL or SASL_SSL listener's certificate as Kafka's PEM
// keystores give it (KIP-651): ssl.keystore.location, a PEM file with the
// private key and its chain, or the inline ssl.keystore.certificate.chain
// and ssl.keystore.key; with ssl.client.auth, the CAs of
// ssl.truststore.location or ssl.truststore.certificates. Every property
// may be given for the listener alone (listener.name.<listener>.ssl...);
// on a SASL_SSL listener ssl.client.auth counts only so, as in Kafka,
// where SASL authenticates the client.
func tlsFor(p map[string]string, listener string, sasl bool) (*tls.Config, error) {
	get := func(name string) string {
		v, _ := config.ListenerProp(p, listener, name)
		return strings.TrimSpace(v)
	}
	fail := func(format string, args ...any) (*tls.Config, error) {
		return nil, fmt.Errorf("node: listener %s: "+format, append([]any{listener}, args...)...)
	}
	readPEM := func(what, location, inline string) ([]byte, error) {
		data := []byte(inline)
		if inline == "" {
			if location == "" {
				return nil, nil
			}
			var err error
			if data, err = os.ReadFile(location); err != nil {
				return nil, err
			}
		}
		if block, _ := pem.Decode(data); block == nil {
			return nil, fmt.Errorf("%s %s is not PEM (gregor reads PEM only: convert a JKS or PKCS12 store with keytool and openssl)", what, location)
		}
		return data, nil
	}
	certPEM, err := readPEM("keystore", get("ssl.keystore.location"), get("ssl.keystore.certificate.chain"))
	if err != nil {
		return fail("%v", err)
	}
	if certPEM == nil {
		return fail("SSL needs a certificate: set ssl.keystore.location (a PEM file with the key and its certificate chain)")
	}
	keyPEM := certPEM
	if k := get("ssl.keystore.key"); k != "" {
		keyPEM = []byte(k)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fail("keystore: %v (an encrypted key is not read: give it unencrypted)", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}}
	versions := map[string]uint16{"TLSv1": tls.VersionTLS10, "TLSv1.1": tls.VersionTLS11, "TLSv1.2": tls.VersionTLS12, "TLSv1.3": tls.VersionTLS13}
	protocols := get("ssl.enabled.protocols")
	if protocols == "" {
		protocols = "TLSv1.2,TLSv1.3" // Kafka's default
	}
	for _, v := range strings.Split(protocols, ",") {
		ver, ok := versions[strings.TrimSpace(v)]
		if !ok {
			return fail("ssl.enabled.protocols: unknown protocol %q", v)
		}
		if c.MinVersion == 0 || ver < c.MinVersion {
			c.MinVersion = ver
		}
		c.MaxVersion = max(c.MaxVersion, ver)
	}
	clientAuth := get("ssl.client.auth")
	if sasl {
		clientAuth = p["listener.name."+strings.ToLower(listener)+".ssl.client.auth"]
	}
	switch auth := strings.ToLower(strings.TrimSpace(clientAuth)); auth {
	case "", "none":
		return c, nil
	case "requested":
		c.ClientAuth = tls.VerifyClientCertIfGiven
	case "required":
		c.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return fail("ssl.client.auth %q: want required, requested or none", auth)
	}
	caPEM, err := readPEM("truststore", get("ssl.truststore.location"), get("ssl.truststore.certificates"))
	if err != nil {
		return fail("%v", err)
	}
	c.ClientCAs = x509.NewCertPool()
	if caPEM == nil || !c.ClientCAs.AppendCertsFromPEM(caPEM) {
		return fail("ssl.client.auth needs the CAs to check client certificates against: set ssl.truststore.location (PEM)")
	}
	return c, nil
}

// kafkaServerConfig is a client listener's server config: the limits of
// the broker properties, the listener's name, its SASL and TLS.
func kafkaServerConfig(p map[string]string, ln net.Listener, name string, sasl *server.SASL, tlsCfg *tls.Config, observe func(int16, time.Duration), logger *slog.Logger) server.Config {
	return server.Config{
		Listener:            ln,
		Name:                name,
		SASL:                sasl,
		TLS:                 tlsCfg,
		MaxRequestBytes:     int32(config.Int64(props(p, "socket.request.max.bytes"), 100<<20)),
		MaxConnections:      int(config.Int64(props(p, "max.connections"), 0)),
		MaxConnectionsPerIP: int(config.Int64(props(p, "max.connections.per.ip"), 0)),
		MaxInFlightPerConn:  int(config.Int64(props(p, "queued.max.requests"), 64)),
		IdleTimeout:         time.Duration(config.Int64(props(p, "connections.max.idle.ms"), 600000)) * time.Millisecond,
		Observe:             observe,
		Logger:              logger,
	}
}

// warnBrokerPrincipal warns when an authorizer would refuse the brokers
// themselves: they reach each other unauthenticated on the PLAINTEXT
// inter-broker listener, as User:ANONYMOUS, and their follower fetches and
// transaction markers need CLUSTER_ACTION, as Kafka's broker principal does.
func warnBrokerPrincipal(p map[string]string, logger *slog.Logger) {
	if props(p, "authorizer.class.name") == "" || props(p, "allow.everyone.if.no.acl.found") == "true" {
		return
	}
	if auth.ParseSuperUsers(props(p, "super.users"))[auth.Principal("")] {
		return
	}
	logger.Warn("an authorizer is on but User:ANONYMOUS is not in super.users: the brokers reach each other as that principal, " +
		"so replication and transactions fail unless it has CLUSTER_ACTION on the cluster (an ACL) or is a super user")
}
