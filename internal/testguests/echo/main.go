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
func sluiceProcess(p, n uint32) int32 { return raw.EchoBatch(&out, p, n, nil) }
