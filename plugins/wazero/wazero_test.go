package wazero

import (
	"bytes"
	"context"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/runtimetest"
)

// TestCompileCache covers what the suite cannot see: the in-memory cache
// returns the very same module, and the cache directory is filled and
// used by a later runtime.
func TestCompileCache(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	r, err := New(ctx, Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	wasm := testguests.Build("echo")
	m1, err := r.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := r.Compile(ctx, bytes.Clone(wasm))
	if err != nil {
		t.Fatal(err)
	}
	if m1 != m2 {
		t.Fatal("second Compile of the same bytes did not return the cached module")
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	files := 0
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Fatal("the compilation cache directory is empty")
	}

	// A new runtime on the same directory compiles from the disk cache.
	r2, err := New(ctx, Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close(ctx)
	start := time.Now()
	m3, err := r2.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compile from the disk cache took %v", time.Since(start))
	inst, err := m3.Instantiate(ctx, plugins.InstanceConfig{Name: "cached", Host: runtimetest.NewMemHost()})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	if err := runtimetest.Process(ctx, inst, runtimetest.Values("a")...); err != nil {
		t.Fatal(err)
	}
}
