package host

import "github.com/sluice-io/sluice/internal/kafkahash"

// partitionForKey is Kafka's default partitioner for a non-null key
// (murmur2 with the sign bit masked, modulo the count), so that a sluice
// job and a Kafka client writing the same topic agree on which partition
// holds a key.
func partitionForKey(key []byte, partitions int32) int32 {
	return kafkahash.Partition(key, partitions)
}
