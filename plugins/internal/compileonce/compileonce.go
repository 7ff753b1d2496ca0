// Package compileonce is what the runtimes (plugins/wazero,
// plugins/wasmtime) share around compiling a module: a cache that
// compiles each distinct module once, however many Compile calls ask for
// it at the same time, and the validation errors of a module that does
// not compile, worded the same on both runtimes.
//
// It exists so that the two runtimes keep one copy of the waiting logic
// (concurrent callers wait for the first one's compilation, a failure is
// not cached so that a cancelled compile can be retried), of the counting
// of holders (each successful Compile holds the module until it releases
// it; the last release frees it, see plugins.Module.Close) and of the
// messages, which tests compare across runtimes.
package compileonce

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"sync/atomic"

	"github.com/sluice-io/sluice/plugins"
)

// Cache holds the modules of type M compiled by a runtime, by the sha256
// of their bytes, with the number of holders of each: every successful
// Compile is a holder until its Holder is released, and a module whose
// last holder lets go leaves the cache and is freed. Its zero value is
// not usable: see New. Once closed, it also tells the runtime it is
// closed.
type Cache[M any] struct {
	errClosed error
	free      func(M)

	mu      sync.Mutex
	closed  bool
	entries map[string]*entry[M]
}

// entry lets concurrent Compile calls of the same bytes wait for one
// compilation, and counts the module's holders.
type entry[M any] struct {
	key  string
	done chan struct{}
	mod  M
	err  error
	// holders counts the Compile calls that returned the module and have
	// not released it, plus those still waiting for it (c.mu).
	holders int
}

// Holder is one successful Compile's hold on a cached module.
type Holder[M any] struct {
	// Module is the cached module, shared by every holder.
	Module   M
	c        *Cache[M]
	e        *entry[M]
	released atomic.Bool
}

// Released reports whether Release has been called.
func (h *Holder[M]) Released() bool { return h.released.Load() }

// Release lets go of the module: the last holder's Release removes it
// from the cache and frees it (with the cache's free function). Releasing
// a holder more than once, or after the cache was closed (which freed
// everything), does nothing.
func (h *Holder[M]) Release() {
	if h.released.Swap(true) {
		return
	}
	h.c.release(h.e)
}

// New returns an empty cache whose Compile returns errClosed after Close
// and which calls free on a module when its last holder releases it.
func New[M any](errClosed error, free func(M)) *Cache[M] {
	return &Cache[M]{errClosed: errClosed, free: free, entries: map[string]*entry[M]{}}
}

// Compile returns a hold on the module compiled from wasm: the cached
// one, the one another call is compiling (waiting for it, or for ctx), or
// a new one from compile, called with the hex sha256 of wasm. Failures
// are not cached, so a cancelled compilation can be retried.
func (c *Cache[M]) Compile(ctx context.Context, wasm []byte, compile func(ctx context.Context, wasm []byte, sha string) (M, error)) (*Holder[M], error) {
	sum := sha256.Sum256(wasm)
	key := hex.EncodeToString(sum[:])
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, c.errClosed
	}
	if e, ok := c.entries[key]; ok {
		// Counted now, so that the module is not freed while we wait.
		e.holders++
		c.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			c.release(e)
			return nil, ctx.Err()
		}
		if e.err != nil {
			return nil, e.err
		}
		return &Holder[M]{Module: e.mod, c: c, e: e}, nil
	}
	e := &entry[M]{key: key, done: make(chan struct{}), holders: 1}
	c.entries[key] = e
	c.mu.Unlock()

	e.mod, e.err = compile(ctx, wasm, key)
	close(e.done)
	if e.err != nil {
		c.mu.Lock()
		if c.entries[key] == e {
			delete(c.entries, key)
		}
		c.mu.Unlock()
		return nil, e.err
	}
	return &Holder[M]{Module: e.mod, c: c, e: e}, nil
}

// release drops one holder of e, freeing its module when it was the last.
func (c *Cache[M]) release(e *entry[M]) {
	c.mu.Lock()
	e.holders--
	if e.holders > 0 || c.closed || c.entries[e.key] != e {
		// Still held; or the cache's Close frees it; or its compilation
		// failed (only a waiter that gave up gets here then).
		c.mu.Unlock()
		return
	}
	// holders is only 0 once the compilation is over: the compiling call
	// holds the entry until then.
	delete(c.entries, e.key)
	c.mu.Unlock()
	if e.err == nil && c.free != nil {
		c.free(e.mod)
	}
}

// Holders returns how many holders the module compiled from bytes with
// this hex sha256 has, 0 if it is not cached. For tests.
func (c *Cache[M]) Holders(sha string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[sha]; ok {
		return e.holders
	}
	return 0
}

// Len returns how many modules the cache holds (compiled or being
// compiled), for tests and metrics.
func (c *Cache[M]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Closed reports whether Close has been called.
func (c *Cache[M]) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close closes the cache, so that Compile fails from now on and Release
// does nothing. It returns false if the cache was closed already, else a
// function that waits for the compilations under way and calls release on
// every module compiled and not freed yet.
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
