package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// oneShot is a mechanism of one message: the token "user:secret" logs the
// user in, anything else fails.
type oneShot struct{}

func (oneShot) Next(token []byte) ([]byte, string, error) {
	if string(token) == "alice:secret" {
		return []byte("welcome"), "alice", nil
	}
	return nil, "", errors.New("bad secret")
}

func startSASLServer(t *testing.T, h *testHandler) *Server {
	return startServer(t, Config{Name: "SASL_PLAINTEXT", SASL: &SASL{
		Mechanisms: []string{"ONESHOT"},
		Start:      func(string) SASLExchange { return oneShot{} },
	}}, h)
}

func handshake(t *testing.T, c net.Conn, version int16, mech string) *kmsg.SASLHandshakeResponse {
	t.Helper()
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.SetVersion(version)
	req.Mechanism = mech
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SetVersion(version)
	if _, err := c.Write(frame(req, 1, "test")); err != nil {
		t.Fatal(err)
	}
	decodeResponse(t, readFrame(t, c), 1, resp, false)
	return resp
}

func authenticate(t *testing.T, s *Server, token string) (*kmsg.SASLAuthenticateResponse, net.Conn) {
	t.Helper()
	c := dial(t, s)
	if resp := handshake(t, c, 1, "ONESHOT"); resp.ErrorCode != 0 {
		t.Fatalf("handshake: error %d", resp.ErrorCode)
	}
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.SetVersion(2)
	req.SASLAuthBytes = []byte(token)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	resp.SetVersion(2)
	roundTrip(t, c, req, 2, resp, true)
	return resp, c
}

func TestServerSASL(t *testing.T) {
	h := &testHandler{}
	s := startSASLServer(t, h)

	t.Run("authenticated requests carry the user and listener", func(t *testing.T) {
		resp, c := authenticate(t, s, "alice:secret")
		if resp.ErrorCode != 0 || string(resp.SASLAuthBytes) != "welcome" {
			t.Fatalf("authenticate: %+v", resp)
		}
		checkServesOn(t, c)
		h.mu.Lock()
		user, listener := h.mu.user, h.mu.listener
		h.mu.Unlock()
		if user != "alice" || listener != "SASL_PLAINTEXT" {
			t.Fatalf("request user %q listener %q", user, listener)
		}
		// A second exchange is refused on an authenticated connection.
		areq := kmsg.NewPtrSASLAuthenticateRequest()
		areq.SetVersion(1)
		aresp := areq.ResponseKind()
		aresp.SetVersion(1)
		roundTrip(t, c, areq, 4, aresp, false)
		if code := aresp.(*kmsg.SASLAuthenticateResponse).ErrorCode; code != errCodeIllegalSASLState {
			t.Fatalf("SaslAuthenticate after authentication: error %d", code)
		}
	})
	t.Run("a failed login is answered, then closed", func(t *testing.T) {
		resp, c := authenticate(t, s, "alice:guess")
		if resp.ErrorCode != errCodeSASLAuthenticationFailed || resp.ErrorMessage == nil || *resp.ErrorMessage != "bad secret" {
			t.Fatalf("authenticate: %+v", resp)
		}
		expectClosed(t, c)
	})
	t.Run("an unknown mechanism is answered with the enabled ones, then closed", func(t *testing.T) {
		c := dial(t, s)
		resp := handshake(t, c, 1, "PLAIN")
		if resp.ErrorCode != errCodeUnsupportedSASLMechanism || len(resp.SupportedMechanisms) != 1 || resp.SupportedMechanisms[0] != "ONESHOT" {
			t.Fatalf("handshake: %+v", resp)
		}
		expectClosed(t, c)
	})
	t.Run("any other request before authentication closes", func(t *testing.T) {
		before := h.handled.Load()
		c := dial(t, s)
		req := kmsg.NewPtrMetadataRequest()
		if _, err := c.Write(frame(req, 1, "x")); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c)
		if h.handled.Load() != before {
			t.Fatal("an unauthenticated request reached the handler")
		}
	})
	t.Run("one ApiVersions before the handshake, not two", func(t *testing.T) {
		c := dial(t, s)
		req := kmsg.NewPtrApiVersionsRequest()
		resp := req.ResponseKind()
		roundTrip(t, c, req, 1, resp, false)
		if _, err := c.Write(frame(req, 2, "x")); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c)
	})
	t.Run("a large frame before authentication closes", func(t *testing.T) {
		c := dial(t, s)
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], saslMaxReceive+1)
		if _, err := c.Write(hdr[:]); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c)
	})
	t.Run("handshake v0: bare tokens", func(t *testing.T) {
		c := dial(t, s)
		if resp := handshake(t, c, 0, "ONESHOT"); resp.ErrorCode != 0 {
			t.Fatalf("handshake v0: error %d", resp.ErrorCode)
		}
		tok := []byte("alice:secret")
		if _, err := c.Write(binary.BigEndian.AppendUint32(nil, uint32(len(tok)))); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(tok); err != nil {
			t.Fatal(err)
		}
		if got := readFrame(t, c); string(got) != "welcome" {
			t.Fatalf("bare answer %q", got)
		}
		checkServesOn(t, c)

		bad := dial(t, s)
		handshake(t, bad, 0, "ONESHOT")
		if _, err := bad.Write(append(binary.BigEndian.AppendUint32(nil, 3), "bad"...)); err != nil {
			t.Fatal(err)
		}
		_ = bad.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := io.ReadFull(bad, make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("a failed bare exchange was answered (%d bytes, %v)", n, err)
		}
	})
}

// TestServerSASLOnPlaintext: the SASL APIs are advertised everywhere and
// refused with ILLEGAL_SASL_STATE where there is nothing to authenticate.
func TestServerSASLOnPlaintext(t *testing.T) {
	s := startServer(t, Config{}, &testHandler{})
	c := dial(t, s)
	if resp := handshake(t, c, 1, "PLAIN"); resp.ErrorCode != errCodeIllegalSASLState {
		t.Fatalf("handshake on a plaintext listener: error %d", resp.ErrorCode)
	}
	checkServesOn(t, c)
}

func TestReadGrowing(t *testing.T) {
	want := make([]byte, 100_000)
	for i := range want {
		want[i] = byte(i * 31)
	}
	got, err := readGrowing(iotest.OneByteReader(bytes.NewReader(want)), len(want))
	if err != nil || !bytes.Equal(*got, want) {
		t.Fatalf("read %d bytes, err %v", len(*got), err)
	}
	if _, err := readGrowing(bytes.NewReader(want[:10]), 20); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short frame: %v", err)
	}
}
