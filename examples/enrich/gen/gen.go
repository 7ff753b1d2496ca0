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
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/examples/internal/genkit"
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
type Record = genkit.Record

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

// Partition is the partition of a user id among n, as Kafka's default
// partitioner (and sluice) chooses it (genkit.Partition).
func Partition(key []byte, n int) int { return genkit.Partition(key, n) }

// ByPartition splits records by the partition of their user, in offset
// order (genkit.ByPartition).
func ByPartition(recs []Record, partitions int) [][]Record {
	return genkit.ByPartition(recs, partitions)
}

// Merge returns one partition's records in the order the task handles
// them: by timestamp; on equal timestamps the table record (a profile)
// first; each topic's records in offset order, so that a record older
// than its predecessor waits for it (a merge of two offset-ordered
// sequences that takes the smaller head).
func Merge(profiles, clicks []Record) []Record { return genkit.Merge(profiles, clicks) }

// Output is an output record of the job; its String is "ts key value".
type Output = genkit.Output

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

// Sorted returns outs as sorted "ts key value" strings, a multiset
// (genkit.Sorted).
func Sorted(outs []Output) []string { return genkit.Sorted(outs) }

// Produce writes recs to their topics with client, in order, partitioned
// by a user id, and returns once they are acknowledged (genkit.Produce).
func Produce(ctx context.Context, client *kgo.Client, recs []Record) error {
	return genkit.Produce(ctx, client, recs)
}
