// Package replica owns the partitions hosted on this node: each partition's
// log, its role (leader today; followers arrive with multi-node replication),
// its high watermark, the idempotent-producer state validated under the
// partition's append lock, and the parked operations that wait on it
// (acks=all produces waiting for durability, long-poll fetches waiting for
// data).
//
// It also owns the partition side of transactions (KIP-98, txn.go): a
// transactional batch opens its producer's transaction on the partition
// (producer state remembers its first offset, which pins the last stable
// offset, LSO); AppendTxnMarker, called by the transaction coordinator,
// writes the COMMIT/ABORT control batch, ends the transaction and moves the
// LSO. Aborted transactions {producer id, first offset, marker offset} are
// kept in memory for read_committed fetches (AbortedTransactions) and in the
// append-only, CRC-per-entry file aborted.txnindex, rebuilt from the log's
// control batches when missing or corrupt, trimmed below the log start
// offset, and pruned of the transactions log compaction found with no
// record left (cleaner.go; compaction removes an ABORT marker only after
// that, so no entry outlives its marker). Producer snapshots (format GPS2; GPS1 still read) carry each
// producer's open transaction, and log replay reopens and closes
// transactions from transactional and control batches, so an open
// transaction keeps the LSO pinned across restarts.
//
// Lock order: Manager.mu before Partition.mu before Partition.txnMu. No lock
// is held across an fsync or a channel send that can block, except that
// AppendTxnMarker holds Partition.mu across the fsyncs of an ABORT marker
// and its index entry (markers are rare), so that no producer snapshot can
// be taken past a durable marker whose index entry is not yet durable.
package replica
