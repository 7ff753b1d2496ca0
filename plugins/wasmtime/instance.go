//go:build cgo && !nowasmtime

package wasmtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	wt "github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/internal/compileonce"
	"github.com/sluice-io/sluice/plugins/internal/guestcall"
	"github.com/sluice-io/sluice/plugins/internal/sandbox"
)

// module is a compiled, validated operator.
type module struct {
	r             *Runtime
	compiled      *wt.Module
	sha           string
	minMemory     uint64 // bytes the memory starts with
	hasInitialize bool

	closeOnce sync.Once
}

func newModule(r *Runtime, cm *wt.Module, sha string) *module {
	m := &module{r: r, compiled: cm, sha: sha}
	for _, ex := range cm.Exports() {
		ty := ex.Type()
		switch {
		case ex.Name() == abi.ExportMemory && ty.MemoryType() != nil:
			m.minMemory = ty.MemoryType().Minimum() * guestcall.PageSize
		case ex.Name() == abi.ExportInitialize && ty.FuncType() != nil:
			m.hasInitialize = true
		}
	}
	return m
}

func (m *module) SHA256() string { return m.sha }

func (m *module) close() { m.closeOnce.Do(m.compiled.Close) }

// moduleRef is what Compile returns: one holder's view of a shared module.
type moduleRef struct {
	*module
	hold *compileonce.Holder[*module]
}

// errModuleClosed is the error of Instantiate after the holder's Close.
var errModuleClosed = errors.New("wasmtime: the module was closed")

// Instantiate implements plugins.Module.
func (m *moduleRef) Instantiate(ctx context.Context, cfg plugins.InstanceConfig) (plugins.Instance, error) {
	if m.hold.Released() {
		return nil, errModuleClosed
	}
	return m.module.instantiate(ctx, cfg, m.hold)
}

// Close implements plugins.Module: it releases this holder's hold on the
// module (once, however often it is called).
func (m *moduleRef) Close(ctx context.Context) error {
	m.hold.Release()
	return nil
}

// instance is one running guest. All fields except interrupted are used
// only by the goroutine that owns the instance (host functions run on it
// too, inside the guest call).
type instance struct {
	guestcall.State

	store      *wt.Store
	mem        *wt.Memory // the exported memory, once instantiated
	fuel       *wt.Global // the meter's fuel global, once known
	refusedMem *wt.Global // the meter's grow-refusal global
	allocFn    *wt.Func
	initFn     *wt.Func
	processFn  *wt.Func

	limitBytes  uint64
	epochTicks  uint64 // the store's epoch deadline for every call
	stdout      io.Writer
	stderr      *sandbox.Stderr
	clocks      *sandbox.Clocks
	rand        io.Reader
	stdioClosed [3]bool

	// During a host call: the caller (a wasmtime_caller_t), the store's
	// context (a wasmtime_context_t) and the guest's memory.
	caller unsafe.Pointer
	ctx    unsafe.Pointer
	curMem []byte
	argv   [maxHostArgs]uint64 // a host call's arguments
	// storeCtx is the store's context, the key of instances.
	storeCtx unsafe.Pointer

	// callStart is when the current call began; hostYield compares it
	// with the call timeout.
	callStart time.Time
	timedOut  bool
	// interrupted is set from another goroutine when the caller's context
	// is done; the guest stops at its next yield.
	interrupted    atomic.Bool
	cancelByCaller func()
	// exited and exitCode record a proc_exit.
	exited   bool
	exitCode uint32
	// hostPanic is a panic of the host's own code during a host call.
	hostPanic any

	region    uint32 // input region from sluice_alloc
	regionCap uint32

	closed bool
}

