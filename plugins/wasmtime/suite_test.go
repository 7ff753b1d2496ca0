//go:build cgo && !nowasmtime

package wasmtime

import (
	"context"
	"testing"

	"github.com/sluice-io/sluice/plugins/runtimetest"
)

// TestSuite runs the conformance suite that every runtime passes
// (package runtimetest). Traps are worded as wazero words them, so the
// same trap texts are required.
func TestSuite(t *testing.T) {
	runtimetest.Run(t, shared.Runtime, runtimetest.RunOptions{TrapText: runtimetest.WazeroTrapText})
}

// shared is the runtime of this package's tests, with a disk cache:
// Cranelift takes seconds per Go guest.
var shared = runtimetest.Share(func() (*Runtime, error) {
	return New(context.Background(), Options{CacheDir: runtimetest.CacheDir("wasmtime")})
})

func testRuntime(t testing.TB) *Runtime { return shared.Get(t) }
