//go:build wasip1

// Command noversion is an invalid test operator: it uses host functions
// but never imports sluice_v1.check_abi_version_1, so it does not declare
// which ABI it speaks.
package main

import (
	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests/raw"
)

func main() {}

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 { return raw.Alloc(size) }

//go:wasmexport sluice_init
func sluiceInit(p, n uint32) int32 { return abi.StatusOK }

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 {
	raw.Emit(nil)
	return abi.StatusOK
}
