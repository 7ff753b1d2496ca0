// Command split is the first operator of the word count example: for each
// record of the input topic (one sentence per record value) it emits one
// record per word to output 0, with the word as both key and value. Keying
// by word makes the host partition the words topic by word, so that all
// occurrences of a word reach the same count task.
//
// A word is a maximal run of bytes that are not ASCII whitespace, the six
// bytes ' ', '\t', '\n', '\v', '\f' and '\r'. Case is kept and nothing else
// is stripped: "Word," and "word" are different words. Other Unicode
// spaces (U+00A0, U+2003...) are part of words, which keeps the rule simple
// for any client to check and makes splitting a byte scan with no
// decoding.
//
// Build with `sluice build examples/wordcount/go/split`.
package main

import sluice "github.com/sluice-io/sluice/sdk/go"

func init() { sluice.Handle(split) }

func split(r *sluice.Record, out *sluice.Emitter) error {
	for word, rest := nextWord(r.Value); len(word) > 0; word, rest = nextWord(rest) {
		out.Emit(word, word)
	}
	return nil
}

// isSpace marks the bytes that separate words.
var isSpace = [256]bool{' ': true, '\t': true, '\n': true, '\v': true, '\f': true, '\r': true}

// nextWord returns the first word of text (empty when there is none) and
// the text after it. The word aliases text.
func nextWord(text []byte) (word, rest []byte) {
	i := 0
	for i < len(text) && isSpace[text[i]] {
		i++
	}
	j := i
	for j < len(text) && !isSpace[text[j]] {
		j++
	}
	return text[i:j], text[j:]
}

func main() {}
