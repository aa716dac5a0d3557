// Package group is the consumer group coordinator (Kafka's
// GroupCoordinator): group membership and rebalances, of the classic
// protocol and of KIP-848's, committed offsets, and their persistence in
// the internal topic __consumer_offsets.
//
// # Layout
//
//   - state.go: the group state machine (Empty, PreparingRebalance,
//     CompletingRebalance, Stable, Dead) as pure functions of (state, event,
//     now) -> actions. It does no I/O and starts no goroutines, so tests drive
//     it with scripted events and a fake clock.
//   - actor.go: one goroutine per group runs the state machine: it receives
//     events, fires the single timer derived from the state's next deadline,
//     and executes the actions (persist, then reply) in order. The
//     transaction coordinator uses the same idiom, an actor per
//     transactional id (see package txn for why).
//
// # Liveness
//
// A session measures the client, not the coordinator: members parked in
// JoinGroup or SyncGroup are never expired by their session (Kafka's
// shouldKeepAlive), sessions restart when the assignment is delivered after
// its persist (Kafka's propagateAssignment), and when the timer fires the
// actor first runs the events that queued while it was busy (a slow
// persist), so a heartbeat that waited on the actor is not beaten by a
// deadline it met. A static member (KIP-345) restarted while the group is
// Stable gets its assignment back at the same generation unless its
// protocols change the protocol the group selects; its metadata bytes are
// not compared (clients put their generation in them).
//   - coordinator.go: routes groups to __consumer_offsets partitions, loads a
//     partition's groups and offsets by replaying it to its log end when
//     this node becomes the partition's leader and stops them when
//     leadership moves (statelog.Owner; COORDINATOR_LOAD_IN_PROGRESS while
//     loading, NOT_COORDINATOR after), expires offsets. Every write goes
//     through the partition's statelog.Log and is answered only once
//     committed (the high watermark passed it); a failed write is mapped as
//     Kafka maps it (not the leader: NOT_COORDINATOR; too few in-sync
//     replicas or a timeout: COORDINATOR_NOT_AVAILABLE).
//   - txn.go: transactional offset commits (TxnOffsetCommit): written at
//     once as the producer's transactional records, pending until the
//     transaction's marker on the partition commits or drops them.
//   - codec.go: the __consumer_offsets record formats.
//   - consumer.go, assign.go: KIP-848 consumer groups as a pure state
//     machine (member epochs, reconciliation, revocation before
//     reassignment, fencing, static members) and the server-side
//     assignors; consumerapi.go runs ConsumerGroupHeartbeat on the group's
//     actor, which persists every change (consumercodec.go, Kafka's record
//     kinds 3-8) before the answer. A group holds one protocol at a time:
//     groupState.cg is set for a consumer group, whose classic state is
//     then Empty.
//
// # On-disk format
//
// Records of __consumer_offsets (cleanup.policy=compact) use Kafka's formats:
//
//	offset commit:  key   v1 {group, topic, partition}
//	                value v3 {offset, leaderEpoch, metadata, commitTimestamp}
//	group metadata: key   v2 {group}
//	                value v3 {protocolType, generation, protocol, leader,
//	                          currentStateTimestamp, members[...]}
//
//	consumer groups: keys v3-v8, see consumercodec.go
//
// A null value (tombstone) deletes the key. Offset commits of a
// TxnOffsetCommit are in transactional batches of the producer (its id and
// epoch, the transactional attribute); the transaction coordinator's
// COMMIT/ABORT control batch for that producer, written to the same
// partition, commits or drops them. Replaying a partition from its log
// start offset to its high watermark rebuilds every group it owns,
// transactional offsets still pending included.
//
// # What it must not do
//
// It never mentions Kafka error codes (the broker maps the sentinel errors
// below) and never waits by polling: parked joins and syncs are channels
// completed by events or by the group's timer.
//
// Lock order: Coordinator.mu and Coordinator.txnMu are never held while
// calling into a group actor or the statelog.Owner. A TxnOffsetCommit runs
// on its transactional id's actor in the transaction coordinator (txn
// actor, then group actor, then partition), the order in which that
// coordinator reports a marker; a group actor never calls the transaction
// coordinator.
package group
