//go:build wasip1

// Command state is a test operator that counts records per key in store
// "s": for every record it reads the key's count (decimal ASCII, absent =
// 0), adds one, writes it back and emits the record's key with the new
// count as value. Several records with one key in a batch see each other's
// writes.
package main

import (
	"strconv"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests/raw"
)

func main() {}

var (
	out   raw.Out
	store int32
	buf   = make([]byte, 32)
	num   []byte
)

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 { return raw.Alloc(size) }

//go:wasmexport sluice_init
func sluiceInit(p, n uint32) int32 {
	raw.CheckVersion()
	store = raw.StoreOpen("s")
	if store < 0 {
		raw.SetError(-1, "store_open s: "+abi.Code(store).String())
		return 1
	}
	return abi.StatusOK
}

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 {
	status := abi.StatusOK
	raw.ForEach(p, n, func(i int, r *abi.Record) bool {
		count := uint64(0)
		switch got := raw.StateGet(store, r.Key, buf); {
		case got == int32(abi.ErrNotFound):
		case got < 0 || int(got) > len(buf):
			raw.SetError(int32(i), "state_get: "+abi.Code(got).String())
			status = abi.StatusRecordFailed
			return false
		default:
			c, err := strconv.ParseUint(string(buf[:got]), 10, 64)
			if err != nil {
				raw.SetError(int32(i), "bad count: "+err.Error())
				status = abi.StatusRecordFailed
				return false
			}
			count = c
		}
		count++
		num = strconv.AppendUint(num[:0], count, 10)
		if c := raw.StatePut(store, r.Key, num); c != 0 {
			raw.SetError(int32(i), "state_put: "+abi.Code(c).String())
			status = abi.StatusRecordFailed
			return false
		}
		out.Add(&abi.Output{Partition: abi.PartitionByKey, Timestamp: abi.TimestampInherit, Key: r.Key, Value: num})
		return true
	})
	if status != abi.StatusOK {
		out.Reset()
		return status
	}
	if c := out.Flush(); c != 0 {
		raw.Log(abi.LevelError, "emit: "+abi.Code(c).String())
		return 2
	}
	return abi.StatusOK
}
