// Package server owns the Kafka listener: accepting TCP connections, connection
// limits (total and per IP), request framing, request-header parsing, decoding of
// request bodies with kmsg, the ApiVersions API, and writing responses in request
// order. It dispatches every other request to a Handler and knows nothing about
// topics, partitions or groups: the broker implements Handler.
//
// # Wire format
//
// Every request is a frame:
//
//	+-----------+---------+-------------+----------------+-----------+---------------+------+
//	| size int32| key i16 | version i16 | correlation i32| client id | tagged fields | body |
//	+-----------+---------+-------------+----------------+-----------+---------------+------+
//	            |<--------------------------- size bytes --------------------------------->|
//
// The client id is a nullable int16-length string (absent for ControlledShutdown v0,
// request header v0); tagged fields follow it only when the request version is
// flexible (KIP-482, request header v2). A response is size, correlation id, one
// empty tagged-field byte when the response is flexible, and the body. ApiVersions
// responses always use response header v0 so that a client can read them before it
// knows which versions the broker speaks.
//
// # Connections
//
// Each connection has a reader goroutine and a writer goroutine. The reader reads a
// frame into a pooled buffer, decodes it, calls Handler.Handle serially and queues
// the returned Completion; the writer calls the Completions in order, encodes and
// writes the responses, and only then returns the request buffer to the pool. At
// most Config.MaxInFlightPerConn requests are between "read" and "answered"; when
// the limit is reached the reader stops reading (TCP backpressure). A malformed
// frame, an unknown API key, or an unsupported version closes the connection, as
// Apache Kafka does.
//
// A response with a throttle time (a client quota, KIP-219) mutes the
// connection for that time: the reader reads and the writer answers nothing
// more until it has passed. A client too old to throttle itself (a request
// version before KIP-219's) gets the throttled response only at the end of
// the time, as Kafka delays it; Request.Mute does the same for a throttled
// request that gets no response.
//
// # Authentication and TLS
//
// A listener with Config.SASL runs Kafka's SASL state machine in the
// reader (sasl.go): one ApiVersions, SaslHandshake, then SaslAuthenticate
// (or bare tokens after a v0 handshake) until the mechanism names the user;
// any other request before that closes the connection, and so does a failed
// login once its answer is written. Frames before the login are bounded and
// their buffers grow only as their bytes arrive. Every request then carries
// the user in its ConnInfo. A listener with Config.TLS wraps its
// connections in TLS; a client certificate names the user when there is no
// SASL. SaslHandshake and SaslAuthenticate are the server's on every
// listener: elsewhere they are answered ILLEGAL_SASL_STATE.
//
// # Decoder limits
//
// Before kmsg decodes a body, limits.go walks it with the request's layout
// (layouts_gen.go, generated from franz-go's protocol definitions by
// gen_layouts.go) and refuses, by closing the connection as Kafka does, an
// array of more than 1,000,000 elements, a tag section of more than 10,000
// fields (the header's is checked by skipTags), and any count or length that
// runs past the frame. The walk reads lengths only and allocates nothing.
//
// # Ownership and goroutines
//
// The Server owns the accept loop (run by the caller of Serve) and one goroutine
// per connection, which owns that connection's writer goroutine. Shutdown closes
// the listener and every connection and waits for all of them. Locks: Server.mu
// guards the connection registry only and is never held across I/O; there is no
// other lock, so there is no lock order to respect.
//
// This package must not import the broker or any domain package; it maps no domain
// errors and uses Kafka error codes only for ApiVersions.
package server
