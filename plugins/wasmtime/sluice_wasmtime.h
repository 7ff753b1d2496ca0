//go:build cgo && !nowasmtime

// Declarations of the parts of the Wasmtime C API (v39, the version that
// github.com/bytecodealliance/wasmtime-go/v39 links) that wasmtime-go does
// not expose, with the type layouts of that version's headers. The
// library itself is linked by wasmtime-go.

#ifndef SLUICE_WASMTIME_H
#define SLUICE_WASMTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wasmtime_context wasmtime_context_t;
typedef struct wasmtime_caller wasmtime_caller_t;
typedef struct wasmtime_linker wasmtime_linker_t;
typedef struct wasm_functype_t wasm_functype_t;
typedef struct wasm_trap_t wasm_trap_t;
typedef struct wasmtime_error wasmtime_error_t;

typedef struct sluice_func {
	uint64_t store_id;
	void *private_;
} sluice_func_t; // wasmtime_func_t

typedef struct sluice_memory {
	uint64_t store_id;
	uint32_t private1;
	uint32_t private2;
} sluice_memory_t; // wasmtime_memory_t

typedef struct sluice_global {
	uint64_t store_id;
	uint32_t private1;
	uint32_t private2;
	uint32_t private3;
} sluice_global_t; // wasmtime_global_t

typedef union sluice_val_raw {
	int32_t i32;
	int64_t i64;
	uint8_t v128[16];
	void *funcref;
} sluice_val_raw_t; // wasmtime_val_raw_t

// wasmtime_extern_t: a kind byte, then a union whose largest members are
// 24 bytes (wasmtime_global_t) with 8-byte alignment.
typedef struct sluice_extern {
	uint8_t kind;
	union {
		sluice_func_t func;
		sluice_global_t global;
		sluice_memory_t memory;
		uint8_t bytes[24];
	} of;
} sluice_extern_t;

#define SLUICE_EXTERN_GLOBAL 1
#define SLUICE_EXTERN_MEMORY 3

// wasmtime_val_t: a kind byte, then a union of at most 24 bytes with
// 8-byte alignment.
typedef struct sluice_val {
	uint8_t kind;
	union {
		int32_t i32;
		int64_t i64;
		uint8_t bytes[24];
	} of;
} sluice_val_t;

#define SLUICE_I32 0

typedef struct {
	size_t size;
	char *data;
} sluice_byte_vec_t; // wasm_byte_vec_t

typedef wasm_trap_t *(*sluice_unchecked_callback_t)(void *env, wasmtime_caller_t *caller,
	sluice_val_raw_t *args_and_results, size_t num_args_and_results);

extern wasmtime_error_t *wasmtime_func_call_unchecked(wasmtime_context_t *store, const sluice_func_t *func,
	sluice_val_raw_t *args_and_results, size_t args_and_results_len, wasm_trap_t **trap);
extern wasmtime_error_t *wasmtime_linker_define_func_unchecked(wasmtime_linker_t *linker,
	const char *module, size_t module_len, const char *name, size_t name_len, const wasm_functype_t *ty,
	sluice_unchecked_callback_t cb, void *data, void (*finalizer)(void *));
extern wasmtime_context_t *wasmtime_caller_context(wasmtime_caller_t *caller);
extern bool wasmtime_caller_export_get(wasmtime_caller_t *caller, const char *name, size_t name_len, sluice_extern_t *item);
extern uint8_t *wasmtime_memory_data(const wasmtime_context_t *store, const sluice_memory_t *memory);
extern size_t wasmtime_memory_data_size(const wasmtime_context_t *store, const sluice_memory_t *memory);
extern void wasmtime_global_set(wasmtime_context_t *store, const sluice_global_t *global, const sluice_val_t *val);
extern void wasmtime_context_set_epoch_deadline(wasmtime_context_t *context, uint64_t ticks_beyond_current);
extern wasm_trap_t *wasmtime_trap_new(const char *msg, size_t msg_len);
extern bool wasmtime_trap_code(const wasm_trap_t *trap, uint8_t *code);
extern void wasm_trap_message(const wasm_trap_t *trap, sluice_byte_vec_t *out);
extern void wasm_trap_delete(wasm_trap_t *trap);
extern void wasmtime_error_message(const wasmtime_error_t *error, sluice_byte_vec_t *message);
extern void wasmtime_error_delete(wasmtime_error_t *error);
extern void wasm_byte_vec_delete(sluice_byte_vec_t *v);

// Defined in hostcall.c.
wasmtime_error_t *sluice_define(wasmtime_linker_t *linker, const char *module, size_t module_len,
	const char *name, size_t name_len, const wasm_functype_t *ty, size_t index);
void sluice_set_global_i32(wasmtime_context_t *ctx, const sluice_global_t *g, int32_t v);
typedef struct {
	uint8_t *data;
	size_t len;
} sluice_memory_data;
sluice_memory_data sluice_memory(wasmtime_context_t *ctx, const sluice_memory_t *m);
bool sluice_caller_global(wasmtime_caller_t *caller, const char *name, size_t name_len, sluice_global_t *out);

#endif
