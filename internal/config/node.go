package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Node is the configuration of one gregor process.
//
// The named fields are the settings the process itself needs before any
// component starts (identity, data directory, listeners, logging, quorum).
// Every other Kafka property is kept verbatim in Props and validated by the
// property table of this package (defs.go), not here.
type Node struct {
	NodeID         int32  // node.id / broker.id, default 1
	DataDir        string // log.dirs (first dir) / --data-dir, default "./gregor-data"
	KafkaAddr      string // listeners PLAINTEXT entry, default "localhost:9092"; "localhost" binds 127.0.0.1
	AdvertisedAddr string // advertised.listeners; empty means KafkaAddr (see Advertised)
	ControllerAddr string // listeners CONTROLLER entry, default "localhost:9093"
	HTTPAddr       string // gregor.http.addr: admin HTTP listener (/metrics /healthz /readyz), default "localhost:9644"
	LogLevel       string // log.level: debug|info|warn|error, default info
	Voters         string // controller.quorum.voters "1@localhost:9093,2@host:9093"; optional
	// ListenerName names the listener at KafkaAddr, the one brokers reach
	// each other on (inter.broker.listener.name), default PLAINTEXT.
	ListenerName string
	// ExtraListeners are the other client listeners of listeners.
	ExtraListeners []Listener
	Props          map[string]string // every other Kafka property given, by its Kafka name
	// listenerProps accumulates the properties the listeners are resolved
	// from, which may come one ApplyProperties at a time (--set), in any
	// order; listenerErr is why the last resolution failed, which Validate
	// reports, as Kafka checks the listener properties together.
	listenerProps map[string]string
	listenerErr   error
}

// Voter is one entry of controller.quorum.voters.
type Voter struct {
	ID   int32
	Addr string // host:port of the voter's controller listener
}

// Sentinel errors. Errors returned by this file wrap one of them, so callers
// can classify with errors.Is.
var (
	// ErrMalformedProperties is returned by LoadProperties for a line that is
	// neither a comment, blank, nor key=value / key: value.
	ErrMalformedProperties = errors.New("config: malformed properties line")
	// ErrInvalidNode is returned by ApplyProperties and Validate for a value
	// that cannot configure a node.
	ErrInvalidNode = errors.New("config: invalid node config")
)

// Defaults of the named Node fields.
const (
	DefaultNodeID         = 1
	DefaultDataDir        = "./gregor-data"
	DefaultKafkaAddr      = "localhost:9092"
	DefaultControllerAddr = "localhost:9093"
	DefaultHTTPAddr       = "localhost:9644"
	DefaultLogLevel       = "info"
)

// Property names that ApplyProperties maps onto named Node fields.
const (
	PropNodeID              = "node.id"
	PropBrokerID            = "broker.id"
	PropLogDirs             = "log.dirs"
	PropLogDir              = "log.dir"
	PropListeners           = "listeners"
	PropAdvertisedListeners = "advertised.listeners"
	PropQuorumVoters        = "controller.quorum.voters"
	PropControllerListeners = "controller.listener.names"
	PropHTTPAddr            = "gregor.http.addr" // our own name; Kafka has no HTTP listener
	PropLogLevel            = "log.level"
)

// DefaultNode returns a Node with every named field at its default: a single
// combined broker+controller node listening on localhost.
func DefaultNode() Node {
	return Node{
		NodeID:         DefaultNodeID,
		DataDir:        DefaultDataDir,
		KafkaAddr:      DefaultKafkaAddr,
		ControllerAddr: DefaultControllerAddr,
		HTTPAddr:       DefaultHTTPAddr,
		LogLevel:       DefaultLogLevel,
		Props:          map[string]string{},
	}
}

// maxPropertiesLine bounds one logical line (after continuations) so that a
// garbage file cannot make LoadProperties allocate without limit.
const maxPropertiesLine = 1 << 20

