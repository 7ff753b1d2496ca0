//go:build cgo && !nowasmtime

package wasmtime

import (
	"fmt"
	"sort"

	wt "github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/internal/guestcall"
)

// hostFunc is the Go side of one imported function: it reads its
// arguments from args (i32 arguments in the low 32 bits) and returns its
// i32 result (ignored for functions without results). It traps the guest
// by panicking with a trapSignal (see instance.trap).
type hostFunc func(in *instance, args []uint64) int32

// hostFuncs implements every function of the sluice_v1 module, with the
// semantics, bounds checks and messages of plugins/wazero's: both check
// guest pointers the same way and leave the rest to package guestcall.
var hostFuncs = map[string]hostFunc{
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

// newLinker defines the sluice_v1 host functions and WASI preview 1 on a
// linker for engine. The functions are store-independent: each finds its
// instance through the caller's store (see hostcall.go).
func newLinker(engine *wt.Engine) (*wt.Linker, error) {
	type def struct {
		module, name string
		params       []abi.ValType
		results      []abi.ValType
		fn           hostFunc
	}
	var defs []def
	for name, sig := range abi.HostFuncs {
		fn, ok := hostFuncs[name]
		if !ok {
			return nil, fmt.Errorf("BUG: no implementation of host function %s.%s", abi.Module, name)
		}
		defs = append(defs, def{abi.Module, name, sig.Params, sig.Results, fn})
	}
	for name, f := range wasiFuncs {
		sig := wasiSignatures[name]
		defs = append(defs, def{abi.WASIModule, name, sig.Params, sig.Results, f.fn})
	}
	sort.Slice(defs, func(i, j int) bool {
		if defs[i].module != defs[j].module {
			return defs[i].module < defs[j].module
		}
		return defs[i].name < defs[j].name
	})
	hostTableOnce.Do(func() {
		for _, d := range defs {
			if len(d.params) > maxHostArgs {
				panic(fmt.Sprintf("BUG: %s.%s has more than %d parameters", d.module, d.name, maxHostArgs))
			}
			hostTable = append(hostTable, hostEntry{fn: d.fn, hasResult: len(d.results) > 0})
		}
	})
	l := wt.NewLinker(engine)
	for i, d := range defs {
		ty := wt.NewFuncType(valTypes(d.params), valTypes(d.results))
		if err := defineHostFunc(l, d.module, d.name, ty, i); err != nil {
			l.Close()
			return nil, fmt.Errorf("defining host function %s.%s: %w", d.module, d.name, err)
		}
	}
	return l, nil
}

// valTypes converts abi value types (binary format codes) to Wasmtime's.
func valTypes(ts []abi.ValType) []*wt.ValType {
	out := make([]*wt.ValType, len(ts))
	for i, t := range ts {
		switch t {
		case 0x7f:
			out[i] = wt.NewValType(wt.KindI32)
		case 0x7e:
			out[i] = wt.NewValType(wt.KindI64)
		case 0x7d:
			out[i] = wt.NewValType(wt.KindF32)
		case 0x7c:
			out[i] = wt.NewValType(wt.KindF64)
		default:
			panic(fmt.Sprintf("BUG: host function value type %#x", byte(t)))
		}
	}
	return out
}

// trapSignal is what host functions panic with to trap the guest after
// recording why in the instance (fault, timedOut, exited...).
type trapSignal struct{ msg string }

func i32(v uint64) uint32 { return uint32(v) }
func s32(v uint64) int32  { return int32(uint32(v)) }

// guestMemory returns the caller's memory as it is during this host call
// (memory.grow may have moved it since the last one).
func (in *instance) guestMemory() []byte { return in.curMem }

// read returns the n bytes of mem at ptr, like wazero's Memory.Read.
func read(mem []byte, ptr, n uint32) ([]byte, bool) { return guestcall.Read(mem, ptr, n) }

// guestBytes returns the n bytes of guest memory at ptr, or traps the guest
// with an ABI fault naming the function and the argument.
func (in *instance) guestBytes(mem []byte, fn, what string, ptr, n uint32) []byte {
	b, ok := read(mem, ptr, n)
	if !ok {
		in.trap(guestcall.OutOfBounds(fn, what, ptr, n, uint64(len(mem))))
	}
	return b
}

// trap records an ABI fault and traps the guest; the call then reports the
// recorded fault.
//
//go:noinline
func (in *instance) trap(detail string) {
	in.trapFault(in.ABIFault(detail))
}

// trapFault traps the guest with f, a fault already recorded.
//
//go:noinline
func (in *instance) trapFault(f *plugins.Fault) {
	panic(trapSignal{f.Detail})
}

// yieldChecksTimeout is false only in a test of the epoch deadline alone.
var yieldChecksTimeout = true

// hostYield is check_abi_version_1. Guests call it once to declare the ABI
// version, and the metering code calls it whenever the guest's fuel runs
// out: it refills the fuel and traps the guest if its call is over the
// time limit or the caller's context is done.
func hostYield(in *instance, _ []uint64) int32 {
	if !in.setFuel(fuelPerYield) {
		return 0
	}
	if in.interrupted.Load() {
		panic(trapSignal{guestcall.ErrCallerDone.Error()})
	}
	if yieldChecksTimeout && in.CallTimedOut(in.callStart) {
		in.timedOut = true
		panic(trapSignal{guestcall.ErrCallTimeout.Error()})
	}
	return 0
}

func hostEmit(in *instance, args []uint64) int32 {
	mem := in.guestMemory()
	ptr, n := i32(args[0]), i32(args[1])
	code, f := in.Emit(in.guestBytes(mem, abi.FuncEmit, "batch", ptr, n), ptr, n)
	if f != nil {
		in.trapFault(f)
	}
	return code
}

func hostStoreOpen(in *instance, args []uint64) int32 {
	mem := in.guestMemory()
	return in.StoreOpen(in.guestBytes(mem, abi.FuncStoreOpen, "name", i32(args[0]), i32(args[1])))
}

func hostStateGet(in *instance, args []uint64) int32 {
	mem := in.guestMemory()
	key := in.guestBytes(mem, abi.FuncStateGet, "key", i32(args[1]), i32(args[2]))
	buf := in.guestBytes(mem, abi.FuncStateGet, "value buffer", i32(args[3]), i32(args[4]))
	return in.StateGet(s32(args[0]), key, buf)
}

func hostStatePut(in *instance, args []uint64) int32 {
	mem := in.guestMemory()
	key := in.guestBytes(mem, abi.FuncStatePut, "key", i32(args[1]), i32(args[2]))
	value := in.guestBytes(mem, abi.FuncStatePut, "value", i32(args[3]), i32(args[4]))
	return in.StatePut(s32(args[0]), key, value)
}

func hostStateDelete(in *instance, args []uint64) int32 {
	mem := in.guestMemory()
	key := in.guestBytes(mem, abi.FuncStateDelete, "key", i32(args[1]), i32(args[2]))
	return in.StateDelete(s32(args[0]), key)
}

func hostStateScan(in *instance, args []uint64) int32 {
	mem := in.guestMemory()
	start := in.guestBytes(mem, abi.FuncStateScan, "start key", i32(args[1]), i32(args[2]))
	end := in.guestBytes(mem, abi.FuncStateScan, "end key", i32(args[3]), i32(args[4]))
	buf := in.guestBytes(mem, abi.FuncStateScan, "result buffer", i32(args[5]), i32(args[6]))
	return in.StateScan(s32(args[0]), start, end, buf)
}

func hostLog(in *instance, args []uint64) int32 {
	mem := in.guestMemory()
	in.Log(s32(args[0]), in.guestBytes(mem, abi.FuncLog, "message", i32(args[1]), i32(args[2])))
	return 0
}

func hostSetError(in *instance, args []uint64) int32 {
	mem := in.guestMemory()
	in.SetError(s32(args[0]), in.guestBytes(mem, abi.FuncSetError, "message", i32(args[1]), i32(args[2])))
	return 0
}

func hostStreamTime(in *instance, args []uint64) int32 {
	mem := in.guestMemory()
	return in.StreamTime(in.guestBytes(mem, abi.FuncStreamTime, "out", i32(args[0]), 8))
}
