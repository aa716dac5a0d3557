// Package statelog is how a coordinator (groups on __consumer_offsets,
// transactions on __transaction_state) reaches the partitions that hold its
// state, and who owns a partition's state as leadership moves.
//
//   - Log: the small interface to one state partition this node leads:
//     append a batch, wait until it is committed (the high watermark passed
//     it: on disk on every in-sync replica), read the partition from its
//     start to its end to load it. Replica is the implementation over a
//     replica.Partition, Memory the one over a slice, so coordinator logic
//     is tested without a disk or a cluster.
//   - Owner: per coordinator, the load and unload of its partitions. When
//     this node becomes leader of a partition (or is deposed and elected
//     again) the owner loads it, replaying it to its log end, and
//     requests meanwhile get ErrLoading (COORDINATOR_LOAD_IN_PROGRESS); when
//     leadership moves away it unloads it, and requests get ErrNotLeader
//     (NOT_COORDINATOR). A leader epoch bumped while this node keeps leading
//     (a reassignment dropping a follower) changes nothing: a Log stands
//     for one unbroken leadership, named by the epoch it began in, so the
//     state stays loaded and writes in flight are acknowledged, as Kafka's
//     coordinators stay active then. Loads and unloads run on the owner's
//     one goroutine, in the order leadership changed, never on the
//     metadata apply path.
//
// # The idiom both coordinators share
//
// A coordinator's state is split by key (a group, a transactional id); each
// key has one owner of its state through which every request on it runs in
// turn, and that owner belongs to a loaded partition: an unload stops it and
// answers what it had parked with NOT_COORDINATOR. The state machines are
// pure (state + event -> state + effects); the I/O they ask for goes through
// a Log, whose writes are answered only once committed, so a new leader that
// loads the partition has every write a client was told succeeded.
//
// # What it must not do
//
// It knows no Kafka error codes and no record formats of the coordinators:
// records are opaque key/value pairs (a nil value is a tombstone).
//
// Lock order: Owner.mu is never held while calling a load or unload
// function, or into a Log.
package statelog
