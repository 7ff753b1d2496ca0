//go:build wasip1

// Command initfail is a test operator whose sluice_init always fails with
// set_error(-1, "bad params") and status 1.
package main

import (
	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests/raw"
)

func main() {}

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 { return raw.Alloc(size) }

//go:wasmexport sluice_init
func sluiceInit(p, n uint32) int32 {
	raw.CheckVersion()
	raw.SetError(-1, "bad params")
	return 1
}

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 { return abi.StatusOK }
