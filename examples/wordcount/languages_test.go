//go:build !wasip1

package wordcount_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/internal/aswasm"
	"github.com/sluice-io/sluice/internal/cwasm"
	"github.com/sluice-io/sluice/internal/gowasm"
	"github.com/sluice-io/sluice/internal/rustwasm"
	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

// language is one of the SDKs whose word count must behave exactly as the
// Go one.
type language struct {
	name    string // and the example's directory
	require func(testing.TB)
	build   func(dir string) ([]byte, error)
}

var otherLanguages = []language{
	{"c", cwasm.RequireToolchain, cwasm.BuildBytes},
	{"rust", rustwasm.RequireToolchain, rustwasm.BuildBytes},
	{"as", aswasm.RequireToolchain, aswasm.BuildBytes},
}

// pair runs the Go build and another language's build of one operator
// side by side.
type pair struct {
	lang      string
	goOp, cOp *sdktest.Host // cOp: the other language's
}

func startPair(t *testing.T, lang language, op string, cfg sdktest.Config) pair {
	t.Helper()
	ctx := context.Background()
	cWasm, err := lang.build(lang.name + "/" + op)
	if err != nil {
		t.Fatal(err)
	}
	goOp, err := sdktest.StartWasm(ctx, gowasm.MustBuild("go/"+op), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { goOp.Close() })
	cOp, err := sdktest.StartWasm(ctx, cWasm, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cOp.Close() })
	return pair{lang.name, goOp, cOp}
}

func formatOutputs(outs []sdktest.Output) string {
	var b strings.Builder
	for _, o := range outs {
		fmt.Fprintf(&b, "out=%d part=%d ts=%d key=%s value=%s headers=%d\n", o.Output, o.Partition,
			o.Timestamp.UnixMilli(), nullable(o.Key), nullable(o.Value), len(o.Headers))
	}
	return b.String()
}

func nullable(b []byte) string {
	if b == nil {
		return "null"
	}
	return fmt.Sprintf("%q", b)
}

// process passes the same batch to both and fails the test unless they
// answer the same way; it returns the outputs.
func (p pair) process(t *testing.T, what string, in []sluice.Record) ([]sdktest.Output, error) {
	t.Helper()
	goOuts, goErr := p.goOp.Process(in...)
	cOuts, cErr := p.cOp.Process(in...)
	var goRE, cRE *sdktest.RecordError
	switch {
	case goErr == nil && cErr == nil:
	case errors.As(goErr, &goRE) && errors.As(cErr, &cRE):
		if goRE.Index != cRE.Index {
			t.Fatalf("%s: Go failed record %d (%s), %s record %d (%s)", what, goRE.Index, goRE.Message, p.lang, cRE.Index, cRE.Message)
		}
		return nil, goErr
	default:
		t.Fatalf("%s: Go: %v; %s: %v (its stdio %q)", what, goErr, p.lang, cErr, p.cOp.Stdio())
	}
	if g, c := formatOutputs(goOuts), formatOutputs(cOuts); g != c {
		t.Fatalf("%s: outputs differ\nGo:\n%s\n%s:\n%s", what, g, p.lang, c)
	}
	return goOuts, nil
}

// The C and Rust operators give the Go operators' outputs, batch by batch,
// on a generated text (every kind of whitespace, non-ASCII bytes, null and
// empty values and keys, batches of varying sizes and timestamps), and
// leave the same counts in the store; each makes one emit call per batch
// with outputs, as the Go SDK.
func TestOperatorsMatchGo(t *testing.T) {
	for _, lang := range otherLanguages {
		t.Run(lang.name, func(t *testing.T) { operatorsMatchGo(t, lang) })
	}
}

