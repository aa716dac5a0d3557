package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// SASL makes a listener require SASL authentication (a SASL_PLAINTEXT
// listener): a connection may send only ApiVersions and SaslHandshake, then
// the mechanism's exchange, before anything else, as Kafka's
// SaslServerAuthenticator. The mechanisms themselves are the caller's.
type SASL struct {
	// Mechanisms are the enabled mechanisms (sasl.enabled.mechanisms), in
	// the order SaslHandshake lists them.
	Mechanisms []string
	// Start begins one exchange of an enabled mechanism.
	Start func(mechanism string) SASLExchange
	// FailureDelay holds back the answer to a failed authentication
	// (connection.failed.authentication.delay.ms), which slows password
	// guessing; the connection is closed after it.
	FailureDelay time.Duration
}

// SASLExchange is one connection's run of a SASL mechanism.
type SASLExchange interface {
	// Next takes the client's next token and returns the server's. user is
	// the authenticated user once the exchange has succeeded, "" while it
	// goes on. An error ends the exchange: its text is sent to the client.
	Next(token []byte) (challenge []byte, user string, err error)
}

// saslMaxReceive bounds a frame before authentication, as Kafka's
// sasl.server.max.receive.size (512 KiB): an unauthenticated client cannot
// make the broker hold a large frame.
const saslMaxReceive = 512 << 10

// SASL API keys and their versions (Kafka 4.0's), answered by the server
// on every listener.
const (
	saslHandshakeKey    = 17
	saslHandshakeMax    = 1
	saslAuthenticateKey = 36
	saslAuthenticateMax = 2
)

// Kafka error codes of the SASL exchange.
const (
	errCodeUnsupportedSASLMechanism = 33
	errCodeIllegalSASLState         = 34
	errCodeSASLAuthenticationFailed = 58
)

// saslStage is where a connection of a SASL listener is in its exchange.
type saslStage int

const (
	stageHandshake    saslStage = iota // ApiVersions or SaslHandshake expected
	stageVersioned                     // SaslHandshake expected: one ApiVersions only, as Kafka
	stageAuthenticate                  // SaslAuthenticate expected (handshake v1)
	stageRawToken                      // a bare token frame expected (handshake v0)
)

// saslConn is the reader's state of an unauthenticated connection; nil once
// it has authenticated, or on a listener without SASL.
type saslConn struct {
	stage saslStage
	exch  SASLExchange
}

// errSASLFailed ends a connection whose authentication failed.
var errSASLFailed = errors.New("server: SASL authentication failed")

// authenticating handles a request read before the connection authenticated.
// It returns the pending answer, or an error that closes the connection: any
// request but ApiVersions, SaslHandshake and SaslAuthenticate (at their
// stage) is refused as Kafka refuses it, by closing.
func (c *conn) authenticating(req *Request) (*pending, error) {
	st := c.sasl
	switch {
	case req.Key == saslHandshakeKey && (st.stage == stageHandshake || st.stage == stageVersioned):
		body := req.Body.(*kmsg.SASLHandshakeRequest)
		resp := body.ResponseKind().(*kmsg.SASLHandshakeResponse)
		resp.SupportedMechanisms = slices.Clone(c.s.cfg.SASL.Mechanisms)
		if !slices.Contains(c.s.cfg.SASL.Mechanisms, body.Mechanism) {
			resp.ErrorCode = errCodeUnsupportedSASLMechanism
			return c.answerThenClose(req, resp, c.s.cfg.SASL.FailureDelay), nil
		}
		st.exch = c.s.cfg.SASL.Start(body.Mechanism)
		st.stage = stageAuthenticate
		if req.Version == 0 {
			st.stage = stageRawToken // KIP-43: bare tokens follow
		}
		return answered(req, resp), nil
	case req.Key == saslAuthenticateKey && st.stage == stageAuthenticate:
		body := req.Body.(*kmsg.SASLAuthenticateRequest)
		resp := body.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		challenge, user, err := c.exchange(body.SASLAuthBytes)
		if err != nil {
			resp.ErrorCode = errCodeSASLAuthenticationFailed
			resp.ErrorMessage = kmsg.StringPtr(err.Error())
			c.log.Info("SASL authentication failed", "err", err)
			return c.answerThenClose(req, resp, c.s.cfg.SASL.FailureDelay), nil
		}
		resp.SASLAuthBytes = challenge
		if user != "" {
			c.authenticated(user)
		}
		return answered(req, resp), nil
	case req.Key == apiVersionsKey && st.stage == stageHandshake:
		// The caller answers it as on any connection. Once one has been
		// answered without an error, another is refused, as Kafka refuses
		// it, so that a client cannot keep an unauthenticated connection
		// open with them; one answered UNSUPPORTED_VERSION may be retried.
		return nil, nil
	}
	return nil, fmt.Errorf("server: request key %d during SASL authentication", req.Key)
}

