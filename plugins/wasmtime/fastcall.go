//go:build cgo && !nowasmtime

package wasmtime

/*
#include "sluice_wasmtime.h"

// sluice_call sets the store's epoch deadline and calls func with up to
// 2 i32 arguments. It returns the i32 result (0 without results) and the
// trap or error, if any (is_trap says which).
typedef struct {
	void *fail;
	int32_t result;
	int32_t is_trap;
} sluice_call_result;

static sluice_call_result sluice_call(wasmtime_context_t *ctx, uint64_t deadline, const sluice_func_t *func, int32_t a, int32_t b) {
	wasmtime_context_set_epoch_deadline(ctx, deadline);
	sluice_val_raw_t raw[2];
	raw[0].i64 = 0; raw[1].i64 = 0;
	raw[0].i32 = a; raw[1].i32 = b;
	wasm_trap_t *trap = NULL;
	wasmtime_error_t *err = wasmtime_func_call_unchecked(ctx, func, raw, 2, &trap);
	sluice_call_result r = {0};
	r.result = raw[0].i32;
	if (trap != NULL) {
		r.fail = trap;
		r.is_trap = 1;
	} else {
		r.fail = err;
	}
	return r;
}

// sluice_trap_info fills msg with the trap's message and returns its code
// or -1, and deletes the trap.
static int sluice_trap_info(wasm_trap_t *trap, sluice_byte_vec_t *msg) {
	uint8_t code = 0;
	int ret = wasmtime_trap_code(trap, &code) ? code : -1;
	wasm_trap_message(trap, msg);
	wasm_trap_delete(trap);
	return ret;
}

static void sluice_error_info(wasmtime_error_t *err, sluice_byte_vec_t *msg) {
	wasmtime_error_message(err, msg);
	wasmtime_error_delete(err);
}
*/
import "C"

import (
	"unsafe"

	wt "github.com/bytecodealliance/wasmtime-go/v39"
)

// callError is the trap or error of a guest call made by fastCall.
type callError struct {
	msg  string
	trap bool // a trap (else a Wasmtime error)
	code int  // the trap's code, -1 for none
}

func (e *callError) Error() string { return e.msg }

// fastCall sets the epoch deadline of the store whose context is ctx to
// deadline ticks from now and calls fn (at most two i32 parameters, at
// most one i32 result) with wasmtime_func_call_unchecked, in one cgo call. wasmtime-go's Func.Call asks Wasmtime
// for the function's type and converts every argument through cgo on each
// call, which costs several microseconds; this is one cgo call.
//
// It relies on the layouts of wasmtime-go v39: a *wt.Func points to a
// struct whose only field is the C wasmtime_func_t.
func fastCall(ctx unsafe.Pointer, deadline uint64, fn *wt.Func, a, b int32) (int32, error) {
	r := C.sluice_call((*C.wasmtime_context_t)(ctx), C.uint64_t(deadline), (*C.sluice_func_t)(unsafe.Pointer(fn)),
		C.int32_t(a), C.int32_t(b))
	p, isTrap := r.fail, r.is_trap
	if p == nil {
		return int32(r.result), nil
	}
	var msg C.sluice_byte_vec_t
	e := &callError{code: -1}
	if isTrap != 0 {
		e.trap = true
		e.code = int(C.sluice_trap_info((*C.wasm_trap_t)(p), &msg))
	} else {
		C.sluice_error_info((*C.wasmtime_error_t)(p), &msg)
	}
	e.msg = C.GoStringN(msg.data, C.int(msg.size))
	C.wasm_byte_vec_delete(&msg)
	// Trap messages end with a NUL.
	if n := len(e.msg); n > 0 && e.msg[n-1] == 0 {
		e.msg = e.msg[:n-1]
	}
	return 0, e
}

// memoryData returns the memory mem of the store whose context is ctx, in
// one cgo call (wasmtime-go's Memory.UnsafeData makes two). It relies on
// *wt.Memory pointing to the C wasmtime_memory_t.
func memoryData(ctx unsafe.Pointer, mem *wt.Memory) []byte {
	m := C.sluice_memory((*C.wasmtime_context_t)(ctx), (*C.sluice_memory_t)(unsafe.Pointer(mem)))
	return unsafe.Slice((*byte)(unsafe.Pointer(m.data)), int(m.len))
}
