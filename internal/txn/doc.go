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
//     each state change through a statelog.Log and answers only once it is
//     committed (the high watermark passed it: on disk on every in-sync
//     replica), loads a partition when this node becomes its leader
//     (statelog.Owner; replaying it to its log end and finishing the
//     transactions a crash or a leader change left prepared) and unloads it
//     when leadership moves, ends transactions with markers (markers.go),
//     aborts timed-out transactions, and
//     removes ids idle (Empty, CompleteCommit, CompleteAbort) for longer
//     than transactional.id.expiration.ms with a tombstone, checked every
//     transaction.remove.expired.transaction.cleanup.interval.ms.
//   - actor.go: the actor of one transactional id.
//   - markers.go: a transaction's COMMIT/ABORT markers on its partitions
//     through Config.WriteMarkers (the node sends WriteTxnMarkers to each
//     leader, carrying the coordinator epoch), resending the ones that
//     failed with a retriable error until every partition has its marker
//     (as Kafka's TransactionMarkerRequestCompletionHandler); a fenced
//     answer stops the end; transactions an end left prepared (a request
//     deadline, leaders unreachable) are completed in the background every
//     second, on their actor when it is idle.
//   - codec.go: Kafka's record formats (TxnMetadataKey v0, TxnMetadataValue
//     v0, and v1 with the KIP-890 tagged fields for TV2 transactions; a null
//     value deletes the id).
//
// # Concurrency: one actor per transactional id
//
// Each transactional id is owned by an actor goroutine that runs its
// requests one at a time, each to its end, so a transaction's end (prepare,
// markers, complete) is atomic to the id's other requests, a
// TxnOffsetCommit's write included (CommitOffsets). It is the group
// coordinator's idiom (one actor per group), chosen for both over a mutex
// per id held across the writes: no lock is held across I/O, an unload
// stops an id's actor without waiting for what it runs (its Log is deposed,
// so its writes fail: NOT_COORDINATOR), a loaded prepared transaction is
// completed by its actor before any request, and a sweep (timeouts,
// expiry) runs on an id only when its actor is idle. An idle actor costs a
// goroutine per loaded id. Coordinator.mu is never held while waiting on an
// actor; an actor takes it (forgetting an expired id), and markerState.mu
// (noting a transaction left prepared), which is never held while waiting. A TxnOffsetCommit
// waits, on the id's actor, for the group's actor: txn actor, then group
// actor, then partition, never the other way.
//
// As in Kafka, AddOffsetsToTxn adds the group's
// __consumer_offsets partition (Config.GroupPartition) to the transaction,
// where the group coordinator writes the transactional offsets; its marker
// makes them committed or drops them (the partition's leader applies it
// as it writes it; without WriteMarkers, Config.MarkerWritten tells the
// group coordinator once each marker is durable). The package never mentions
// Kafka error codes: the broker maps the sentinel errors.
package txn
