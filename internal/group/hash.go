package group

import "github.com/gregor-dev/gregor/internal/metadata"

// JavaStringHashCode is metadata.JavaStringHashCode (Java's String.hashCode).
func JavaStringHashCode(s string) int32 { return metadata.JavaStringHashCode(s) }

// PartitionFor is the __consumer_offsets partition that owns group id
// (metadata.PartitionFor).
func PartitionFor(id string, numPartitions int32) int32 {
	return metadata.PartitionFor(id, numPartitions)
}
