// Package guestcall is the half of running an operator that does not
// depend on the WebAssembly runtime: what the sluice_v1 host functions do
// once their arguments are Go slices of guest memory, how a call's result
// status becomes nil, a *plugins.RecordError or a fault, and how a failed
// call is classified into a *plugins.Fault with its detail.
//
// It exists so that plugins/wazero and plugins/wasmtime, which must behave
// the same to the byte (runtimetest and conformance/suites check their
// results, errors and fault details), share one copy of that logic
// instead of two that drift. A runtime embeds State in its instance,
// reads guest memory and does its own trapping; State decides.
//
// Everything a host function calls here runs per record and does not
// allocate in the steady state.
package guestcall

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
)

// State is the runtime-independent state of one instance: its identity
// and limits, and what the host functions record during a call.
type State struct {
	Name   string // the instance's name, in faults and errors
	Host   plugins.Host
	Limits plugins.Limits

	// Per-call state, reset before each call (Reset).
	InInit   bool // the call is sluice_init (or _initialize)
	OutBytes int  // bytes emitted so far
	ErrSet   bool // set_error was called
	ErrIndex int32
	ErrMsg   []byte
	Fault    *plugins.Fault // an ABI violation found by a host function

	// Scratch reused by host functions.
	outputs   abi.OutputReader
	output    abi.Output
	scanStart []byte
	scanEnd   []byte
}

// Reset forgets what the previous call recorded.
func (s *State) Reset() {
	s.OutBytes = 0
	s.ErrSet = false
	s.ErrMsg = s.ErrMsg[:0]
	s.Fault = nil
}

// ABIFault records an ABI fault with detail as the call's fault and
// returns it; the runtime then traps the guest.
//
//go:noinline
func (s *State) ABIFault(detail string) *plugins.Fault {
	s.Fault = s.fault(detail)
	return s.Fault
}

func (s *State) fault(detail string) *plugins.Fault {
	return &plugins.Fault{Kind: plugins.FaultABI, Instance: s.Name, Detail: detail}
}

// OutOfBounds is the detail of the fault of a host function fn whose
// argument what, [ptr, ptr+n), is outside guest memory of size bytes.
//
//go:noinline
func OutOfBounds(fn, what string, ptr, n uint32, size uint64) string {
	return fmt.Sprintf("%s: %s [ptr %#x, len %d] is outside guest memory (%d bytes)", fn, what, ptr, n, size)
}

// Read returns the n bytes of mem at ptr, like wazero's Memory.Read.
func Read(mem []byte, ptr, n uint32) ([]byte, bool) {
	end := uint64(ptr) + uint64(n)
	if end > uint64(len(mem)) {
		return nil, false
	}
	return mem[ptr:end:end], true
}

// Emit is emit on batch, the guest's [ptr, ptr+n). It returns the
// function's result, or the ABI fault (recorded as the call's) to trap
// the guest with.
func (s *State) Emit(batch []byte, ptr, n uint32) (int32, *plugins.Fault) {
	if s.InInit {
		return int32(abi.ErrNotAllowed), nil
	}
	if s.OutBytes+len(batch) > s.Limits.MaxOutputBytes {
		return 0, s.ABIFault(fmt.Sprintf("emit: the call's output would reach %d bytes, over the limit of %d bytes",
			s.OutBytes+len(batch), s.Limits.MaxOutputBytes))
	}
	s.outputs.Reset(batch)
	for s.outputs.Next(&s.output) {
	}
	if err := s.outputs.Err(); err != nil {
		return 0, s.ABIFault(fmt.Sprintf("emit: malformed output batch [ptr %#x, len %d]: %v", ptr, n, err))
	}
	s.OutBytes += len(batch)
	return s.Host.Emit(batch), nil
}

// StoreOpen is store_open.
func (s *State) StoreOpen(name []byte) int32 {
	if len(name) > abi.MaxStoreName {
		return int32(abi.ErrBadStore)
	}
	return s.Host.StoreOpen(name)
}

// StateGet is state_get, copying the value into buf when it fits.
func (s *State) StateGet(store int32, key, buf []byte) int32 {
	if len(key) > abi.MaxKeySize {
		return int32(abi.ErrLimit)
	}
	value, found, code := s.Host.StateGet(store, key)
	switch {
	case code != int32(abi.OK):
		return code
	case !found:
		return int32(abi.ErrNotFound)
	default:
		if len(value) <= len(buf) {
			copy(buf, value)
		}
		return int32(len(value))
	}
}

// StatePut is state_put.
func (s *State) StatePut(store int32, key, value []byte) int32 {
	switch {
	case s.InInit:
		return int32(abi.ErrNotAllowed)
	case len(key) > abi.MaxKeySize || len(value) > abi.MaxValueSize:
		return int32(abi.ErrLimit)
	default:
		return s.Host.StatePut(store, key, value)
	}
}

// StateDelete is state_delete.
func (s *State) StateDelete(store int32, key []byte) int32 {
	switch {
	case s.InInit:
		return int32(abi.ErrNotAllowed)
	case len(key) > abi.MaxKeySize:
		return int32(abi.ErrLimit)
	default:
		return s.Host.StateDelete(store, key)
	}
}

// StateScan is state_scan with the result written into buf.
func (s *State) StateScan(store int32, start, end, buf []byte) int32 {
	if len(start) > abi.MaxKeySize || len(end) > abi.MaxKeySize {
		return int32(abi.ErrLimit)
	}
	// The bounds are copied: the host writes the result into guest memory
	// while it may still read them (a guest commonly keeps its next start
	// key inside its result buffer).
	s.scanStart = append(s.scanStart[:0], start...)
	var endKey []byte
	if len(end) > 0 {
		s.scanEnd = append(s.scanEnd[:0], end...)
		endKey = s.scanEnd
	}
	out, needed, code := s.Host.StateScan(store, s.scanStart, endKey, buf[:0:len(buf)], len(buf))
	switch {
	case code != int32(abi.OK):
		return code
	case len(out) > len(buf):
		s.Host.Log(abi.LevelError, []byte("sluice host: StateScan returned more than the guest's buffer"))
		return int32(abi.ErrInternal)
	case len(out) == 0 && needed > 0:
		if len(buf) >= 4 {
			binary.LittleEndian.PutUint32(buf, uint32(needed))
		}
		return int32(abi.ErrBufferTooSmall)
	default:
		if len(out) > 0 && unsafe.SliceData(out) != unsafe.SliceData(buf) {
			copy(buf, out)
		}
		return int32(len(out))
	}
}

// StreamTime is stream_time: it writes the host's stream time as an i64
// little-endian into out, the guest's 8 bytes at out_ptr.
func (s *State) StreamTime(out []byte) int32 {
	binary.LittleEndian.PutUint64(out[:8], uint64(s.Host.StreamTime()))
	return int32(abi.OK)
}

// Log is log, with the message cut at abi.MaxLogMessage bytes.
func (s *State) Log(level int32, msg []byte) {
	if len(msg) > abi.MaxLogMessage {
		msg = msg[:abi.MaxLogMessage]
	}
	s.Host.Log(level, msg)
}

// SetError is set_error, with the message cut at abi.MaxErrorMessage
// bytes.
func (s *State) SetError(index int32, msg []byte) {
	if len(msg) > abi.MaxErrorMessage {
		msg = msg[:abi.MaxErrorMessage]
	}
	s.ErrSet = true
	s.ErrIndex = index
	s.ErrMsg = append(s.ErrMsg[:0], msg...)
}
