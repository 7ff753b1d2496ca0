//go:build wasip1

// Command echo is a test operator that emits every input record unchanged
// to output 0, partitioned by key, with the input's timestamp.
package main

import (
	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests/raw"
)

func main() {}

var out raw.Out

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 { return raw.Alloc(size) }

//go:wasmexport sluice_init
func sluiceInit(p, n uint32) int32 {
	raw.CheckVersion()
	return abi.StatusOK
}

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 {
	ok := raw.ForEach(p, n, func(i int, r *abi.Record) bool {
		o := raw.Echo(r)
		out.Add(&o)
		return true
	})
	if !ok {
		return 2
	}
	if c := out.Flush(); c != 0 {
		raw.Log(abi.LevelError, "emit: "+abi.Code(c).String())
		return 2
	}
	return abi.StatusOK
}
