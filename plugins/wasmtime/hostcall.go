//go:build cgo && !nowasmtime

package wasmtime

/*
#include <stdlib.h>
#include "sluice_wasmtime.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	wt "github.com/bytecodealliance/wasmtime-go/v39"
)

// Host functions are defined on the linker with Wasmtime's "unchecked"
// C API (wasmtime_linker_define_func_unchecked) instead of wasmtime-go's
// Linker.FuncNew, whose trampoline takes two global locks and allocates
// a Caller, a []Val and a boxed value per argument on every call: a
// state_get cost 2.4µs that way. Here a host call is one transition from
// C to Go (hostcall.c's trampoline passes the caller's store context and
// memory along) and allocates nothing.

// hostEntry is one defined host function.
type hostEntry struct {
	fn        hostFunc
	hasResult bool
}

// hostTable holds every host function by the index its trampoline gets;
// it is filled once and only read afterwards.
var (
	hostTable     []hostEntry
	hostTableOnce sync.Once
)

// instances maps the store context of every live instance to it, for the
// trampoline.
var instances sync.Map // unsafe.Pointer (wasmtime_context_t*) -> *instance

// maxHostArgs is the most parameters a host function has (path_open).
const maxHostArgs = 9

// defineHostFunc defines module.name on linker as hostTable[index].
func defineHostFunc(l *wt.Linker, module, name string, ty *wt.FuncType, index int) error {
	// wasmtime-go v39's Linker and FuncType hold their C pointer in their
	// first field.
	lp := *(**C.wasmtime_linker_t)(unsafe.Pointer(l))
	tp := *(**C.wasm_functype_t)(unsafe.Pointer(ty))
	cm, cn := C.CString(module), C.CString(name)
	defer C.free(unsafe.Pointer(cm))
	defer C.free(unsafe.Pointer(cn))
	if err := C.sluice_define(lp, cm, C.size_t(len(module)), cn, C.size_t(len(name)), tp, C.size_t(index)); err != nil {
		var msg C.sluice_byte_vec_t
		C.wasmtime_error_message(err, &msg)
		s := C.GoStringN(msg.data, C.int(msg.size))
		C.wasm_byte_vec_delete(&msg)
		C.wasmtime_error_delete(err)
		return fmt.Errorf("%s", s)
	}
	return nil
}

// storeContext is the C context of a wasmtime-go store.
func storeContext(s *wt.Store) unsafe.Pointer { return unsafe.Pointer(s.Context()) }

// sluiceHostCall runs host function index for the instance whose store is
// ctx. It must not let a panic escape into C: every panic becomes a trap.
//
//export sluiceHostCall
func sluiceHostCall(index C.size_t, caller *C.wasmtime_caller_t, ctx *C.wasmtime_context_t,
	mem *C.uint8_t, memLen C.size_t, args *C.sluice_val_raw_t, n C.size_t) (trap *C.wasm_trap_t) {
	v, ok := instances.Load(unsafe.Pointer(ctx))
	if !ok {
		return newTrap("sluice host function called outside a sluice instance")
	}
	in := v.(*instance)
	e := &hostTable[index]
	raw := unsafe.Slice((*[16]byte)(unsafe.Pointer(args)), int(n))
	argv := in.argv[:len(raw)] // in the instance: a local array would escape
	for i := range raw {
		argv[i] = *(*uint64)(unsafe.Pointer(&raw[i]))
	}
	in.caller = unsafe.Pointer(caller)
	in.ctx = unsafe.Pointer(ctx)
	in.curMem = unsafe.Slice((*byte)(unsafe.Pointer(mem)), int(memLen))
	defer func() {
		in.caller = nil
		in.curMem = nil
		if p := recover(); p != nil {
			if s, ok := p.(trapSignal); ok {
				trap = newTrap(s.msg)
				return
			}
			in.hostPanic = p
			trap = newTrap(fmt.Sprint(p))
		}
	}()
	res := e.fn(in, argv)
	if e.hasResult {
		*(*int32)(unsafe.Pointer(&raw[0])) = res
	}
	return nil
}

func newTrap(msg string) *C.wasm_trap_t {
	cs := C.CString(msg)
	defer C.free(unsafe.Pointer(cs))
	return C.wasmtime_trap_new(cs, C.size_t(len(msg)))
}

// setFuel refills the fuel global of the calling instance.
func (in *instance) setFuel(v int32) bool {
	ctx := (*C.wasmtime_context_t)(in.ctx)
	if in.fuel != nil {
		C.sluice_set_global_i32(ctx, (*C.sluice_global_t)(unsafe.Pointer(in.fuel)), C.int32_t(v))
		return true
	}
	// During instantiation (a start function) the global is not known yet.
	var g C.sluice_global_t
	name := C.CString(fuelExport)
	defer C.free(unsafe.Pointer(name))
	if !C.sluice_caller_global((*C.wasmtime_caller_t)(in.caller), name, C.size_t(len(fuelExport)), &g) {
		return false
	}
	C.sluice_set_global_i32(ctx, &g, C.int32_t(v))
	return true
}
