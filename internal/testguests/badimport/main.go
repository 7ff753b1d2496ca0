//go:build wasip1

// Command badimport is an invalid test operator: it imports a host
// function that ABI v1 does not have (sluice_v1.no_such_function).
package main

import (
	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests/raw"
)

func main() {}

//go:wasmimport sluice_v1 no_such_function
func noSuchFunction(x uint32) uint32

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 { return raw.Alloc(size) }

//go:wasmexport sluice_init
func sluiceInit(p, n uint32) int32 {
	raw.CheckVersion()
	return int32(noSuchFunction(n))
}

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 { return abi.StatusOK }
