//go:build wasip1

// Command entropy is a test operator that emits, for every record, what
// the guest sees of time and randomness: "wall=<unix ns> mono=<ns since
// init> rand=<16 bytes from crypto/rand, hex>". With sluice's
// deterministic clocks and seeded random source, two instances with the
// same seed emit the same values.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests/raw"
)

func main() {}

var (
	out   raw.Out
	start time.Time
)

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 { return raw.Alloc(size) }

//go:wasmexport sluice_init
func sluiceInit(p, n uint32) int32 {
	raw.CheckVersion()
	start = time.Now()
	return abi.StatusOK
}

//go:wasmexport sluice_process
func sluiceProcess(p, n uint32) int32 {
	raw.ForEach(p, n, func(i int, r *abi.Record) bool {
		var b [16]byte
		rand.Read(b[:])
		now := time.Now()
		v := "wall=" + strconv.FormatInt(now.UnixNano(), 10) +
			" mono=" + strconv.FormatInt(int64(now.Sub(start)), 10) +
			" rand=" + hex.EncodeToString(b[:])
		out.Add(&abi.Output{Partition: abi.PartitionByKey, Timestamp: abi.TimestampInherit, Key: r.Key, Value: []byte(v)})
		return true
	})
	out.Flush()
	return abi.StatusOK
}
