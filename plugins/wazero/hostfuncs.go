package wazero

import (
	"context"

	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/internal/guestcall"
)

// hostFuncs implements every function of the sluice_v1 module. Each takes
// its parameters from stack and writes its result to stack[0]. They run on
// the goroutine that called into the guest and must not allocate in the
// steady state: they are called per record by many operators.
var hostFuncs = map[string]api.GoModuleFunc{
	abi.FuncCheckVersion: hostYield,
	abi.FuncEmit:         hostEmit,
	abi.FuncStoreOpen:    hostStoreOpen,
	abi.FuncStateGet:     hostStateGet,
	abi.FuncStatePut:     hostStatePut,
	abi.FuncStateDelete:  hostStateDelete,
	abi.FuncStateScan:    hostStateScan,
	abi.FuncLog:          hostLog,
	abi.FuncSetError:     hostSetError,
	abi.FuncStreamTime:   hostStreamTime,
}

// fuelExport is the name under which package meter exports the fuel
// global of an instrumented module.
const fuelExport = "sluice_internal_fuel"

// fuelPerYield is how many function entries and loop iterations a guest
// runs between two yields: a few hundred microseconds of guest code, so
// that the time limit is kept to well under a millisecond and a yield
// (about 100 ns) costs nothing measurable.
const fuelPerYield = 1 << 16

// hostYield is check_abi_version_1. Guests call it once to declare the ABI
// version, and the metering code calls it whenever the guest's fuel runs
// out: it refills the fuel and traps the guest if its call is over the
// time limit or the caller's context is done. Being Go code, it is also
// where the Go scheduler can preempt a guest that would otherwise hold its
// thread for as long as it runs.
func hostYield(ctx context.Context, mod api.Module, _ []uint64) {
	in := caller(ctx)
	if in.fuel == nil {
		g, ok := mod.ExportedGlobal(fuelExport).(api.MutableGlobal)
		if !ok {
			return
		}
		in.fuel = g
	}
	in.fuel.Set(fuelPerYield)
	if in.interrupted.Load() {
		panic(guestcall.ErrCallerDone)
	}
	if in.CallTimedOut(in.callStart) {
		in.timedOut = true
		panic(guestcall.ErrCallTimeout)
	}
}

// caller returns the instance whose guest made the host call.
func caller(ctx context.Context) *instance {
	in, ok := ctx.Value(instanceKey{}).(*instance)
	if !ok {
		panic("sluice host function called outside a sluice instance")
	}
	return in
}

func ret(stack []uint64, v int32) { stack[0] = uint64(uint32(v)) }

// guestBytes returns the n bytes of guest memory at ptr, or traps the guest
// with an ABI fault naming the function and the argument.
func (in *instance) guestBytes(fn, what string, ptr, n uint32) []byte {
	b, ok := in.mem.Read(ptr, n)
	if !ok {
		in.trap(in.ABIFault(guestcall.OutOfBounds(fn, what, ptr, n, uint64(in.mem.Size()))))
	}
	return b
}

// trap panics with f, the fault recorded by a host function, which wazero
// turns into a trap of the guest; the call then reports f.
//
//go:noinline
func (in *instance) trap(f *plugins.Fault) {
	panic(f)
}

func hostEmit(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	ptr, n := uint32(stack[0]), uint32(stack[1])
	code, f := in.Emit(in.guestBytes(abi.FuncEmit, "batch", ptr, n), ptr, n)
	if f != nil {
		in.trap(f)
	}
	ret(stack, code)
}

func hostStoreOpen(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	name := in.guestBytes(abi.FuncStoreOpen, "name", uint32(stack[0]), uint32(stack[1]))
	ret(stack, in.StoreOpen(name))
}

func hostStateGet(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	key := in.guestBytes(abi.FuncStateGet, "key", uint32(stack[1]), uint32(stack[2]))
	buf := in.guestBytes(abi.FuncStateGet, "value buffer", uint32(stack[3]), uint32(stack[4]))
	ret(stack, in.StateGet(int32(uint32(stack[0])), key, buf))
}

func hostStatePut(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	key := in.guestBytes(abi.FuncStatePut, "key", uint32(stack[1]), uint32(stack[2]))
	value := in.guestBytes(abi.FuncStatePut, "value", uint32(stack[3]), uint32(stack[4]))
	ret(stack, in.StatePut(int32(uint32(stack[0])), key, value))
}

func hostStateDelete(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	key := in.guestBytes(abi.FuncStateDelete, "key", uint32(stack[1]), uint32(stack[2]))
	ret(stack, in.StateDelete(int32(uint32(stack[0])), key))
}

func hostStateScan(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	start := in.guestBytes(abi.FuncStateScan, "start key", uint32(stack[1]), uint32(stack[2]))
	end := in.guestBytes(abi.FuncStateScan, "end key", uint32(stack[3]), uint32(stack[4]))
	buf := in.guestBytes(abi.FuncStateScan, "result buffer", uint32(stack[5]), uint32(stack[6]))
	ret(stack, in.StateScan(int32(uint32(stack[0])), start, end, buf))
}

func hostLog(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	msg := in.guestBytes(abi.FuncLog, "message", uint32(stack[1]), uint32(stack[2]))
	in.Log(int32(uint32(stack[0])), msg)
}

func hostSetError(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	msg := in.guestBytes(abi.FuncSetError, "message", uint32(stack[1]), uint32(stack[2]))
	in.SetError(int32(uint32(stack[0])), msg)
}

func hostStreamTime(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	out := in.guestBytes(abi.FuncStreamTime, "out", uint32(stack[0]), 8)
	ret(stack, in.StreamTime(out))
}