func operatorsMatchGo(t *testing.T, lang language) {
	lang.require(t)
	split := startPair(t, lang, "split", sdktest.Config{})
	count := startPair(t, lang, "count", sdktest.Config{Stores: []string{"counts"}})

	sentences := text(8_000)
	rng := rand.New(rand.NewPCG(3, 4))
	ts := int64(1_700_000_000_000)
	batches := 0
	for start := 0; start < len(sentences); batches++ {
		n := 1 + rng.IntN(600)
		if batches%7 == 0 {
			n = 1 + rng.IntN(3)
		}
		var in []sluice.Record
		for _, s := range sentences[start:min(start+n, len(sentences))] {
			ts += int64(rng.IntN(3))
			r := sluice.Record{Value: []byte(s), Timestamp: ts}
			switch rng.IntN(50) {
			case 0:
				r.Value = nil
			case 1:
				r.Value = []byte{}
			case 2:
				r.Key = []byte("k")
			}
			in = append(in, r)
		}
		start += n
		words, _ := split.process(t, fmt.Sprintf("split batch %d", batches), in)
		in = in[:0]
		for i, o := range words {
			r := sluice.Record{Key: o.Key, Value: o.Value, Timestamp: ts + int64(i%5)}
			switch rng.IntN(100) {
			case 0:
				r.Key = nil // ignored
			case 1:
				r.Key = []byte{} // the empty word, counted
			}
			in = append(in, r)
		}
		if _, err := count.process(t, fmt.Sprintf("count batch %d", batches), in); err != nil {
			t.Fatalf("count batch %d: %v", batches, err)
		}
	}
	for _, p := range []pair{split, count} {
		if g, c := p.goOp.EmitCalls(), p.cOp.EmitCalls(); g != c || c > batches {
			t.Errorf("emit calls: Go %d, %s %d, over %d batches", g, lang.name, c, batches)
		}
	}
	g, c := count.goOp.State("counts"), count.cOp.State("counts")
	if len(g) == 0 || fmt.Sprint(g) != fmt.Sprint(c) {
		t.Errorf("counts store differs: Go %d entries, %s %d", len(g), lang.name, len(c))
	}
}

// A stored count that is not a decimal integer fails the record of the
// word's first appearance in the batch, in both; counts at the edges of
// int64 wrap the same way.
func TestCountStoredValues(t *testing.T) {
	for _, lang := range otherLanguages {
		t.Run(lang.name, func(t *testing.T) { countStoredValues(t, lang) })
	}
}

func countStoredValues(t *testing.T, lang language) {
	lang.require(t)
	word := func(w string) sluice.Record { return sluice.Record{Key: []byte(w), Value: []byte(w)} }
	for _, v := range []string{"x", "", "-", "+1", "1 ", " 1", "12a", "0x10", "1.5",
		"99999999999999999999", "9223372036854775808", "-9223372036854775809", strings.Repeat("1", 40),
		"0", "007", "-0", "41", "-5", "9223372036854775807", "-9223372036854775808", "1234567890123456789"} {
		// A fresh pair per value: the Go SDK caches what it read, and only
		// the operator is supposed to write its store.
		count := startPair(t, lang, "count", sdktest.Config{Stores: []string{"counts"}})
		count.goOp.SetState("counts", "v", v)
		count.cOp.SetState("counts", "v", v)
		outs, err := count.process(t, fmt.Sprintf("stored %q", v), []sluice.Record{word("a"), word("b"), word("v"), word("a"), word("v")})
		var re *sdktest.RecordError
		if err != nil && (!errors.As(err, &re) || re.Index != 2) {
			t.Errorf("stored %q: %v, want record 2 failed", v, err)
		}
		if err == nil && len(outs) != 3 {
			t.Errorf("stored %q: %d outputs", v, len(outs))
		}
		if fmt.Sprint(count.goOp.State("counts")) != fmt.Sprint(count.cOp.State("counts")) {
			t.Errorf("stored %q: Go state %v, %s state %v", v, count.goOp.State("counts"), lang.name, count.cOp.State("counts"))
		}
	}
	// The corrupt-count case of go/count's tests.
	count := startPair(t, lang, "count", sdktest.Config{Stores: []string{"counts"}})
	count.goOp.SetState("counts", "bad", "x")
	count.cOp.SetState("counts", "bad", "x")
	_, err := count.process(t, "corrupt", []sluice.Record{word("new"), word("bad")})
	var re *sdktest.RecordError
	if !errors.As(err, &re) || re.Index != 1 {
		t.Fatalf("err = %v, want record 1 failed", err)
	}
	if _, ok := count.cOp.State("counts")["new"]; ok {
		t.Errorf(`%s: "new" was counted in a failed batch`, lang.name)
	}
	if !bytes.Contains([]byte(fmt.Sprint(err)), []byte("not a decimal integer")) {
		t.Errorf("Go error %v", err)
	}
}
