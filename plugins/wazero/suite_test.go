package wazero

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
// (package runtimetest), checking wazero's own trap messages too.
func TestSuite(t *testing.T) {
	runtimetest.Run(t, func(t testing.TB) plugins.Runtime { return testRuntime(t) }, runtimetest.RunOptions{
		TrapText: map[string]string{
			runtimetest.TrapUnreachable: "wasm error: unreachable",
			runtimetest.TrapOutOfBounds: "wasm error: out of bounds memory access",
		},
	})
}

// Shared runtime for the tests of this package: compiling a Go guest takes
// a moment, and the cache makes the second compile of a guest free.
var (
	sharedOnce sync.Once
	shared     *Runtime
	sharedErr  error
)

func testRuntime(t testing.TB) *Runtime {
	t.Helper()
	// A disk cache that outlives the test process: compiling a Go guest
	// takes wazero a second, and a minute under the race detector.
	sharedOnce.Do(func() {
		shared, sharedErr = New(context.Background(), Options{CacheDir: filepath.Join(os.TempDir(), "sluice-wazero-test-cache")})
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}
