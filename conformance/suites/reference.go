package suites

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/inputbatch"
)

// The reference implementations of the operator contracts. They are
// written from the contracts' text (examples/wordcount/README.md, "The
// contract", and examples/passthrough), in plain Go and independently of
// the example operators and of the SDKs, so that the operator suite checks
// every language against the contract rather than against the Go build.
//
// Each is a pure function of the stored state and one input batch: the
// outputs it emits (with the raw timestamps an operator may write: the
// host resolves -1 to the batch's last record before comparing), the
// state after the batch, and the index of the record it fails (-1: none).

// reference is one contract.
type reference func(state map[string]string, batch []abi.Record) (outs []abi.Output, next map[string]string, failed int)

var references = map[string]reference{
	OperatorSplit:       refSplit,
	OperatorCount:       refCount,
	OperatorPassthrough: refPassthrough,
}

// isSpace is the contract's word separator: exactly the six ASCII
// whitespace bytes (space, \t, \n, \v, \f, \r). Everything else, other
// Unicode spaces and invalid UTF-8 included, is part of a word.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// refWords splits text into maximal runs of non-space bytes.
func refWords(text []byte) [][]byte {
	var words [][]byte
	start := -1
	for i := 0; i <= len(text); i++ {
		if i == len(text) || isSpace(text[i]) {
			if start >= 0 {
				words = append(words, text[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	return words
}

// refSplit: for each sentence (the record's value; the key is ignored), one
// output per word, in order, to output 0, partitioned by key, with the
// word as key and value and the sentence's timestamp; no headers.
func refSplit(state map[string]string, batch []abi.Record) ([]abi.Output, map[string]string, int) {
	var outs []abi.Output
	for _, r := range batch {
		for _, w := range refWords(r.Value) {
			outs = append(outs, abi.Output{Partition: abi.PartitionByKey, Timestamp: r.Timestamp, Key: w, Value: w})
		}
	}
	return outs, state, -1
}

// refPassthrough: every record to output 0 unchanged (key, value, headers,
// timestamp), partitioned by key.
func refPassthrough(state map[string]string, batch []abi.Record) ([]abi.Output, map[string]string, int) {
	var outs []abi.Output
	for _, r := range batch {
		outs = append(outs, abi.Output{Partition: abi.PartitionByKey, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value, Headers: r.Headers})
	}
	return outs, state, -1
}

// countsStore is the store the count contract keeps.
const countsStore = "counts"

// parseCount reads a stored count: an optional '-' and 1 to 19 decimal
// digits, within int64. Anything else ("", "+1", " 1", "0x10", 20 digits)
// is corrupt.
func parseCount(s string) (int64, bool) {
	digits := strings.TrimPrefix(s, "-")
	if len(digits) == 0 || len(digits) > 19 || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// refCount: for each word (record key; a null key is ignored, an empty
// key is the empty word) the count is read from the store at the word's
// first record in the batch (a corrupt stored count fails that record and
// the batch), increased once per record (wrapping at the int64 limit), and
// after the batch written back and emitted, once per word in order of first
// appearance, with the decimal count as value and the batch's last
// timestamp.
func refCount(state map[string]string, batch []abi.Record) ([]abi.Output, map[string]string, int) {
	totals := map[string]int64{}
	var order []string
	for i, r := range batch {
		if r.Key == nil {
			continue
		}
		w := string(r.Key)
		if _, seen := totals[w]; seen {
			totals[w]++
			continue
		}
		var n int64
		if stored, ok := state[w]; ok {
			var valid bool
			if n, valid = parseCount(stored); !valid {
				return nil, state, i
			}
		}
		totals[w] = n + 1
		order = append(order, w)
	}
	next := maps.Clone(state)
	if next == nil {
		next = map[string]string{}
	}
	var outs []abi.Output
	for _, w := range order {
		v := strconv.FormatInt(totals[w], 10)
		next[w] = v
		outs = append(outs, abi.Output{Partition: abi.PartitionByKey, Timestamp: abi.TimestampInherit, Key: []byte(w), Value: []byte(v)})
	}
	return outs, next, -1
}

// vocabulary for generated text: ordinary words, case and punctuation
// variants, non-ASCII letters and spaces that are part of words, control
// bytes and invalid UTF-8.
var vocabulary = []string{
	"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "The", "FOX", "fox,", "dog.", "«quoted»",
	"naïve", "日本語", "a\u00a0b", "c\u2003d", "e\u3000f", "\x00", "\x1c\x1d", "\xff\xfe", "\u0085", "-", "--", "'", "x",
	strings.Repeat("long", 50),
}

var separators = []string{" ", " ", " ", "  ", "\t", "\n", "\r\n", "\v", "\f", " \t \n "}

// sentence generates one sentence (possibly with leading or trailing
// separators, possibly empty).
func sentence(rng *rand.Rand) string {
	var b strings.Builder
	if rng.IntN(8) == 0 {
		b.WriteString(separators[rng.IntN(len(separators))])
	}
	for n := rng.IntN(14); n > 0; n-- {
		b.WriteString(vocabulary[rng.IntN(len(vocabulary))])
		if n > 1 || rng.IntN(8) == 0 {
			b.WriteString(separators[rng.IntN(len(separators))])
		}
	}
	return b.String()
}

// generatedRecords makes n batches of 0 to max sentences (some batches of
// one or two, some empty), with increasing timestamps, occasional null and empty
// values, keys and headers; one batch in the middle is over 300 KiB.
func generatedRecords(n, max int, seed uint64) [][]abi.Record {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	ts := int64(1_700_000_000_000)
	offset := int64(0)
	var batches [][]abi.Record
	for b := range n {
		size := rng.IntN(max + 1)
		switch {
		case b%5 == 0:
			size = 1 + rng.IntN(2)
		case b%11 == 3:
			size = 0
		}
		var recs []abi.Record
		for range size {
			ts += int64(rng.IntN(3))
			offset++
			r := abi.Record{Offset: offset, Timestamp: ts, Value: []byte(sentence(rng))}
			switch rng.IntN(40) {
			case 0:
				r.Value = nil
			case 1:
				r.Value = []byte{}
			case 2:
				r.Key = []byte("key")
			case 3:
				r.Key = []byte{}
			case 4:
				r.Headers = []abi.Header{{Key: []byte("h"), Value: nil}, {Key: []byte{}, Value: []byte("v")}}
			case 5:
				r.Timestamp = -1
			}
			recs = append(recs, r)
		}
		if b == n/2 {
			for len(recs) == 0 || totalSize(recs) < 300<<10 {
				offset++
				recs = append(recs, abi.Record{Offset: offset, Timestamp: ts, Value: []byte(strings.Repeat(sentence(rng)+" ", 20))})
			}
		}
		batches = append(batches, recs)
	}
	return batches
}

func totalSize(recs []abi.Record) int {
	n := abi.BatchHeaderSize
	for i := range recs {
		n += recs[i].EncodedSize()
	}
	return n
}

// generatedBatches is generatedRecords encoded as input batches.
func generatedBatches(n, max int, seed uint64) [][]byte {
	var out [][]byte
	for _, recs := range generatedRecords(n, max, seed) {
		out = append(out, inputbatch.Encode(0, recs))
	}
	return out
}

// wordRecords turns sentences into the records split sends to count: key
// and value the word. Every 97th word gets a null key (ignored by count)
// and every 89th an empty one (the empty word).
func wordRecords(batches [][]abi.Record) [][]abi.Record {
	var out [][]abi.Record
	i := 0
	for _, b := range batches {
		outs, _, _ := refSplit(nil, b)
		var recs []abi.Record
		for _, o := range outs {
			i++
			r := abi.Record{Offset: int64(i), Timestamp: o.Timestamp, Key: o.Key, Value: o.Value}
			switch {
			case i%97 == 0:
				r.Key = nil
			case i%89 == 0:
				r.Key = []byte{}
			}
			recs = append(recs, r)
		}
		out = append(out, recs)
	}
	return out
}

// effOutput is an output as a consumer of the output topic sees it: the
// timestamp resolved (-1 is the batch's last record's timestamp).
type effOutput struct {
	output    uint32
	partition int32
	timestamp int64
	key       []byte
	value     []byte
	headers   []abi.Header
}

func nullable(b []byte) string {
	if b == nil {
		return "null"
	}
	if len(b) > 64 {
		return fmt.Sprintf("%q…(%d bytes)", b[:64], len(b))
	}
	return fmt.Sprintf("%q", b)
}

func (o effOutput) String() string {
	var hs []string
	for _, h := range o.headers {
		hs = append(hs, nullable(h.Key)+"="+nullable(h.Value))
	}
	return fmt.Sprintf("output=%d partition=%d timestamp=%d key=%s value=%s headers=[%s]",
		o.output, o.partition, o.timestamp, nullable(o.key), nullable(o.value), strings.Join(hs, " "))
}

// equal compares every byte, null and empty being different.
func (o effOutput) equal(p effOutput) bool {
	if o.output != p.output || o.partition != p.partition || o.timestamp != p.timestamp ||
		!sameBytes(o.key, p.key) || !sameBytes(o.value, p.value) || len(o.headers) != len(p.headers) {
		return false
	}
	for i := range o.headers {
		if !sameBytes(o.headers[i].Key, p.headers[i].Key) || !sameBytes(o.headers[i].Value, p.headers[i].Value) {
			return false
		}
	}
	return true
}

func sameBytes(a, b []byte) bool {
	return (a == nil) == (b == nil) && string(a) == string(b)
}

func lastTimestamp(batch []abi.Record) int64 {
	if len(batch) == 0 {
		return -1
	}
	return batch[len(batch)-1].Timestamp
}

func resolve(o abi.Output, batch []abi.Record) effOutput {
	ts := o.Timestamp
	if ts == abi.TimestampInherit {
		ts = lastTimestamp(batch)
	}
	e := effOutput{output: o.Output, partition: o.Partition, timestamp: ts, key: cloneNullable(o.Key), value: cloneNullable(o.Value)}
	for _, h := range o.Headers {
		e.headers = append(e.headers, abi.Header{Key: cloneNullable(h.Key), Value: cloneNullable(h.Value)})
	}
	return e
}

func cloneNullable(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// decodeEmits resolves the outputs of a call's emit batches.
func decodeEmits(emits [][]byte, batch []abi.Record) ([]effOutput, error) {
	var outs []effOutput
	for _, e := range emits {
		var r abi.OutputReader
		var o abi.Output
		r.Reset(e)
		for r.Next(&o) {
			outs = append(outs, resolve(o, batch))
		}
		if err := r.Err(); err != nil {
			return nil, err
		}
	}
	return outs, nil
}
