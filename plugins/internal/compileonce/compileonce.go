// Package compileonce is what the runtimes (plugins/wazero,
// plugins/wasmtime) share around compiling a module: a cache that
// compiles each distinct module once, however many Compile calls ask for
// it at the same time, and the validation errors of a module that does
// not compile, worded the same on both runtimes.
//
// It exists so that the two runtimes keep one copy of the waiting logic
// (concurrent callers wait for the first one's compilation, a failure is
// not cached so that a cancelled compile can be retried) and of the
// messages, which tests compare across runtimes.
package compileonce

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"

	"github.com/sluice-io/sluice/plugins"
)

// Cache holds the modules of type M compiled by a runtime, by the sha256
// of their bytes. Its zero value is not usable: see New. Once closed, it
// also tells the runtime it is closed.
type Cache[M any] struct {
	errClosed error

	mu      sync.Mutex
	closed  bool
	entries map[string]*entry[M]
}

// entry lets concurrent Compile calls of the same bytes wait for one
// compilation.
type entry[M any] struct {
	done chan struct{}
	mod  M
	err  error
}

// New returns an empty cache whose Compile returns errClosed after Close.
func New[M any](errClosed error) *Cache[M] {
	return &Cache[M]{errClosed: errClosed, entries: map[string]*entry[M]{}}
}

// Compile returns the module compiled from wasm: the cached one, the one
// another call is compiling (waiting for it, or for ctx), or a new one
// from compile, called with the hex sha256 of wasm. Failures are not
// cached, so a cancelled compilation can be retried.
func (c *Cache[M]) Compile(ctx context.Context, wasm []byte, compile func(ctx context.Context, wasm []byte, sha string) (M, error)) (M, error) {
	var zero M
	sum := sha256.Sum256(wasm)
	key := hex.EncodeToString(sum[:])
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return zero, c.errClosed
	}
	if e, ok := c.entries[key]; ok {
		c.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
		if e.err != nil {
			return zero, e.err
		}
		return e.mod, nil
	}
	e := &entry[M]{done: make(chan struct{})}
	c.entries[key] = e
	c.mu.Unlock()

	e.mod, e.err = compile(ctx, wasm, key)
	close(e.done)
	if e.err != nil {
		c.mu.Lock()
		delete(c.entries, key)
		c.mu.Unlock()
		return zero, e.err
	}
	return e.mod, nil
}

// Closed reports whether Close has been called.
func (c *Cache[M]) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close closes the cache, so that Compile fails from now on. It returns
// false if the cache was closed already, else a function that waits for
// the compilations under way and calls release on every module compiled.
func (c *Cache[M]) Close() (drain func(release func(M)), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, false
	}
	c.closed = true
	entries := c.entries
	c.entries = nil
	return func(release func(M)) {
		for _, e := range entries {
			<-e.done
			if e.err == nil {
				release(e.mod)
			}
		}
	}, true
}

// CompileError is the error of a module the runtime could not compile,
// its error worded msg: ctx's error if ctx is done (the compilation may
// have failed for it), else a validation error.
func CompileError(ctx context.Context, msg string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return Invalid(msg)
}

// Invalid is the validation error of bytes that are not a valid
// WebAssembly module, the runtime's error worded msg.
func Invalid(msg string) *plugins.ValidationError {
	return &plugins.ValidationError{Problems: []string{"not a valid WebAssembly module: " + msg}}
}

// Problems is the validation error of a module with these ABI problems,
// or nil if there are none.
func Problems(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return &plugins.ValidationError{Problems: problems}
}

// InstrumentError explains why a module that compiles with these ABI
// problems could not be metered (merr, the error of package meter): the
// problems if it has any, else merr itself.
func InstrumentError(problems []string, merr error) error {
	if err := Problems(problems); err != nil {
		return err
	}
	return &plugins.ValidationError{Problems: []string{"sluice cannot add its time-limit checks to this module: " + merr.Error()}}
}
