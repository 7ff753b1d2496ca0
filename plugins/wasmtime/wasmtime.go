//go:build cgo && !nowasmtime

// Package wasmtime runs sluice operators on Wasmtime
// (github.com/bytecodealliance/wasmtime-go), a WebAssembly runtime with an
// optimizing compiler (Cranelift), through cgo. It implements
// plugins.Runtime exactly as plugins/wazero does — same validation
// messages, same limits, same fault kinds and details, same WASI sandbox —
// so that a job can switch runtimes and get the same outputs, state and
// errors.
//
// # Why it is built this way
//
//   - It needs cgo (wasmtime-go links Wasmtime's static library), so every
//     file has the build constraint "cgo && !nowasmtime": CGO_ENABLED=0 and
//     -tags nowasmtime builds leave it out, and package plugins/runtimes
//     then says that the runtime is not in this build.
//   - One Engine and one Linker per Runtime; one Store per instance, since
//     Stores are not safe for concurrent use and the memory limit
//     (Store.Limiter) is per store. The host functions are defined once on
//     the Linker and find their instance by the caller's store.
//   - The hot paths bypass wasmtime-go and use Wasmtime's "unchecked" C API
//     through a small cgo shim (sluice_wasmtime.h, hostcall.c,
//     fastcall.go, hostcall.go): wasmtime-go's Func.Call asks for the
//     function's type on every call (about 5µs per Process), and its
//     host-function trampoline takes two global locks and allocates per
//     argument (2.4µs per state_get). With the shim a guest call is one cgo
//     call and a host call one callback from C, without allocation. The
//     shim declares the few C functions and struct layouts it needs
//     itself, for the Wasmtime version that wasmtime-go v39 links; the
//     rest (compiling, instantiating, stores, limits) is wasmtime-go's.
//   - Modules are rewritten by package meter before compiling, as for
//     wazero, so that the guest calls check_abi_version_1 regularly; that
//     host function enforces the call timeout and the caller's
//     cancellation. Wasmtime's epoch interruption is a backstop for the
//     timeout: a goroutine per Runtime increments the engine's epoch every
//     epochTick and each call sets its store's deadline just past the call
//     timeout.
//   - Wasmtime's store limiter makes a memory.grow over the limit return
//     -1, but does not tell the host. The meter rewrite therefore also
//     replaces every memory.grow with a sequence that records a refusal in
//     an exported global (meter.Options.GrowRefusedExport); the guest's
//     resulting death (a Go guest exits with "fatal error: out of memory")
//     is reported as FaultMemory, as wazero's allocator does.
//   - WASI preview 1 is implemented here in Go (wasi.go) rather than with
//     wasmtime-go's built-in WASI, which cannot make clocks and random_get
//     deterministic or send stdout to an io.Writer. It mirrors the wazero
//     configuration of plugins/wazero: no args, no environment, no files,
//     empty stdin, fake clocks and seeded ChaCha8 randomness.
//   - Cranelift takes seconds on a Go-compiled module, so compiled code is
//     cached in memory by sha256 and, with a cache directory, on disk
//     (Module.Serialize), keyed by the module's sha256 and the versions of
//     Wasmtime and of the metering.
//   - What does not depend on the runtime is shared with plugins/wazero
//     rather than copied: the host functions' logic once their arguments
//     are Go slices, the handling of statuses and the classification of
//     faults (package guestcall), and the compile-once cache and the
//     validation errors (package compileonce).
package wasmtime

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	wt "github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/atomicfile"
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

// Runtime is the Wasmtime implementation of plugins.Runtime.
type Runtime struct {
	engine   *wt.Engine
	linker   *wt.Linker
	cacheDir string
	logger   *slog.Logger

	stopTicker chan struct{}
	tickerDone chan struct{}

	modules *compileonce.Cache[*module]

	// inUse is held for reading while an instantiation uses the engine,
	// the linker and a module, and for writing by Close, which frees them.
	inUse sync.RWMutex
}

