// Package gen generates the attribution example's input data
// deterministically (impressions and clicks keyed by ad id, with records
// out of order within and beyond the allowed lateness), produces it to a
// node, and computes the output the attribution job must make from it with
// a reference model that follows examples/attribution/README.md,
// independently of the operators.
package gen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/examples/internal/genkit"
)

// Topics of the example.
const (
	ImpressionsTopic = "impressions" // input 0
	ClicksTopic      = "clicks"      // input 1
	AttributedTopic  = "attributed"  // output 0
	UnmatchedTopic   = "unmatched-impressions"
	LateTopic        = "attribution-late"
	// Partitions is the partition count the example's topics are created
	// with.
	Partitions = 4
)

// Outputs are the job's output topics in the job file's order.
var Outputs = []string{AttributedTopic, UnmatchedTopic, LateTopic}

// The job file's parameters.
const (
	Window   = 10 * time.Minute
	Lateness = time.Minute
)

// Record is a generated input record: key = ad id, value = impression or
// click id.
type Record = genkit.Record

// Input is r's input index in the job: 0 impressions, 1 clicks.
func Input(r Record) int {
	if r.Topic == ClicksTopic {
		return 1
	}
	return 0
}

// Data is a generated data set, each topic's records in the order they
// are produced (so, per partition, in offset order).
type Data struct {
	Impressions []Record
	Clicks      []Record
}

// Base is the timestamp of the first generated record (ms).
const Base int64 = 1_700_000_000_000

// Generate makes a data set of impressions impressions from seed over 100
// ads: about half of them clicked within the window (some twice, some at
// exactly 0 or exactly the window after the impression), some clicked
// after the window, some never; clicks with no impression and clicks
// before their impression; and equal timestamps across the two topics.
// Records are produced in order of arrival, which is their timestamp plus
// a delay: none for most, up to 45 s for some (out of order within the
// allowed lateness of a minute) and 90 s to 5 min for a few (late).
func Generate(seed uint64, impressions int) Data {
	rng := rand.New(rand.NewPCG(seed, 0x6174747269627574))
	type arrival struct {
		r  Record
		at int64
		n  int
	}
	var all []arrival
	add := func(topic, ad, id string, ts int64) {
		delay := int64(0)
		switch x := rng.IntN(100); {
		case x < 10:
			delay = 1000 + rng.Int64N(44_000)
		case x < 14:
			delay = 90_000 + rng.Int64N(210_000)
		}
		all = append(all, arrival{Record{Topic: topic, Key: []byte(ad), Value: []byte(id), Timestamp: ts}, ts + delay, len(all)})
	}
	window := Window.Milliseconds()
	clicks := 0
	click := func(ad string, ts int64) {
		clicks++
		add(ClicksTopic, ad, fmt.Sprintf("c%05d", clicks), ts)
	}
	t := Base
	for i := 1; i <= impressions; i++ {
		t += rng.Int64N(8000) // 0 sometimes: equal timestamps
		ad := fmt.Sprintf("ad%03d", rng.IntN(100))
		add(ImpressionsTopic, ad, fmt.Sprintf("i%05d", i), t)
		switch x := rng.IntN(100); {
		case x < 40: // clicked within the window
			click(ad, t+rng.Int64N(window+1))
		case x < 43: // clicked at the window's edges
			click(ad, t+[]int64{0, window}[rng.IntN(2)])
		case x < 48: // clicked twice
			click(ad, t+rng.Int64N(window+1))
			click(ad, t+rng.Int64N(window+1))
		case x < 56: // clicked after the window
			click(ad, t+window+1+rng.Int64N(300_000))
		case x < 59: // a click just before the impression
			click(ad, t-1-rng.Int64N(60_000))
		case x < 62: // a click of an ad with no impression
			click(fmt.Sprintf("ad%03d", 100+rng.IntN(5)), t)
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].at != all[j].at {
			return all[i].at < all[j].at
		}
		return all[i].n < all[j].n
	})
	var d Data
	for _, a := range all {
		if a.r.Topic == ClicksTopic {
			d.Clicks = append(d.Clicks, a.r)
		} else {
			d.Impressions = append(d.Impressions, a.r)
		}
	}
	return d
}

// Partition is the partition of an ad id among n, as Kafka's default
// partitioner (and sluice) chooses it (genkit.Partition).
func Partition(key []byte, n int) int { return genkit.Partition(key, n) }

// ByPartition splits records by the partition of their ad, in offset
// order (genkit.ByPartition).
func ByPartition(recs []Record, partitions int) [][]Record {
	return genkit.ByPartition(recs, partitions)
}

