package config

import (
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
)

func TestNodeLoadProperties(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string // substring; empty: no error
	}{
		{name: "empty", in: "", want: map[string]string{}},
		{
			name: "equals and colon",
			in:   "a=1\nb: 2\nc = three \n",
			want: map[string]string{"a": "1", "b": "2", "c": "three"},
		},
		{
			name: "first separator splits",
			in:   "listeners=PLAINTEXT://localhost:9092\nx: y=z\n",
			want: map[string]string{"listeners": "PLAINTEXT://localhost:9092", "x": "y=z"},
		},
		{
			name: "comments and blank lines",
			in:   "# comment\n! also comment\n\n   \n  # indented comment\nk=v # not a comment\n",
			want: map[string]string{"k": "v # not a comment"},
		},
		{
			name: "crlf and trailing whitespace",
			in:   "a=1 \t\r\nb=2\r\n",
			want: map[string]string{"a": "1", "b": "2"},
		},
		{
			name: "continuation",
			in:   "controller.quorum.voters=1@a:9093,\\\n    2@b:9093,\\\n\t3@c:9093\nnext=1\n",
			want: map[string]string{"controller.quorum.voters": "1@a:9093,2@b:9093,3@c:9093", "next": "1"},
		},
		{
			name: "even backslashes do not continue",
			in:   "path=c:\\\\\nnext=1\n",
			want: map[string]string{"path": "c:\\\\", "next": "1"},
		},
		{
			name: "continuation at end of file",
			in:   "a=1\\",
			want: map[string]string{"a": "1"},
		},
		{
			name: "comment line is not continued",
			in:   "# comment \\\na=1\n",
			want: map[string]string{"a": "1"},
		},
		{
			name: "later key wins",
			in:   "a=1\na=2\n",
			want: map[string]string{"a": "2"},
		},
		{name: "empty value", in: "a=\n", want: map[string]string{"a": ""}},
		{name: "malformed line", in: "a=1\n\nthis is not a property\n", wantErr: "line 3"},
		{name: "empty key", in: "a=1\n=2\n", wantErr: "line 2: empty key"},
		{name: "malformed continued line reports its first line", in: "a=1\nbad\\\nstill bad\n", wantErr: "line 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LoadProperties(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				if !errors.Is(err, ErrMalformedProperties) {
					t.Fatalf("err = %v, want ErrMalformedProperties", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadProperties: %v", err)
			}
			if !maps.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNodeApplyProperties(t *testing.T) {
	tests := []struct {
		name    string
		props   map[string]string
		check   func(t *testing.T, n Node)
		wantErr string
	}{
		{
			name:  "node id and dirs",
			props: map[string]string{"node.id": "7", "log.dirs": " /a/b , /c/d"},
			check: func(t *testing.T, n Node) {
				if n.NodeID != 7 || n.DataDir != "/a/b" {
					t.Fatalf("got id %d dir %q", n.NodeID, n.DataDir)
				}
			},
		},
		{
			name:  "broker.id alias and log.dir",
			props: map[string]string{"broker.id": "3", "log.dir": "/x"},
			check: func(t *testing.T, n Node) {
				if n.NodeID != 3 || n.DataDir != "/x" {
					t.Fatalf("got id %d dir %q", n.NodeID, n.DataDir)
				}
			},
		},
		{
			name:  "log.dirs wins over log.dir",
			props: map[string]string{"log.dir": "/x", "log.dirs": "/y"},
			check: func(t *testing.T, n Node) {
				if n.DataDir != "/y" {
					t.Fatalf("dir %q", n.DataDir)
				}
			},
		},
		{
			name: "listeners",
			props: map[string]string{
				"listeners":            "PLAINTEXT://0.0.0.0:19092,CONTROLLER://127.0.0.1:19093",
				"advertised.listeners": "PLAINTEXT://broker1.example:19092",
			},
			check: func(t *testing.T, n Node) {
				if n.KafkaAddr != "0.0.0.0:19092" || n.ControllerAddr != "127.0.0.1:19093" || n.AdvertisedAddr != "broker1.example:19092" {
					t.Fatalf("got %q %q %q", n.KafkaAddr, n.ControllerAddr, n.AdvertisedAddr)
				}
			},
		},
		{
			name: "a SASL listener beside the inter-broker one",
			props: map[string]string{
				"listeners":                      "CLIENT://:9092,PLAINTEXT://:19092,CONTROLLER://:9093,EXTERNAL://:9094,SECURE://:9095",
				"advertised.listeners":           "EXTERNAL://public.example:9094,PLAINTEXT://b1:19092",
				"listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,EXTERNAL:SASL_SSL,SECURE:SSL",
			},
			check: func(t *testing.T, n Node) {
				if n.KafkaAddr != ":19092" || n.AdvertisedAddr != "b1:19092" || n.Listen() != "PLAINTEXT" || n.ControllerAddr != ":9093" {
					t.Fatalf("inter-broker listener %s %q %q, controller %q", n.Listen(), n.KafkaAddr, n.AdvertisedAddr, n.ControllerAddr)
				}
				want := []Listener{{Name: "CLIENT", Addr: ":9092", SASL: true}, {Name: "EXTERNAL", Addr: ":9094", Advertised: "public.example:9094", SASL: true, TLS: true},
					{Name: "SECURE", Addr: ":9095", TLS: true}}
				if !reflect.DeepEqual(n.ExtraListeners, want) {
					t.Fatalf("extra listeners %+v, want %+v", n.ExtraListeners, want)
				}
				if a := AdvertisedFor(n.ExtraListeners[0]); a != "localhost:9092" {
					t.Fatalf("advertised %q", a)
				}
			},
		},
		{
			name: "custom controller listener name",
			props: map[string]string{
				"listeners":                 "CLIENT://:9092,RAFT://:9093",
				"controller.listener.names": "RAFT",
			},
			check: func(t *testing.T, n Node) {
				if n.KafkaAddr != ":9092" || n.ControllerAddr != ":9093" {
					t.Fatalf("got %q %q", n.KafkaAddr, n.ControllerAddr)
				}
				if n.Props["controller.listener.names"] != "RAFT" {
					t.Fatalf("controller.listener.names not kept in Props: %v", n.Props)
				}
			},
		},
		{
			name: "own names and props",
			props: map[string]string{
				"gregor.http.addr":          "localhost:1",
				"log.level":                 "DEBUG",
				"controller.quorum.voters":  "1@a:1,2@b:2",
				"num.partitions":            "3",
				"auto.create.topics.enable": "false",
			},
			check: func(t *testing.T, n Node) {
				if n.HTTPAddr != "localhost:1" || n.LogLevel != "debug" || n.Voters != "1@a:1,2@b:2" {
					t.Fatalf("got %+v", n)
				}
				want := map[string]string{"num.partitions": "3", "auto.create.topics.enable": "false"}
				if !maps.Equal(n.Props, want) {
					t.Fatalf("props %v, want %v", n.Props, want)
				}
			},
		},
		{name: "bad node id", props: map[string]string{"node.id": "x"}, wantErr: "node.id"},
		{name: "node.id and broker.id disagree", props: map[string]string{"node.id": "1", "broker.id": "2"}, wantErr: "disagrees"},
		{name: "listener without scheme", props: map[string]string{"listeners": "localhost:9092"}, wantErr: "NAME://"},
		{name: "no inter-broker listener", props: map[string]string{"listeners": "A://:1,B://:2"}, wantErr: "no PLAINTEXT listener named PLAINTEXT"},
		{name: "SASL between brokers", props: map[string]string{"listeners": "SASL_PLAINTEXT://:1"}, wantErr: "must be PLAINTEXT"},
		{name: "unknown protocol", props: map[string]string{"listeners": "PLAINTEXT://:1,X://:2", "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,X:QUIC"}, wantErr: "unknown security protocol QUIC"},
		{name: "TLS between brokers", props: map[string]string{"listeners": "SSL://:1"}, wantErr: "must be PLAINTEXT"},
		{name: "two controller listeners", props: map[string]string{"listeners": "PLAINTEXT://:1,CONTROLLER://:2,RAFT://:3", "controller.listener.names": "CONTROLLER,RAFT"}, wantErr: "more than one controller"},
		{name: "advertised listener not listened on", props: map[string]string{"listeners": "PLAINTEXT://:1,SASL_PLAINTEXT://:2", "advertised.listeners": "OTHER://h:1"}, wantErr: "which listeners does not"},
		{name: "empty log.dirs", props: map[string]string{"log.dirs": " , "}, wantErr: "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := DefaultNode()
			err := n.ApplyProperties(tc.props)
			if err == nil && tc.wantErr != "" {
				err = n.Validate() // the listener properties are checked together
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidNode) {
					t.Fatalf("err = %v, want ErrInvalidNode containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ApplyProperties: %v", err)
			}
			tc.check(t, n)
		})
	}
}

func TestNodeDefaultsValidate(t *testing.T) {
	n := DefaultNode()
	if err := n.Validate(); err != nil {
		t.Fatalf("default node invalid: %v", err)
	}
	if n.Advertised() != "localhost:9092" {
		t.Fatalf("Advertised() = %q", n.Advertised())
	}
}

func TestNodeAdvertised(t *testing.T) {
	tests := []struct{ kafka, adv, want string }{
		{"localhost:9092", "", "localhost:9092"},
		{":9092", "", "localhost:9092"},
		{"0.0.0.0:9092", "", "localhost:9092"},
		{"[::]:9092", "", "localhost:9092"},
		{"0.0.0.0:9092", "b1:9092", "b1:9092"},
	}
	for _, tc := range tests {
		t.Run(tc.kafka+"|"+tc.adv, func(t *testing.T) {
			n := DefaultNode()
			n.KafkaAddr, n.AdvertisedAddr = tc.kafka, tc.adv
			if got := n.Advertised(); got != tc.want {
				t.Fatalf("Advertised() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNodeValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(n *Node)
		wantErr string
	}{
		{name: "port zero listeners ok", mod: func(n *Node) { n.KafkaAddr, n.ControllerAddr, n.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0" }},
		{name: "voters ok", mod: func(n *Node) { n.Voters = "1@localhost:9093, 2@other:9093" }},
		{name: "negative id", mod: func(n *Node) { n.NodeID = -1 }, wantErr: "negative"},
		{name: "empty data dir", mod: func(n *Node) { n.DataDir = "" }, wantErr: "data dir"},
		{name: "bad kafka addr", mod: func(n *Node) { n.KafkaAddr = "localhost" }, wantErr: "kafka address"},
		{name: "bad port", mod: func(n *Node) { n.HTTPAddr = "localhost:99999" }, wantErr: "http address"},
		{name: "same port", mod: func(n *Node) { n.HTTPAddr = "127.0.0.1:9092" }, wantErr: "both use port 9092"},
		{name: "advertised port zero", mod: func(n *Node) { n.AdvertisedAddr = "host:0" }, wantErr: "advertised"},
		{name: "advertised no host", mod: func(n *Node) { n.AdvertisedAddr = ":9092" }, wantErr: "missing host"},
		{name: "log level", mod: func(n *Node) { n.LogLevel = "trace" }, wantErr: "log level"},
		{name: "voter without id", mod: func(n *Node) { n.Voters = "localhost:9093" }, wantErr: "id@host:port"},
		{name: "voter duplicate", mod: func(n *Node) { n.Voters = "1@a:1,1@b:2" }, wantErr: "twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := DefaultNode()
			tc.mod(&n)
			err := n.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidNode) {
				t.Fatalf("err = %v, want ErrInvalidNode containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestNodeQuorumVoters(t *testing.T) {
	n := DefaultNode()
	n.Voters = "1@localhost:9093,2@h2:9093"
	vs, err := n.QuorumVoters()
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0] != (Voter{1, "localhost:9093"}) || vs[1] != (Voter{2, "h2:9093"}) {
		t.Fatalf("voters %+v", vs)
	}
}

// TestNodeListenersOneAtATime: the listener properties may come in separate
// ApplyProperties calls (--set), in any order.
func TestNodeListenersOneAtATime(t *testing.T) {
	n := DefaultNode()
	for _, p := range []map[string]string{
		{"listeners": "PLAINTEXT://:9092,CLIENT://:9094"},
		{"advertised.listeners": "CLIENT://public:9094"},
		{"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CLIENT:SASL_PLAINTEXT"},
	} {
		if err := n.ApplyProperties(p); err != nil {
			t.Fatalf("%v: %v", p, err)
		}
	}
	want := []Listener{{Name: "CLIENT", Addr: ":9094", Advertised: "public:9094", SASL: true}}
	if n.KafkaAddr != ":9092" || !reflect.DeepEqual(n.ExtraListeners, want) {
		t.Fatalf("kafka %q, extra %+v; want :9092 and %+v", n.KafkaAddr, n.ExtraListeners, want)
	}
}

// TestNodeListenersInKafkasOrder: listener properties Kafka accepts
// together are accepted one at a time in any order (--set), a listener a
// given protocol map does not name is refused, and controller.listener.names
// may come after listeners.
func TestNodeListenersInKafkasOrder(t *testing.T) {
	n := DefaultNode()
	for _, p := range []map[string]string{
		{"listeners": "INTERNAL://:9092,EXTERNAL://:9094,CTRL://:19093"},
		{"listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT,CTRL:PLAINTEXT"},
		{"inter.broker.listener.name": "INTERNAL"},
		{"controller.listener.names": "CTRL"},
	} {
		if err := n.ApplyProperties(p); err != nil {
			t.Fatalf("%v: %v", p, err)
		}
	}
	if err := n.Validate(); err != nil {
		t.Fatal(err)
	}
	if n.ControllerAddr != ":19093" || n.KafkaAddr != ":9092" || len(n.ExtraListeners) != 1 || !n.ExtraListeners[0].SASL {
		t.Fatalf("controller %q kafka %q extra %+v", n.ControllerAddr, n.KafkaAddr, n.ExtraListeners)
	}
	m := DefaultNode()
	if err := m.ApplyProperties(map[string]string{
		"listeners":                      "PLAINTEXT://:9092,SASL_SSL://:9094",
		"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "no security protocol defined for listener SASL_SSL") {
		t.Fatalf("a listener the map does not name: %v", err)
	}
}
