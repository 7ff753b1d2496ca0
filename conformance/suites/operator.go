package suites

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/inputbatch"
	"github.com/sluice-io/sluice/plugins"
)

// opVector is one operator-suite case: the batches a fresh instance gets
// and, for count, the store's content before the first one.
type opVector struct {
	op, name, doc string
	state         map[string]string
	batches       func() [][]abi.Record
	// corrupt lists stored counts that must fail the record of the
	// word's first appearance; each runs on a fresh instance with the
	// store holding "v" = the value (count only).
	corrupt []string
	// oneEmit checks, instead of the outputs, that the module makes at
	// most one emit call per sluice_process call (SPEC §4: an SDK
	// SHOULD buffer a batch's outputs).
	oneEmit bool
}

func recs(values ...string) []abi.Record {
	var out []abi.Record
	for i, v := range values {
		out = append(out, abi.Record{Offset: int64(i), Timestamp: int64(1000 + i), Value: []byte(v)})
	}
	return out
}

func keys(words ...string) []abi.Record {
	var out []abi.Record
	for i, w := range words {
		out = append(out, abi.Record{Offset: int64(i), Timestamp: int64(2000 + i), Key: []byte(w), Value: []byte(w)})
	}
	return out
}

func batches(bs ...[]abi.Record) func() [][]abi.Record {
	return func() [][]abi.Record { return bs }
}

