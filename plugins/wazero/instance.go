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

// minRegion is the smallest input region the host asks sluice_alloc for,
// so that small batches do not make the guest allocate again and again.
const minRegion = 64 << 10

// instance is one running guest. All fields except interrupted and the
// context are used only by the goroutine that owns the instance.
type instance struct {
	name   string
	host   plugins.Host
	limits plugins.Limits

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

	// Per-call state, reset before each call.
	inInit   bool
	outBytes int
	errSet   bool
	errIndex int32
	errMsg   []byte
	fault    *plugins.Fault // an ABI violation found by a host function

	// Scratch reused by host functions.
	outputs   abi.OutputReader
	output    abi.Output
	scanStart []byte
	scanEnd   []byte

	closed bool
}

type instanceKey struct{}

var (
	errCallTimeout = errors.New("call timeout")
	errCallerDone  = errors.New("caller's context done")
)

func (m *module) Instantiate(ctx context.Context, cfg plugins.InstanceConfig) (plugins.Instance, error) {
	if cfg.Host == nil {
		return nil, errors.New("wazero: InstanceConfig.Host is required")
	}
	limits := cfg.Limits.WithDefaults()
	limitBytes := limits.MemoryBytes &^ (pageSize - 1)
	if m.minMemory > limitBytes {
		return nil, &plugins.Fault{Kind: plugins.FaultMemory, Instance: cfg.Name,
			Detail: fmt.Sprintf("the module's memory starts at %d bytes, over the instance's limit of %d bytes", m.minMemory, limitBytes)}
	}
	in := &instance{
		name:   cfg.Name,
		host:   cfg.Host,
		limits: limits,
		stack:  make([]uint64, 2),
		memory: &limitedMemory{limit: limitBytes},
		stderr: &sandbox.Stderr{W: cfg.Stderr},
	}
	in.ctx, in.cancel = context.WithCancelCause(context.WithValue(context.Background(), instanceKey{}, in))
	in.cancelByCaller = func() {
		in.interrupted.Store(true)
		in.cancel(errCallerDone)
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

	in.inInit = true
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
	in.resetCall()
	in.stack[0], in.stack[1] = uint64(in.region), uint64(len(cfg.Params))
	if err := in.call(ctx, in.initFn, abi.ExportInit, in.stack); err != nil {
		return nil, err
	}
	if status := int32(uint32(in.stack[0])); status != abi.StatusOK {
		ie := &plugins.InitError{Status: status}
		if in.errSet {
			ie.Message = string(in.errMsg)
		}
		_ = in.Close(ctx)
		return nil, ie
	}
	in.inInit = false
	return in, nil
}

func (in *instance) resetCall() {
	in.outBytes = 0
	in.errSet = false
	in.errMsg = in.errMsg[:0]
	in.fault = nil
}

// call runs one guest function under the call timeout and the caller's
// context. Any error is a *plugins.Fault and leaves the instance closed.
func (in *instance) call(ctx context.Context, fn api.Function, name string, stack []uint64) error {
	if in.closed {
		return &plugins.Fault{Kind: plugins.FaultABI, Instance: in.name, Detail: name + " called on a closed instance"}
	}
	in.fault = nil
	var stop func() bool
	if ctx.Done() != nil {
		if ctx.Err() != nil {
			return in.die(in.classify(ctx, name, ctx.Err()))
		}
		stop = context.AfterFunc(ctx, in.cancelByCaller)
	}
	in.stderr.StartCall()
	in.callStart = time.Now()
	err := fn.CallWithStack(in.ctx, stack)
	if stop != nil {
		stop()
	}
	if err == nil && in.fault == nil && in.ctx.Err() == nil {
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
	f := &plugins.Fault{Instance: in.name, Err: err}
	var exit *sys.ExitError
	switch {
	case in.fault != nil:
		// A host function trapped the guest by panicking with in.fault,
		// so err already wraps in.fault: storing err in it would make the
		// fault wrap itself and send errors.Is/As into an endless loop.
		return in.fault
	case in.timedOut:
		f.Kind = plugins.FaultTimeout
		f.Detail = fmt.Sprintf("%s ran longer than the call timeout of %s", name, in.limits.CallTimeout)
	case ctx.Err() != nil:
		f.Kind = plugins.FaultTimeout
		f.Detail = fmt.Sprintf("%s stopped: the host's context is done (%v)", name, ctx.Err())
		f.Err = ctx.Err()
	case in.memory.refused != 0:
		f.Kind = plugins.FaultMemory
		f.Detail = fmt.Sprintf("%s tried to grow the guest's memory to %d bytes, over the limit of %d bytes",
			name, in.memory.refused, in.memory.limit)
		if line := in.stderr.DeathLine(); line != "" {
			f.Detail += " (guest: " + line + ")"
		}
	case errors.As(err, &exit):
		f.Kind = plugins.FaultExit
		f.ExitCode = exit.ExitCode()
		f.Detail = fmt.Sprintf("%s: the guest exited with code %d", name, f.ExitCode)
		if line := in.stderr.DeathLine(); line != "" {
			f.Detail += ": " + line
		}
	default:
		f.Kind = plugins.FaultTrap
		msg := err.Error()
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i] // the rest is the wasm stack trace, kept in Err
		}
		f.Detail = name + ": " + msg
		if line := in.stderr.DeathLine(); line != "" {
			// A Go guest that panics prints the panic, then traps.
			f.Detail += " (guest: " + line + ")"
		}
	}
	return f
}

