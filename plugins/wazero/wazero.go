// Package wazero runs sluice operators on wazero
// (github.com/tetratelabs/wazero), a WebAssembly runtime in pure Go. It
// implements plugins.Runtime: it checks a module's imports and exports
// against ABI v1 (package abi) before anything runs, compiles it once per
// content hash (and on disk when given a cache directory), and runs each
// task's instance in isolation with limits on memory, time per call and
// output per call.
//
// # Why it is built this way
//
//   - One wazero.Runtime per plugins.Runtime, with the compiler engine
//     (the interpreter where wazero has no compiler).
//   - The memory limit is per instance, but wazero's is per runtime. Each
//     instance gets its own allocator (experimental.WithMemoryAllocator)
//     that refuses to grow the memory past the instance's limit: memory.grow
//     then fails inside the guest, as the WebAssembly spec allows, and the
//     refusal is remembered so that the guest's resulting death (a Go guest
//     exits with "fatal error: out of memory") is reported as FaultMemory.
//     One runtime per distinct limit would compile every module once per
//     limit instead.
//   - Host functions find their instance through a value in the context of
//     the call (one context per instance, made at instantiation), which
//     costs a couple of pointer comparisons and no allocation.
//   - The time limit is enforced by the guest's own code: every module is
//     rewritten before it is compiled (package meter) so that function
//     entries and loop headers count down a fuel global and call the
//     module's check_abi_version_1 import each time it runs out. That host
//     function refills the fuel and traps the guest when the call is over
//     its time limit or the caller gave up. wazero's own mechanism,
//     WithCloseOnContextDone, leaves native code at every loop header and
//     made Go guests 2-4x slower; it is off.
//   - Every pointer and length a guest passes is checked in one place
//     (instance.guestBytes); a bad one traps the guest, since a guest that
//     gets them wrong cannot be trusted to handle an error code.
//   - What does not depend on the runtime is shared with plugins/wasmtime
//     rather than copied: the host functions' logic once their arguments
//     are Go slices, the handling of statuses and the classification of
//     faults (package guestcall), and the compile-once cache and the
//     validation errors (package compileonce).
package wazero

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/internal/compileonce"
	"github.com/sluice-io/sluice/plugins/internal/meter"
	"github.com/sluice-io/sluice/plugins/internal/modcheck"
)

// Options configure a Runtime.
type Options struct {
	// CacheDir keeps compiled code on disk across processes; "" keeps it
	// in memory only.
	CacheDir string
	// Logger receives the runtime's own messages (not the guests'); nil
	// discards them.
	Logger *slog.Logger
}

// Runtime is the wazero implementation of plugins.Runtime.
type Runtime struct {
	rt     wazero.Runtime
	cache  wazero.CompilationCache
	logger *slog.Logger
	// wasi holds the signatures of the WASI preview 1 functions the host
	// provides, to validate a module's WASI imports before linking.
	wasi map[string]modcheck.Signature

	modules *compileonce.Cache[*module]
}

var _ plugins.Runtime = (*Runtime)(nil)

// New creates a runtime with the sluice_v1 host module and WASI preview 1
// instantiated, ready to compile modules.
func New(ctx context.Context, opts Options) (*Runtime, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var cache wazero.CompilationCache
	if opts.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wazero compilation cache in %s: %w", opts.CacheDir, err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	cfg := wazero.NewRuntimeConfigInterpreter()
	if compilerSupported() {
		cfg = wazero.NewRuntimeConfigCompiler()
	}
	// No WithCloseOnContextDone: the metering above replaces it.
	cfg = cfg.WithCompilationCache(cache)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	r := &Runtime{rt: rt, cache: cache, logger: logger}
	r.modules = compileonce.New(errClosed, r.free)
	if err := r.instantiateHostModules(ctx); err != nil {
		_ = rt.Close(ctx)
		_ = cache.Close(ctx)
		return nil, err
	}
	return r, nil
}

// compilerSupported mirrors wazero's own platform check: the compiler
// exists for amd64 and arm64; elsewhere the interpreter is the only engine.
func compilerSupported() bool {
	switch runtime.GOARCH {
	case "amd64", "arm64":
		switch runtime.GOOS {
		case "linux", "darwin", "freebsd", "netbsd", "windows":
			return true
		}
	}
	return false
}

