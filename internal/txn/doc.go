// Package txn owns producer identities: it hands out producer ids from blocks
// the metadata log records (so an id is never reused, even across restarts),
// and, when transactions land, the transaction coordinator on
// __transaction_state.
package txn
