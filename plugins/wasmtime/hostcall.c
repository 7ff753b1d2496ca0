//go:build cgo && !nowasmtime

#include "sluice_wasmtime.h"
#include "_cgo_export.h"

// trampoline is every host function's entry: it finds the caller's store
// context and memory and calls sluiceHostCall (hostcall.go) once, so that
// a host call crosses from C to Go once and back to C never.
static wasm_trap_t *trampoline(void *env, wasmtime_caller_t *caller, sluice_val_raw_t *args, size_t n) {
	wasmtime_context_t *ctx = wasmtime_caller_context(caller);
	uint8_t *mem = NULL;
	size_t mem_len = 0;
	sluice_extern_t item;
	if (wasmtime_caller_export_get(caller, "memory", 6, &item) && item.kind == SLUICE_EXTERN_MEMORY) {
		mem = wasmtime_memory_data(ctx, &item.of.memory);
		mem_len = wasmtime_memory_data_size(ctx, &item.of.memory);
	}
	return sluiceHostCall((size_t)env, caller, ctx, mem, mem_len, args, n);
}

wasmtime_error_t *sluice_define(wasmtime_linker_t *linker, const char *module, size_t module_len,
	const char *name, size_t name_len, const wasm_functype_t *ty, size_t index) {
	return wasmtime_linker_define_func_unchecked(linker, module, module_len, name, name_len, ty,
		trampoline, (void *)index, NULL);
}

void sluice_set_global_i32(wasmtime_context_t *ctx, const sluice_global_t *g, int32_t v) {
	sluice_val_t val;
	val.kind = SLUICE_I32;
	val.of.i64 = 0;
	val.of.i32 = v;
	wasmtime_global_set(ctx, g, &val);
}

bool sluice_caller_global(wasmtime_caller_t *caller, const char *name, size_t name_len, sluice_global_t *out) {
	sluice_extern_t item;
	if (!wasmtime_caller_export_get(caller, name, name_len, &item) || item.kind != SLUICE_EXTERN_GLOBAL) {
		return false;
	}
	*out = item.of.global;
	return true;
}

sluice_memory_data sluice_memory(wasmtime_context_t *ctx, const sluice_memory_t *m) {
	sluice_memory_data d;
	d.data = wasmtime_memory_data(ctx, m);
	d.len = wasmtime_memory_data_size(ctx, m);
	return d;
}
