// Package plugins loads, validates, compiles and instantiates WebAssembly
// operators. It defines the Runtime interface that every Wasm engine
// implements (plugins/wazero today, plugins/wasmtime next) and the Host
// interface through which an instance's host calls reach the task that
// owns it. The ABI mechanics — reading guest memory, bounds checks, return
// codes, the batch layouts of package abi — live in the runtime
// implementations; Host sees plain Go slices.
package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Runtime compiles modules for one Wasm engine. Implementations are safe
// for concurrent use.
type Runtime interface {
	// Name is the runtime's name as written in job files ("wazero").
	Name() string
	// Compile validates wasm against the ABI (imports, exports and their
	// signatures; a *ValidationError names every problem) and compiles it.
	// Compiling the same bytes twice returns the cached result (the same
	// compiled module, counted as held twice: see Module.Close); compiled
	// code is also cached on disk when the runtime has a cache directory.
	Compile(ctx context.Context, wasm []byte) (Module, error)
	// Close releases every module and instance of the runtime, held or
	// not; Module.Close afterwards does nothing.
	Close(ctx context.Context) error
}

// Module is a compiled, validated operator.
type Module interface {
	// Instantiate creates an isolated instance (its own memory, its own
	// WASI state), runs the WASI reactor initializer if exported, then
	// sluice_init with cfg.Params. An init failure returns an *InitError
	// (or a *Fault when the guest trapped or hit a limit) and no instance.
	Instantiate(ctx context.Context, cfg InstanceConfig) (Instance, error)
	// SHA256 is the hex digest of the module's bytes.
	SHA256() string
	// Close tells the runtime that this holder is done with the module.
	// Compile returns the same compiled module for the same bytes
	// (each time in a Module of its own), counting holders; the compiled code is freed when every Compile that returned
	// it has been matched by a Close. Instances already made keep working.
	// Using a Module after its own Close is a caller bug (Instantiate
	// returns an error rather than crashing). Closing a Module more than
	// once releases its hold once.
	Close(ctx context.Context) error
}

// InstanceConfig is what one instance needs.
type InstanceConfig struct {
	// Name identifies the instance in errors and logs ("count/3").
	Name string
	// Params is passed to sluice_init (the job's parameters, JSON).
	Params []byte
	Limits Limits
	// Host receives the instance's host calls. Required.
	Host Host
	// Stdout and Stderr receive what the guest writes to fd 1 and 2; nil
	// discards it.
	Stdout, Stderr io.Writer
	// Seed makes the guest's random_get and clocks deterministic per task.
	Seed uint64
}

// Limits bound one instance. Zero values take the defaults.
type Limits struct {
	// MemoryBytes caps the guest's linear memory (rounded down to 64 KiB
	// pages). Default 256 MiB.
	MemoryBytes uint64
	// CallTimeout caps one sluice_init or sluice_process call. Default 10s.
	CallTimeout time.Duration
	// MaxOutputBytes caps the bytes one call may emit. Default 64 MiB.
	MaxOutputBytes int
}

// Default limits.
const (
	DefaultMemoryBytes    = 256 << 20
	DefaultCallTimeout    = 10 * time.Second
	DefaultMaxOutputBytes = 64 << 20
)

// WithDefaults returns l with zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MemoryBytes == 0 {
		l.MemoryBytes = DefaultMemoryBytes
	}
	if l.CallTimeout == 0 {
		l.CallTimeout = DefaultCallTimeout
	}
	if l.MaxOutputBytes == 0 {
		l.MaxOutputBytes = DefaultMaxOutputBytes
	}
	return l
}

// Instance is one running guest. It is not safe for concurrent use: a task
// owns it and calls it from one goroutine.
type Instance interface {
	// Input returns a writable view of n bytes of guest memory into which
	// the caller encodes the next input batch (package abi layout). The
	// view is valid until the next Input, Process or Close. The region is
	// obtained from sluice_alloc and reused while it is large enough.
	Input(ctx context.Context, n int) ([]byte, error)
	// Process runs sluice_process over the first n bytes written through
	// Input. nil: every record processed. *RecordError: the guest failed
	// one record (the instance stays usable). *Fault: the guest trapped,
	// exited, ran out of time or memory, or broke the ABI; the instance is
	// closed and must be replaced.
	Process(ctx context.Context, n int) error
	// Close frees the instance. It is safe to call more than once.
	Close(ctx context.Context) error
}