func opVectors() []opVector {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	nullsAndEmpties := []abi.Record{
		{Offset: 1, Timestamp: 5, Key: nil, Value: nil},
		{Offset: 2, Timestamp: 6, Key: []byte{}, Value: []byte{}},
		{Offset: 3, Timestamp: 7, Key: []byte("ignored"), Value: []byte(" \t\n\v\f\r ")},
		{Offset: 4, Timestamp: 8, Key: nil, Value: []byte("only")},
	}
	withHeaders := []abi.Record{
		{Offset: 1, Timestamp: 10, Value: []byte("a b"), Headers: []abi.Header{{Key: []byte("h"), Value: []byte("v")}}},
		{Offset: 2, Timestamp: 11, Key: []byte{}, Value: []byte("c"), Headers: []abi.Header{{Key: []byte{}, Value: nil}, {Key: []byte("e"), Value: []byte{}}}},
	}
	timestamps := []abi.Record{
		{Offset: 1, Timestamp: 0, Value: []byte("zero")},
		{Offset: 2, Timestamp: -1, Value: []byte("minus one")},
		{Offset: 3, Timestamp: 1<<62 + 5, Value: []byte("far future")},
		{Offset: 4, Timestamp: 1700000000000, Value: []byte("last one")},
	}
	var many [][]abi.Record
	for i := range 150 {
		many = append(many, recs(fmt.Sprintf("batch %d of many", i), "", "x y"))
	}
	manyCounts := func() [][]abi.Record {
		var out [][]abi.Record
		for i := range 150 {
			out = append(out, keys("w", fmt.Sprint(i%7), "w"))
		}
		return out
	}
	generated := func() [][]abi.Record { return generatedRecords(40, 300, 1) }
	generatedWords := func() [][]abi.Record { return wordRecords(generatedRecords(40, 120, 2)) }

	vs := []opVector{
		// split
		{op: OperatorSplit, name: "ascii-whitespace", doc: "Each of the six ASCII whitespace bytes (space, \\t, \\n, \\v, \\f, \\r) separates words, alone or in runs, leading and trailing.",
			batches: batches(recs("a b\tc\nd\ve\ff\rg", "  lead and trail  ", "\t\n\v\f\r", "x\r\ny", "one"))},
		{op: OperatorSplit, name: "other-bytes-are-word-bytes", doc: "Every other byte (controls, DEL, 0x80-0xff, invalid UTF-8) and the Unicode spaces U+00A0, U+0085, U+2003, U+3000 are part of words.",
			batches: batches(recs(string(allBytes), "a\u00a0b c\u2003d e\u3000f g\u0085h", "\x00 \x1c\x1d\x1e\x1f \x7f \xff\xfe"))},
		{op: OperatorSplit, name: "case-and-punctuation", doc: "Case is kept and punctuation belongs to the word: Fox, fox FOX fox. are four different words.",
			batches: batches(recs("Fox, fox FOX fox.", "«quoted» (paren) it's don't -- - ...", "naïve 日本語 façade"))},
		{op: OperatorSplit, name: "null-empty-and-keys", doc: "A null or empty value or one of only whitespace emits nothing; the input key (null, empty or set) is ignored.",
			batches: batches(nullsAndEmpties)},
		{op: OperatorSplit, name: "headers-dropped", doc: "Input headers are not copied to the words.",
			batches: batches(withHeaders)},
		{op: OperatorSplit, name: "timestamps", doc: "Each word carries its sentence's timestamp (0, -1 i.e. the batch's last, 2^62+5, ...).",
			batches: batches(timestamps)},
		{op: OperatorSplit, name: "long-words", doc: "A 100 KiB word and 10,000 one-byte words come out whole and in order.",
			batches: batches(recs(strings.Repeat("w", 100<<10)+" end", strings.Repeat("a ", 10000)))},
		{op: OperatorSplit, name: "golden-input", doc: "The input_batch.hex vector (null key, empty value, null value) gives the single word hello.",
			batches: batches(goldenInputRecords())},
		{op: OperatorSplit, name: "empty-batches", doc: "Batches with no records emit nothing, before and after one that does.",
			batches: batches(nil, recs("a"), nil)},
		{op: OperatorSplit, name: "many-batches", doc: "150 small batches, each split on its own.",
			batches: batches(many...)},
		{op: OperatorSplit, name: "generated", doc: "40 batches of 0 to 300 generated sentences (every separator, non-ASCII, nulls, headers, one batch over 300 KiB).",
			batches: generated},
		{op: OperatorSplit, name: "one-emit-per-batch", doc: "At most one emit call per sluice_process call, none when there is nothing to emit (SPEC §4: buffer a batch's outputs).",
			batches: generated, oneEmit: true},

		// count
		{op: OperatorCount, name: "first-batch", doc: "One output per word of the batch, in order of first appearance, value the decimal count; the store holds the same.",
			batches: batches(keys("b", "a", "b", "c", "b", "a"))},
		{op: OperatorCount, name: "across-batches", doc: "Counts continue from the store across batches; each batch emits only its own words.",
			batches: batches(keys("a", "b"), keys("a"), keys("c", "a", "c"), keys("b"))},
		{op: OperatorCount, name: "null-key-ignored", doc: "Records with a null key are ignored; a batch of only those emits nothing and writes nothing.",
			batches: batches(
				[]abi.Record{{Timestamp: 1, Value: []byte("no key")}, {Timestamp: 2, Key: []byte("a")}, {Timestamp: 3, Value: nil}},
				[]abi.Record{{Timestamp: 4, Value: []byte("x")}})},
		{op: OperatorCount, name: "empty-key-is-a-word", doc: "An empty key is the empty word and is counted.",
			batches: batches(keys("", "a", ""), keys(""))},
		{op: OperatorCount, name: "binary-keys", doc: "Keys are counted as bytes: NUL, 0xff, whitespace inside, non-ASCII, a 60 KiB key.",
			batches: batches(keys("\x00", "a b", "\xff", "日本", "\x00", strings.Repeat("k", 60<<10)))},
		{op: OperatorCount, name: "stored-counts", doc: "Stored counts are read as decimal (41, 0, 007, -5, -0, the int64 limits) and written back incremented; the maximum wraps to the minimum.",
			state:   map[string]string{"a": "41", "z": "0", "p": "007", "m": "-5", "n": "-0", "max": "9223372036854775807", "min": "-9223372036854775808", "other": "9"},
			batches: batches(keys("a", "z", "p", "m", "n", "max", "min", "a"))},
		{op: OperatorCount, name: "corrupt-stored-count", doc: "A stored count that is not an optional '-' and 1-19 digits within int64 fails the record of the word's first appearance " +
			"(index 2 of a, b, v, a, v), and nothing of that batch is kept; re-running the records before it and the rest (the skip policy) counts them.",
			corrupt: []string{"x", "", "-", "+1", "1 ", " 1", "12a", "0x10", "1.5", "99999999999999999999", "9223372036854775808",
				"-9223372036854775809", strings.Repeat("1", 40), "00000000000000000001"},
			batches: batches(keys("a", "b", "v", "a", "v"))},
		{op: OperatorCount, name: "many-batches", doc: "150 small batches with repeated words.",
			batches: manyCounts},
		{op: OperatorCount, name: "generated", doc: "The words of 40 generated batches, as split emits them, with some null and empty keys.",
			batches: generatedWords},
		{op: OperatorCount, name: "one-emit-per-batch", doc: "At most one emit call per sluice_process call, none when there is nothing to emit (SPEC §4: buffer a batch's outputs).",
			batches: generatedWords, oneEmit: true},

		// passthrough
		{op: OperatorPassthrough, name: "golden-input", doc: "The input_batch.hex records come out unchanged: null and empty keys, values and header values kept apart.",
			batches: batches(goldenInputRecords())},
		{op: OperatorPassthrough, name: "null-empty-and-keys", doc: "Null and empty keys and values are kept apart.",
			batches: batches(nullsAndEmpties)},
		{op: OperatorPassthrough, name: "headers", doc: "Headers are forwarded in order, with empty keys and null or empty values.",
			batches: batches(withHeaders)},
		{op: OperatorPassthrough, name: "timestamps", doc: "Timestamps are kept (0, -1 i.e. the batch's last, 2^62+5).",
			batches: batches(timestamps)},
		{op: OperatorPassthrough, name: "binary-and-large", doc: "Every byte value, a 60 KiB key and a 1 MiB value come out unchanged.",
			batches: batches([]abi.Record{{Offset: 1, Timestamp: 1, Key: allBytes, Value: allBytes},
				{Offset: 2, Timestamp: 2, Key: []byte(strings.Repeat("k", 60<<10)), Value: []byte(strings.Repeat("v", 1<<20))}})},
		{op: OperatorPassthrough, name: "empty-batches", doc: "Batches with no records emit nothing.",
			batches: batches(nil, recs("a"), nil)},
		{op: OperatorPassthrough, name: "generated", doc: "40 generated batches.",
			batches: generated},
		{op: OperatorPassthrough, name: "one-emit-per-batch", doc: "At most one emit call per sluice_process call, none when there is nothing to emit (SPEC §4: buffer a batch's outputs).",
			batches: generated, oneEmit: true},
	}
	return vs
}

