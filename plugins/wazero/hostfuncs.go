package wazero

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"

	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
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
		panic(errCallerDone)
	}
	if time.Since(in.callStart) > in.limits.CallTimeout {
		in.timedOut = true
		panic(errCallTimeout)
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
		in.outOfBounds(fn, what, ptr, n)
	}
	return b
}

//go:noinline
func (in *instance) outOfBounds(fn, what string, ptr, n uint32) {
	in.trap(fmt.Sprintf("%s: %s [ptr %#x, len %d] is outside guest memory (%d bytes)", fn, what, ptr, n, in.mem.Size()))
}

// trap records an ABI fault and panics, which wazero turns into a trap of
// the guest; Process then reports the recorded fault.
//
//go:noinline
func (in *instance) trap(detail string) {
	in.fault = &plugins.Fault{Kind: plugins.FaultABI, Instance: in.name, Detail: detail}
	panic(in.fault)
}

func hostEmit(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	ptr, n := uint32(stack[0]), uint32(stack[1])
	batch := in.guestBytes(abi.FuncEmit, "batch", ptr, n)
	if in.inInit {
		ret(stack, int32(abi.ErrNotAllowed))
		return
	}
	if in.outBytes+len(batch) > in.limits.MaxOutputBytes {
		in.trap(fmt.Sprintf("emit: the call's output would reach %d bytes, over the limit of %d bytes",
			in.outBytes+len(batch), in.limits.MaxOutputBytes))
	}
	in.outputs.Reset(batch)
	for in.outputs.Next(&in.output) {
	}
	if err := in.outputs.Err(); err != nil {
		in.trap(fmt.Sprintf("emit: malformed output batch [ptr %#x, len %d]: %v", ptr, n, err))
	}
	in.outBytes += len(batch)
	ret(stack, in.host.Emit(batch))
}

func hostStoreOpen(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	name := in.guestBytes(abi.FuncStoreOpen, "name", uint32(stack[0]), uint32(stack[1]))
	if len(name) > abi.MaxStoreName {
		ret(stack, int32(abi.ErrBadStore))
		return
	}
	ret(stack, in.host.StoreOpen(name))
}

func hostStateGet(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	store := int32(uint32(stack[0]))
	key := in.guestBytes(abi.FuncStateGet, "key", uint32(stack[1]), uint32(stack[2]))
	buf := in.guestBytes(abi.FuncStateGet, "value buffer", uint32(stack[3]), uint32(stack[4]))
	if len(key) > abi.MaxKeySize {
		ret(stack, int32(abi.ErrLimit))
		return
	}
	value, found, code := in.host.StateGet(store, key)
	switch {
	case code != int32(abi.OK):
		ret(stack, code)
	case !found:
		ret(stack, int32(abi.ErrNotFound))
	default:
		if len(value) <= len(buf) {
			copy(buf, value)
		}
		ret(stack, int32(len(value)))
	}
}

func hostStatePut(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	store := int32(uint32(stack[0]))
	key := in.guestBytes(abi.FuncStatePut, "key", uint32(stack[1]), uint32(stack[2]))
	value := in.guestBytes(abi.FuncStatePut, "value", uint32(stack[3]), uint32(stack[4]))
	switch {
	case in.inInit:
		ret(stack, int32(abi.ErrNotAllowed))
	case len(key) > abi.MaxKeySize || len(value) > abi.MaxValueSize:
		ret(stack, int32(abi.ErrLimit))
	default:
		ret(stack, in.host.StatePut(store, key, value))
	}
}

func hostStateDelete(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	store := int32(uint32(stack[0]))
	key := in.guestBytes(abi.FuncStateDelete, "key", uint32(stack[1]), uint32(stack[2]))
	switch {
	case in.inInit:
		ret(stack, int32(abi.ErrNotAllowed))
	case len(key) > abi.MaxKeySize:
		ret(stack, int32(abi.ErrLimit))
	default:
		ret(stack, in.host.StateDelete(store, key))
	}
}

func hostStateScan(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	store := int32(uint32(stack[0]))
	start := in.guestBytes(abi.FuncStateScan, "start key", uint32(stack[1]), uint32(stack[2]))
	end := in.guestBytes(abi.FuncStateScan, "end key", uint32(stack[3]), uint32(stack[4]))
	buf := in.guestBytes(abi.FuncStateScan, "result buffer", uint32(stack[5]), uint32(stack[6]))
	if len(start) > abi.MaxKeySize || len(end) > abi.MaxKeySize {
		ret(stack, int32(abi.ErrLimit))
		return
	}
	// The bounds are copied: the host writes the result into guest memory
	// while it may still read them (a guest commonly keeps its next start
	// key inside its result buffer).
	in.scanStart = append(in.scanStart[:0], start...)
	var endKey []byte
	if len(end) > 0 {
		in.scanEnd = append(in.scanEnd[:0], end...)
		endKey = in.scanEnd
	}
	out, needed, code := in.host.StateScan(store, in.scanStart, endKey, buf[:0:len(buf)], len(buf))
	switch {
	case code != int32(abi.OK):
		ret(stack, code)
	case len(out) > len(buf):
		in.host.Log(abi.LevelError, []byte("sluice host: StateScan returned more than the guest's buffer"))
		ret(stack, int32(abi.ErrInternal))
	case len(out) == 0 && needed > 0:
		if len(buf) >= 4 {
			binary.LittleEndian.PutUint32(buf, uint32(needed))
		}
		ret(stack, int32(abi.ErrBufferTooSmall))
	default:
		if len(out) > 0 && unsafe.SliceData(out) != unsafe.SliceData(buf) {
			copy(buf, out)
		}
		ret(stack, int32(len(out)))
	}
}

func hostLog(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	level := int32(uint32(stack[0]))
	msg := in.guestBytes(abi.FuncLog, "message", uint32(stack[1]), uint32(stack[2]))
	if len(msg) > abi.MaxLogMessage {
		msg = msg[:abi.MaxLogMessage]
	}
	in.host.Log(level, msg)
}

func hostSetError(ctx context.Context, _ api.Module, stack []uint64) {
	in := caller(ctx)
	index := int32(uint32(stack[0]))
	msg := in.guestBytes(abi.FuncSetError, "message", uint32(stack[1]), uint32(stack[2]))
	if len(msg) > abi.MaxErrorMessage {
		msg = msg[:abi.MaxErrorMessage]
	}
	in.errSet = true
	in.errIndex = index
	in.errMsg = append(in.errMsg[:0], msg...)
}