func (r *Runtime) instantiateHostModules(ctx context.Context) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.rt); err != nil {
		return fmt.Errorf("instantiating WASI preview 1: %w", err)
	}
	wasi := r.rt.Module(abi.WASIModule)
	if wasi == nil {
		return errors.New("WASI preview 1 module missing after instantiation")
	}
	r.wasi = map[string]modcheck.Signature{}
	for name, def := range wasi.ExportedFunctionDefinitions() {
		r.wasi[name] = signatureOf(def)
	}
	b := r.rt.NewHostModuleBuilder(abi.Module)
	for name, sig := range abi.HostFuncs {
		fn, ok := hostFuncs[name]
		if !ok {
			return fmt.Errorf("BUG: no implementation of host function %s.%s", abi.Module, name)
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(fn, valueTypes(sig.Params), valueTypes(sig.Results)).
			Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiating host module %s: %w", abi.Module, err)
	}
	return nil
}

// valueTypes converts abi value types to wazero's; both use the binary
// format's type codes.
func valueTypes(ts []abi.ValType) []api.ValueType {
	out := make([]api.ValueType, len(ts))
	for i, t := range ts {
		out[i] = api.ValueType(t)
	}
	return out
}

// Name implements plugins.Runtime.
func (r *Runtime) Name() string { return "wazero" }

// Compile implements plugins.Runtime. The module is validated against the
// ABI after wazero has decoded it and before anything is instantiated.
// Successful compilations are cached by the sha256 of wasm; failures are
// not, so a cancelled compilation can be retried.
// Each successful Compile is a holder of the module until its Close; the
// module's compiled code is freed when its last holder closes.
func (r *Runtime) Compile(ctx context.Context, wasm []byte) (plugins.Module, error) {
	h, err := r.modules.Compile(ctx, wasm, r.compile)
	if err != nil {
		return nil, err
	}
	return &moduleRef{module: h.Module, hold: h}, nil
}

// errClosed is the error of using a closed runtime.
var errClosed = errors.New("wazero runtime is closed")

// free closes the compiled code of a module no Compile holds any more.
// Instances made from it keep running: wazero documents CompiledModule.Close
// as safe with instances still in use.
func (r *Runtime) free(m *module) {
	_ = m.compiled.Close(context.Background())
	r.logger.Debug("freed operator module", "sha256", m.sha)
}

// CompiledModules returns how many compiled modules the runtime holds (or
// is compiling): one per distinct module some Compile holds. For tests and
// metrics.
func (r *Runtime) CompiledModules() int { return r.modules.Len() }

func (r *Runtime) compile(ctx context.Context, wasm []byte, sha string) (*module, error) {
	metered, merr := meter.Instrument(wasm, abi.Module, abi.FuncCheckVersion, fuelExport)
	if merr != nil {
		// Usually a module that also fails validation (no version import,
		// not Wasm at all): compile it as it is to report that.
		return nil, r.instrumentError(ctx, wasm, merr)
	}
	cm, err := r.rt.CompileModule(ctx, metered)
	if err != nil {
		return nil, compileonce.CompileError(ctx, err.Error())
	}
	if err := compileonce.Problems(r.validate(cm)); err != nil {
		_ = cm.Close(ctx)
		return nil, err
	}
	m := &module{r: r, compiled: cm, sha: sha}
	if mem, ok := cm.ExportedMemories()[abi.ExportMemory]; ok {
		m.minMemory = uint64(mem.Min()) * pageSize
	}
	_, m.hasInitialize = cm.ExportedFunctions()[abi.ExportInitialize]
	r.logger.Debug("compiled operator module", "sha256", sha, "bytes", len(wasm))
	return m, nil
}

// instrumentError explains why a module could not be metered: the
// validation problems if it has any, else the metering error itself.
func (r *Runtime) instrumentError(ctx context.Context, wasm []byte, merr error) error {
	cm, err := r.rt.CompileModule(ctx, wasm)
	if err != nil {
		return compileonce.CompileError(ctx, err.Error())
	}
	defer cm.Close(ctx)
	return compileonce.InstrumentError(r.validate(cm), merr)
}

// Close implements plugins.Runtime: it closes every instance and compiled
// module, and the compilation cache (its directory stays on disk).
func (r *Runtime) Close(ctx context.Context) error {
	if _, ok := r.modules.Close(); !ok {
		return nil
	}
	err := r.rt.Close(ctx)
	return errors.Join(err, r.cache.Close(ctx))
}