func operatorCases() []Case {
	var cs []Case
	for _, v := range opVectors() {
		cs = append(cs, Case{Suite: SuiteOperator, Name: v.op + "/" + v.name, Doc: v.doc, operator: v.op, needsModule: true,
			run: func(ctx context.Context, e *env) error { return runOpVector(ctx, e, v) }})
	}
	return cs
}

func opHostConfig(op string, state map[string]string) hostConfig {
	hc := hostConfig{}
	if op == OperatorCount {
		hc.stores = []string{countsStore}
		hc.state = map[string]map[string]string{countsStore: state}
	}
	return hc
}

func runOpVector(ctx context.Context, e *env, v opVector) error {
	if len(v.corrupt) > 0 {
		for _, bad := range v.corrupt {
			state := map[string]string{"v": bad}
			if err := checkOperator(ctx, e, v, state); err != nil {
				return fmt.Errorf("stored count %q: %w", bad, err)
			}
		}
		return nil
	}
	return checkOperator(ctx, e, v, v.state)
}

// procCall is one sluice_process call of the skip policy's delivery and
// what came of it.
type procCall struct {
	batch  []abi.Record
	outs   []effOutput
	failed int // record index, -1: none
	msg    string
	emits  int
	err    error // a fault or another error that ends the instance
}

