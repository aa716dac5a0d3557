// Package auth owns client authentication: the SASL mechanisms a
// SASL_PLAINTEXT listener offers (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and
// the SCRAM key derivation the controller's credentials are stored in.
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
