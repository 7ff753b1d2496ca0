package host

import (
	"testing"

	"github.com/sluice-io/sluice/internal/kafkahash"
)

// The host partitions keyed outputs with Kafka's default partitioner
// (kafkahash tests it against Kafka's vectors and franz-go).
func TestPartitionForKeyIsKafkas(t *testing.T) {
	for _, key := range []string{"", "21", "foobar", "a-little-bit-longer-string"} {
		for _, n := range []int32{1, 3, 100} {
			if got, want := partitionForKey([]byte(key), n), kafkahash.Partition([]byte(key), n); got != want {
				t.Fatalf("partitionForKey(%q, %d) = %d, want %d", key, n, got, want)
			}
		}
	}
}
