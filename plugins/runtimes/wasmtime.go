//go:build cgo && !nowasmtime

package runtimes

import (
	"context"

	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/wasmtime"
)

// The wasmtime runtime is registered only in builds with cgo and without
// the nowasmtime tag (see the package comment).
func init() {
	openers["wasmtime"] = func(ctx context.Context, opts Options) (plugins.Runtime, error) {
		return wasmtime.New(ctx, wasmtime.Options{CacheDir: opts.CacheDir, Logger: opts.Logger})
	}
}