// LoadProperties parses the Java properties subset used by Kafka's
// server.properties: "key=value" or "key: value" (the first '=' or ':' splits),
// '#' and '!' comment lines, blank lines, surrounding whitespace trimmed, and a
// line ending in an odd number of backslashes continued on the next line (whose
// leading whitespace is dropped). Later keys override earlier ones. Escape
// sequences other than continuation are kept literally. A line without a
// separator or with an empty key is an error naming its line number.
func LoadProperties(r io.Reader) (map[string]string, error) {
	props := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxPropertiesLine)
	var (
		lineNo    int
		startLine int // line number where the current logical line started
		logical   strings.Builder
		continued bool
	)
	flush := func() error {
		line := logical.String()
		logical.Reset()
		continued = false
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == '#' || trimmed[0] == '!' {
			return nil
		}
		i := strings.IndexAny(trimmed, "=:")
		if i < 0 {
			return fmt.Errorf("%w: line %d: no '=' or ':' in %q", ErrMalformedProperties, startLine, truncate(trimmed, 60))
		}
		key := strings.TrimSpace(trimmed[:i])
		if key == "" {
			return fmt.Errorf("%w: line %d: empty key", ErrMalformedProperties, startLine)
		}
		props[key] = strings.TrimSpace(trimmed[i+1:])
		return nil
	}
	for sc.Scan() {
		lineNo++
		raw := sc.Text()
		if continued {
			raw = strings.TrimLeft(raw, " \t\f")
		} else {
			startLine = lineNo
			// A comment line is never continued, as in java.util.Properties.
			if t := strings.TrimLeft(raw, " \t\f"); t != "" && (t[0] == '#' || t[0] == '!') {
				continue
			}
		}
		raw = strings.TrimRight(raw, " \t\f\r")
		if n := trailingBackslashes(raw); n%2 == 1 {
			logical.WriteString(raw[:len(raw)-1])
			continued = true
			if logical.Len() > maxPropertiesLine {
				return nil, fmt.Errorf("%w: line %d: continued line longer than %d bytes", ErrMalformedProperties, startLine, maxPropertiesLine)
			}
			continue
		}
		logical.WriteString(raw)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("config: reading properties after line %d: %w", lineNo, err)
	}
	if continued {
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return props, nil
}

