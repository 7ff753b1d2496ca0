// Package kafkahash is Kafka's murmur2 key hash and default partitioner,
// shared by the host and the tools.
//
// Outputs partitioned by key must land where a Kafka producer would put
// the same key, so that a sluice job and a Kafka client writing the same
// topic agree on which partition holds a key; that is why this is the
// exact algorithm and not any good hash.
package kafkahash

// Murmur2 is Kafka's key hash (org.apache.kafka.common.utils.Utils.murmur2,
// itself MurmurHash2 with Kafka's seed).
func Murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// Partition is Kafka's default partitioner for a non-null key: Murmur2
// with the sign bit masked (Utils.toPositive), modulo the count.
func Partition(key []byte, partitions int32) int32 {
	return int32(Murmur2(key)&0x7fffffff) % partitions
}