// Host is the task side of an instance's host calls. Slices passed in
// alias guest memory and are valid only during the call: copy what you
// keep. Methods return abi.Code values (as int32) where the ABI has codes.
type Host interface {
	// Emit receives one output batch (abi output layout, already checked
	// to parse) passed to the emit host function.
	Emit(batch []byte) int32
	// StoreOpen resolves a store name to a handle ≥ 0, or abi.ErrBadStore.
	StoreOpen(name []byte) int32
	// StateGet returns the value of key, or found=false. The returned
	// slice is only read until the call returns.
	StateGet(store int32, key []byte) (value []byte, found bool, code int32)
	StatePut(store int32, key, value []byte) int32
	StateDelete(store int32, key []byte) int32
	// StateScan appends entries with start <= key < end (end nil: no upper
	// bound) in key order to dst using abi.AppendScanEntry, stopping before
	// the first entry that would take dst past max bytes. It returns dst
	// and, when not even the first entry fits, that entry's encoded size
	// as needed (0 otherwise).
	StateScan(store int32, start, end []byte, dst []byte, max int) (out []byte, needed int, code int32)
	// Log receives a log host call.
	Log(level int32, msg []byte)
	// StreamTime is the task's stream time at the start of the current
	// call (sluice_init or sluice_process): the largest record timestamp
	// (>= 0) among the stream input records handed to the operator before
	// it, or -1 (abi.NoStreamTime) if none. The stream_time host function
	// returns it; it must not change during a call.
	StreamTime() int64
}

// ValidationError lists everything wrong with a module's imports and
// exports, so that a user fixes them all at once.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid operator module: " + e.Problems[0]
	}
	s := fmt.Sprintf("invalid operator module (%d problems):", len(e.Problems))
	for _, p := range e.Problems {
		s += "\n  - " + p
	}
	return s
}

// RecordError is a record the guest reported as failed with set_error
// followed by status StatusRecordFailed. The host discards the call's
// effects and applies the job's error policy to record Index.
type RecordError struct {
	Index   int
	Message string
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("record %d failed: %s", e.Index, e.Message)
}

// InitError is a sluice_init that returned a non-zero status.
type InitError struct {
	Status  int32
	Message string // from set_error(-1, ...), if the guest gave one
}

func (e *InitError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("operator init failed (status %d): %s", e.Status, e.Message)
	}
	return fmt.Sprintf("operator init failed (status %d)", e.Status)
}

// FaultKind classifies a Fault.
type FaultKind int

const (
	// FaultTrap: the guest trapped (unreachable, out-of-bounds access,
	// division by zero, stack exhaustion...).
	FaultTrap FaultKind = iota + 1
	// FaultExit: the guest called proc_exit (a Go guest does that on an
	// unrecovered panic or fatal error).
	FaultExit
	// FaultTimeout: a call ran past Limits.CallTimeout.
	FaultTimeout
	// FaultMemory: the guest tried to grow memory past Limits.MemoryBytes.
	FaultMemory
	// FaultABI: the guest broke the ABI: a pointer or length outside its
	// memory, a malformed emit batch, too much output, or a bad status.
	FaultABI
)

func (k FaultKind) String() string {
	switch k {
	case FaultTrap:
		return "trap"
	case FaultExit:
		return "exit"
	case FaultTimeout:
		return "timeout"
	case FaultMemory:
		return "memory limit"
	case FaultABI:
		return "ABI violation"
	}
	return "fault"
}

// Fault is a failure that kills the instance.
type Fault struct {
	Kind     FaultKind
	Instance string // InstanceConfig.Name
	Detail   string // human-readable, e.g. "state_get: key [ptr 0xffff0000, len 16] is outside guest memory (1114112 bytes)"
	ExitCode uint32 // for FaultExit
	Err      error  // the runtime's error, if any
}

func (f *Fault) Error() string {
	s := fmt.Sprintf("%s: %s", f.Instance, f.Kind)
	if f.Kind == FaultExit {
		s += fmt.Sprintf(" (code %d)", f.ExitCode)
	}
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	return s
}

func (f *Fault) Unwrap() error { return f.Err }

// IsFault reports whether err is (or wraps) a *Fault.
func IsFault(err error) bool {
	var f *Fault
	return errors.As(err, &f)
}
