package server

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kmsgMaxVersion accepts every key kmsg knows, up to kmsg's maximum.
func kmsgMaxVersion(key int16) (int16, bool) {
	req := kmsg.RequestForKey(key)
	if req == nil {
		return 0, false
	}
	return req.MaxVersion(), true
}

// body encodes req at version v as a frame without the size prefix.
func body(req kmsg.Request, v int16, clientID string) []byte {
	req.SetVersion(v)
	return frame(req, 9, clientID)[4:]
}

func TestParseRequest(t *testing.T) {
	metadata := func(topics ...string) *kmsg.MetadataRequest {
		req := kmsg.NewPtrMetadataRequest()
		for _, tp := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(tp)
			req.Topics = append(req.Topics, rt)
		}
		return req
	}
	withTags := func(b []byte, tags ...byte) []byte { // b: a v12 metadata frame, client id "c"
		hdr := 8 + 2 + 1 // through client id "c"
		out := append([]byte{}, b[:hdr]...)
		out = append(out, tags...)
		return append(out, b[hdr+1:]...) // drop the empty tag byte
	}
	u16 := func(b []byte, at int, v int) []byte {
		b = append([]byte{}, b...)
		binary.BigEndian.PutUint16(b[at:], uint16(v))
		return b
	}
	tests := []struct {
		name       string
		in         []byte
		wantErr    error
		wantKey    int16
		wantClient string
		wantTopics int
		tooNew     bool
		// wantSoftware is "name/version" for ApiVersions.
		wantSoftware string
	}{
		{name: "metadata v1", in: body(metadata("a", "b"), 1, "cli"), wantKey: 3, wantClient: "cli", wantTopics: 2},
		{name: "metadata v12 flexible header", in: body(metadata("a"), 12, "c"), wantKey: 3, wantClient: "c", wantTopics: 1},
		{name: "metadata v12 unknown header tag skipped", in: withTags(body(metadata("a"), 12, "c"), 1, 7, 2, 0xaa, 0xbb), wantKey: 3, wantClient: "c", wantTopics: 1},
		{name: "null client id", in: u16(body(metadata(), 1, ""), 8, -1), wantKey: 3},
		{name: "controlled shutdown v0 has no client id", in: []byte{0, 7, 0, 0, 0, 0, 0, 9, 0, 0, 0, 3}, wantKey: 7},
		{name: "api versions too new", in: u16(body(kmsg.NewPtrApiVersionsRequest(), 3, "c"), 2, 200), wantKey: 18, wantClient: "c", tooNew: true},
		{name: "api versions v3 software name", in: body(&kmsg.ApiVersionsRequest{ClientSoftwareName: "kgo", ClientSoftwareVersion: "v1"}, 3, "c"), wantKey: 18, wantClient: "c", wantSoftware: "kgo/v1"},
		{name: "api versions v3 huge tag count", in: append(body(&kmsg.ApiVersionsRequest{ClientSoftwareName: "a", ClientSoftwareVersion: "b"}, 3, "c")[:16], 0xff, 0xff, 0xff, 0xff, 0x0f), wantErr: errMalformedBody},
		{name: "api versions v3 string beyond frame", in: append(body(&kmsg.ApiVersionsRequest{}, 3, "c")[:12], 0x7f, 'a'), wantErr: errMalformedBody},
		{name: "api versions v3 null software name", in: append(body(&kmsg.ApiVersionsRequest{}, 3, "c")[:12], 0, 0, 0), wantErr: errMalformedBody},
		{name: "short header", in: []byte{0, 3, 0, 1, 0, 0, 0}, wantErr: errShortHeader},
		{name: "unknown key", in: u16(body(metadata(), 1, "c"), 0, 999), wantErr: errUnknownAPIKey},
		{name: "negative key", in: u16(body(metadata(), 1, "c"), 0, -1), wantErr: errUnknownAPIKey},
		{name: "version above max", in: u16(body(metadata(), 1, "c"), 2, 99), wantErr: errUnsupportedVersion},
		{name: "negative version", in: u16(body(metadata(), 1, "c"), 2, -3), wantErr: errUnsupportedVersion},
		{name: "missing client id", in: body(metadata(), 1, "c")[:9], wantErr: errMalformedHeader},
		{name: "client id beyond frame", in: u16(body(metadata(), 1, "c"), 8, 500), wantErr: errMalformedHeader},
		{name: "client id length -2", in: u16(body(metadata(), 1, "c"), 8, -2), wantErr: errMalformedHeader},
		{name: "tag count beyond frame", in: withTags(body(metadata(), 12, "c"), 100), wantErr: errMalformedHeader},
		{name: "tag size beyond frame", in: withTags(body(metadata(), 12, "c"), 1, 0, 50), wantErr: errMalformedHeader},
		{name: "overlong uvarint", in: withTags(body(metadata(), 12, "c"), 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), wantErr: errMalformedHeader},
		{name: "missing tags", in: body(metadata(), 12, "c")[:11], wantErr: errMalformedHeader},
		{name: "metadata topics count 0x7fffffff", in: append(body(metadata(), 1, "c")[:11], 0x7f, 0xff, 0xff, 0xff), wantErr: errMalformedBody},
		{name: "truncated body", in: body(metadata("abcdef"), 1, "c")[:16], wantErr: errMalformedBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := parseRequest(tt.in, kmsgMaxVersion)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseRequest: %v", err)
			}
			if req.Key != tt.wantKey || req.CorrelationID != 9 || req.ClientID != tt.wantClient || req.apiVersionsTooNew != tt.tooNew {
				t.Fatalf("got key %d corr %d client %q tooNew %v", req.Key, req.CorrelationID, req.ClientID, req.apiVersionsTooNew)
			}
			if req.Body.Key() != req.Key || req.Body.GetVersion() != req.Version {
				t.Fatalf("body key %d v%d, header key %d v%d", req.Body.Key(), req.Body.GetVersion(), req.Key, req.Version)
			}
			if md, ok := req.Body.(*kmsg.MetadataRequest); ok && len(md.Topics) != tt.wantTopics {
				t.Fatalf("topics %d, want %d", len(md.Topics), tt.wantTopics)
			}
			if av, ok := req.Body.(*kmsg.ApiVersionsRequest); ok && tt.wantSoftware != "" {
				if got := av.ClientSoftwareName + "/" + av.ClientSoftwareVersion; got != tt.wantSoftware {
					t.Fatalf("software %q, want %q", got, tt.wantSoftware)
				}
			}
			if cs, ok := req.Body.(*kmsg.ControlledShutdownRequest); ok && cs.BrokerID != 3 {
				t.Fatalf("controlled shutdown broker id %d", cs.BrokerID)
			}
		})
	}
}

