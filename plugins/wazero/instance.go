package wazero

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/internal/compileonce"
	"github.com/sluice-io/sluice/plugins/internal/guestcall"
	"github.com/sluice-io/sluice/plugins/internal/sandbox"
)

// module is a compiled, validated operator.
type module struct {
	r             *Runtime
	compiled      wazero.CompiledModule
	sha           string
	minMemory     uint64 // bytes the memory starts with
	hasInitialize bool
}

func (m *module) SHA256() string { return m.sha }

// moduleRef is what Compile returns: one holder's view of a shared module.
type moduleRef struct {
	*module
	hold *compileonce.Holder[*module]
}

// errModuleClosed is the error of Instantiate after the holder's Close.
var errModuleClosed = errors.New("wazero: the module was closed")

// Instantiate implements plugins.Module.
func (m *moduleRef) Instantiate(ctx context.Context, cfg plugins.InstanceConfig) (plugins.Instance, error) {
	if m.hold.Released() {
		return nil, errModuleClosed
	}
	return m.module.Instantiate(ctx, cfg)
}

// Close implements plugins.Module: it releases this holder's hold on the
// module (once, however often it is called).
func (m *moduleRef) Close(ctx context.Context) error {
	m.hold.Release()
	return nil
}

// instance is one running guest. All fields except interrupted and the
// context are used only by the goroutine that owns the instance.
type instance struct {
	guestcall.State

	mod       api.Module
	mem       api.Memory
	allocFn   api.Function
	initFn    api.Function
	processFn api.Function
	stack     []uint64 // reused parameters/results of every call

	memory *limitedMemory
	stderr *sandbox.Stderr

	// ctx is the context of every call into the guest: it carries the
	// instance for the host functions.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// callStart is when the current call began; hostYield compares it
	// with the call timeout.
	callStart time.Time
	timedOut  bool
	// interrupted is set from another goroutine when the caller's context
	// is done; the guest stops at its next yield.
	interrupted    atomic.Bool
	cancelByCaller func()
	// fuel is the module's metering global (see package meter), found at
	// the first yield.
	fuel api.MutableGlobal

	region    uint32 // input region from sluice_alloc
	regionCap uint32

	closed bool
}

type instanceKey struct{}

func (m *module) Instantiate(ctx context.Context, cfg plugins.InstanceConfig) (plugins.Instance, error) {
	if cfg.Host == nil {
		return nil, errors.New("wazero: InstanceConfig.Host is required")
	}
	state, limitBytes, f := guestcall.New(cfg, m.minMemory)
	if f != nil {
		return nil, f
	}
	in := &instance{
		State:  state,
		stack:  make([]uint64, 2),
		memory: &limitedMemory{limit: limitBytes},
		stderr: &sandbox.Stderr{W: cfg.Stderr},
	}
	in.ctx, in.cancel = context.WithCancelCause(context.WithValue(context.Background(), instanceKey{}, in))
	in.cancelByCaller = func() {
		in.interrupted.Store(true)
		in.cancel(guestcall.ErrCallerDone)
	}

	stdout := cfg.Stdout
	if stdout == nil {
		stdout = io.Discard
	}
	clocks := sandbox.NewClocks()
	mcfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module
		WithStartFunctions().
		WithStdin(strings.NewReader("")).
		WithStdout(stdout).
		WithStderr(in.stderr).
		WithWalltime(clocks.Walltime, sys.ClockResolution(sandbox.ClockStep)).
		WithNanotime(clocks.Nanotime, sys.ClockResolution(sandbox.ClockStep)).
		WithNanosleep(func(int64) {}).
		WithOsyield(func() {}).
		WithRandSource(sandbox.SeededRand(cfg.Seed))
	// Instantiation runs the module's start section, if any, under the
	// call timeout too.
	in.callStart = time.Now()
	mod, err := m.r.rt.InstantiateModule(experimental.WithMemoryAllocator(in.ctx, in.memory), m.compiled, mcfg)
	if err != nil {
		f := in.classify(ctx, "instantiation", err)
		in.cancel(nil)
		if f.Kind == plugins.FaultTrap && !in.timedOut {
			// Linking errors (an import wazero cannot satisfy) come here.
			return nil, fmt.Errorf("%s: instantiating operator: %w", cfg.Name, err)
		}
		return nil, f
	}
	in.mod = mod
	in.mem = mod.Memory()
	in.allocFn = mod.ExportedFunction(abi.ExportAlloc)
	in.initFn = mod.ExportedFunction(abi.ExportInit)
	in.processFn = mod.ExportedFunction(abi.ExportProcess)

	in.InInit = true
	if m.hasInitialize {
		if err := in.call(ctx, mod.ExportedFunction(abi.ExportInitialize), abi.ExportInitialize, in.stack[:0]); err != nil {
			return nil, err
		}
	}
	buf, err := in.Input(ctx, len(cfg.Params))
	if err != nil {
		return nil, err
	}
	copy(buf, cfg.Params)
	in.Reset()
	in.stack[0], in.stack[1] = uint64(in.region), uint64(len(cfg.Params))
	if err := in.call(ctx, in.initFn, abi.ExportInit, in.stack); err != nil {
		return nil, err
	}
	if ie := in.InitError(int32(uint32(in.stack[0]))); ie != nil {
		_ = in.Close(ctx)
		return nil, ie
	}
	in.InInit = false
	return in, nil
}

