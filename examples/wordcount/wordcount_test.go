//go:build !wasip1

// Package wordcount_test checks the word count example as a whole: its job
// files load as they are, and its two operators, compiled to Wasm, count a
// generated text correctly in sluice's wazero runtime.
package wordcount_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/internal/gowasm"
	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

func TestJobFilesLoad(t *testing.T) {
	split, err := host.LoadJobFile("split.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if split.Name != "split" || !strings.HasSuffix(split.Module, filepath.FromSlash("wordcount/go/split/split.wasm")) ||
		strings.Join(split.Inputs, ",") != "sentences" || len(split.Outputs) != 1 || split.Outputs[0].Topic != "words" {
		t.Errorf("split.yaml = %+v", split)
	}
	count, err := host.LoadJobFile("count.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if count.Name != "count" || !strings.HasSuffix(count.Module, filepath.FromSlash("wordcount/go/count/count.wasm")) ||
		strings.Join(count.Inputs, ",") != "words" || len(count.Outputs) != 1 || len(count.Stores) != 1 || count.Stores[0].Name != "counts" {
		t.Fatalf("count.yaml = %+v", count)
	}
	if o := count.Outputs[0]; o.Topic != "word-counts" || o.Config["cleanup.policy"] != "compact" {
		t.Errorf("count.yaml output = %+v, want word-counts with cleanup.policy=compact", o)
	}
}

// text generates sentences with words of mixed case, punctuation and
// non-ASCII letters and spaces, separated by every kind of ASCII
// whitespace.
func text(sentences int) []string {
	vocab := []string{"the", "The", "THE", "fox", "fox,", "fox.", "jumps", "über", "naïve", "a\u00a0b",
		"42", "x", "lazy", "dog", "dog!", "-", "quick", "brown", "日本", "\xff"}
	spaces := []string{" ", "  ", "\t", "\n", "\v", "\f", "\r", "\r\n"}
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]string, sentences)
	for i := range out {
		var b strings.Builder
		if rng.IntN(4) == 0 {
			b.WriteString(spaces[rng.IntN(len(spaces))])
		}
		for j := range 1 + rng.IntN(20) {
			if j > 0 {
				b.WriteString(spaces[rng.IntN(len(spaces))])
			}
			// A skewed choice, so that counts differ by word.
			b.WriteString(vocab[rng.IntN(1+rng.IntN(len(vocab)))])
		}
		out[i] = b.String()
	}
	return out
}

// expected counts words by the contract's definition, independently of
// the operators.
func expected(sentences []string) (map[string]int, int) {
	counts := map[string]int{}
	total := 0
	for _, s := range sentences {
		for _, w := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(" \t\n\v\f\r", r) }) {
			counts[w]++
			total++
		}
	}
	return counts, total
}

func TestWordCountInTheRuntime(t *testing.T) {
	ctx := context.Background()
	splitOp, err := sdktest.StartWasm(ctx, gowasm.MustBuild("go/split"), sdktest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer splitOp.Close()
	countOp, err := sdktest.StartWasm(ctx, gowasm.MustBuild("go/count"), sdktest.Config{Stores: []string{"counts"}})
	if err != nil {
		t.Fatal(err)
	}
	defer countOp.Close()

	sentences := text(20_000)
	want, total := expected(sentences)
	latest := map[string]string{}
	var words, counted, distinct int
	const batch = 500
	for start := 0; start < len(sentences); start += batch {
		var in []sluice.Record
		for _, s := range sentences[start:min(start+batch, len(sentences))] {
			in = append(in, sluice.Record{Value: []byte(s)})
		}
		outs, err := splitOp.Process(in...)
		if err != nil {
			t.Fatal(err)
		}
		in = in[:0]
		for _, o := range outs {
			if string(o.Key) != string(o.Value) || o.Partition != -1 {
				t.Fatalf("split output %q=%q partition %d: want key = value, by key", o.Key, o.Value, o.Partition)
			}
			in = append(in, sluice.Record{Key: o.Key, Value: o.Value})
		}
		words += len(outs)
		seen := map[string]bool{}
		for _, r := range in {
			seen[string(r.Key)] = true
		}
		distinct += len(seen)
		outs, err = countOp.Process(in...)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			latest[string(o.Key)] = string(o.Value)
		}
		counted += len(outs)
	}
	// count emits once per word per batch.
	if words != total || counted != distinct {
		t.Errorf("split emitted %d words and count %d counts; the text has %d words, %d distinct per batch", words, counted, total, distinct)
	}
	if len(latest) != len(want) {
		t.Errorf("word-counts has %d words, want %d", len(latest), len(want))
	}
	state := countOp.State("counts")
	for w, n := range want {
		if latest[w] != strconv.Itoa(n) || state[w] != strconv.Itoa(n) {
			t.Errorf("%q: latest count %q, stored %q, want %d", w, latest[w], state[w], n)
		}
	}
}
