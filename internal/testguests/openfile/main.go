//go:build wasip1

// Command openfile is a hostile test operator that tries to read a file
// (the record's value as a path, or /etc/passwd when the value is empty).
// If it can, it emits the file's contents; if not, it fails the record
// with the error message, so a test sees why.
package main

import (
	"os"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests/raw"
)

func main() {}

var out raw.Out

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 { return raw.Alloc(size) }

//go:wasmexport sluice_init
func sluiceInit(p, n uint32) int32 {
	raw.CheckVersion()
	return abi.StatusOK
}

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 {
	status := abi.StatusOK
	raw.ForEach(p, n, func(i int, r *abi.Record) bool {
		path := string(r.Value)
		if path == "" {
			path = "/etc/passwd"
		}
		data, err := os.ReadFile(path)
		if err != nil {
			raw.SetError(int32(i), err.Error())
			status = abi.StatusRecordFailed
			return false
		}
		out.Add(&abi.Output{Partition: abi.PartitionByKey, Timestamp: abi.TimestampInherit, Key: r.Key, Value: data})
		return true
	})
	if status != abi.StatusOK {
		out.Reset()
		return status
	}
	out.Flush()
	return abi.StatusOK
}
