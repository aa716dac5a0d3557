package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Request is one decoded client request.
//
// Ownership: Body may alias the pooled frame buffer the request was read into
// (kmsg decoding aliases byte slices such as ProduceRequest Records; strings are
// copied). That buffer stays valid until the request's Completion has returned;
// anything that must outlive the Completion (a parked produce after its append, a
// tail cache) must copy the bytes it keeps.
type Request struct {
	// Key and Version are the API key and version from the request header.
	Key, Version int16
	// CorrelationID is echoed in the response header.
	CorrelationID int32
	// ClientID is the request header's client id, "" when null.
	ClientID string
	// Body is the decoded request; Body.GetVersion() == Version.
	Body kmsg.Request
	// Conn describes the connection the request arrived on.
	Conn *ConnInfo
	// Size is the frame's size in bytes, header included (Kafka's
	// request size, which produce quotas count).
	Size int
	// Mute stops reading the connection's requests for d (a throttled
	// request that gets no response, as a Produce with acks=0). A
	// response with a throttle time mutes it without being asked.
	Mute func(d time.Duration)
	// Close closes the connection: how Kafka tells a client that reads no
	// response (a Produce with acks=0) that its request failed.
	Close func()

	// apiVersionsTooNew marks an ApiVersions request at a version above the
	// one supported: its body is not decoded (its format is unknown) and it is
	// answered with UNSUPPORTED_VERSION in the v0 format.
	apiVersionsTooNew bool
}

// ConnInfo describes a client connection. A ConnInfo is immutable: when an
// ApiVersions request (v3+) names the client software, later requests on the
// connection carry a new ConnInfo, so a ConnInfo may be read from any goroutine.
type ConnInfo struct {
	// ID is unique per Server for the life of the process.
	ID uint64
	// RemoteAddr is the client's address.
	RemoteAddr net.Addr
	// ClientSoftwareName and ClientSoftwareVersion come from the latest
	// ApiVersions request v3+ (KIP-511); "" until one is seen.
	ClientSoftwareName, ClientSoftwareVersion string
	// Listener is the name of the listener the connection came in on
	// (Config.Name).
	Listener string
	// User is the SASL-authenticated user; "" on a connection that did not
	// authenticate (Kafka's ANONYMOUS principal).
	User string
}

// Completion produces the response to a request. The server calls the
// Completions of a connection one at a time, in request order, from the
// connection's writer goroutine, so a Completion may block (an acks=all produce
// waiting for replication, a long-poll fetch) while later requests on the same
// connection are already being handled.
//
// Every Completion returned by Handle is called exactly once, also when the
// connection has closed: ctx is then already cancelled and the response is
// discarded, so a Completion can always release what Handle reserved. ctx ends
// when the connection closes or the server shuts down; a Completion must return
// promptly after that.
//
// A nil response means "send nothing" (Produce with acks=0). A non-nil response
// must be of the request's kind; the server sets its version to the request's.
type Completion func(ctx context.Context) kmsg.Response

// Handler handles the requests of every API key except ApiVersions, which the
// server answers itself.
//
// Handle is called serially per connection, in request order (Kafka's
// per-connection ordering: an idempotent producer's pipelined batches must be
// appended in order), and must do the order-sensitive part of the work (e.g. the
// append) before returning; the returned Completion does the waiting. Handle may
// be called concurrently for different connections. A nil Completion means "send
// nothing". ctx is the connection's context. A panic in Handle or in a Completion
// is a bug: the server recovers, logs it at error level and closes the connection.
type Handler interface {
	Handle(ctx context.Context, req *Request) Completion
	// APIVersions lists the API keys and version ranges Handle accepts. It is
	// called once, by New. Keys unknown to kmsg are dropped, maximum versions
	// are capped at kmsg's, and ApiVersions (key 18) is replaced by the server's
	// own entry (versions 0-4).
	APIVersions() []kmsg.ApiVersionsResponseApiKey
}

// Errors from parseRequest. They close the connection; they are never sent to
// the client.
var (
	errShortHeader        = errors.New("server: request header truncated")
	errUnknownAPIKey      = errors.New("server: unknown api key")
	errUnsupportedVersion = errors.New("server: unsupported api version")
	errMalformedHeader    = errors.New("server: malformed request header")
	errMalformedBody      = errors.New("server: malformed request body")
)

const (
	apiVersionsKey = 18
	// apiVersionsMax is the highest ApiVersions version we answer (Kafka 4.0's).
	apiVersionsMax = 4
	// minHeaderBytes is api key + api version + correlation id: the shortest
	// request header (v0, used only by ControlledShutdown v0).
	minHeaderBytes = 8
)

