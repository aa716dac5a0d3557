package node

import (
	"fmt"
	"log/slog"
	"net"
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
	sasl *server.SASL // nil on a PLAINTEXT listener
	srv  *server.Server
}

// Kafka's security protocol ids, as BrokerRegistration carries them.
const (
	securityPlaintext     = 0
	securitySASLPlaintext = 2
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
	if l.sasl != nil {
		proto = securitySASLPlaintext
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

// kafkaServerConfig is a client listener's server config: the limits of
// the broker properties, the listener's name and its SASL.
func kafkaServerConfig(p map[string]string, ln net.Listener, name string, sasl *server.SASL, observe func(int16, time.Duration), logger *slog.Logger) server.Config {
	return server.Config{
		Listener:            ln,
		Name:                name,
		SASL:                sasl,
		MaxRequestBytes:     int32(config.Int64(props(p, "socket.request.max.bytes"), 100<<20)),
		MaxConnections:      int(config.Int64(props(p, "max.connections"), 0)),
		MaxConnectionsPerIP: int(config.Int64(props(p, "max.connections.per.ip"), 0)),
		MaxInFlightPerConn:  int(config.Int64(props(p, "queued.max.requests"), 64)),
		IdleTimeout:         time.Duration(config.Int64(props(p, "connections.max.idle.ms"), 600000)) * time.Millisecond,
		Observe:             observe,
		Logger:              logger,
	}
}