// deliver passes batch to call as a task with the skip error policy does:
// a failed record i makes it re-run records 0..i-1 as a batch, drop record
// i and go on with the rest. It returns every call made.
func deliver(batch []abi.Record, call func([]abi.Record) procCall) []procCall {
	c := call(batch)
	calls := []procCall{c}
	if c.err != nil || c.failed < 0 || c.failed >= len(batch) {
		return calls
	}
	if c.failed > 0 {
		calls = append(calls, deliver(batch[:c.failed], call)...)
	}
	if rest := batch[c.failed+1:]; len(rest) > 0 {
		calls = append(calls, deliver(rest, call)...)
	}
	return calls
}

func checkOperator(ctx context.Context, e *env, v opVector, state map[string]string) error {
	s, err := start(ctx, e, e.rt, opHostConfig(v.op, state), plugins.InstanceConfig{})
	var ce compileError
	switch {
	case errors.As(err, &ce):
		return skipf("the module does not compile on %s (see abi/validate)", e.rt.Name())
	case err != nil:
		return fmt.Errorf("instantiating the operator: %v", err)
	}
	defer s.close()

	ref := references[v.op]
	refState := maps.Clone(state)
	if refState == nil {
		refState = map[string]string{}
	}
	for bi, batch := range v.batches() {
		want := deliver(batch, func(b []abi.Record) procCall {
			outs, next, failed := ref(refState, b)
			c := procCall{batch: b, failed: failed}
			if failed < 0 {
				refState = next
				for _, o := range outs {
					c.outs = append(c.outs, resolve(o, b))
				}
			}
			return c
		})
		var fault error
		got := deliver(batch, func(b []abi.Record) procCall {
			if fault != nil {
				return procCall{batch: b, err: fault}
			}
			r := s.process(ctx, inputbatch.Encode(0, b))
			c := procCall{batch: b, failed: -1, emits: r.emitCalls}
			var re *plugins.RecordError
			switch {
			case errors.As(r.err, &re):
				c.failed, c.msg = re.Index, re.Message
			case r.err != nil:
				c.err, fault = r.err, r.err
			default:
				if c.outs, c.err = decodeEmits(r.emits, b); c.err != nil {
					fault = c.err
				}
			}
			return c
		})
		if err := compareCalls(bi, batch, want, got, v.oneEmit); err != nil {
			return err
		}
	}
	if v.op == OperatorCount && !v.oneEmit {
		gotState := s.host.state()[countsStore]
		if err := compareState(refState, gotState); err != nil {
			return err
		}
	}
	return nil
}

func describeRecord(r abi.Record) string {
	return fmt.Sprintf("{offset %d, timestamp %d, key %s, value %s, %d headers}", r.Offset, r.Timestamp, nullable(r.Key), nullable(r.Value), len(r.Headers))
}

