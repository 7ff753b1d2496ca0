// Package hostbridge connects the native (non-Wasm) build of the Go SDK to
// an in-process host such as package sdktest. In a Wasm build the SDK calls
// the sluice_v1 imports and is called through its exports; natively there
// are no imports or exports, so the SDK calls Current instead and registers
// its export functions in Guest for the in-process host to call. The
// interfaces keep the ABI's raw semantics (buffers with a capacity, return
// codes) so that the SDK's retry and paging logic runs unchanged in tests.
package hostbridge

// Host is the in-process counterpart of the sluice_v1 host functions.
// Arguments alias SDK memory and are valid only during the call.
type Host interface {
	Emit(batch []byte) int32
	StoreOpen(name string) int32
	// StateGet writes the value into buf if it fits and returns its
	// length, or a negative abi.Code.
	StateGet(store int32, key, buf []byte) int32
	StatePut(store int32, key, value []byte) int32
	StateDelete(store int32, key []byte) int32
	// StateScan follows state_scan: bytes written into buf, 0 at the end,
	// or abi.ErrBufferTooSmall with the needed size in buf[0:4].
	StateScan(store int32, start, end, buf []byte) int32
	Log(level int32, msg string)
	SetError(index int32, msg string)
	// StreamTime is stream_time: the task's stream time at the start of
	// the current call, -1 if none.
	StreamTime() int64
}

// Exports are the SDK's sluice_alloc, sluice_init and sluice_process, plus
// Reset, which forgets store handles resolved against a previous host.
type Exports struct {
	Alloc   func(size int32) []byte
	Init    func(params []byte) int32
	Process func(batch []byte) int32
	Reset   func()
}

var (
	// Current is the host the native SDK calls; nil outside a harness.
	Current Host
	// Guest is set by the native build of the SDK at package init.
	Guest *Exports
)
