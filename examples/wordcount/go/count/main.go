// Command count is the second operator of the word count example: it reads
// records keyed by word, keeps each word's running count in the state
// store "counts" (key = the word, value = the count as decimal ASCII), and
// emits to output 0 a record with key = the word and value = its new count
// as decimal ASCII. The output topic is compacted, so its latest record per
// key is the word's current count.
//
// Records with a null key carry no word and are ignored.
//
// Build with `sluice build examples/wordcount/go/count`.
package main

import sluice "github.com/sluice-io/sluice/sdk/go"

// counts stores decimal ASCII, so that the store's changelog topic is
// readable by any Kafka client as it is.
var counts = sluice.NewTable("counts", sluice.Bytes, sluice.Int64)

// scratch holds the encoded count between increment and Emit, which
// copies it.
var scratch []byte

func init() { sluice.Handle(count) }

func count(r *sluice.Record, out *sluice.Emitter) error {
	if r.Key == nil {
		return nil
	}
	n, err := increment(r.Key)
	if err != nil {
		return err
	}
	scratch = sluice.Int64.Append(scratch[:0], n)
	out.Emit(r.Key, scratch)
	return nil
}

// increment adds one to word's count and returns the new count.
func increment(word []byte) (int64, error) {
	n, _, err := counts.Get(word)
	if err != nil {
		return 0, err
	}
	n++
	return n, counts.Put(word, n)
}

func main() {}
