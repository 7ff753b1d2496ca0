//go:build wasip1

// Command getloop is a benchmark operator: for every record it calls
// state_get on store "s" with the record's key and emits nothing, so a
// batch of N records makes N host calls.
package main

import (
	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests/raw"
)

func main() {}

var (
	store int32
	buf   = make([]byte, 256)
	found int
)

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 { return raw.Alloc(size) }

//go:wasmexport sluice_init
func sluiceInit(p, n uint32) int32 {
	raw.CheckVersion()
	store = raw.StoreOpen("s")
	return abi.StatusOK
}

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 {
	raw.ForEach(p, n, func(i int, r *abi.Record) bool {
		if raw.StateGet(store, r.Key, buf) >= 0 {
			found++
		}
		return true
	})
	return abi.StatusOK
}