func compareCalls(bi int, batch []abi.Record, want, got []procCall, oneEmit bool) error {
	where := func(ci int, b []abi.Record) string {
		if ci == 0 {
			return fmt.Sprintf("batch %d (%d records)", bi, len(b))
		}
		return fmt.Sprintf("batch %d, re-run %d (%d records, after a failed record)", bi, ci, len(b))
	}
	for ci := range max(len(want), len(got)) {
		if ci >= len(got) || ci >= len(want) {
			return fmt.Errorf("batch %d: the skip policy made %d calls for the module, %d for the reference", bi, len(got), len(want))
		}
		w, g := want[ci], got[ci]
		if g.err != nil {
			return fmt.Errorf("%s: %v", where(ci, g.batch), g.err)
		}
		if w.failed != g.failed {
			switch {
			case w.failed < 0:
				return fmt.Errorf("%s: the module failed record %d %s (%s), the contract fails none", where(ci, g.batch), g.failed, describeRecord(g.batch[g.failed]), g.msg)
			case g.failed < 0:
				return fmt.Errorf("%s: the module failed no record, the contract fails record %d %s", where(ci, g.batch), w.failed, describeRecord(w.batch[w.failed]))
			default:
				return fmt.Errorf("%s: the module failed record %d (%s), the contract fails record %d %s", where(ci, g.batch), g.failed, g.msg, w.failed, describeRecord(w.batch[w.failed]))
			}
		}
		if oneEmit {
			if g.emits > 1 || (len(g.outs) == 0 && g.emits > 0 && g.failed < 0) {
				return fmt.Errorf("%s: %d emit calls for %d outputs, want at most one (and none without outputs)", where(ci, g.batch), g.emits, len(g.outs))
			}
			continue
		}
		if g.failed >= 0 {
			continue
		}
		for i := range max(len(w.outs), len(g.outs)) {
			switch {
			case i >= len(g.outs):
				return fmt.Errorf("%s: %d outputs, want %d; first missing output %d: %s", where(ci, g.batch), len(g.outs), len(w.outs), i, w.outs[i])
			case i >= len(w.outs):
				return fmt.Errorf("%s: %d outputs, want %d; first extra output %d: %s", where(ci, g.batch), len(g.outs), len(w.outs), i, g.outs[i])
			case !w.outs[i].equal(g.outs[i]):
				return fmt.Errorf("%s: output %d differs (of %d; %d wanted)%s\n  got:  %s\n  want: %s",
					where(ci, g.batch), i, len(g.outs), len(w.outs), firstDifference(g.outs[i], w.outs[i]), g.outs[i], w.outs[i])
			}
		}
	}
	return nil
}

// firstDifference says where two outputs first differ when it is in the
// key or the value, which may be too long to show whole.
func firstDifference(got, want effOutput) string {
	for _, f := range []struct {
		name      string
		got, want []byte
	}{{"key", got.key, want.key}, {"value", got.value, want.value}} {
		if sameBytes(f.got, f.want) {
			continue
		}
		if f.got == nil || f.want == nil {
			return fmt.Sprintf(": the %s is %s, want %s", f.name, nullable(f.got), nullable(f.want))
		}
		i := 0
		for i < len(f.got) && i < len(f.want) && f.got[i] == f.want[i] {
			i++
		}
		g, w := "end", "end"
		if i < len(f.got) {
			g = fmt.Sprintf("%#02x", f.got[i])
		}
		if i < len(f.want) {
			w = fmt.Sprintf("%#02x", f.want[i])
		}
		return fmt.Sprintf(": the %s first differs at byte %d (got %s, want %s)", f.name, i, g, w)
	}
	return ""
}

func compareState(want, got map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		if !ok {
			return fmt.Errorf("final state: store %q lacks key %s (want %q); %d keys, want %d", countsStore, nullable([]byte(k)), want[k], len(got), len(want))
		}
		if g != want[k] {
			return fmt.Errorf("final state: store %q key %s holds %q, want %q", countsStore, nullable([]byte(k)), g, want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			return fmt.Errorf("final state: store %q has key %s = %q, which the contract does not write", countsStore, nullable([]byte(k)), got[k])
		}
	}
	return nil
}

// InferOperator guesses the contract from a module's file name: the one
// of split, count and passthrough it names, if exactly one.
func InferOperator(fileName string) string {
	base := strings.ToLower(fileName)
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	var found []string
	for _, op := range Operators {
		if strings.Contains(base, op) {
			found = append(found, op)
		}
	}
	if len(found) == 1 {
		return found[0]
	}
	return ""
}