var _ plugins.Runtime = (*Runtime)(nil)

const (
	// fuelExport is the name under which package meter exports the fuel
	// global of an instrumented module (the same as plugins/wazero's).
	fuelExport = "sluice_internal_fuel"
	// growRefusedExport is the global in which the instrumented module
	// records a refused memory.grow.
	growRefusedExport = "sluice_internal_grow_refused"
	// fuelPerYield is how many function entries and loop iterations a
	// guest runs between two yields (as in plugins/wazero).
	fuelPerYield = 1 << 16
	// epochTick is how often the engine's epoch advances.
	epochTick = 5 * time.Millisecond
	// cacheVersion names the compiled code on disk: it changes with
	// Wasmtime and with what the metering inserts.
	cacheVersion = "wasmtime-v39.0.1-meter1"
)

// New creates a runtime: an engine with epoch interruption, a linker with
// the sluice_v1 host functions and WASI preview 1, and the epoch ticker.
func New(ctx context.Context, opts Options) (*Runtime, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.CacheDir != "" {
		if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("wasmtime compilation cache in %s: %w", opts.CacheDir, err)
		}
	}
	cfg := wt.NewConfig()
	cfg.SetEpochInterruption(true)
	engine := wt.NewEngineWithConfig(cfg)
	r := &Runtime{
		engine:     engine,
		cacheDir:   opts.CacheDir,
		logger:     logger,
		stopTicker: make(chan struct{}),
		tickerDone: make(chan struct{}),
	}
	linker, err := newLinker(engine)
	if err != nil {
		engine.Close()
		return nil, err
	}
	r.linker = linker
	r.modules = compileonce.New(errClosed, r.free)
	go r.tick()
	return r, nil
}

// tick advances the engine's epoch until Close.
func (r *Runtime) tick() {
	defer close(r.tickerDone)
	t := time.NewTicker(epochTick)
	defer t.Stop()
	for {
		select {
		case <-r.stopTicker:
			return
		case <-t.C:
			r.engine.IncrementEpoch()
		}
	}
}

// Name implements plugins.Runtime.
func (r *Runtime) Name() string { return "wasmtime" }

// Compile implements plugins.Runtime. Successful compilations are cached by
// the sha256 of wasm; failures are not, so a cancelled compilation can be
// retried.
// Each successful Compile is a holder of the module until its Close; the
// module's compiled code is freed when its last holder closes.
func (r *Runtime) Compile(ctx context.Context, wasm []byte) (plugins.Module, error) {
	h, err := r.modules.Compile(ctx, wasm, r.compile)
	if err != nil {
		return nil, err
	}
	return &moduleRef{module: h.Module, hold: h}, nil
}

// free releases the module no Compile holds any more. Instances made from
// it keep running: each Store that instantiated a module keeps its own
// reference to the module's code (Wasmtime counts references), so deleting
// the module's handle only frees the code once those stores are closed.
// It waits for instantiations under way (inUse), and does nothing once
// the runtime is closed (Close frees everything).
func (r *Runtime) free(m *module) {
	r.inUse.Lock()
	defer r.inUse.Unlock()
	m.close()
	r.logger.Debug("freed operator module", "sha256", m.sha)
}

// CompiledModules returns how many compiled modules the runtime holds (or
// is compiling): one per distinct module some Compile holds. For tests and
// metrics.
func (r *Runtime) CompiledModules() int { return r.modules.Len() }

// errClosed is the error of using a closed runtime.
var errClosed = errors.New("wasmtime runtime is closed")

