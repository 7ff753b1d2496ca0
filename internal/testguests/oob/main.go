//go:build wasip1

// Command oob is a hostile test operator that passes an out-of-bounds
// pointer to one host function per record; the record's value names the
// function and argument: emit, store_open, state_get (key),
// state_get_value (value buffer), state_put, state_put_value,
// state_delete, state_scan (start), state_scan_end, state_scan_buf, log,
// set_error, emit_huge (a valid pointer with a length past the end of
// memory) and emit_malformed (an in-bounds but truncated output batch).
// Any other value is echoed.
package main

import (
	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests/raw"
)

func main() {}

// bad is an address far past the guest's memory; badLen is a plausible
// length so that only the address is wrong.
const (
	bad    uint32 = 0xFFFF0000
	badLen uint32 = 16
)

var (
	out     raw.Out
	scratch = make([]byte, 64)
	store   int32
)

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 { return raw.Alloc(size) }

//go:wasmexport sluice_init
func sluiceInit(p, n uint32) int32 {
	raw.CheckVersion()
	store = raw.StoreOpen("s")
	return abi.StatusOK
}

// ok is a valid pointer with 8 readable bytes.
func ok() uint32 { return raw.Ptr(scratch) }

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 {
	raw.ForEach(p, n, func(i int, r *abi.Record) bool {
		switch string(r.Value) {
		case "emit":
			raw.EmitRaw(bad, badLen)
		case "emit_huge":
			raw.EmitRaw(ok(), 0x7FFFFFFF)
		case "emit_malformed":
			raw.EmitRaw(ok(), 10) // 10 zero bytes: shorter than an output's fixed part
		case "store_open":
			raw.StoreOpenRaw(bad, badLen)
		case "state_get":
			raw.StateGetRaw(store, bad, badLen, ok(), 8)
		case "state_get_value":
			raw.StateGetRaw(store, ok(), 8, bad, badLen)
		case "state_put":
			raw.StatePutRaw(store, bad, badLen, ok(), 8)
		case "state_put_value":
			raw.StatePutRaw(store, ok(), 8, bad, badLen)
		case "state_delete":
			raw.StateDeleteRaw(store, bad, badLen)
		case "state_scan":
			raw.StateScanRaw(store, bad, badLen, ok(), 8, ok(), 8)
		case "state_scan_end":
			raw.StateScanRaw(store, ok(), 8, bad, badLen, ok(), 8)
		case "state_scan_buf":
			raw.StateScanRaw(store, ok(), 8, ok(), 8, bad, badLen)
		case "log":
			raw.LogRaw(abi.LevelInfo, bad, badLen)
		case "set_error":
			raw.SetErrorRaw(int32(i), bad, badLen)
		default:
			o := raw.Echo(r)
			out.Add(&o)
		}
		return true
	})
	if c := out.Flush(); c != 0 {
		return 2
	}
	return abi.StatusOK
}
