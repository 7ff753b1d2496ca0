//go:build wasip1

// Command exit is a test operator that calls os.Exit(3) (WASI proc_exit)
// on every record, or with params {"on": "X"} only on records whose value
// is X, echoing the others.
package main

import (
	"os"

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
			os.Exit(3)
		}
		return abi.StatusOK
	})
}
