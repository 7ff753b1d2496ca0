package runtimetest

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/sluice-io/sluice/plugins"
)

// WazeroTrapText is wazero's wording of the traps, which plugins/wasmtime
// copies so that fault details are the same on both runtimes: the
// RunOptions.TrapText of either runtime's suite.
var WazeroTrapText = map[string]string{
	TrapUnreachable: "wasm error: unreachable",
	TrapOutOfBounds: "wasm error: out of bounds memory access",
}

// Shared is one runtime shared by the tests of a package, opened on first
// use: compiling a Go guest takes seconds, and the runtime's cache makes
// the second compile of a guest free.
type Shared[R plugins.Runtime] struct {
	open func() (R, error)
	once sync.Once
	rt   R
	err  error
}

// Share returns a Shared runtime that open opens.
func Share[R plugins.Runtime](open func() (R, error)) *Shared[R] {
	return &Shared[R]{open: open}
}

// Get returns the shared runtime, opening it the first time, and fails t
// if it could not be opened.
func (s *Shared[R]) Get(t testing.TB) R {
	t.Helper()
	s.once.Do(func() { s.rt, s.err = s.open() })
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.rt
}

// Runtime is Get as a plugins.Runtime, the opener Run takes.
func (s *Shared[R]) Runtime(t testing.TB) plugins.Runtime {
	t.Helper()
	return s.Get(t)
}

// CacheDir is a disk cache directory for the tests of the runtime name
// that outlives the test process: compiling a Go guest takes a runtime
// seconds, and a minute under the race detector.
func CacheDir(name string) string {
	return filepath.Join(os.TempDir(), "sluice-"+name+"-test-cache")
}

// Files returns the names of the files below dir (a compilation cache),
// sorted, without their directories.
func Files(dir string) []string {
	var files []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, filepath.Base(path))
		}
		return nil
	})
	sort.Strings(files)
	return files
}