// Merge returns one partition's records in the order the task handles
// them: by timestamp; on equal timestamps impressions (input 0) first;
// each topic's records in offset order, so that a record older than its
// predecessor waits for it (a merge of two offset-ordered sequences that
// takes the smaller head).
func Merge(impressions, clicks []Record) []Record { return genkit.Merge(impressions, clicks) }

// Output is an output record of the job; its String is "ts key value".
type Output = genkit.Output

// Result is the job's output: per output (index in Outputs), per
// partition, the records in the order the task emits them (tests compare
// them as multisets).
type Result [3][][]Output

// Stats counts what a data set exercised, per the model.
type Stats struct {
	Late, LateImpressions, LateClicks int // records beyond the allowed lateness
	OutOfOrder                        int // records older than the stream time, not late
	Attributed, Unmatched             int
	UnmatchedClicks                   int // non-late clicks that matched no impression
	Pending                           int // impressions not expired at the end
}

// Expected runs the reference model over each partition of d with the
// given window and allowed lateness (ms). Per record r, in the merged
// order, with st the largest timestamp so far including r's:
//  1. impressions buffered with ts + window + lateness < st expire: those
//     that matched no click are emitted to unmatched-impressions (key ad,
//     value impression id, the impression's timestamp); clicks with
//     ts + lateness < st expire;
//  2. if r.ts < st - lateness, r is late: emitted to attribution-late
//     (key ad, value "impression:<id>" or "click:<id>", r's timestamp)
//     and nothing else;
//  3. otherwise r is paired with every buffered record of the other kind
//     and the same ad with 0 <= click.ts - impression.ts <= window, one
//     output each to attributed (key ad, value "<impression id> <click
//     id>", the click's timestamp), and buffered.
func Expected(d Data, partitions int, window, lateness int64) (Result, Stats) {
	var res Result
	for o := range res {
		res[o] = make([][]Output, partitions)
	}
	var stats Stats
	emit := func(output int, key, value string, ts int64) {
		q := Partition([]byte(key), partitions)
		res[output][q] = append(res[output][q], Output{Key: key, Value: value, Timestamp: ts})
	}
	type imp struct {
		ad, id  string
		ts      int64
		matched bool
	}
	type clk struct {
		ad, id  string
		ts      int64
		matched bool
	}
	imps, clks := ByPartition(d.Impressions, partitions), ByPartition(d.Clicks, partitions)
	for p := range partitions {
		st := int64(-1)
		var bi []*imp
		var bc []*clk
		for _, r := range Merge(imps[p], clks[p]) {
			ad, id := string(r.Key), string(r.Value)
			if r.Timestamp < st {
				if r.Timestamp >= st-lateness {
					stats.OutOfOrder++
				}
			}
			st = max(st, r.Timestamp)
			var keepI []*imp
			for _, i := range bi {
				switch {
				case i.ts+window+lateness >= st:
					keepI = append(keepI, i)
				case !i.matched:
					emit(1, i.ad, i.id, i.ts)
					stats.Unmatched++
				}
			}
			bi = keepI
			var keepC []*clk
			for _, c := range bc {
				switch {
				case c.ts+lateness >= st:
					keepC = append(keepC, c)
				case !c.matched:
					stats.UnmatchedClicks++
				}
			}
			bc = keepC
			if r.Timestamp < st-lateness {
				stats.Late++
				if r.Topic == ClicksTopic {
					stats.LateClicks++
					emit(2, ad, "click:"+id, r.Timestamp)
				} else {
					stats.LateImpressions++
					emit(2, ad, "impression:"+id, r.Timestamp)
				}
				continue
			}
			if r.Topic == ImpressionsTopic {
				i := &imp{ad: ad, id: id, ts: r.Timestamp}
				for _, c := range bc {
					if c.ad == ad && c.ts-i.ts >= 0 && c.ts-i.ts <= window {
						emit(0, ad, i.id+" "+c.id, c.ts)
						stats.Attributed++
						i.matched, c.matched = true, true
					}
				}
				bi = append(bi, i)
			} else {
				c := &clk{ad: ad, id: id, ts: r.Timestamp}
				for _, i := range bi {
					if i.ad == ad && c.ts-i.ts >= 0 && c.ts-i.ts <= window {
						emit(0, ad, i.id+" "+c.id, c.ts)
						stats.Attributed++
						i.matched, c.matched = true, true
					}
				}
				bc = append(bc, c)
			}
		}
		stats.Pending += len(bi)
	}
	return res, stats
}

// Sorted returns outs as sorted "ts key value" strings, a multiset
// (genkit.Sorted).
func Sorted(outs []Output) []string { return genkit.Sorted(outs) }

// Produce writes recs to their topics with client, in order, partitioned
// by an ad id, and returns once they are acknowledged (genkit.Produce).
func Produce(ctx context.Context, client *kgo.Client, recs []Record) error {
	return genkit.Produce(ctx, client, recs)
}
