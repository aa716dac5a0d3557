// Package replica owns the partitions hosted on this node: each partition's
// log, its role (leader today; followers arrive with multi-node replication),
// its high watermark, the idempotent-producer state validated under the
// partition's append lock, and the parked operations that wait on it
// (acks=all produces waiting for durability, long-poll fetches waiting for
// data).
//
// Lock order: Manager.mu before Partition.mu. No lock is held across an fsync
// or a channel send that can block.
package replica
