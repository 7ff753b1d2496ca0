//go:build wasm

package sluice

import "unsafe"

// Fixed-width little-endian loads and stores for the hot paths. In a Go
// guest, encoding/binary's byte-at-a-time code is not combined into one
// memory access as on native targets, and costs several times more; Wasm
// is little-endian and allows unaligned access, so a plain load or store
// is the ABI's encoding. Callers check bounds first.

func load32(p unsafe.Pointer) uint32     { return *(*uint32)(p) }
func load64(p unsafe.Pointer) uint64     { return *(*uint64)(p) }
func store32(p unsafe.Pointer, v uint32) { *(*uint32)(p) = v }
func store64(p unsafe.Pointer, v uint64) { *(*uint64)(p) = v }
