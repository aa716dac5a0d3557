// Package txn owns producer identities and transactions: it hands out
// producer ids from blocks the metadata log records (so an id is never
// reused, even across restarts), and runs the KIP-98 transaction coordinator
// on __transaction_state, with KIP-890: verify_only checks for the partition
// leaders' produce path and transaction.version 2 (an epoch bump at every
// end, partitions added by the produces themselves).
//
// # Layout
//
//   - producerid.go: producer-id blocks.
//   - state.go: the per-transactional-id state machine (Empty, Ongoing,
//     PrepareCommit/PrepareAbort, CompleteCommit/CompleteAbort) as pure
//     functions of (metadata, request, now): no I/O, tested with a fake
//     clock. A TV2 transaction (Metadata.TV2) ends under the next epoch,
//     or under a new producer id when the epoch is exhausted (NextProducerID
//     while prepared, PreviousProducerID after, so a retried EndTxn is
//     recognised); a TV2 producer may abort with nothing open.
//   - coordinator.go: routes ids to __transaction_state partitions, persists
//     each state change (Append + WaitDurable) before answering, loads a
//     partition by replaying it (finishing transactions a crash left
//     prepared), ends transactions with markers (markers.go), aborts
//     timed-out transactions, and
//     removes ids idle (Empty, CompleteCommit, CompleteAbort) for longer
//     than transactional.id.expiration.ms with a tombstone, checked every
//     transaction.remove.expired.transaction.cleanup.interval.ms.
//   - markers.go: a transaction's COMMIT/ABORT markers on its partitions
//     through Config.WriteMarkers (the node sends WriteTxnMarkers to each
//     leader, carrying the coordinator epoch), resending the ones that
//     failed with a retriable error until every partition has its marker
//     (as Kafka's TransactionMarkerRequestCompletionHandler); a fenced
//     answer stops the end; transactions a request deadline left prepared
//     are completed in the background every second.
//   - codec.go: Kafka's record formats (TxnMetadataKey v0, TxnMetadataValue
//     v0, and v1 with the KIP-890 tagged fields for TV2 transactions; a null
//     value deletes the id).
//
// Each transactional id has one mutex held across a request's durable
// writes, so a transaction's end (prepare, markers, complete) is atomic to
// the id's other requests, a TxnOffsetCommit's write included
// (CommitOffsets); Coordinator.mu is never held while
// waiting on an id (lock order: an id's mutex before Coordinator.mu, which
// removing an expired id takes to forget it, and before markerState.mu).
// As in Kafka, AddOffsetsToTxn adds the group's
// __consumer_offsets partition (Config.GroupPartition) to the transaction,
// where the group coordinator writes the transactional offsets; its marker
// makes them committed or drops them (the partition's leader applies it
// as it writes it; without WriteMarkers, Config.MarkerWritten tells the
// group coordinator once each marker is durable). The package never mentions
// Kafka error codes: the broker maps the sentinel errors.
package txn
