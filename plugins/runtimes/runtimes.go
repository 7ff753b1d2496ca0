// Package runtimes opens the WebAssembly runtimes built into this binary
// by the names job files use ("wazero", "wasmtime"). wazero is pure Go and
// always present; wasmtime needs cgo and is left out of builds with
// CGO_ENABLED=0 or -tags nowasmtime, in which case asking for it gives an
// error that says so.
package runtimes

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/wazero"
)

// Options configure a runtime.
type Options struct {
	// CacheDir is where compiled code is kept across processes; each
	// runtime uses its own subdirectory. "" keeps it in memory only.
	CacheDir string
	// Logger receives the runtime's own messages; nil discards them.
	Logger *slog.Logger
}

// Default is the runtime a job gets when its file names none.
const Default = "wazero"

// Known lists every runtime sluice has, built into this binary or not.
var Known = []string{"wasmtime", "wazero"}

type opener func(ctx context.Context, opts Options) (plugins.Runtime, error)

var openers = map[string]opener{
	"wazero": func(ctx context.Context, opts Options) (plugins.Runtime, error) {
		return wazero.New(ctx, wazero.Options{CacheDir: opts.CacheDir, Logger: opts.Logger})
	},
}

// Available lists the runtimes built into this binary, sorted.
func Available() []string {
	names := make([]string, 0, len(openers))
	for name := range openers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Check returns nil if name is a runtime of this binary, else an error
// that says what is wrong and what is available.
func Check(name string) error {
	if _, ok := openers[name]; ok {
		return nil
	}
	if slices.Contains(Known, name) {
		return fmt.Errorf("runtime %s is not available in this build (it needs cgo: build without CGO_ENABLED=0 and without -tags nowasmtime); available: %s",
			name, strings.Join(Available(), ", "))
	}
	return fmt.Errorf("%q is not a runtime (use %s)", name, strings.Join(Available(), " or "))
}

// Open creates the named runtime. The caller closes it.
func Open(ctx context.Context, name string, opts Options) (plugins.Runtime, error) {
	if err := Check(name); err != nil {
		return nil, err
	}
	if opts.CacheDir != "" {
		opts.CacheDir = filepath.Join(opts.CacheDir, name)
	}
	return openers[name](ctx, opts)
}
