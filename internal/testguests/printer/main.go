//go:build wasip1

// Command printer is a test operator that, for every record, writes
// "stdout: VALUE" to standard output, "stderr: VALUE" to standard error and
// "log: VALUE" through the log host function, then echoes the record.
package main

import (
	"fmt"
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
	raw.ForEach(p, n, func(i int, r *abi.Record) bool {
		fmt.Fprintf(os.Stdout, "stdout: %s\n", r.Value)
		fmt.Fprintf(os.Stderr, "stderr: %s\n", r.Value)
		raw.Log(abi.LevelWarn, "log: "+string(r.Value))
		o := raw.Echo(r)
		out.Add(&o)
		return true
	})
	out.Flush()
	return abi.StatusOK
}