// Input implements plugins.Instance.
func (in *instance) Input(ctx context.Context, n int) ([]byte, error) {
	if n < 0 || uint64(n) > 1<<31 {
		return nil, fmt.Errorf("%s: input of %d bytes is out of range", in.name, n)
	}
	if in.closed {
		// Its memory is released: a slice of it would fault the host.
		return nil, &plugins.Fault{Kind: plugins.FaultABI, Instance: in.name, Detail: "Input called on a closed instance"}
	}
	if in.regionCap == 0 || uint32(n) > in.regionCap {
		size := max(uint64(n), 2*uint64(in.regionCap), minRegion)
		size = min(size, 1<<31)
		in.stack[0] = size
		if err := in.call(ctx, in.allocFn, abi.ExportAlloc, in.stack[:1]); err != nil {
			return nil, err
		}
		ptr := uint32(in.stack[0])
		if ptr == 0 {
			return nil, in.die(&plugins.Fault{Kind: plugins.FaultABI, Instance: in.name,
				Detail: fmt.Sprintf("%s(%d) returned 0: the guest could not allocate the input region", abi.ExportAlloc, size)})
		}
		if _, ok := in.mem.Read(ptr, uint32(size)); !ok {
			return nil, in.die(&plugins.Fault{Kind: plugins.FaultABI, Instance: in.name,
				Detail: fmt.Sprintf("%s(%d) returned [ptr %#x, len %d], which is outside guest memory (%d bytes)",
					abi.ExportAlloc, size, ptr, size, in.mem.Size())})
		}
		in.region, in.regionCap = ptr, uint32(size)
	}
	b, _ := in.mem.Read(in.region, uint32(n))
	return b, nil
}

// Process implements plugins.Instance.
func (in *instance) Process(ctx context.Context, n int) error {
	if n < abi.BatchHeaderSize || uint64(n) > uint64(in.regionCap) {
		return fmt.Errorf("%s: Process(%d): the batch must be between %d bytes and the %d bytes obtained through Input",
			in.name, n, abi.BatchHeaderSize, in.regionCap)
	}
	if in.closed {
		return &plugins.Fault{Kind: plugins.FaultABI, Instance: in.name, Detail: "Process called on a closed instance"}
	}
	hdr, _ := in.mem.Read(in.region, 4)
	count := binary.LittleEndian.Uint32(hdr)
	in.resetCall()
	in.stack[0], in.stack[1] = uint64(in.region), uint64(n)
	if err := in.call(ctx, in.processFn, abi.ExportProcess, in.stack); err != nil {
		return err
	}
	switch status := int32(uint32(in.stack[0])); status {
	case abi.StatusOK:
		return nil
	case abi.StatusRecordFailed:
		if !in.errSet {
			return in.die(&plugins.Fault{Kind: plugins.FaultABI, Instance: in.name,
				Detail: "sluice_process returned status 1 (record failed) without calling set_error"})
		}
		if in.errIndex < 0 || uint32(in.errIndex) >= count {
			return in.die(&plugins.Fault{Kind: plugins.FaultABI, Instance: in.name,
				Detail: fmt.Sprintf("sluice_process returned status 1 (record failed) with set_error index %d, outside the batch of %d records",
					in.errIndex, count)})
		}
		return &plugins.RecordError{Index: int(in.errIndex), Message: string(in.errMsg)}
	default:
		return in.die(&plugins.Fault{Kind: plugins.FaultABI, Instance: in.name,
			Detail: fmt.Sprintf("sluice_process returned status %d", status)})
	}
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
