package main

import (
	_ "embed"
	"math/rand/v2"
	"strconv"
	"strings"
)

// demoWords is a list of common English words, most frequent first. The
// demo and the word-count benchmark make their text from it rather than
// ship a book: generated sentences cost nothing to store, are the same on
// every run, and have the skewed word frequencies of real text.
//
//go:embed demo_words.txt
var demoWords string

// textGen makes deterministic sentences whose words follow Zipf's law over
// demoWords, as words in natural language roughly do, so a word count's
// top list looks like one from a real text.
type textGen struct {
	words []string
	r     *rand.Rand
	zipf  *rand.Zipf
}

func newTextGen(seed uint64) *textGen { return newTextGenWords(seed, strings.Fields(demoWords)) }

// syntheticWords is a vocabulary of n made-up words ("w1" to "wN"), for
// measuring a word count over far more distinct words than demoWords has.
func syntheticWords(n int) []string {
	words := make([]string, n)
	for i := range words {
		words[i] = "w" + strconv.Itoa(i+1)
	}
	return words
}

func newTextGenWords(seed uint64, words []string) *textGen {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	return &textGen{words: words, r: r, zipf: rand.NewZipf(r, 1.1, 2, uint64(len(words)-1))}
}

// appendSentence appends one sentence of 4 to 16 words separated by single
// spaces and returns the buffer and the number of words.
func (g *textGen) appendSentence(dst []byte) ([]byte, int) {
	n := 4 + g.r.IntN(13)
	for i := 0; i < n; i++ {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, g.words[g.zipf.Uint64()]...)
	}
	return dst, n
}

// sentences returns n sentences and the total word count.
func (g *textGen) sentences(n int) ([]string, int) {
	out := make([]string, n)
	words := 0
	var buf []byte
	for i := range out {
		var w int
		buf, w = g.appendSentence(buf[:0])
		out[i] = string(buf)
		words += w
	}
	return out, words
}
