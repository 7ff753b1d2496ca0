package main

import (
	"bytes"
	"slices"
	"testing"

	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

func words(text string) []string {
	var ws []string
	for w, rest := nextWord([]byte(text)); len(w) > 0; w, rest = nextWord(rest) {
		ws = append(ws, string(w))
	}
	return ws
}

// reference splits by the contract's definition, independently of
// nextWord: runs of anything but the six ASCII whitespace characters.
func reference(text string) []string {
	var ws []string
	for _, f := range bytes.FieldsFunc([]byte(text), func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\v' || r == '\f' || r == '\r'
	}) {
		ws = append(ws, string(f))
	}
	return ws
}

func TestNextWord(t *testing.T) {
	for _, c := range []struct {
		text string
		want []string
	}{
		{"", nil},
		{"   \t\n", nil},
		{"one", []string{"one"}},
		{"The quick  brown\tfox\r\njumps\v\fover", []string{"The", "quick", "brown", "fox", "jumps", "over"}},
		{"  leading and trailing  ", []string{"leading", "and", "trailing"}},
		{"Word, word. WORD", []string{"Word,", "word.", "WORD"}},
		// Non-ASCII spaces belong to words; invalid UTF-8 is kept as is.
		{"a\u00a0b c\u2003d \xff\xfe", []string{"a\u00a0b", "c\u2003d", "\xff\xfe"}},
	} {
		if got := words(c.text); !slices.Equal(got, c.want) {
			t.Errorf("words(%q) = %q, want %q", c.text, got, c.want)
		}
		if got := reference(c.text); !slices.Equal(got, c.want) {
			t.Errorf("reference(%q) = %q, want %q: the test's oracle is wrong", c.text, got, c.want)
		}
	}
}

func FuzzNextWord(f *testing.F) {
	f.Add("The quick brown fox")
	f.Add("\t\x00 a\u00a0b\r\n\xff")
	f.Fuzz(func(t *testing.T, text string) {
		if got, want := words(text), reference(text); !slices.Equal(got, want) {
			t.Errorf("words(%q) = %q, want %q", text, got, want)
		}
	})
}

func TestSplitEmitsOneRecordPerWord(t *testing.T) {
	host, err := sdktest.Start(sdktest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := host.Process(
		sluice.Record{Key: []byte("ignored"), Value: []byte("to be or  not to be")},
		sluice.Record{Value: nil},
		sluice.Record{Value: []byte(" \n ")},
		sluice.Record{Value: []byte("Be")},
	)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outs {
		if !bytes.Equal(o.Key, o.Value) || o.Output != 0 || o.Partition != -1 {
			t.Errorf("output %+v: want key = value = the word, output 0, partitioned by key", o)
		}
		got = append(got, string(o.Key))
	}
	if want := []string{"to", "be", "or", "not", "to", "be", "Be"}; !slices.Equal(got, want) {
		t.Errorf("words = %q, want %q", got, want)
	}
}

func BenchmarkSplit(b *testing.B) {
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog "), 3)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		for w, rest := nextWord(text); len(w) > 0; w, rest = nextWord(rest) {
		}
	}
}