// rawToken handles a bare token frame after SaslHandshake v0 and returns the
// bare answer, or closes the connection after the failure delay: without a
// Kafka frame there is no way to tell the client why.
func (c *conn) rawToken(buf []byte) *pending {
	challenge, user, err := c.exchange(buf)
	if err != nil {
		c.log.Info("SASL authentication failed", "err", err)
		delay := c.s.cfg.SASL.FailureDelay
		return &pending{req: &Request{Key: -1}, closeAfter: make(chan struct{}), done: func(ctx context.Context) kmsg.Response {
			sleep(ctx, delay)
			return nil
		}}
	}
	if user != "" {
		c.authenticated(user)
	}
	return &pending{req: &Request{Key: -1}, raw: challenge, rawReply: true}
}

// exchange runs the mechanism on one token; a panic in it fails the
// login (and closes the connection) rather than the process.
func (c *conn) exchange(token []byte) (challenge []byte, user string, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic in a SASL mechanism", "panic", r, "stack", string(debug.Stack()))
			challenge, user, err = nil, "", errors.New("Authentication failed: internal error")
		}
	}()
	return c.sasl.exch.Next(token)
}

// authenticated ends the exchange: later requests carry the user.
func (c *conn) authenticated(user string) {
	info := *c.info.Load()
	info.User = user
	c.info.Store(&info)
	c.sasl = nil
	c.log.Debug("SASL authenticated", "user", user)
}

// illegalSASLState answers a SaslHandshake or SaslAuthenticate on a
// connection that is not authenticating (a plaintext listener, or after
// the exchange), as Kafka's KafkaApis does.
func illegalSASLState(req *Request) *pending {
	resp := req.Body.ResponseKind()
	switch r := resp.(type) {
	case *kmsg.SASLHandshakeResponse:
		r.ErrorCode = errCodeIllegalSASLState
	case *kmsg.SASLAuthenticateResponse:
		r.ErrorCode = errCodeIllegalSASLState
		r.ErrorMessage = kmsg.StringPtr("SaslAuthenticate request received after successful authentication")
	}
	return answered(req, resp)
}

func answered(req *Request, resp kmsg.Response) *pending {
	return &pending{req: req, done: func(context.Context) kmsg.Response { return resp }}
}

// answerThenClose answers after delay; the reader reads nothing more and the
// connection closes once the answer is written.
func (c *conn) answerThenClose(req *Request, resp kmsg.Response, delay time.Duration) *pending {
	return &pending{req: req, closeAfter: make(chan struct{}), done: func(ctx context.Context) kmsg.Response {
		sleep(ctx, delay)
		return resp
	}}
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// handshake runs the TLS handshake of a connection of an SSL listener
// (nothing on another), bounded by the idle timeout, and takes a client
// certificate's subject as the user when there is no SASL to name one.
func (c *conn) handshake() error {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.IdleTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 && c.s.cfg.SASL == nil {
		info := *c.info.Load()
		info.User = certs[0].Subject.String()
		c.info.Store(&info)
	}
	return nil
}
