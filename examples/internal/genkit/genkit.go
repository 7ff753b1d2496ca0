// Package genkit is the plumbing the examples' data generators and
// reference models (examples/enrich/gen, examples/attribution/gen) share:
// the generated record and the output record types, Kafka's default
// partitioner (which partition, so which task, sees a key), the order in
// which a task merges one partition of two input topics, and producing
// records to a node.
//
// It models sluice from the outside, as the examples' READMEs describe it,
// and shares no code with the host: the reference models stay independent
// of what they check.
package genkit

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Record is a generated input record. A nil Key or Value is null.
type Record struct {
	Topic     string
	Key       []byte
	Value     []byte
	Timestamp int64
}

// Output is an output record of a job.
type Output struct {
	Key       string
	Value     string
	Timestamp int64
}

// String is "ts key value", the format tests compare records in.
func (o Output) String() string { return fmt.Sprintf("%d %s %s", o.Timestamp, o.Key, o.Value) }

// Sorted returns the records of outs as sorted strings: a multiset to
// compare.
func Sorted(outs []Output) []string {
	s := make([]string, len(outs))
	for i, o := range outs {
		s[i] = o.String()
	}
	sort.Strings(s)
	return s
}

// Partition is the partition of key among n, as Kafka's default
// partitioner (and sluice) chooses it: murmur2 of the key, made positive,
// modulo n.
func Partition(key []byte, n int) int {
	return int(murmur2(key)&0x7fffffff) % n
}

// murmur2 is Kafka's murmur2 hash (seed 0x9747b28c).
func murmur2(data []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	h := uint32(seed) ^ uint32(len(data))
	i := 0
	for ; len(data)-i >= 4; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(data) - i {
	case 3:
		h ^= uint32(data[i+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[i+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[i])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// ByPartition splits records by the partition of their key, keeping their
// order: each partition's records in offset order.
func ByPartition(recs []Record, partitions int) [][]Record {
	out := make([][]Record, partitions)
	for _, r := range recs {
		p := Partition(r.Key, partitions)
		out[p] = append(out[p], r)
	}
	return out
}

// Merge returns one partition of two input topics in the order the task
// handles it: by timestamp; on equal timestamps first's records first;
// each topic's records in offset order, so that a record older than its
// predecessor waits for it (a merge of two offset-ordered sequences that
// takes the smaller head).
func Merge(first, second []Record) []Record {
	out := make([]Record, 0, len(first)+len(second))
	i, j := 0, 0
	for i < len(first) || j < len(second) {
		if j == len(second) || i < len(first) && first[i].Timestamp <= second[j].Timestamp {
			out = append(out, first[i])
			i++
		} else {
			out = append(out, second[j])
			j++
		}
	}
	return out
}

// Produce writes recs to their topics with client, in order, partitioned
// by key with the client's partitioner (franz-go's default hashes keys
// with murmur2, as Kafka's), each with its own timestamp. It returns once
// every record is acknowledged.
func Produce(ctx context.Context, client *kgo.Client, recs []Record) error {
	krs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		krs[i] = &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Timestamp: time.UnixMilli(r.Timestamp)}
	}
	return client.ProduceSync(ctx, krs...).FirstErr()
}

// Batch is a named list of records to produce.
type Batch struct {
	Name    string // for errors: "profiles", "clicks"
	Records []Record
}

// ProduceTo connects to brokers and produces each batch in turn with
// Produce, all within a minute: what the examples' gen/produce commands
// do with the data they generate.
func ProduceTo(brokers []string, batches ...Batch) error {
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, b := range batches {
		if err := Produce(ctx, client, b.Records); err != nil {
			return fmt.Errorf("%s: %w", b.Name, err)
		}
	}
	return nil
}
