//go:build wasip1

// Command params is a test operator that emits, for every record, a record
// with the same key whose value is the parameters sluice_init received.
package main

import (
	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests/raw"
)

func main() {}

var (
	out    raw.Out
	params []byte
)

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 { return raw.Alloc(size) }

//go:wasmexport sluice_init
func sluiceInit(p, n uint32) int32 {
	raw.CheckVersion()
	// The params live in the host's input region, which the next
	// sluice_alloc replaces: keep a copy.
	params = append([]byte{}, raw.Bytes(p, n)...)
	return abi.StatusOK
}

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 {
	raw.ForEach(p, n, func(i int, r *abi.Record) bool {
		out.Add(&abi.Output{Partition: abi.PartitionByKey, Timestamp: abi.TimestampInherit, Key: r.Key, Value: params})
		return true
	})
	out.Flush()
	return abi.StatusOK
}