func (r *Runtime) compile(ctx context.Context, wasm []byte, sha string) (*module, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cached := r.cachePath(sha)
	if cached != "" {
		if cm := r.loadCached(cached); cm != nil {
			if problems := validate(cm); len(problems) == 0 {
				r.logger.Debug("loaded compiled operator module from the cache", "sha256", sha, "path", cached)
				return newModule(r, cm, sha), nil
			}
			cm.Close()
		}
	}
	metered, merr := meter.InstrumentWithOptions(wasm, abi.Module, abi.FuncCheckVersion, fuelExport,
		meter.Options{GrowRefusedExport: growRefusedExport})
	if merr != nil {
		// Usually a module that also fails validation (no version import,
		// not Wasm at all): compile it as it is to report that.
		return nil, r.instrumentError(ctx, wasm, merr)
	}
	if err := compileonce.Problems(r.precheck(metered)); err != nil {
		return nil, err
	}
	start := time.Now()
	cm, err := wt.NewModule(r.engine, metered)
	if err != nil {
		return nil, compileonce.CompileError(ctx, errorText(err))
	}
	if err := compileonce.Problems(validate(cm)); err != nil {
		cm.Close()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		cm.Close()
		return nil, err
	}
	r.logger.Debug("compiled operator module", "sha256", sha, "bytes", len(wasm), "took", time.Since(start))
	if cached != "" {
		if b, err := cm.Serialize(); err != nil {
			r.logger.Warn("cannot serialize compiled module", "sha256", sha, "error", err)
		} else if err := atomicfile.Write(cached, sealCached(b)); err != nil {
			r.logger.Warn("cannot write compiled module to the cache", "path", cached, "error", err)
		}
	}
	return newModule(r, cm, sha), nil
}

// cacheMagic starts every file of the disk cache, followed by the sha256
// of the serialized module that follows it.
const cacheMagic = "sluice compiled module\n"

// sealCached prefixes serialized code with cacheMagic and its checksum:
// Wasmtime trusts what it deserializes, so a damaged file must be
// recognised before it gets there.
func sealCached(code []byte) []byte {
	sum := sha256.Sum256(code)
	out := make([]byte, 0, len(cacheMagic)+len(sum)+len(code))
	out = append(out, cacheMagic...)
	out = append(out, sum[:]...)
	return append(out, code...)
}

// loadCached returns the module compiled earlier into path, or nil if
// there is none or it is unusable (damaged, or from another Wasmtime).
func (r *Runtime) loadCached(path string) *wt.Module {
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.logger.Warn("cannot read the compiled module cache", "path", path, "error", err)
		}
		return nil
	}
	const hdr = len(cacheMagic) + sha256.Size
	if len(b) < hdr || string(b[:len(cacheMagic)]) != cacheMagic {
		r.logger.Warn("ignoring a damaged file in the compiled module cache", "path", path)
		return nil
	}
	if sum := sha256.Sum256(b[hdr:]); string(sum[:]) != string(b[len(cacheMagic):hdr]) {
		r.logger.Warn("ignoring a damaged file in the compiled module cache", "path", path)
		return nil
	}
	cm, err := wt.NewModuleDeserialize(r.engine, b[hdr:])
	if err != nil {
		r.logger.Warn("ignoring an unusable file in the compiled module cache", "path", path, "error", err)
		return nil
	}
	return cm
}

// cachePath is where the compiled code of the module with this sha256 is
// kept on disk, or "" without a cache directory.
func (r *Runtime) cachePath(sha string) string {
	if r.cacheDir == "" {
		return ""
	}
	return filepath.Join(r.cacheDir, sha+"."+cacheVersion+".cwasm")
}

// instrumentError explains why a module could not be metered: the
// validation problems if it has any, else the metering error itself.
func (r *Runtime) instrumentError(ctx context.Context, wasm []byte, merr error) error {
	if err := compileonce.Problems(r.precheck(wasm)); err != nil {
		return err
	}
	cm, err := wt.NewModule(r.engine, wasm)
	if err != nil {
		return compileonce.CompileError(ctx, errorText(err))
	}
	defer cm.Close()
	return compileonce.InstrumentError(validate(cm), merr)
}

