// Command lowercase-split is a deliberately non-conformant split operator
// for the conformance suite's own tests: it lowercases every word, which
// the contract forbids (case is kept), so the operator suite must fail it
// on the cases with capitals and pass it on the others.
package main

import (
	"bytes"

	sluice "github.com/sluice-io/sluice/sdk/go"
)

func init() { sluice.Handle(split) }

func split(r *sluice.Record, out *sluice.Emitter) error {
	for _, w := range bytes.FieldsFunc(r.Value, func(c rune) bool {
		return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
	}) {
		w = bytes.ToLower(w)
		out.Emit(w, w)
	}
	return nil
}

func main() {}
