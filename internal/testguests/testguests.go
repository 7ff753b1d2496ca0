// Package testguests holds small WebAssembly operators written in Go
// directly against the raw sluice ABI v1 (no SDK), for tests of the host
// and the runtimes: well-behaved ones (echo, params, state, stateall,
// printer, entropy, getloop), hostile ones (trap, panic, exit, loop, membomb,
// oob, openfile, fail-on, initfail) and invalid ones (noexport, badimport,
// noversion). Each lives in its own directory as a main package built for
// GOOS=wasip1; the doc comment of each main.go says what it does. Tests
// build them at test time with Build.
package testguests

import (
	"path/filepath"
	"runtime"

	"github.com/sluice-io/sluice/internal/gowasm"
)

// Dir returns the absolute path of guest name's source directory, so tests
// in any package can find it.
func Dir(name string) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("testguests: cannot locate the source directory")
	}
	return filepath.Join(filepath.Dir(file), name)
}

// Build compiles guest name to a reactor module (memoized per process) and
// returns its bytes. It panics if the build fails.
func Build(name string) []byte { return gowasm.MustBuild(Dir(name)) }
