package config

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// Listener is a client listener besides the inter-broker one.
type Listener struct {
	Name       string // its name in listeners, upper case
	Addr       string // host:port to bind
	Advertised string // its advertised.listeners entry; "" derives it from Addr
	// SASL is true for a SASL_PLAINTEXT or SASL_SSL listener, TLS for an
	// SSL or SASL_SSL one.
	SASL, TLS bool
}

// Listener property names.
const (
	PropInterBrokerListener  = "inter.broker.listener.name"
	PropSecurityProtocolMap  = "listener.security.protocol.map"
	PropSASLMechanisms       = "sasl.enabled.mechanisms"
	securityPlaintext        = "PLAINTEXT"
	securitySASLPlaintext    = "SASL_PLAINTEXT"
	securitySSL              = "SSL"
	securitySASLSSL          = "SASL_SSL"
	defaultInterBrokerName   = "PLAINTEXT"
	defaultSecurityProtocols = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
)

// ListenerProp is a listener's own value of a property: Kafka's
// listener.name.<name>.<property> (lower-case name), else the property.
func ListenerProp(p map[string]string, listener, name string) (string, bool) {
	if v, ok := p["listener.name."+strings.ToLower(listener)+"."+name]; ok {
		return v, true
	}
	v, ok := p[name]
	return v, ok
}

type listenerEntry struct{ name, addr string }

// parseListenerList reads a Kafka listener list "NAME://host:port,...".
func parseListenerList(key, v string) ([]listenerEntry, error) {
	var out []listenerEntry
	for _, entry := range splitList(v) {
		name, addr, ok := strings.Cut(entry, "://")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: %s entry %q: want NAME://host:port", ErrInvalidNode, key, entry)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%w: %s entry %q: %v", ErrInvalidNode, key, entry, err)
		}
		name = strings.ToUpper(name)
		if slices.ContainsFunc(out, func(e listenerEntry) bool { return e.name == name }) {
			return nil, fmt.Errorf("%w: %s names listener %s twice", ErrInvalidNode, key, name)
		}
		out = append(out, listenerEntry{name, addr})
	}
	return out, nil
}

// applyListeners maps listeners and advertised.listeners: the controller
// entry to ControllerAddr, the inter-broker one (inter.broker.listener.name,
// else PLAINTEXT, else the only client listener) to KafkaAddr, the others
// to ExtraListeners. Brokers reach each other without authentication, so
// the inter-broker listener must be PLAINTEXT; the others may be
// SSL, SASL_PLAINTEXT or SASL_SSL.
func (n *Node) applyListeners(p map[string]string, controllerNames map[string]bool) error {
	entries := []listenerEntry{{n.Listen(), n.KafkaAddr}} // advertised.listeners alone: the current listener's
	if v, ok := p[PropListeners]; ok {
		var err error
		if entries, err = parseListenerList(PropListeners, v); err != nil {
			return err
		}
	} else if _, ok := p[PropAdvertisedListeners]; !ok {
		return nil
	}
	protocols := map[string]string{}
	mapValue := defaultSecurityProtocols
	if m, set := p[PropSecurityProtocolMap]; set {
		mapValue = m
	}
	for _, kv := range splitList(mapValue) {
		name, proto, ok := strings.Cut(kv, ":")
		if !ok {
			return fmt.Errorf("%w: %s entry %q: want NAME:PROTOCOL", ErrInvalidNode, PropSecurityProtocolMap, kv)
		}
		protocols[strings.ToUpper(strings.TrimSpace(name))] = strings.ToUpper(strings.TrimSpace(proto))
	}
	var clients []listenerEntry
	ctrlSeen := false
	for _, e := range entries {
		if controllerNames[e.name] {
			if ctrlSeen {
				return fmt.Errorf("%w: %s has more than one controller listener", ErrInvalidNode, PropListeners)
			}
			n.ControllerAddr, ctrlSeen = e.addr, true
			continue
		}
		clients = append(clients, e)
	}
	if len(clients) == 0 {
		return nil
	}
	primary := p[PropInterBrokerListener]
	switch {
	case primary != "":
		primary = strings.ToUpper(strings.TrimSpace(primary))
	case len(clients) == 1:
		primary = clients[0].name
	default:
		primary = defaultInterBrokerName
	}
	advertised := map[string]string{}
	if av, ok := p[PropAdvertisedListeners]; ok {
		adv, err := parseListenerList(PropAdvertisedListeners, av)
		if err != nil {
			return err
		}
		for _, e := range adv {
			if controllerNames[e.name] {
				continue
			}
			if !slices.ContainsFunc(clients, func(c listenerEntry) bool { return c.name == e.name }) {
				if len(clients) == 1 && len(adv) == 1 {
					e.name = clients[0].name // one listener: its advertised entry, whatever its name
				} else {
					return fmt.Errorf("%w: %s names %s, which listeners does not", ErrInvalidNode, PropAdvertisedListeners, e.name)
				}
			}
			advertised[e.name] = e.addr
		}
	}
	n.ExtraListeners = nil
	found := false
	for _, e := range clients {
		proto, ok := protocols[e.name]
		if _, explicit := p[PropSecurityProtocolMap]; !ok && explicit {
			return fmt.Errorf("%w: no security protocol defined for listener %s in %s", ErrInvalidNode, e.name, PropSecurityProtocolMap)
		} else if !ok {
			proto = securityPlaintext // without a map of its own, gregor takes any other name as plaintext
		}
		switch proto {
		case securityPlaintext, securitySASLPlaintext, securitySSL, securitySASLSSL:
		default:
			return fmt.Errorf("%w: listener %s: unknown security protocol %s (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)", ErrInvalidNode, e.name, proto)
		}
		if e.name == primary {
			if proto != securityPlaintext {
				return fmt.Errorf("%w: inter-broker listener %s is %s: gregor's brokers reach each other without authentication, so it must be PLAINTEXT (set %s to a PLAINTEXT listener)",
					ErrInvalidNode, e.name, proto, PropInterBrokerListener)
			}
			n.ListenerName, n.KafkaAddr, n.AdvertisedAddr, found = e.name, e.addr, advertised[e.name], true
			continue
		}
		n.ExtraListeners = append(n.ExtraListeners, Listener{Name: e.name, Addr: e.addr, Advertised: advertised[e.name],
			SASL: proto == securitySASLPlaintext || proto == securitySASLSSL, TLS: proto == securitySSL || proto == securitySASLSSL})
	}
	if !found {
		return fmt.Errorf("%w: no PLAINTEXT listener named %s for brokers to reach each other on (set %s)", ErrInvalidNode, primary, PropInterBrokerListener)
	}
	return nil
}

// Listen returns the inter-broker listener's name, PLAINTEXT by default.
func (n Node) Listen() string {
	if n.ListenerName == "" {
		return defaultInterBrokerName
	}
	return n.ListenerName
}

// AdvertisedFor is the address clients are told for listener l: its
// advertised.listeners entry, else its bound address with a wildcard host
// replaced by "localhost".
func AdvertisedFor(l Listener) string {
	if l.Advertised != "" {
		return l.Advertised
	}
	return Node{KafkaAddr: l.Addr}.Advertised()
}
