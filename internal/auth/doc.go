// Package auth owns who a client is and what it may do: the SASL
// mechanisms a SASL listener offers (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
// the SCRAM key derivation the stored credentials come from, and the
// Authorizer that decides a principal's operations from the ACLs as Kafka's
// StandardAuthorizer does (the broker asks it for each request).
//
// The server package runs the SaslHandshake/SaslAuthenticate state machine
// and calls an Exchange for each client token; this package knows nothing
// of connections. SCRAM credentials come from the metadata image (Kafka's
// UserScramCredentialRecord), read through a lookup function at the start
// of each exchange, so a credential altered on the controller applies to
// the next login on every broker. PLAIN users come from the listener's
// JAAS configuration, as in Kafka.
//
// Nothing here holds a lock; an Exchange belongs to one connection's
// reader goroutine.
package auth
