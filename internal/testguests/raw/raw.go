//go:build wasip1

// Package raw is the thinnest possible Go binding of the sluice ABI v1 for
// the test guests under internal/testguests: one Go function per host
// function, the input region behind sluice_alloc, and an output buffer
// flushed with one emit per batch. It deliberately does not use the SDK
// (sdk/go), so that the host can be tested against the ABI itself and so
// that hostile guests can break the rules the SDK would enforce.
//
// A host function is linked into a module only if the guest calls it, so a
// guest that never calls CheckVersion (see noversion) lacks the import.
package raw

import (
	"encoding/binary"
	"unsafe"

	"github.com/sluice-io/sluice/abi"
)

//go:wasmimport sluice_v1 check_abi_version_1
func checkABIVersion1()

//go:wasmimport sluice_v1 emit
func emit(ptr, n uint32) int32

//go:wasmimport sluice_v1 store_open
func storeOpen(ptr, n uint32) int32

//go:wasmimport sluice_v1 state_get
func stateGet(store int32, kp, kn, vp, vcap uint32) int32

//go:wasmimport sluice_v1 state_put
func statePut(store int32, kp, kn, vp, vn uint32) int32

//go:wasmimport sluice_v1 state_delete
func stateDelete(store int32, kp, kn uint32) int32

//go:wasmimport sluice_v1 state_scan
func stateScan(store int32, sp, sn, ep, en, bp, bcap uint32) int32

//go:wasmimport sluice_v1 log
func logMsg(level int32, ptr, n uint32)

//go:wasmimport sluice_v1 set_error
func setError(index int32, ptr, n uint32)

//go:wasmimport sluice_v1 stream_time
func streamTime(ptr uint32) int32

// ptr is the guest address of b's first byte (0 for an empty slice).
func ptr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

func sptr(s string) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.StringData(s)))) }

// CheckVersion declares ABI v1; calling it anywhere links the import.
func CheckVersion() { checkABIVersion1() }

// Emit passes an output batch to the host.
func Emit(batch []byte) int32 { return emit(ptr(batch), uint32(len(batch))) }

// EmitRaw passes any pointer and length to emit (for hostile guests).
func EmitRaw(p, n uint32) int32 { return emit(p, n) }

func StoreOpen(name string) int32 { return storeOpen(sptr(name), uint32(len(name))) }

func StoreOpenRaw(p, n uint32) int32 { return storeOpen(p, n) }

// StateGet reads key into buf and returns the value's length or a code.
func StateGet(store int32, key, buf []byte) int32 {
	return stateGet(store, ptr(key), uint32(len(key)), ptr(buf), uint32(len(buf)))
}

func StateGetRaw(store int32, kp, kn, vp, vcap uint32) int32 {
	return stateGet(store, kp, kn, vp, vcap)
}

func StatePut(store int32, key, value []byte) int32 {
	return statePut(store, ptr(key), uint32(len(key)), ptr(value), uint32(len(value)))
}

func StatePutRaw(store int32, kp, kn, vp, vn uint32) int32 { return statePut(store, kp, kn, vp, vn) }

func StateDelete(store int32, key []byte) int32 {
	return stateDelete(store, ptr(key), uint32(len(key)))
}

func StateDeleteRaw(store int32, kp, kn uint32) int32 { return stateDelete(store, kp, kn) }

// StateScan fills buf with entries start <= key < end (end empty: no
// bound) and returns the bytes written or a code.
func StateScan(store int32, start, end, buf []byte) int32 {
	return stateScan(store, ptr(start), uint32(len(start)), ptr(end), uint32(len(end)), ptr(buf), uint32(len(buf)))
}

func StateScanRaw(store int32, sp, sn, ep, en, bp, bcap uint32) int32 {
	return stateScan(store, sp, sn, ep, en, bp, bcap)
}

func Log(level int32, msg string) { logMsg(level, sptr(msg), uint32(len(msg))) }

