//go:build wasip1

// Command panic is a test operator that panics (a Go panic: the Go runtime
// prints it to stderr, then the module traps) on every record, or with
// params {"on": "X"} only on records whose value is X, echoing the others.
package main

import (
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

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 {
	return raw.EchoBatch(&out, p, n, func(_ int, r *abi.Record) int32 {
		if trigger.Fires(r.Value) {
			panic("boom on record " + string(r.Value))
		}
		return abi.StatusOK
	})
}
