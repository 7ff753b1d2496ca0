// Command count is the second operator of the word count example: it reads
// records keyed by word, keeps each word's running count in the state
// store "counts" (key = the word, value = the count as decimal ASCII), and
// emits to output 0 records with key = the word and value = its new count
// as decimal ASCII. The output topic is compacted, so its latest record per
// key is the word's current count.
//
// Counts are updated and emitted once per word per batch, after the batch's
// last record, in the order the words first appear in the batch: a batch
// that holds "fox" 40 times updates the store and emits once, with the
// count 40 higher. That is the output of a Kafka Streams count with its
// record cache on, and what makes counting cheap: most words of a batch
// only add one to a number held in the operator's memory.
//
// Records with a null key carry no word and are ignored.
//
// Build with `sluice build examples/wordcount/go/count`.
package main

import (
	"bytes"

	sluice "github.com/sluice-io/sluice/sdk/go"
)

// counts stores decimal ASCII, so that the store's changelog topic is
// readable by any Kafka client as it is.
var counts = sluice.NewTable("counts", sluice.Bytes, sluice.Int64)

// tally is a word's count during a batch.
type tally struct {
	word  []byte
	total int64
	batch uint64 // the batch in which total was last read from counts
}

var (
	// tallies outlive batches, so that a word seen before costs no
	// allocation; maxTallies bounds them.
	tallies = map[string]*tally{}
	// order is the batch's words in order of first appearance.
	order   []*tally
	batch   uint64
	scratch []byte
)

const maxTallies = 1 << 20

func init() {
	sluice.OnBatchStart(startBatch)
	sluice.Handle(count)
	sluice.OnBatchEnd(endBatch)
}

func startBatch() {
	batch++
	order = order[:0]
	if len(tallies) > maxTallies {
		clear(tallies)
	}
}

func count(r *sluice.Record, _ *sluice.Emitter) error {
	if r.Key == nil {
		return nil
	}
	t := tallies[string(r.Key)]
	if t != nil && t.batch == batch {
		t.total++
		return nil
	}
	// The word's first record in this batch: start from its stored count.
	// A count that does not decode fails this record.
	n, _, err := counts.Get(r.Key)
	if err != nil {
		return err
	}
	if t == nil {
		t = &tally{word: bytes.Clone(r.Key)}
		tallies[string(t.word)] = t
	}
	t.total, t.batch = n+1, batch
	order = append(order, t)
	return nil
}

func endBatch(out *sluice.Emitter) error {
	for _, t := range order {
		if err := counts.Put(t.word, t.total); err != nil {
			return err
		}
		scratch = sluice.Int64.Append(scratch[:0], t.total)
		out.Emit(t.word, scratch)
	}
	return nil
}

func main() {}
