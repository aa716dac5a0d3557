package metadata

// JavaStringHashCode is Java's String.hashCode over the UTF-16 code units of
// s, with int32 overflow: Kafka picks a group's or a transactional id's coordinator partition with it.
func JavaStringHashCode(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			// A supplementary character is two UTF-16 code units.
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}

// PartitionFor is the internal-topic partition (__consumer_offsets,
// __transaction_state) that owns id:
// Utils.abs(hashCode) % numPartitions, where Utils.abs masks the sign bit.
func PartitionFor(id string, numPartitions int32) int32 {
	if numPartitions <= 0 {
		return 0
	}
	return (JavaStringHashCode(id) & 0x7fffffff) % numPartitions
}
