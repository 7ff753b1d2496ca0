//go:build wasip1

package sluice

// The Wasm glue: sluice_v1 imports and the sluice_* exports. Everything else
// in the package is portable Go that calls the host* functions below, so the
// same logic runs natively against package sdktest.

import "unsafe"

//go:wasmimport sluice_v1 check_abi_version_1
func importCheckABIVersion1()

//go:wasmimport sluice_v1 emit
func importEmit(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport sluice_v1 store_open
func importStoreOpen(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport sluice_v1 state_get
func importStateGet(store int32, keyPtr unsafe.Pointer, keyLen uint32, valPtr unsafe.Pointer, valCap uint32) int32

//go:wasmimport sluice_v1 state_put
func importStatePut(store int32, keyPtr unsafe.Pointer, keyLen uint32, valPtr unsafe.Pointer, valLen uint32) int32

//go:wasmimport sluice_v1 state_delete
func importStateDelete(store int32, keyPtr unsafe.Pointer, keyLen uint32) int32

//go:wasmimport sluice_v1 state_scan
func importStateScan(store int32, startPtr unsafe.Pointer, startLen uint32, endPtr unsafe.Pointer, endLen uint32, bufPtr unsafe.Pointer, bufCap uint32) int32

//go:wasmimport sluice_v1 log
func importLog(level int32, ptr unsafe.Pointer, n uint32)

//go:wasmimport sluice_v1 set_error
func importSetError(index int32, ptr unsafe.Pointer, n uint32)

//go:wasmimport sluice_v1 stream_time
func importStreamTime(out unsafe.Pointer) int32

func ptr(b []byte) (unsafe.Pointer, uint32) {
	return unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b))
}

func strPtr(s string) (unsafe.Pointer, uint32) {
	return unsafe.Pointer(unsafe.StringData(s)), uint32(len(s))
}

// checkABIVersion declares ABI v1. It is called from sluice_init, which
// keeps the import reachable so that the linker does not drop it.
func checkABIVersion() { importCheckABIVersion1() }

func hostEmit(batch []byte) int32 {
	p, n := ptr(batch)
	return importEmit(p, n)
}

func hostStoreOpen(name string) int32 {
	p, n := strPtr(name)
	return importStoreOpen(p, n)
}

func hostStateGet(store int32, key, buf []byte) int32 {
	kp, kn := ptr(key)
	bp, bn := ptr(buf)
	return importStateGet(store, kp, kn, bp, bn)
}

func hostStatePut(store int32, key, value []byte) int32 {
	kp, kn := ptr(key)
	vp, vn := ptr(value)
	return importStatePut(store, kp, kn, vp, vn)
}

func hostStateDelete(store int32, key []byte) int32 {
	kp, kn := ptr(key)
	return importStateDelete(store, kp, kn)
}

func hostStateScan(store int32, start, end, buf []byte) int32 {
	sp, sn := ptr(start)
	ep, en := ptr(end)
	bp, bn := ptr(buf)
	return importStateScan(store, sp, sn, ep, en, bp, bn)
}

func hostLog(level int32, msg string) {
	p, n := strPtr(msg)
	importLog(level, p, n)
}

func hostSetError(index int32, msg string) {
	p, n := strPtr(msg)
	importSetError(index, p, n)
}

// streamTimeOut receives stream_time's i64 (Wasm is little-endian); a
// package variable, so that the call does not allocate.
var streamTimeOut int64

// hostStreamTime returns the stream time at the start of the call, or -1
// if the host fails the call (it never does with a valid pointer).
func hostStreamTime() int64 {
	if importStreamTime(unsafe.Pointer(&streamTimeOut)) != 0 {
		return -1
	}
	return streamTimeOut
}

//go:wasmexport sluice_alloc
func exportAlloc(size int32) unsafe.Pointer {
	region := alloc(size)
	if region == nil {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(region))
}

//go:wasmexport sluice_init
func exportInit(p unsafe.Pointer, n int32) int32 {
	return initOperator(guestBytes(p, n))
}

//go:wasmexport sluice_process
func exportProcess(p unsafe.Pointer, n int32) int32 {
	return process(guestBytes(p, n))
}

// guestBytes views a region the host wrote into (one returned by
// sluice_alloc) as a slice without copying.
func guestBytes(p unsafe.Pointer, n int32) []byte {
	if p == nil || n <= 0 {
		return nil
	}
	return unsafe.Slice((*byte)(p), n)
}
