package wazero

import (
	"context"
	"testing"

	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/runtimetest"
)

// TestCompileCache covers what the suite cannot see: the in-memory cache
// returns the very same module, and the cache directory is filled and
// used by a later runtime.
func TestCompileCache(t *testing.T) {
	runtimetest.CompileCache(t, func(dir string) (plugins.Runtime, error) {
		return New(context.Background(), Options{CacheDir: dir})
	})
}
