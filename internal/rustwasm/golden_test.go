package rustwasm

import (
	"testing"

	"github.com/sluice-io/sluice/internal/sdkcheck"
)

// The SDK decodes the golden input batch and encodes the golden output
// batch byte for byte (Emitter::emit_to in testdata/sdkop), and fails malformed
// batches without reading out of bounds.
func TestGoldenVectors(t *testing.T) {
	RequireToolchain(t)
	wasm, err := BuildBytes("testdata/sdkop")
	if err != nil {
		t.Fatal(err)
	}
	sdkcheck.GoldenVectors(t, wasm)
}

func TestMalformedBatch(t *testing.T) {
	RequireToolchain(t)
	wasm, err := BuildBytes("testdata/sdkop")
	if err != nil {
		t.Fatal(err)
	}
	sdkcheck.MalformedBatch(t, wasm)
}
