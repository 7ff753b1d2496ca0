//go:build wasip1

// Command joinprobe is a test operator for multi-input tasks and tables.
// For every record it emits, to output 0 by key, the record's key and a
// value that describes what it saw:
//
//	in=<input> off=<offset> ts=<timestamp> st=<stream time at the call's start> t=<table row or ->
//
// where the table row is the key's value in store "t" (a table of the
// job), or "-" if the key has none or the job has no table "t". A record
// whose value is "write" also tries state_put on "t" and reports the
// code as " put=<code>".
package main

import (
	"strconv"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests/raw"
)

func main() {}

var (
	out   raw.Out
	table int32
	buf   = make([]byte, 1<<16)
	val   []byte
)

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 { return raw.Alloc(size) }

//go:wasmexport sluice_init
func sluiceInit(p, n uint32) int32 {
	raw.CheckVersion()
	table = raw.StoreOpen("t")
	return abi.StatusOK
}

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 {
	st := raw.StreamTime()
	raw.ForEach(p, n, func(i int, r *abi.Record) bool {
		val = append(val[:0], "in="...)
		val = strconv.AppendUint(val, uint64(r.Input), 10)
		val = append(val, " off="...)
		val = strconv.AppendInt(val, r.Offset, 10)
		val = append(val, " ts="...)
		val = strconv.AppendInt(val, r.Timestamp, 10)
		val = append(val, " st="...)
		val = strconv.AppendInt(val, st, 10)
		val = append(val, " t="...)
		got := int32(abi.ErrBadStore)
		if table >= 0 {
			got = raw.StateGet(table, r.Key, buf)
		}
		if got >= 0 && int(got) <= len(buf) {
			val = append(val, buf[:got]...)
		} else {
			val = append(val, '-')
		}
		if string(r.Value) == "write" && table >= 0 {
			val = append(val, " put="...)
			val = strconv.AppendInt(val, int64(raw.StatePut(table, r.Key, []byte("x"))), 10)
		}
		out.Add(&abi.Output{Partition: abi.PartitionByKey, Timestamp: abi.TimestampInherit, Key: r.Key, Value: val})
		return true
	})
	if c := out.Flush(); c != 0 {
		raw.Log(abi.LevelError, "emit: "+abi.Code(c).String())
		return 2
	}
	return abi.StatusOK
}