func trailingBackslashes(s string) int {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ApplyProperties overlays Kafka properties onto n. Names with a Node field of
// their own are mapped:
//
//	node.id, broker.id          -> NodeID (both given: they must agree)
//	log.dirs, log.dir           -> DataDir (first of a comma list; log.dirs wins)
//	listeners                   -> KafkaAddr and ControllerAddr: "PLAINTEXT://host:port"
//	                               gives host:port; the entry named CONTROLLER (or any
//	                               name listed in controller.listener.names) the controller
//	advertised.listeners        -> AdvertisedAddr (its non-controller entry)
//	controller.quorum.voters    -> Voters
//	gregor.http.addr            -> HTTPAddr
//	log.level                   -> LogLevel
//
// Every other property, and controller.listener.names too, is stored in Props.
// On error n may be partly updated.
func (n *Node) ApplyProperties(p map[string]string) error {
	if n.Props == nil {
		n.Props = map[string]string{}
	}
	controllerNames := map[string]bool{"CONTROLLER": true}
	names, ok := p[PropControllerListeners]
	if !ok {
		names = n.Props[PropControllerListeners]
	}
	for _, name := range splitList(names) {
		controllerNames[strings.ToUpper(name)] = true
	}
	var nodeIDSeen string
	for _, key := range []string{PropNodeID, PropBrokerID} {
		v, ok := p[key]
		if !ok {
			continue
		}
		id, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return fmt.Errorf("%w: %s=%q: not a 32-bit integer", ErrInvalidNode, key, v)
		}
		if nodeIDSeen != "" && int32(id) != n.NodeID {
			return fmt.Errorf("%w: %s=%d disagrees with %s=%d", ErrInvalidNode, key, id, nodeIDSeen, n.NodeID)
		}
		n.NodeID = int32(id)
		nodeIDSeen = key
	}
	for _, key := range []string{PropLogDir, PropLogDirs} { // log.dirs applied last wins
		if v, ok := p[key]; ok {
			dirs := splitList(v)
			if len(dirs) == 0 {
				return fmt.Errorf("%w: %s is empty", ErrInvalidNode, key)
			}
			n.DataDir = dirs[0]
		}
	}
	touched := false
	for _, k := range []string{PropListeners, PropAdvertisedListeners, PropSecurityProtocolMap, PropInterBrokerListener, PropControllerListeners} {
		if v, ok := p[k]; ok {
			if n.listenerProps == nil {
				n.listenerProps = map[string]string{}
			}
			n.listenerProps[k], touched = v, true
		}
	}
	if touched {
		n.listenerErr = n.applyListeners(n.listenerProps, controllerNames)
	}
	if v, ok := p[PropQuorumVoters]; ok {
		n.Voters = strings.TrimSpace(v)
	}
	if v, ok := p[PropHTTPAddr]; ok {
		n.HTTPAddr = strings.TrimSpace(v)
	}
	if v, ok := p[PropLogLevel]; ok {
		n.LogLevel = strings.ToLower(strings.TrimSpace(v))
	}
	for k, v := range p {
		switch k {
		case PropNodeID, PropBrokerID, PropLogDirs, PropLogDir, PropListeners,
			PropAdvertisedListeners, PropQuorumVoters, PropHTTPAddr, PropLogLevel:
			continue
		}
		n.Props[k] = v
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Advertised returns the address clients are told to connect to: AdvertisedAddr
// if set, otherwise KafkaAddr with an empty or wildcard host replaced by
// "localhost".
func (n Node) Advertised() string {
	if n.AdvertisedAddr != "" {
		return n.AdvertisedAddr
	}
	host, port, err := net.SplitHostPort(n.KafkaAddr)
	if err != nil {
		return n.KafkaAddr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// QuorumVoters parses Voters ("id@host:port,..."). An empty Voters yields nil.
func (n Node) QuorumVoters() ([]Voter, error) {
	var voters []Voter
	seen := map[int32]bool{}
	for _, entry := range splitList(n.Voters) {
		idStr, addr, ok := strings.Cut(entry, "@")
		if !ok {
			return nil, fmt.Errorf("%w: %s entry %q: want id@host:port", ErrInvalidNode, PropQuorumVoters, entry)
		}
		id, err := strconv.ParseInt(idStr, 10, 32)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("%w: %s entry %q: bad node id", ErrInvalidNode, PropQuorumVoters, entry)
		}
		if err := checkAddr(addr, false); err != nil {
			return nil, fmt.Errorf("%w: %s entry %q: %v", ErrInvalidNode, PropQuorumVoters, entry, err)
		}
		if seen[int32(id)] {
			return nil, fmt.Errorf("%w: %s: node id %d listed twice", ErrInvalidNode, PropQuorumVoters, id)
		}
		seen[int32(id)] = true
		voters = append(voters, Voter{ID: int32(id), Addr: addr})
	}
	return voters, nil
}

// Validate checks the named fields: node id >= 0, a data directory, listener
// addresses that parse as host:port (port 0 allowed: pick a free one), an
// advertised address with a host and a real port, distinct fixed ports, a known
// log level and a well-formed voter list. Props are not checked here.
func (n *Node) Validate() error {
	var errs []error
	if n.listenerErr != nil {
		errs = append(errs, n.listenerErr)
	}
	if n.NodeID < 0 {
		errs = append(errs, fmt.Errorf("%w: node.id %d is negative", ErrInvalidNode, n.NodeID))
	}
	if strings.TrimSpace(n.DataDir) == "" {
		errs = append(errs, fmt.Errorf("%w: data dir (log.dirs) is empty", ErrInvalidNode))
	}
	type named struct{ name, addr string }
	listeners := []named{{"kafka address (listeners)", n.KafkaAddr}, {"controller address", n.ControllerAddr}, {"http address (gregor.http.addr)", n.HTTPAddr}}
	ports := map[string]string{}
	for _, l := range listeners {
		if err := checkAddr(l.addr, true); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s %q: %v", ErrInvalidNode, l.name, l.addr, err))
			continue
		}
		_, port, _ := net.SplitHostPort(l.addr)
		if port == "0" {
			continue
		}
		if other, dup := ports[port]; dup {
			errs = append(errs, fmt.Errorf("%w: %s and %s both use port %s", ErrInvalidNode, other, l.name, port))
		}
		ports[port] = l.name
	}
	if n.AdvertisedAddr != "" {
		if err := checkAddr(n.AdvertisedAddr, false); err != nil {
			errs = append(errs, fmt.Errorf("%w: advertised address %q: %v", ErrInvalidNode, n.AdvertisedAddr, err))
		}
	}
	switch n.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("%w: log level %q: want debug, info, warn or error", ErrInvalidNode, n.LogLevel))
	}
	voters, err := n.QuorumVoters()
	if err != nil {
		errs = append(errs, err)
	}
	roles, err := n.ProcessRoles()
	if err != nil {
		errs = append(errs, err)
	}
	bootstrap, err := n.BootstrapServers()
	if err != nil {
		errs = append(errs, err)
	}
	inVoters := slices.ContainsFunc(voters, func(v Voter) bool { return v.ID == n.NodeID })
	switch {
	case roles.Controller && len(voters) > 0 && !inVoters:
		errs = append(errs, fmt.Errorf("%w: node.id %d has the controller role but is not in %s %q (a controller joining a running quorum names it with %s instead)",
			ErrInvalidNode, n.NodeID, PropQuorumVoters, n.Voters, PropQuorumBootstrapServers))
	case !roles.Controller && inVoters:
		errs = append(errs, fmt.Errorf("%w: node.id %d is in %s but %s=%q has no controller role", ErrInvalidNode, n.NodeID, PropQuorumVoters, PropProcessRoles, n.Props[PropProcessRoles]))
	case !roles.Controller && len(voters) == 0 && len(bootstrap) == 0:
		errs = append(errs, fmt.Errorf("%w: a broker-only node needs the controllers: set %s or %s", ErrInvalidNode, PropQuorumVoters, PropQuorumBootstrapServers))
	}
	return errors.Join(errs...)
}

