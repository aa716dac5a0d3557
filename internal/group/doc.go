// Package group is the classic consumer group coordinator (Kafka's
// GroupCoordinator): group membership and rebalances, committed offsets, and
// their persistence in the internal topic __consumer_offsets.
//
// # Layout
//
//   - state.go: the group state machine (Empty, PreparingRebalance,
//     CompletingRebalance, Stable, Dead) as pure functions of (state, event,
//     now) -> actions. It does no I/O and starts no goroutines, so tests drive
//     it with scripted events and a fake clock.
//   - actor.go: one goroutine per group runs the state machine: it receives
//     events, fires the single timer derived from the state's next deadline,
//     and executes the actions (persist, then reply) in order.
//   - coordinator.go: routes groups to __consumer_offsets partitions, loads a
//     partition's groups and offsets by replaying it, expires offsets.
//   - codec.go: the __consumer_offsets record formats.
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
// A null value (tombstone) deletes the key. Replaying a partition from its
// log start offset to its high watermark rebuilds every group it owns.
//
// # What it must not do
//
// It never mentions Kafka error codes (the broker maps the sentinel errors
// below) and never waits by polling: parked joins and syncs are channels
// completed by events or by the group's timer.
//
// Lock order: Coordinator.mu is never held while calling into a group actor.
package group
