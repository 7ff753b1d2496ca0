//go:build !wasm

package sluice

import (
	"encoding/binary"
	"unsafe"
)

// Native builds (the SDK's own tests, sdktest) may run on big-endian
// machines, so they go through encoding/binary; see le_wasm.go.

func load32(p unsafe.Pointer) uint32 { return binary.LittleEndian.Uint32(unsafe.Slice((*byte)(p), 4)) }
func load64(p unsafe.Pointer) uint64 { return binary.LittleEndian.Uint64(unsafe.Slice((*byte)(p), 8)) }
func store32(p unsafe.Pointer, v uint32) {
	binary.LittleEndian.PutUint32(unsafe.Slice((*byte)(p), 4), v)
}
func store64(p unsafe.Pointer, v uint64) {
	binary.LittleEndian.PutUint64(unsafe.Slice((*byte)(p), 8), v)
}
