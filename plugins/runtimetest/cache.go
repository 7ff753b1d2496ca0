package runtimetest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins"
)

// CompileCache checks what a runtime's compilation cache promises that the
// suite cannot see: concurrent Compile calls of the same bytes return the
// very same module, the runtime fills its cache directory, and a later
// runtime on that directory compiles from it a module that works. open
// opens a runtime with its cache in dir. CompileCache returns the
// directory, the module's bytes, and the first runtime (closed) with its
// module, for the runtime's own checks.
func CompileCache(t *testing.T, open func(dir string) (plugins.Runtime, error)) (dir string, wasm []byte, r plugins.Runtime, m plugins.Module) {
	t.Helper()
	dir = t.TempDir()
	ctx := context.Background()
	r, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	wasm = testguests.Build("echo")
	mods := make([]plugins.Module, 4)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range mods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := r.Compile(ctx, bytes.Clone(wasm))
			if err != nil {
				t.Error(err)
			}
			mods[i] = m
		}()
	}
	wg.Wait()
	compileTime := time.Since(start)
	if t.Failed() {
		t.FailNow()
	}
	for _, m := range mods[1:] {
		if m.SHA256() != mods[0].SHA256() {
			t.Fatal("concurrent Compile of the same bytes returned different modules")
		}
	}
	if c, ok := r.(CompiledModuleCounter); ok && c.CompiledModules() != 1 {
		t.Fatalf("concurrent Compile of the same bytes: the runtime holds %d compiled modules, want 1", c.CompiledModules())
	}
	if len(mods[0].SHA256()) != 64 {
		t.Fatalf("SHA256 %q", mods[0].SHA256())
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(Files(dir)) == 0 {
		t.Fatal("the compilation cache directory is empty")
	}

	// A new runtime on the same directory compiles from the disk cache.
	r2, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r2.Close(ctx) })
	start = time.Now()
	m2, err := r2.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compile %v, from the disk cache %v", compileTime, time.Since(start))
	h := NewMemHost()
	inst, err := m2.Instantiate(ctx, plugins.InstanceConfig{Name: "cached", Host: h})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	if err := Process(ctx, inst, Values("a")...); err != nil {
		t.Fatal(err)
	}
	if len(h.Outputs(t)) != 1 {
		t.Fatal("cached module does not echo")
	}
	return dir, wasm, r, mods[0]
}
