//go:build cgo && !nowasmtime

package wasmtime

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/runtimetest"
)

// TestSuite runs the conformance suite that every runtime passes
// (package runtimetest). Traps are worded as wazero words them, so the
// same trap texts are required.
func TestSuite(t *testing.T) {
	runtimetest.Run(t, func(t testing.TB) plugins.Runtime { return testRuntime(t) }, runtimetest.RunOptions{
		TrapText: map[string]string{
			runtimetest.TrapUnreachable: "wasm error: unreachable",
			runtimetest.TrapOutOfBounds: "wasm error: out of bounds memory access",
		},
	})
}

// Shared runtime for the tests of this package, with a disk cache that
// outlives the test process: Cranelift takes seconds per Go guest.
var (
	sharedOnce sync.Once
	shared     *Runtime
	sharedErr  error
)

func testRuntime(t testing.TB) *Runtime {
	t.Helper()
	sharedOnce.Do(func() {
		shared, sharedErr = New(context.Background(), Options{CacheDir: filepath.Join(os.TempDir(), "sluice-wasmtime-test-cache")})
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}
