// Package commitlog owns one partition's log on disk: segment files of
// record batches in Kafka's layout, sparse offset and time indexes, the
// leader-epoch checkpoint, the log start offset, crash recovery, segment
// rolling, retention, truncation and group-commit fsync.
//
// It stores batches as raw bytes (see package record) and never decodes
// records on the append or read paths. It knows nothing of replication,
// high watermarks or Kafka error codes: the replica layer above decides what
// to append and how far readers may read (ReadUpTo).
//
// # On-disk format
//
//	<dir>/
//	  00000000000000000000.log        batches exactly as appended (segment 0)
//	  00000000000000000000.index      sparse offset index of that segment
//	  00000000000000000000.timeindex  sparse time index of that segment
//	  00000000000000004711.log        next segment: name = base offset, 20 digits
//	  ...
//	  leader-epoch-checkpoint         Kafka text format
//	  log-start-offset                our own: one decimal line
//	  cleaner-offset-checkpoint       our own: the compaction clean point, one decimal line
//	  .clean-shutdown                 present only between Close and Open
//	  <base>-<end>.cleaned            compaction output being written (temporary)
//	  <base>-<end>.swap               compaction output past the swap point (temporary)
//
//	.log:        | batch | batch | batch | ...     (each batch: record v2,
//	             baseOffset and partitionLeaderEpoch patched on append; a
//	             follower's AppendReplicated writes the leader's batch as is)
//
//	.index:      | relOffset uint32 | position uint32 | ...   (8 bytes/entry)
//	             relOffset = batch baseOffset - segment base offset;
//	             position = byte position of that batch in the .log.
//	             One entry when more than IndexIntervalBytes were appended
//	             since the previous entry. Strictly increasing in both.
//
//	.timeindex:  | timestamp int64 | relOffset uint32 | ...   (12 bytes/entry)
//	             the segment's max timestamp so far and the (last) offset of
//	             the batch that set it; monotone; the last entry holds the
//	             segment's max timestamp once the segment is closed.
//
//	leader-epoch-checkpoint:   0            (version)
//	                           2            (number of entries)
//	                           0 0          (epoch startOffset)
//	                           3 1500
//
// All integers in binary files are big endian. Index files are caches:
// they are written whole (tmp file, fsync, rename) when a segment is closed
// (rolled, or at Close for the active one), kept in memory while open, and
// rebuilt from the .log when missing or inconsistent.
//
// # Recovery
//
// Close fsyncs and writes .clean-shutdown; Open removes it. Without the
// marker, Open validates every batch of the last segment (length, magic,
// CRC-32C, increasing offsets) and truncates the file at the first torn or
// corrupt batch, rebuilding that segment's indexes. With Config.Preallocate
// (Kafka's preallocate) the active segment's file runs past its batches
// into zeros written ahead; a zero batch length ends the scan like a torn batch,
// so the zeros are cut, and a roll or Close cuts them before the segment's
// fsync, so a closed segment's file is exactly its batches. Older segments were
// fsynced when they were rolled, so they need no scan.
//
// # Compaction
//
// Log.Compact is the mechanism of Kafka's log cleaner (the policy, when and
// which partition, is package replica's). It reads the closed segments up
// to the first one newer than min.compaction.lag.ms (never the active one)
// or holding an offset at or past the last stable offset (an open
// transaction may still abort), builds key -> highest offset, and rewrites
// each batch with only the records that are the latest for their key
// (record.Filter): base offset, lastOffsetDelta, producer fields and codec
// are kept, so offsets never change and stored batches may have offset gaps
// (record.Validate accepts NumRecords-1 <= lastOffsetDelta). Records without
// a key are dropped; tombstones are dropped once the largest timestamp of
// their segment is older than delete.retention.ms; a batch left empty is
// dropped unless it is its producer's last data batch or a marker after it
// (kept with no records so idempotence and epoch state replay). Consecutive
// segments are merged while their sizes sum to at most segment.bytes; the
// merged segment keeps the first one's name.
//
// Transactions (Kafka's CleanedTransactionMetadata) are followed from the
// aborted transactions the caller passes (TxnState): a transactional batch
// of a producer between an aborted transaction's first offset and its ABORT
// marker belongs to it, never enters the key map and is removed whole. A
// COMMIT or ABORT marker stays while a batch of its transaction is left
// before it; once none is, it is rewritten with a KIP-534 delete horizon
// (attribute bit 6, base timestamp = now + delete.retention.ms), and the
// first pass after the horizon removes it. The log keeps no transaction
// index: CompactStats.AbortedDone tells the caller which aborted
// transactions have nothing left, and an ABORT marker is removed only once
// the caller no longer lists its transaction, so no index entry outlives
// its marker.
//
// Each group of segments [base, end) (end: the next segment's base) is
// swapped in with this protocol:
//
//  1. write <base>-<end>.cleaned, fsync it; build its indexes in memory
//  2. take Log.mu; check the group is still in the segment list (retention,
//     truncation or Close may have changed it: then remove .cleaned, stop)
//  3. rename .cleaned -> <base>-<end>.swap, fsync the directory: the swap
//     point
//  4. unlink the group's .log/.index/.timeindex files
//  5. rename .swap -> <base>.log, write its index files, fsync the directory
//  6. publish the new segment list; drop the log's references on the old
//     segments (readers holding references keep reading the unlinked files)
//
// Open first finishes or undoes an interrupted swap: a .cleaned file is
// removed (the old segments are intact); a .swap file means step 3 was
// durable, so every segment with a base in [base, end) is removed and the
// .swap renamed to <base>.log, whose indexes are then rebuilt (they are
// missing). Either way every offset is present exactly once. The clean point
// (the base of the first segment not cleaned) is written after the pass and
// only drives the dirty ratio.
//
// # Filesystem and failures
//
// Every file operation goes through Config.FS (package vfs; nil is the
// operating system), so tests can make a chosen file's write or fsync fail
// or block. A failed segment write or fsync makes the failure sticky (Err,
// ErrLogFailed wrapping the cause): the log refuses every later append,
// Sync and truncation until it is reopened, instead of continuing on a
// half-written file or trusting a page cache whose writeback failed. A
// failed write publishes nothing: the log end offset and the segment size
// readers see stay where they were. Zero-copy reads (ReadRange) need
// operating-system files (vfs.OSFile).
//
// # Concurrency
//
// One appender at a time (Append, TruncateTo, SetLogStartOffset,
// EnforceRetention, Close take Log.mu, the append lock). Readers never take
// it: they load the segment list (copy-on-write, atomic pointer), the log
// end offset (atomic) and a segment's published size (atomic), take a
// reference on the segment and pread. A segment removed by retention or
// truncation is unlinked at once; its file descriptor is closed when the
// last reference is released, so an in-flight read never breaks.
//
// Lock order: Log.cleanMu, then Log.mu, then Log.epochMu, segment.mu or
// segment.fillMu; Log.syncMu is never held with another lock. Compact holds
// cleanMu for the whole pass and Log.mu only for each swap. Only Log.mu (the
// append lock, by design) is held across file I/O, and across a channel
// operation: the appender waits under it for a preallocation fill that
// would write where it writes (segment.awaitFill), and a fill takes no lock
// of the log until it has written.
package commitlog
