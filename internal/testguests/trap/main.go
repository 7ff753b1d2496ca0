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
	status := abi.StatusOK
	ok := raw.ForEach(p, n, func(i int, r *abi.Record) bool {
		if trigger.Fires(r.Value) {
			status = int32(*(*byte)(unsafe.Add(unsafe.Pointer(nil), outside)))
		}
		o := raw.Echo(r)
		out.Add(&o)
		return true
	})
	if !ok {
		out.Reset()
		return 2
	}
	if status != abi.StatusOK {
		out.Reset()
		return status
	}
	if c := out.Flush(); c != 0 {
		raw.Log(abi.LevelError, "emit: "+abi.Code(c).String())
		return 2
	}
	return abi.StatusOK
}
