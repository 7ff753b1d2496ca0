// Package abi is the contract between the sluice host and a WebAssembly
// operator (the guest): the import module name that carries the ABI's major
// version, the names and signatures of host functions and guest exports,
// the return codes, the limits, and the byte layouts of the batches that
// cross the boundary. abi/SPEC.md is the normative text; this package is
// its Go form, used by the host (plugins, host) and by the Go SDK alike, so
// both sides encode and decode with the same code.
//
// The package imports nothing but the standard library and allocates only
// when a caller's buffer must grow, so it compiles for GOOS=wasip1 and is
// cheap on both sides of the boundary.
package abi

// Version is the ABI major version this package describes.
const Version = 1

// Module is the import module every host function lives in. A breaking
// change gets a new module name (sluice_v2); additions to v1 keep this one.
const Module = "sluice_v1"

// Host function names, all imported from Module. Signatures are given in
// SPEC.md and in HostFuncs.
const (
	// FuncCheckVersion is the function a guest imports to declare that it
	// speaks ABI v1. It takes and returns nothing; a host that does not
	// know it refuses the module at link time.
	FuncCheckVersion = "check_abi_version_1"
	FuncEmit         = "emit"
	FuncStoreOpen    = "store_open"
	FuncStateGet     = "state_get"
	FuncStatePut     = "state_put"
	FuncStateDelete  = "state_delete"
	FuncStateScan    = "state_scan"
	FuncLog          = "log"
	FuncSetError     = "set_error"
	// FuncStreamTime writes the task's stream time at the start of the
	// current call (an i64, -1 for none) at out_ptr; see SPEC.md.
	FuncStreamTime = "stream_time"
)

// Guest export names.
const (
	ExportMemory  = "memory"
	ExportAlloc   = "sluice_alloc"
	ExportInit    = "sluice_init"
	ExportProcess = "sluice_process"
	// ExportInitialize is the WASI reactor initializer; the host calls it
	// first when the module exports it.
	ExportInitialize = "_initialize"
	// ExportStart marks a WASI command module, which the host refuses:
	// operators must be reactors.
	ExportStart = "_start"
)

// WASIModule is the WASI preview 1 import module, provided to guests with
// no files, sockets, arguments or environment (see SPEC.md).
const WASIModule = "wasi_snapshot_preview1"

// ValType is a core WebAssembly value type as used in signatures.
type ValType byte

const (
	I32 ValType = 0x7f
	I64 ValType = 0x7e
)

func (t ValType) String() string {
	switch t {
	case I32:
		return "i32"
	case I64:
		return "i64"
	}
	return "unknown"
}

// Signature is a function type.
type Signature struct {
	Params  []ValType
	Results []ValType
}

// HostFuncs lists every host function of ABI v1 with its signature. A
// guest may import any subset, but must import FuncCheckVersion.
var HostFuncs = map[string]Signature{
	FuncCheckVersion: {},
	// emit(batch_ptr, batch_len) -> code
	FuncEmit: {Params: []ValType{I32, I32}, Results: []ValType{I32}},
	// store_open(name_ptr, name_len) -> handle or code
	FuncStoreOpen: {Params: []ValType{I32, I32}, Results: []ValType{I32}},
	// state_get(store, key_ptr, key_len, val_ptr, val_cap) -> value length or code
	FuncStateGet: {Params: []ValType{I32, I32, I32, I32, I32}, Results: []ValType{I32}},
	// state_put(store, key_ptr, key_len, val_ptr, val_len) -> code
	FuncStatePut: {Params: []ValType{I32, I32, I32, I32, I32}, Results: []ValType{I32}},
	// state_delete(store, key_ptr, key_len) -> code
	FuncStateDelete: {Params: []ValType{I32, I32, I32}, Results: []ValType{I32}},
	// state_scan(store, start_ptr, start_len, end_ptr, end_len, buf_ptr, buf_cap) -> bytes written or code
	FuncStateScan: {Params: []ValType{I32, I32, I32, I32, I32, I32, I32}, Results: []ValType{I32}},
	// log(level, msg_ptr, msg_len)
	FuncLog: {Params: []ValType{I32, I32, I32}},
	// set_error(record_index, msg_ptr, msg_len)
	FuncSetError: {Params: []ValType{I32, I32, I32}},
	// stream_time(out_ptr) -> code; writes an i64 at [out_ptr, out_ptr+8)
	FuncStreamTime: {Params: []ValType{I32}, Results: []ValType{I32}},
}

