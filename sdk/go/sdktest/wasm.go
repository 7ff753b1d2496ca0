//go:build !wasip1

package sdktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/wazero"
)

// StartWasm runs a compiled operator module (for example one built with
// `sluice build`) in sluice's wazero runtime, with the same in-memory host
// as Start: the test then covers the module's Wasm build, its use of the
// ABI and the runtime's checks, without a node. Init failures are
// *InitError; module faults (traps, limits, ABI violations) come back as
// *plugins.Fault from Process. Close the Host when done.
func StartWasm(ctx context.Context, wasm []byte, cfg Config) (*Host, error) {
	params, err := cfg.params()
	if err != nil {
		return nil, err
	}
	rt, err := sharedRuntime()
	if err != nil {
		return nil, err
	}
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		return nil, err
	}
	h := newHost(cfg)
	wg := &wasmGuest{ctx: ctx, h: h}
	h.g = wg
	inst, err := mod.Instantiate(ctx, plugins.InstanceConfig{
		Name:   "sdktest",
		Params: params,
		Host:   pluginHost{h},
		Stdout: &wg.stdio,
		Stderr: &wg.stdio,
	})
	h.discard()
	if err != nil {
		var ie *plugins.InitError
		if errors.As(err, &ie) {
			return nil, &InitError{Status: ie.Status, Message: ie.Message}
		}
		return nil, err
	}
	wg.inst = inst
	return h, nil
}

// The runtime is shared by every StartWasm of the process and never
// closed: it caches compiled modules, and compiling an operator (a few MB
// of Wasm) costs seconds, many more under the race detector.
var (
	runtimeOnce sync.Once
	runtime     plugins.Runtime
	runtimeErr  error
)

func sharedRuntime() (plugins.Runtime, error) {
	runtimeOnce.Do(func() {
		runtime, runtimeErr = wazero.New(context.Background(), wazero.Options{})
	})
	return runtime, runtimeErr
}

type wasmGuest struct {
	ctx   context.Context
	h     *Host
	inst  plugins.Instance
	stdio bytes.Buffer
}

func (g *wasmGuest) input(n int) ([]byte, error) { return g.inst.Input(g.ctx, n) }

func (g *wasmGuest) process(n int) error {
	err := g.inst.Process(g.ctx, n)
	var re *plugins.RecordError
	if errors.As(err, &re) {
		return &RecordError{Index: re.Index, Message: re.Message}
	}
	if err != nil {
		return fmt.Errorf("%w (guest output: %q)", err, g.stdio.String())
	}
	return nil
}

func (g *wasmGuest) close() error { return g.inst.Close(g.ctx) }

// Stdio returns what the operator wrote to stdout and stderr (StartWasm
// only).
func (h *Host) Stdio() string {
	if g, ok := h.g.(*wasmGuest); ok {
		return g.stdio.String()
	}
	return ""
}

// pluginHost adapts Host to plugins.Host, whose calls arrive already
// decoded by the runtime.
type pluginHost struct{ h *Host }

func (p pluginHost) Emit(batch []byte) int32     { return p.h.Emit(batch) }
func (p pluginHost) StoreOpen(name []byte) int32 { return p.h.StoreOpen(string(name)) }

func (p pluginHost) StateGet(store int32, key []byte) ([]byte, bool, int32) {
	if !p.h.store(store) {
		return nil, false, int32(abi.ErrBadStore)
	}
	v, ok := p.h.lookup(store, string(key))
	return v, ok, 0
}

func (p pluginHost) StatePut(store int32, key, value []byte) int32 {
	return p.h.StatePut(store, key, value)
}

func (p pluginHost) StateDelete(store int32, key []byte) int32 {
	return p.h.StateDelete(store, key)
}

func (p pluginHost) StateScan(store int32, start, end, dst []byte, max int) ([]byte, int, int32) {
	if !p.h.store(store) {
		return dst, 0, int32(abi.ErrBadStore)
	}
	out, needed := p.h.scan(store, start, end, dst, max)
	return out, needed, 0
}

func (p pluginHost) Log(level int32, msg []byte) { p.h.Log(level, string(msg)) }
func (p pluginHost) StreamTime() int64           { return p.h.StreamTime() }