// instantiate makes an instance for the holder hold.
func (m *module) instantiate(ctx context.Context, cfg plugins.InstanceConfig, hold *compileonce.Holder[*module]) (plugins.Instance, error) {
	if cfg.Host == nil {
		return nil, errors.New("wasmtime: InstanceConfig.Host is required")
	}
	state, limitBytes, f := guestcall.New(cfg, m.minMemory)
	if f != nil {
		return nil, f
	}
	stdout := cfg.Stdout
	if stdout == nil {
		stdout = io.Discard
	}
	in := &instance{
		State:      state,
		limitBytes: limitBytes,
		epochTicks: uint64(state.Limits.CallTimeout/epochTick) + 2,
		stdout:     stdout,
		stderr:     &sandbox.Stderr{W: cfg.Stderr},
		clocks:     sandbox.NewClocks(),
		rand:       sandbox.SeededRand(cfg.Seed),
	}
	in.cancelByCaller = func() { in.interrupted.Store(true) }

	r := m.r
	r.inUse.RLock()
	if r.modules.Closed() {
		r.inUse.RUnlock()
		return nil, errClosed
	}
	if hold.Released() {
		// Closed by its holder meanwhile, perhaps freed (free waits for
		// inUse, so it cannot free it while we link).
		r.inUse.RUnlock()
		return nil, errModuleClosed
	}
	in.store = wt.NewStore(r.engine)
	in.storeCtx = storeContext(in.store)
	instances.Store(in.storeCtx, in)
	in.store.Limiter(int64(limitBytes), -1, -1, -1, -1)
	// Instantiation runs the module's start section, if any, under the
	// call timeout too.
	in.store.SetEpochDeadline(in.epochTicks)
	in.callStart = time.Now()
	inst, err := r.linker.Instantiate(in.store, m.compiled)
	r.inUse.RUnlock()
	if err != nil {
		f := in.classify(ctx, "instantiation", err)
		in.closeStore()
		if f.Kind == plugins.FaultTrap && !in.timedOut && in.hostPanic == nil {
			// Linking errors (an import that cannot be satisfied) come here.
			return nil, fmt.Errorf("%s: instantiating operator: %w", cfg.Name, err)
		}
		return nil, f
	}
	if ext := inst.GetExport(in.store, abi.ExportMemory); ext != nil {
		in.mem = ext.Memory()
	}
	if ext := inst.GetExport(in.store, fuelExport); ext != nil {
		in.fuel = ext.Global()
	}
	if ext := inst.GetExport(in.store, growRefusedExport); ext != nil {
		in.refusedMem = ext.Global()
	}
	in.allocFn = inst.GetFunc(in.store, abi.ExportAlloc)
	in.initFn = inst.GetFunc(in.store, abi.ExportInit)
	in.processFn = inst.GetFunc(in.store, abi.ExportProcess)
	if in.mem == nil || in.allocFn == nil || in.initFn == nil || in.processFn == nil {
		in.closeStore()
		return nil, fmt.Errorf("%s: instantiating operator: exports missing after validation", cfg.Name)
	}

	in.InInit = true
	if m.hasInitialize {
		if _, err := in.call(ctx, inst.GetFunc(in.store, abi.ExportInitialize), abi.ExportInitialize, 0, 0); err != nil {
			return nil, err
		}
	}
	buf, err := in.Input(ctx, len(cfg.Params))
	if err != nil {
		return nil, err
	}
	copy(buf, cfg.Params)
	in.Reset()
	status, err := in.call(ctx, in.initFn, abi.ExportInit, int32(in.region), int32(len(cfg.Params)))
	if err != nil {
		return nil, err
	}
	if ie := in.InitError(status); ie != nil {
		_ = in.Close(ctx)
		return nil, ie
	}
	in.InInit = false
	return in, nil
}

// call runs one guest function with arguments a and b (the ones it has)
// under the call timeout and the caller's context and returns its i32
// result (0 for a function without results).
// Any error is a *plugins.Fault and leaves the instance closed.
func (in *instance) call(ctx context.Context, fn *wt.Func, name string, a, b int32) (int32, error) {
	if in.closed {
		return 0, in.ClosedFault(name)
	}
	in.Fault = nil
	in.interrupted.Store(false)
	stop, err := guestcall.Watch(ctx, in.cancelByCaller)
	if err != nil {
		return 0, in.die(in.classify(ctx, name, err))
	}
	in.stderr.StartCall()
	in.callStart = time.Now()
	res, err := fastCall(in.storeCtx, in.epochTicks, fn, a, b)
	if stop != nil {
		stop()
	}
	if err == nil && in.Fault == nil && !in.interrupted.Load() {
		return res, nil
	}
	if err == nil {
		err = guestcall.ErrCallerDone
	}
	return 0, in.die(in.classify(ctx, name, err))
}

func (in *instance) die(f *plugins.Fault) error {
	in.closeStore()
	return f
}

// classify turns the error of a guest call into a Fault, as plugins/wazero
// does.
func (in *instance) classify(ctx context.Context, name string, err error) *plugins.Fault {
	code, isTrap := trapCode(err)
	if isTrap && code == int(wt.Interrupt) {
		// The epoch deadline, which is past the call timeout.
		in.timedOut = true
	}
	if in.Fault != nil {
		return in.Fault // see State.Classify
	}
	st := guestcall.Stop{
		TimedOut:   in.timedOut,
		LimitBytes: in.limitBytes,
		Exited:     in.exited,
		ExitCode:   in.exitCode,
		DeathLine:  in.stderr.DeathLine(),
	}
	if in.growRefused() != 0 {
		st.RefusedBytes = in.refusedBytes()
	}
	switch {
	case in.hostPanic != nil:
		st.Message = fmt.Sprint(in.hostPanic)
	case isTrap:
		st.Message = trapMessage(code, err)
	default:
		st.Message = err.Error()
	}
	return in.Classify(ctx, name, err, st)
}

