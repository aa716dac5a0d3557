package commitlog

import (
	"log/slog"
	"math"
	"time"

	"github.com/gregor-dev/gregor/internal/vfs"
)

// Defaults, Kafka's where Kafka has one.
const (
	DefaultSegmentBytes       = 1 << 30            // segment.bytes
	DefaultSegmentMs          = 7 * 24 * time.Hour // segment.ms
	DefaultSegmentIndexBytes  = 10 << 20           // segment.index.bytes
	DefaultRetentionMs        = 7 * 24 * time.Hour // retention.ms
	DefaultIndexIntervalBytes = 4096               // index.interval.bytes
	// DefaultMaxBatchBytes bounds one batch during recovery. Allocation is
	// also bounded by the bytes actually present in the file.
	DefaultMaxBatchBytes = math.MaxInt32
	// PreallocateStep is how far ahead of the log end Preallocate keeps
	// zeros. Kafka reserves the whole segment.bytes at once with a sparse
	// setLength; zeros are real blocks, so a thousand partitions would
	// otherwise hold a gigabyte each.
	PreallocateStep = 8 << 20
)

// Config configures a Log. The zero value of each field means its default.
// SegmentBytes, SegmentMs, RetentionBytes, RetentionMs and
// IndexIntervalBytes can change at run time through SetConfig.
type Config struct {
	Dir                string
	SegmentBytes       int64         // roll when the active segment would exceed this (segment.bytes)
	SegmentMs          time.Duration // roll when the active segment's first append is older (segment.ms)
	SegmentJitter      time.Duration // each segment rolls up to this much before SegmentMs (segment.jitter.ms)
	SegmentIndexBytes  int           // roll when a segment's offset (8 B an entry) or time index (12 B) would outgrow this (segment.index.bytes)
	RetentionBytes     int64         // < 0 or 0: unlimited (retention.bytes)
	RetentionMs        time.Duration // < 0: unlimited; 0: default 7 days (retention.ms)
	IndexIntervalBytes int           // bytes between sparse index entries (index.interval.bytes)
	MaxBatchBytes      int           // largest batch accepted during recovery
	Logger             *slog.Logger
	Now                func() time.Time // nil: time.Now
	// Preallocate (preallocate) keeps up to PreallocateStep bytes of
	// written, fsynced zeros ahead of the appends, up to SegmentBytes,
	// filled in the background, so that the fdatasync after an append has
	// no block allocation or file size to journal. The zero tail is not
	// data: readers stop at the published size, a roll or Close cuts the
	// file to its batches, and recovery cuts a zero tail like a torn one.
	Preallocate bool
	// UnsafeNoFsync skips every fsync (like etcd's --unsafe-no-fsync):
	// for tests and benchmarks only; a crash may then lose acknowledged
	// data and Sync is a no-op.
	UnsafeNoFsync bool
	// FS is the filesystem every file of the log goes through (nil: the
	// operating system's). Tests inject faults with a vfs.FaultFS.
	FS vfs.FS
}

func (c Config) withDefaults() Config {
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	// Index positions are uint32 and Kafka's segment.bytes is an int.
	if c.SegmentBytes > math.MaxInt32 {
		c.SegmentBytes = math.MaxInt32
	}
	if c.SegmentMs <= 0 {
		c.SegmentMs = DefaultSegmentMs
	}
	if c.SegmentIndexBytes <= 0 {
		c.SegmentIndexBytes = DefaultSegmentIndexBytes
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = -1
	}
	if c.RetentionMs == 0 {
		c.RetentionMs = DefaultRetentionMs
	}
	if c.IndexIntervalBytes <= 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
