// Package record owns the Kafka record batch (magic v2) as raw bytes: header
// parsing, validation (sizes, magic, CRC-32C), in-place patching of the
// fields the broker assigns (base offset, partition leader epoch, log append
// time), a bounded walk over the records, the compression codecs (at Kafka's
// levels), the rewrites compaction and compression.type need (Filter,
// SetDeleteHorizon, Recompress), and a small builder used by tests and
// control batches.
//
// It must not allocate per record on the produce path, and it never trusts a
// length read from the bytes: every length is checked against what remains
// before it is used. It knows nothing of Kafka error codes: callers map the
// sentinel errors (ErrCorrupt, ErrUnsupportedMagic, ErrUnknownCodec,
// ErrTooLarge, ...) to codes at their boundary.
//
// Batch layout (all integers big endian; records use zigzag varints):
//
//	offset  size  field
//	     0     8  baseOffset            (patched by the log, outside the CRC)
//	     8     4  batchLength           (bytes after this field)
//	    12     4  partitionLeaderEpoch  (patched by the log, outside the CRC)
//	    16     1  magic = 2
//	    17     4  crc                   CRC-32C (Castagnoli) of bytes [21, end)
//	    21     2  attributes            bits 0-2 codec, 3 LogAppendTime,
//	                                    4 transactional, 5 control
//	    23     4  lastOffsetDelta
//	    27     8  baseTimestamp
//	    35     8  maxTimestamp
//	    43     8  producerId
//	    51     2  producerEpoch
//	    53     4  baseSequence
//	    57     4  recordCount
//	    61     .  records (possibly compressed as one block)
//
// Record layout (inside the records area, uncompressed):
//
//	length varint | attributes int8 | timestampDelta varlong |
//	offsetDelta varint | keyLength varint | key | valueLength varint | value |
//	headerCount varint | { keyLength varint | key | valueLength varint | value }*
//
// A key, value or header value length of -1 means null.
package record
