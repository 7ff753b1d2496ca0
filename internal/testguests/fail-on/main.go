//go:build wasip1

// Command fail-on is a test operator that reports records whose value is
// "poison" (or X with params {"on": "X"}) as failed with set_error and
// status StatusRecordFailed, and echoes the others.
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
	trigger = raw.ParseTrigger(raw.Bytes(p, n), "poison")
	return abi.StatusOK
}

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 {
	return raw.EchoBatch(&out, p, n, func(i int, r *abi.Record) int32 {
		if trigger.Fires(r.Value) {
			raw.SetError(int32(i), "poison record: "+string(r.Value))
			return abi.StatusRecordFailed
		}
		return abi.StatusOK
	})
}