// Exports lists the function exports a guest must have, with signatures.
var Exports = map[string]Signature{
	// sluice_alloc(size) -> ptr (0 on failure)
	ExportAlloc: {Params: []ValType{I32}, Results: []ValType{I32}},
	// sluice_init(params_ptr, params_len) -> status
	ExportInit: {Params: []ValType{I32, I32}, Results: []ValType{I32}},
	// sluice_process(batch_ptr, batch_len) -> status
	ExportProcess: {Params: []ValType{I32, I32}, Results: []ValType{I32}},
}

// Code is a host function's return code. Non-negative results of
// functions that return a length or handle are not codes.
type Code int32

const (
	OK Code = 0
	// ErrNotFound: state_get found no value for the key.
	ErrNotFound Code = -1
	// ErrMalformed: an emit batch does not parse (truncated, bad lengths).
	ErrMalformed Code = -2
	// ErrBadStore: the store handle or name is not one of the job's stores.
	ErrBadStore Code = -3
	// ErrBadOutput: an emitted record names an output index or an explicit
	// partition that does not exist.
	ErrBadOutput Code = -4
	// ErrBufferTooSmall: the result does not fit the guest's buffer; the
	// needed size is given as described for each function.
	ErrBufferTooSmall Code = -5
	// ErrLimit: a key, value or the call's total output exceeds a limit.
	ErrLimit Code = -6
	// ErrNotAllowed: the function may not be called now (for example emit
	// or a state write from sluice_init).
	ErrNotAllowed Code = -7
	// ErrInternal: the host failed (for example a storage error). The
	// host also fails the task; the guest should return promptly.
	ErrInternal Code = -8
)

func (c Code) String() string {
	switch c {
	case OK:
		return "ok"
	case ErrNotFound:
		return "not found"
	case ErrMalformed:
		return "malformed batch"
	case ErrBadStore:
		return "unknown store"
	case ErrBadOutput:
		return "unknown output or partition"
	case ErrBufferTooSmall:
		return "buffer too small"
	case ErrLimit:
		return "limit exceeded"
	case ErrNotAllowed:
		return "not allowed now"
	case ErrInternal:
		return "host error"
	}
	return "unknown code"
}

// Status values returned by sluice_init and sluice_process.
const (
	// StatusOK: every record of the batch was processed.
	StatusOK int32 = 0
	// StatusRecordFailed: the record whose index the guest passed to
	// set_error failed; the host discards the whole call's effects and
	// applies the job's error policy (see SPEC.md).
	StatusRecordFailed int32 = 1
	// Any other status fails the task.
)

// Log levels for the log host function; they match log/slog's levels.
const (
	LevelDebug int32 = -4
	LevelInfo  int32 = 0
	LevelWarn  int32 = 4
	LevelError int32 = 8
)

// Limits a host enforces whatever the job file says.
const (
	// MaxKeySize bounds a state key.
	MaxKeySize = 64 << 10
	// MaxValueSize bounds a state value.
	MaxValueSize = 8 << 20
	// MaxStoreName bounds a store name.
	MaxStoreName = 255
	// MaxErrorMessage bounds what set_error keeps of a message.
	MaxErrorMessage = 4 << 10
	// MaxLogMessage bounds what log keeps of a message.
	MaxLogMessage = 16 << 10
)

// NoStreamTime is the stream time of a task that has seen no record with
// a timestamp yet.
const NoStreamTime int64 = -1

// PartitionByKey in an output record's partition field asks the host to
// choose the partition from the key with Kafka's murmur2 partitioner.
const PartitionByKey int32 = -1

// TimestampInherit in an output record's timestamp field asks the host to
// use the timestamp of the last input record of the batch.
const TimestampInherit int64 = -1