// checkAddr checks host:port. A listen address may have an empty host (all
// interfaces) and port 0; an address others dial may not.
func checkAddr(addr string, listen bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("port %q is not a number in 0-65535", port)
	}
	if !listen {
		if host == "" {
			return errors.New("missing host")
		}
		if p == 0 {
			return errors.New("port 0 cannot be dialed")
		}
	}
	return nil
}

// PropProcessRoles is Kafka's process.roles; it stays in Props.
const PropProcessRoles = "process.roles"

// Roles are the parsed process.roles of a node. A broker-only node follows
// the metadata log as a non-voting member and hosts partitions; a
// controller-only node votes and hosts none.
type Roles struct{ Broker, Controller bool }

// ProcessRoles parses process.roles ("broker", "controller" or both, comma
// separated; default both).
func (n Node) ProcessRoles() (Roles, error) {
	v, ok := n.Props[PropProcessRoles]
	if !ok {
		return Roles{Broker: true, Controller: true}, nil
	}
	var r Roles
	for _, role := range splitList(v) {
		switch strings.ToLower(role) {
		case "broker":
			r.Broker = true
		case "controller":
			r.Controller = true
		default:
			return r, fmt.Errorf("%w: %s=%q: unknown role %q (want broker, controller or both)", ErrInvalidNode, PropProcessRoles, v, role)
		}
	}
	if !r.Broker && !r.Controller {
		return r, fmt.Errorf("%w: %s is empty", ErrInvalidNode, PropProcessRoles)
	}
	return r, nil
}

// PropQuorumBootstrapServers is Kafka's controller.quorum.bootstrap.servers
// (KIP-853): controller listeners to find the quorum through, without
// naming the voters. It stays in Props.
const PropQuorumBootstrapServers = "controller.quorum.bootstrap.servers"

// BootstrapServers parses controller.quorum.bootstrap.servers ("host:port,...").
func (n Node) BootstrapServers() ([]string, error) {
	var out []string
	for _, addr := range splitList(n.Props[PropQuorumBootstrapServers]) {
		if err := checkAddr(addr, false); err != nil {
			return nil, fmt.Errorf("%w: %s entry %q: %v", ErrInvalidNode, PropQuorumBootstrapServers, addr, err)
		}
		out = append(out, addr)
	}
	return out, nil
}
