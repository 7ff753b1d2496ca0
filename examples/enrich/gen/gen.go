// Package gen generates the enrich example's input data deterministically
// (clicks keyed by user id, profiles keyed by user id with updates and
// deletes in the middle of the click stream), produces it to a node, and
// computes the output the enrich job must make from it with a reference
// model that follows examples/enrich/README.md independently of the
// operators.
package gen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Topics of the example.
const (
	ClicksTopic   = "clicks"
	ProfilesTopic = "profiles"
	OutputTopic   = "clicks-enriched"
	// Partitions is the partition count the example's topics are created
	// with.
	Partitions = 4
)

// Record is a generated input record. A nil Value is null (a profile
// tombstone: the user was deleted).
type Record struct {
	Topic     string
	Key       []byte
	Value     []byte
	Timestamp int64
}

// Data is a generated data set, each topic's records in the order they
// are produced (so, per partition, in offset order).
type Data struct {
	Profiles []Record
	Clicks   []Record
}

// Base is the timestamp of the first generated record (ms).
const Base int64 = 1_700_000_000_000

// Generate makes a data set of about clicks clicks from seed: 40 users, 30
// of whom have a profile at the start; profile updates, deletes and
// re-creations between the clicks; clicks for users that never have a
// profile ("ghost-N"); clicks whose timestamp is a little older than their
// predecessor's; and profile changes with exactly the timestamp of a click
// of the same user (the profile applies first), produced before or after
// that click.
func Generate(seed uint64, clicks int) Data {
	rng := rand.New(rand.NewPCG(seed, 0x656e72696368))
	var d Data
	version := map[string]int{}
	profile := func(u string, ts int64) Record {
		version[u]++
		v := fmt.Sprintf(`{"user":%q,"name":"Name %s","tier":%q,"version":%d}`,
			u, u[1:], []string{"free", "silver", "gold"}[rng.IntN(3)], version[u])
		return Record{Topic: ProfilesTopic, Key: []byte(u), Value: []byte(v), Timestamp: ts}
	}
	user := func(i int) string { return fmt.Sprintf("u%02d", i) }
	t := Base
	for i := range 30 {
		d.Profiles = append(d.Profiles, profile(user(i), t))
		t += int64(rng.IntN(3))
	}
	n := 0
	click := func(u string, ts int64) Record {
		n++
		v := fmt.Sprintf(`{"page":"/p/%d","n":%d}`, rng.IntN(50), n)
		return Record{Topic: ClicksTopic, Key: []byte(u), Value: []byte(v), Timestamp: ts}
	}
	for n < clicks {
		t += int64(rng.IntN(2000)) // 0 sometimes: equal timestamps
		switch x := rng.IntN(100); {
		case x < 6: // an update or (re)creation of a known user
			d.Profiles = append(d.Profiles, profile(user(rng.IntN(40)), t))
		case x < 8: // a delete
			d.Profiles = append(d.Profiles, Record{Topic: ProfilesTopic, Key: []byte(user(rng.IntN(40))), Timestamp: t})
		case x < 11: // a profile change and a click of the same user at the same time
			u := user(rng.IntN(40))
			p := profile(u, t)
			if rng.IntN(4) == 0 {
				p.Value = nil
			}
			d.Profiles = append(d.Profiles, p)
			d.Clicks = append(d.Clicks, click(u, t))
		case x < 18: // a user that never has a profile
			d.Clicks = append(d.Clicks, click("ghost-"+strconv.Itoa(rng.IntN(5)), t))
		case x < 22: // a click a little older than the clicks before it
			d.Clicks = append(d.Clicks, click(user(rng.IntN(40)), t-int64(rng.IntN(5000))))
		default:
			d.Clicks = append(d.Clicks, click(user(rng.IntN(40)), t))
		}
	}
	return d
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

// Merge returns one partition's records in the order the task handles
// them: by timestamp; on equal timestamps the table record (a profile)
// first; each topic's records in offset order, so that a record older
// than its predecessor waits for it (a merge of two offset-ordered
// sequences that takes the smaller head).
func Merge(profiles, clicks []Record) []Record {
	out := make([]Record, 0, len(profiles)+len(clicks))
	i, j := 0, 0
	for i < len(profiles) || j < len(clicks) {
		if j == len(clicks) || i < len(profiles) && profiles[i].Timestamp <= clicks[j].Timestamp {
			out = append(out, profiles[i])
			i++
		} else {
			out = append(out, clicks[j])
			j++
		}
	}
	return out
}

// Output is an output record of the job.
type Output struct {
	Key       string
	Value     string
	Timestamp int64
}

func (o Output) String() string { return fmt.Sprintf("%d %s %s", o.Timestamp, o.Key, o.Value) }

// Expected is the output the enrich job makes from d: per partition of
// clicks-enriched, its records in the order the task emits them (tests
// compare them as multisets).
func Expected(d Data, partitions int) [][]Output {
	out := make([][]Output, partitions)
	profiles, clicks := ByPartition(d.Profiles, partitions), ByPartition(d.Clicks, partitions)
	for p := range partitions {
		current := map[string]string{}
		for _, r := range Merge(profiles[p], clicks[p]) {
			if r.Topic == ProfilesTopic {
				if r.Value == nil {
					delete(current, string(r.Key))
				} else {
					current[string(r.Key)] = string(r.Value)
				}
				continue
			}
			prof, ok := current[string(r.Key)]
			if !ok {
				prof = "null"
			}
			o := Output{Key: string(r.Key), Value: `{"click":` + string(r.Value) + `,"profile":` + prof + `}`, Timestamp: r.Timestamp}
			q := Partition(r.Key, partitions)
			out[q] = append(out[q], o)
		}
	}
	return out
}

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

// Produce writes recs to their topics with client, in order, partitioned
// by key with the client's partitioner (franz-go's default hashes keys
// with murmur2, as Kafka's), each with its own timestamp. It returns once
// every record is acknowledged.
func Produce(ctx context.Context, client *kgo.Client, recs []Record) error {
	krs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		krs[i] = &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Timestamp: timeOf(r.Timestamp)}
	}
	return client.ProduceSync(ctx, krs...).FirstErr()
}

func timeOf(ms int64) time.Time { return time.UnixMilli(ms) }