func LogRaw(level int32, p, n uint32) { logMsg(level, p, n) }

// SetError reports record index as failed (index -1: init).
// StreamTime returns the task's stream time at the start of the call.
func StreamTime() int64 {
	var b [8]byte
	if c := streamTime(ptr(b[:])); c != 0 {
		panic("stream_time: " + abi.Code(c).String())
	}
	return int64(binary.LittleEndian.Uint64(b[:]))
}

func SetError(index int32, msg string) { setError(index, sptr(msg), uint32(len(msg))) }

func SetErrorRaw(index int32, p, n uint32) { setError(index, p, n) }

// region is the input region handed out by Alloc. It stays referenced
// (so the Go GC keeps it) until the next Alloc, as the ABI requires.
var region []byte

// Alloc implements sluice_alloc.
func Alloc(size uint32) uint32 {
	if size == 0 {
		size = 1
	}
	region = make([]byte, size)
	return ptr(region)
}

// Bytes returns the n bytes of guest memory at p (the batch or params the
// host wrote into the region).
func Bytes(p, n uint32) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(p))), n)
}

// Out buffers output records for one emit call per batch.
type Out struct {
	buf []byte
}

// Add appends one output record.
func (o *Out) Add(out *abi.Output) { o.buf = abi.AppendOutput(o.buf, out) }

// Flush emits the buffered records, if any, and returns emit's code.
func (o *Out) Flush() int32 {
	if len(o.buf) == 0 {
		return 0
	}
	c := Emit(o.buf)
	o.buf = o.buf[:0]
	return c
}

// ForEach decodes the batch at (p, n) and calls f for every record with
// its index until f returns false. It returns false, after logging why,
// when the batch does not parse.
func ForEach(p, n uint32, f func(i int, r *abi.Record) bool) bool {
	rr, err := abi.NewRecordReader(Bytes(p, n))
	if err != nil {
		Log(abi.LevelError, err.Error())
		return false
	}
	var rec abi.Record
	for i := 0; rr.Next(&rec); i++ {
		if !f(i, &rec) {
			return true
		}
	}
	if err := rr.Err(); err != nil {
		Log(abi.LevelError, err.Error())
		return false
	}
	return true
}

// Echo is the output that re-emits r unchanged to output 0, partitioned
// by key, with the inherited timestamp.
func Echo(r *abi.Record) abi.Output {
	return abi.Output{Output: 0, Partition: abi.PartitionByKey, Timestamp: abi.TimestampInherit,
		Key: r.Key, Value: r.Value, Headers: r.Headers}
}

// Reset drops buffered records (a failed call's outputs are discarded by
// the host anyway).
func (o *Out) Reset() { o.buf = o.buf[:0] }

// Copy returns a copy of b that outlives the host's region.
func Copy(b []byte) []byte { return append([]byte(nil), b...) }

// Ptr is the guest address of b's first byte.
func Ptr(b []byte) uint32 { return ptr(b) }

// EchoBatch is the sluice_process of the echoing guests: every record of
// the batch at (p, n) goes to output 0 unchanged (see Echo), in one emit
// call. hook, if not nil, runs first for each record; a status other than
// abi.StatusOK from it ends the call with that status and no outputs. The
// hostile guests put their misbehaviour in the hook.
func EchoBatch(out *Out, p, n uint32, hook func(i int, r *abi.Record) int32) int32 {
	status := abi.StatusOK
	ok := ForEach(p, n, func(i int, r *abi.Record) bool {
		if hook != nil {
			if status = hook(i, r); status != abi.StatusOK {
				return false
			}
		}
		o := Echo(r)
		out.Add(&o)
		return true
	})
	if !ok {
		out.Reset()
		return 2
	}
	if status != abi.StatusOK {
		out.Reset()
		return status
	}
	if c := out.Flush(); c != 0 {
		Log(abi.LevelError, "emit: "+abi.Code(c).String())
		return 2
	}
	return abi.StatusOK
}