// call runs one guest function under the call timeout and the caller's
// context. Any error is a *plugins.Fault and leaves the instance closed.
func (in *instance) call(ctx context.Context, fn api.Function, name string, stack []uint64) error {
	if in.closed {
		return in.ClosedFault(name)
	}
	in.Fault = nil
	stop, err := guestcall.Watch(ctx, in.cancelByCaller)
	if err != nil {
		return in.die(in.classify(ctx, name, err))
	}
	in.stderr.StartCall()
	in.callStart = time.Now()
	err = fn.CallWithStack(in.ctx, stack)
	if stop != nil {
		stop()
	}
	if err == nil && in.Fault == nil && in.ctx.Err() == nil {
		return nil
	}
	if err == nil {
		err = context.Cause(in.ctx)
	}
	return in.die(in.classify(ctx, name, err))
}

func (in *instance) die(f *plugins.Fault) error {
	in.closeModule()
	return f
}

// classify turns the error of a guest call into a Fault.
func (in *instance) classify(ctx context.Context, name string, err error) *plugins.Fault {
	if in.Fault != nil {
		return in.Fault // see State.Classify
	}
	st := guestcall.Stop{
		TimedOut:     in.timedOut,
		RefusedBytes: in.memory.refused,
		LimitBytes:   in.memory.limit,
		Message:      err.Error(),
		DeathLine:    in.stderr.DeathLine(),
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		st.Exited, st.ExitCode = true, exit.ExitCode()
	}
	return in.Classify(ctx, name, err, st)
}

// Input implements plugins.Instance.
func (in *instance) Input(ctx context.Context, n int) ([]byte, error) {
	if err := in.CheckInput(n, in.closed); err != nil {
		return nil, err
	}
	if size, grow := guestcall.RegionSize(n, in.regionCap); grow {
		in.stack[0] = size
		if err := in.call(ctx, in.allocFn, abi.ExportAlloc, in.stack[:1]); err != nil {
			return nil, err
		}
		ptr := uint32(in.stack[0])
		if f := in.CheckRegion(size, ptr, uint64(in.mem.Size())); f != nil {
			return nil, in.die(f)
		}
		in.region, in.regionCap = ptr, uint32(size)
	}
	b, _ := in.mem.Read(in.region, uint32(n))
	return b, nil
}

// Process implements plugins.Instance.
func (in *instance) Process(ctx context.Context, n int) error {
	if err := in.CheckBatch(n, in.regionCap, in.closed); err != nil {
		return err
	}
	hdr, _ := in.mem.Read(in.region, 4)
	count := binary.LittleEndian.Uint32(hdr)
	in.Reset()
	in.stack[0], in.stack[1] = uint64(in.region), uint64(n)
	if err := in.call(ctx, in.processFn, abi.ExportProcess, in.stack); err != nil {
		return err
	}
	f, err := in.ProcessResult(int32(uint32(in.stack[0])), count)
	if f != nil {
		return in.die(f)
	}
	return err
}

func (in *instance) closeModule() {
	if in.closed {
		return
	}
	in.closed = true
	in.cancel(nil)
	if in.mod != nil {
		_ = in.mod.Close(context.Background())
	}
}

// Close implements plugins.Instance.
func (in *instance) Close(ctx context.Context) error {
	in.closeModule()
	return nil
}