// FuzzRequestFrame feeds arbitrary frame bodies to the header and body decoder:
// it must never panic, and what it accepts must re-encode.
func FuzzRequestFrame(f *testing.F) {
	for key := int16(0); key <= kmsg.MaxKey; key++ {
		req := kmsg.RequestForKey(key)
		if req == nil {
			continue
		}
		for _, v := range []int16{0, req.MaxVersion()} {
			r := kmsg.RequestForKey(key)
			if d, ok := r.(interface{ Default() }); ok {
				d.Default()
			}
			f.Add(body(r, v, "fuzz"))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := parseRequest(in, kmsgMaxVersion)
		if err != nil {
			return
		}
		if req.Body == nil || req.Body.Key() != req.Key {
			t.Fatalf("accepted a frame with body %v for key %d", req.Body, req.Key)
		}
		_ = req.Body.AppendTo(nil)
	})
}

func TestValidSoftware(t *testing.T) {
	tests := map[string]bool{
		"kgo": true, "v1.22.2": true, "librdkafka": true, "a": true, "apache-kafka-java": true,
		"": false, "-x": false, "x-": false, "a b": false, "x.": false, "ü": false,
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			if got := validSoftware(in); got != want {
				t.Fatalf("validSoftware(%q) = %v, want %v", in, got, want)
			}
		})
	}
}