// precheck validates wasm without compiling it: Wasmtime's validation,
// then the ABI check on the imports and exports read by describe. It
// returns the problems that compiling would find, or none when the module
// looks fine (or describe cannot read it: validate then checks the
// compiled module).
func (r *Runtime) precheck(wasm []byte) []string {
	if err := wt.ModuleValidate(r.engine, wasm); err != nil {
		return compileonce.Invalid(errorText(err)).Problems
	}
	if imports, exports, ok := describe(wasm); ok {
		return modcheck.Check(imports, exports, wasiSignatures)
	}
	return nil
}

// errorText is a Wasmtime error on one line: its message and causes
// joined with ": ", without the Rust backtrace Wasmtime may append.
func errorText(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "Stack backtrace:"); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.Replace(msg, "\n\nCaused by:", ":", 1)
	return strings.Join(strings.Fields(msg), " ")
}

// validate checks a compiled module's imports and exports against ABI v1
// (package modcheck, shared with plugins/wazero) and returns every
// problem. Like plugins/wazero, it describes only function and memory
// imports and exports; other imports fail when linking.
func validate(cm *wt.Module) []string {
	var funcs, mems []modcheck.Import
	for _, im := range cm.Imports() {
		name := ""
		if n := im.Name(); n != nil {
			name = *n
		}
		ty := im.Type()
		if ft := ty.FuncType(); ft != nil {
			funcs = append(funcs, modcheck.Import{Module: im.Module(), Name: name, Kind: modcheck.Func, Sig: signatureOf(ft)})
		} else if ty.MemoryType() != nil {
			mems = append(mems, modcheck.Import{Module: im.Module(), Name: name, Kind: modcheck.Memory})
		}
	}
	var exports []modcheck.Export
	for _, ex := range cm.Exports() {
		ty := ex.Type()
		if ft := ty.FuncType(); ft != nil {
			exports = append(exports, modcheck.Export{Name: ex.Name(), Kind: modcheck.Func, Sig: signatureOf(ft)})
		} else if ty.MemoryType() != nil {
			exports = append(exports, modcheck.Export{Name: ex.Name(), Kind: modcheck.Memory})
		}
	}
	return modcheck.Check(append(funcs, mems...), exports, wasiSignatures)
}

func signatureOf(ft *wt.FuncType) modcheck.Signature {
	return modcheck.Signature{Params: abiTypes(ft.Params()), Results: abiTypes(ft.Results())}
}

// abiTypes converts Wasmtime value types to abi's (the binary format's
// type codes). The kinds are wasm.h's: i32, i64, f32, f64, v128, then
// externref (128) and funcref (129).
func abiTypes(ts []*wt.ValType) []abi.ValType {
	out := make([]abi.ValType, len(ts))
	for i, t := range ts {
		switch k := t.Kind(); k {
		case wt.KindI32:
			out[i] = 0x7f
		case wt.KindI64:
			out[i] = 0x7e
		case wt.KindF32:
			out[i] = 0x7d
		case wt.KindF64:
			out[i] = 0x7c
		case wt.KindExternref:
			out[i] = 0x6f
		case wt.KindFuncref:
			out[i] = 0x70
		default:
			if k == 4 {
				out[i] = 0x7b // v128
			} else {
				out[i] = abi.ValType(k)
			}
		}
	}
	return out
}

// Close implements plugins.Runtime: it stops the epoch ticker and releases
// the engine, the linker and every compiled module. The disk cache stays.
// Instances still open keep what they use alive (Wasmtime counts
// references) but lose the epoch backstop; their owners close them.
func (r *Runtime) Close(ctx context.Context) error {
	drain, ok := r.modules.Close()
	if !ok {
		return nil
	}
	close(r.stopTicker)
	<-r.tickerDone
	r.inUse.Lock()
	defer r.inUse.Unlock()
	drain((*module).close)
	r.linker.Close()
	r.engine.Close()
	return nil
}
