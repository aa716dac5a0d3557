// Package replica owns the partitions hosted on this node: each partition's
// log, its role (leader or follower, from the metadata image), its high
// watermark, the idempotent-producer state validated under the
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
// Transaction verification (KIP-890, producer.go): before a transactional
// batch opens its producer's transaction here, the broker checks the
// partition with the transaction coordinator; StartTxnVerification hands
// out a guard (kept in memory under Partition.mu) that AppendVerified must
// present, and a marker for the producer withdraws it, so a produce
// verified just before its transaction ended cannot open a hanging one.
//
// The high watermark never passes a batch or marker whose write or fsync
// failed: an append that must be fsynced before it is answered
// (flush.messages, an end-transaction marker) fsyncs without the append
// lock and moves the high watermark only when the fsync succeeded; while
// such an fsync is in flight every other append waits for an fsync covering
// it too (group commit) before it becomes visible. A failed write or fsync
// is sticky in the log (commitlog.ErrLogFailed, KAFKA_STORAGE_ERROR at the
// broker), and the node takes the whole data directory offline
// (Manager.SetOffline, ErrLogDirOffline) until it restarts: the partition
// refuses writes until it is reopened, a produce or coordinator write
// parked for the high watermark fails with ErrLogDirOffline (no follower
// or leadership change will end its wait), and a retry
// is refused before the duplicate check, so it can neither duplicate the
// batch nor be answered as written. A transaction ended by a marker keeps
// pinning the LSO until the high watermark passes its marker (Kafka's
// unreplicated transactions), and an ABORT is in the in-memory index before
// that, so read_committed fetches never see aborted records unlisted.
//
// Replication (replication.go): a leader records each follower's fetch
// offset, which the follower sends only once the bytes below it are fsynced,
// and its high watermark is the smallest log end over the ISR, so acks=all
// (WaitReplicated) means "on disk on every ISR member"; a single replica is
// its own ISR and keeps the publish path above unchanged. A follower appends
// the leader's batches unchanged (AppendReplicated: CRC and offset
// continuity checked, producer state and transactions replayed as recovery
// does), fsyncs, takes the leader's high watermark capped by its durable log
// end, and truncates a divergent tail (TruncateTo: producer state and the
// aborted-transaction index rewound). A replica elected leader starts its
// new epoch in the epoch cache at its log end at once (as Kafka's
// makeLeader), so OffsetForLeaderEpoch and a returning old leader's fetch
// see where the old epoch ended here. A follower's fetch starts at its
// FetchPosition (leader, leader epoch, fsynced log end, last epoch) and its
// answer is applied (AppendFetched, TruncateFetched,
// SetFetchedHighWatermark) only while the partition is still there; an
// acks=all produce is acknowledged only while its node has led without a
// break since the append's epoch (WaitReplicatedInEpoch), so a deposed
// leader acknowledges nothing. A leader also tracks when each follower last
// caught up (Kafka's lastCaughtUpTime) and proposes ISR
// changes (ProposeISR): members behind for replica.lag.time.max.ms leave,
// replicas that reached the high watermark join; the members a change in
// flight adds count for the high watermark until it is settled
// (ISRProposalSent, ISRProposalAnswered: Kafka's maximal ISR). High watermarks are
// checkpointed (checkpoint.go, replication-offset-checkpoint) and a
// replicated partition reopens at its checkpointed one. The network side, one
// fetcher per leader broker and the AlterPartition sender, lives in
// package node: this package knows no wire format.
//
// All partition files (log, snapshots, the transaction index) go through
// ManagerConfig.FS (package vfs), so tests can inject faults.
//
// Lock order: Manager.mu before Partition.mu before Partition.txnMu. No lock
// is held across a channel send that can block, nor across a segment fsync
// except the one of a roll inside commitlog.Log.Append (it closes the old
// segment, once per segment.bytes). Small
// files are written and fsynced under Partition.mu: producer snapshots at a
// roll, and an ABORT's entry in aborted.txnindex (markers are rare), so
// that no producer snapshot can be taken past a marker whose index entry is
// not yet durable.
package replica
