// Package metadata owns the cluster metadata model of Gregor: the records of
// the KRaft-like metadata log, their binary codec, and the immutable Image
// that results from applying them in order.
//
// The package is pure: it does no I/O, starts no goroutines and imports
// nothing internal. The controller package feeds it records that came out of
// the Raft log; every node applies the same records and ends up with the same
// Image.
//
// # Images
//
// An *Image is never modified after it is returned. Image.Apply and
// Image.ApplyBatch build a new Image copy-on-write: maps and topics that a
// record touches are copied, everything else is shared with the previous
// Image. Callers must treat every map and slice reachable from an Image as
// read-only.
//
// # Record format (version 0)
//
// All integers are big-endian and fixed width unless said otherwise. A
// "uvarint" is encoding/binary's unsigned varint, a "varint" its signed
// (zig-zag) varint.
//
//	record  = version:uint8 (0, or 1 below) type:uint8 fields...
//	string  = len:uvarint bytes[len]
//	nstring = len:varint (-1 = null) bytes[len]
//	int32s  = count:varint (-1 = null) int32[count]
//	uuid    = 16 bytes
//	bool    = uint8 (0 or 1)
//
// Fields by type:
//
//	1 RegisterBroker   node_id:int32 host:string port:int32 rack:string epoch:int64 fenced:bool
//	2 FenceBroker      node_id:int32 epoch:int64
//	3 UnfenceBroker    node_id:int32 epoch:int64
//	4 Topic            name:string id:uuid
//	5 Partition        topic_id:uuid partition:int32 replicas:int32s isr:int32s
//	                   leader:int32 leader_epoch:int32 partition_epoch:int32
//	6 PartitionChange  topic_id:uuid partition:int32 has_leader:bool [leader:int32]
//	                   isr:int32s replicas:int32s
//	7 RemoveTopic      topic_id:uuid
//	8 Config           resource_type:int8 resource_name:string name:string value:nstring
//	9 ProducerIDs      broker_id:int32 next_producer_id:int64
//	10 Cluster         cluster_id:string
//	11 UnregisterBroker node_id:int32 epoch:int64
//
// A PartitionRecord or PartitionChangeRecord that carries a reassignment
// (adding or removing replicas, KRaft's fields) is written as version 1:
// the version 0 fields followed by adding:int32s removing:int32s. Every
// other record, and every record written before reassignments existed, is
// version 0, so old logs and snapshots decode unchanged.
//
// A record must be consumed exactly: trailing bytes are an error. Every
// length and count is checked against the bytes left before anything is
// allocated, so Decode never allocates more than its input size allows.
//
// A batch (one Raft log entry, applied all-or-nothing) is
//
//	batch = count:uvarint { len:uvarint record[len] }*count
//
// and an encoded Image (a Raft snapshot) is
//
//	image = magic:"GMI" version:uint8 (0) last_offset:uint64 batch
//
// where the batch holds the records that rebuild the Image from empty.
//
// # Apply rules
//
// Records are validated against the image they apply to; a record that does
// not fit (unknown topic, stale broker epoch, ISR outside the replicas, ...)
// returns an error and, inside ApplyBatch, makes the whole batch fail with no
// effect. PartitionChangeRecord follows KRaft: a leader change bumps the
// leader epoch, and so does a change whose replica set drops a replica (as
// KRaft's controller bumps it when a reassignment completes, so a removed
// replica can no longer fetch); every change bumps the partition epoch.
package metadata
