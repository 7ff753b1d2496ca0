package wazero

import (
	"context"
	"testing"

	"github.com/sluice-io/sluice/plugins/runtimetest"
)

// TestSuite runs the conformance suite that every runtime passes
// (package runtimetest), checking wazero's own trap messages too.
func TestSuite(t *testing.T) {
	runtimetest.Run(t, shared.Runtime, runtimetest.RunOptions{TrapText: runtimetest.WazeroTrapText})
}

// shared is the runtime of this package's tests, with a disk cache.
var shared = runtimetest.Share(func() (*Runtime, error) {
	return New(context.Background(), Options{CacheDir: runtimetest.CacheDir("wazero")})
})

func testRuntime(t testing.TB) *Runtime { return shared.Get(t) }
