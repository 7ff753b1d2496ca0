//go:build wasip1

// Command trap is a test operator that traps (an out-of-bounds memory
// load, a WebAssembly trap rather than a Go panic) on every record, or with
// params {"on": "X"} only on records whose value is X, echoing the others.
package main

import (
	"unsafe"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests/raw"
)

func main() {}

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 { return raw.Alloc(size) }

var (
	out     raw.Out
	trigger raw.Trigger
)

//go:wasmexport sluice_init
func sluiceInit(p, n uint32) int32 {
	raw.CheckVersion()
	trigger = raw.ParseTrigger(raw.Bytes(p, n), "")
	return abi.StatusOK
}

// outside is an address far past any memory the guest has; a variable so
// that the compiler cannot see through it.
var outside uintptr = 0xFFFFFFF0

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 {
	return raw.EchoBatch(&out, p, n, func(_ int, r *abi.Record) int32 {
		if trigger.Fires(r.Value) {
			// A load from past the end of memory: the guest traps.
			return int32(*(*byte)(unsafe.Add(unsafe.Pointer(nil), outside)))
		}
		return abi.StatusOK
	})
}