// trapMessage words a Wasmtime trap as wazero does ("wasm error:
// unreachable"), so that details are the same on both runtimes.
func trapMessage(code int, err error) string {
	var s string
	switch wt.TrapCode(code) {
	case wt.StackOverflow:
		s = "stack overflow"
	case wt.MemoryOutOfBounds:
		s = "out of bounds memory access"
	case wt.HeapMisaligned:
		s = "unaligned atomic"
	case wt.TableOutOfBounds, wt.IndirectCallToNull:
		s = "invalid table access"
	case wt.BadSignature:
		s = "indirect call type mismatch"
	case wt.IntegerOverflow:
		s = "integer overflow"
	case wt.IntegerDivisionByZero:
		s = "integer divide by zero"
	case wt.BadConversionToInteger:
		s = "invalid conversion to integer"
	case wt.UnreachableCodeReached:
		s = "unreachable"
	default:
		return err.Error()
	}
	if code < 0 {
		return err.Error()
	}
	return "wasm error: " + s
}

// trapCode returns the Wasmtime trap code of err (-1 if it has none) and
// whether err is a trap at all.
func trapCode(err error) (int, bool) {
	var ce *callError
	if errors.As(err, &ce) {
		return ce.code, ce.code >= 0 || ce.trap
	}
	var trap *wt.Trap
	if errors.As(err, &trap) {
		if c := trap.Code(); c != nil {
			return int(*c), true
		}
		return -1, true
	}
	return -1, false
}

// growRefused returns the delta in pages of the first memory.grow that the
// store's limit refused, or 0.
func (in *instance) growRefused() uint32 {
	if in.refusedMem == nil || in.store == nil {
		return 0
	}
	v := in.refusedMem.Get(in.store)
	if v.Kind() != wt.KindI32 {
		return 0
	}
	return uint32(v.I32())
}

// refusedBytes is the size the refused memory.grow asked for.
func (in *instance) refusedBytes() uint64 {
	pages := uint64(in.growRefused())
	if in.mem != nil {
		pages += in.mem.Size(in.store)
	}
	return pages * guestcall.PageSize
}

// memory returns the guest's memory as it is now (outside host calls).
func (in *instance) memory() []byte {
	return memoryData(in.storeCtx, in.mem)
}

// Input implements plugins.Instance.
func (in *instance) Input(ctx context.Context, n int) ([]byte, error) {
	if err := in.CheckInput(n, in.closed); err != nil {
		return nil, err
	}
	if size, grow := guestcall.RegionSize(n, in.regionCap); grow {
		res, err := in.call(ctx, in.allocFn, abi.ExportAlloc, int32(uint32(size)), 0)
		if err != nil {
			return nil, err
		}
		ptr := uint32(res)
		if f := in.CheckRegion(size, ptr, uint64(len(in.memory()))); f != nil {
			return nil, in.die(f)
		}
		in.region, in.regionCap = ptr, uint32(size)
	}
	mem := in.memory()
	end := uint64(in.region) + uint64(n)
	return mem[in.region:end:end], nil
}

// Process implements plugins.Instance.
func (in *instance) Process(ctx context.Context, n int) error {
	if err := in.CheckBatch(n, in.regionCap, in.closed); err != nil {
		return err
	}
	count := binary.LittleEndian.Uint32(in.memory()[in.region:])
	in.Reset()
	status, err := in.call(ctx, in.processFn, abi.ExportProcess, int32(in.region), int32(n))
	if err != nil {
		return err
	}
	f, err := in.ProcessResult(status, count)
	if f != nil {
		return in.die(f)
	}
	return err
}

// closeStore releases the store, and with it the guest's memory.
func (in *instance) closeStore() {
	if in.closed {
		return
	}
	in.closed = true
	if in.store != nil {
		instances.Delete(in.storeCtx)
		in.store.Close()
		in.store = nil
	}
	in.mem, in.fuel, in.refusedMem = nil, nil, nil
}

// Close implements plugins.Instance.
func (in *instance) Close(ctx context.Context) error {
	in.closeStore()
	return nil
}
