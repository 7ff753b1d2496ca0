//go:build wasip1

// Command abi-v2 is a deliberately non-conformant operator for the
// conformance suite's own tests: it declares a future ABI version by
// importing sluice_v1.check_abi_version_2 instead of check_abi_version_1,
// as a module built with a newer SDK would. A v1 host must refuse it at
// validation, naming the import.
package main

import "unsafe"

//go:wasmimport sluice_v1 check_abi_version_2
func checkABIVersion2()

// region is the input region; it stays referenced until the next alloc.
var region []byte

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 {
	region = make([]byte, size)
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(region))))
}

//go:wasmexport sluice_init
func sluiceInit(ptr, n uint32) int32 {
	checkABIVersion2()
	return 0
}

//go:wasmexport sluice_process
func sluiceProcess(ptr, n uint32) int32 { return 0 }

func main() {}