// parseRequest decodes one frame body (the bytes after the size) into a Request.
// maxVersion reports the highest version accepted for a key and whether the key
// is handled at all. The returned Request's Body aliases buf. parseRequest never
// allocates more than a small multiple of len(buf): every length is checked
// against the bytes left before use (kmsg's decoders do the same for bodies).
func parseRequest(buf []byte, maxVersion func(key int16) (int16, bool)) (*Request, error) {
	if len(buf) < minHeaderBytes {
		return nil, errShortHeader
	}
	req := &Request{
		Key:           int16(binary.BigEndian.Uint16(buf[0:])),
		Version:       int16(binary.BigEndian.Uint16(buf[2:])),
		CorrelationID: int32(binary.BigEndian.Uint32(buf[4:])),
	}
	maxV, ok := maxVersion(req.Key)
	if !ok {
		return nil, fmt.Errorf("%w %d", errUnknownAPIKey, req.Key)
	}
	body := kmsg.RequestForKey(req.Key)
	if body == nil {
		return nil, fmt.Errorf("%w %d", errUnknownAPIKey, req.Key)
	}
	switch {
	case req.Version < 0:
		return nil, fmt.Errorf("%w: key %d version %d", errUnsupportedVersion, req.Key, req.Version)
	case req.Key == apiVersionsKey && req.Version > min(maxV, body.MaxVersion()):
		// Answered with UNSUPPORTED_VERSION rather than a close (KIP-511).
		req.apiVersionsTooNew = true
	case req.Version > maxV || req.Version > body.MaxVersion():
		return nil, fmt.Errorf("%w: key %d version %d", errUnsupportedVersion, req.Key, req.Version)
	}
	body.SetVersion(req.Version)
	// For ApiVersions above our maximum, the request header is still v2 from
	// v3 on; kmsg's IsFlexible says so for any version >= 3.
	flexible := body.IsFlexible()

	rest := buf[minHeaderBytes:]
	// ControlledShutdown v0 uses request header v0: no client id.
	if !(req.Key == 7 && req.Version == 0) {
		if len(rest) < 2 {
			return nil, fmt.Errorf("%w: client id length", errMalformedHeader)
		}
		n := int16(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		switch {
		case n == -1: // null
		case n < 0 || int(n) > len(rest):
			return nil, fmt.Errorf("%w: client id length %d with %d bytes left", errMalformedHeader, n, len(rest))
		default:
			req.ClientID = string(rest[:n])
			rest = rest[n:]
		}
	}
	if flexible {
		var err error
		if rest, err = skipTags(rest); err != nil {
			return nil, err
		}
	}
	if req.apiVersionsTooNew {
		req.Body = body // version set, fields zero: the body format is unknown
		return req, nil
	}
	if av, ok := body.(*kmsg.ApiVersionsRequest); ok && flexible {
		// Decoded here rather than by kmsg: it is the one flexible request
		// every client sends before authenticating, and kmsg before v1.15.1
		// looped up to 2^32 times on a huge tagged-field count in a
		// truncated body (seconds of CPU per frame); our decoder bounds the
		// count, as checkBodyLimits does for every other request.
		if err := readApiVersionsBody(av, rest); err != nil {
			return nil, fmt.Errorf("%w: key %d version %d: %w", errMalformedBody, req.Key, req.Version, err)
		}
		req.Body = body
		return req, nil
	}
	// Kafka's limits on array lengths and tag-section sizes, checked
	// before kmsg allocates for them.
	if err := checkBodyLimits(req.Key, req.Version, rest); err != nil {
		return nil, fmt.Errorf("%w: key %d version %d: %w", errMalformedBody, req.Key, req.Version, err)
	}
	if err := body.ReadFrom(rest); err != nil {
		return nil, fmt.Errorf("%w: key %d version %d: %w", errMalformedBody, req.Key, req.Version, err)
	}
	req.Body = body
	return req, nil
}

// skipTags skips a KIP-482 tagged-field section (no request-header tags are
// defined yet, so all are unknown) and returns the bytes after it. Like
// Kafka's generated readers it refuses more than maxTaggedFields fields.
func skipTags(b []byte) ([]byte, error) {
	n, b, err := uvarint(b)
	if err != nil {
		return nil, err
	}
	// Each tagged field takes at least two bytes (tag, size).
	if n > uint64(len(b))/2 {
		return nil, fmt.Errorf("%w: %d tagged fields with %d bytes left", errMalformedHeader, n, len(b))
	}
	if n > maxTaggedFields {
		return nil, fmt.Errorf("%w: %w: %d, at most %d", errMalformedHeader, errTooManyTaggedFields, n, maxTaggedFields)
	}
	for range n {
		if _, b, err = uvarint(b); err != nil { // tag
			return nil, err
		}
		var size uint64
		if size, b, err = uvarint(b); err != nil {
			return nil, err
		}
		if size > uint64(len(b)) {
			return nil, fmt.Errorf("%w: tagged field of %d bytes with %d bytes left", errMalformedHeader, size, len(b))
		}
		b = b[size:]
	}
	return b, nil
}

// uvarint reads a Kafka unsigned varint, which is at most 32 bits (5 bytes).
func uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 || n > 5 || v > 1<<32-1 {
		return 0, nil, fmt.Errorf("%w: bad uvarint", errMalformedHeader)
	}
	return v, b[n:], nil
}

// readApiVersionsBody decodes an ApiVersions v3 or v4 body: ClientSoftwareName
// and ClientSoftwareVersion (compact strings) and tagged fields.
func readApiVersionsBody(av *kmsg.ApiVersionsRequest, b []byte) error {
	var err error
	if av.ClientSoftwareName, b, err = compactString(b); err != nil {
		return err
	}
	if av.ClientSoftwareVersion, b, err = compactString(b); err != nil {
		return err
	}
	_, err = skipTags(b)
	return err
}

// compactString reads a non-null KIP-482 compact string (uvarint length + 1).
func compactString(b []byte) (string, []byte, error) {
	n, b, err := uvarint(b)
	if err != nil {
		return "", nil, err
	}
	if n == 0 || n-1 > uint64(len(b)) {
		return "", nil, fmt.Errorf("%w: compact string length %d with %d bytes left", errMalformedHeader, int64(n)-1, len(b))
	}
	return string(b[:n-1]), b[n-1:], nil
}
