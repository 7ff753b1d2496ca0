//go:build !wasip1

package passthrough_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/aswasm"
	"github.com/sluice-io/sluice/internal/cwasm"
	"github.com/sluice-io/sluice/internal/gowasm"
	"github.com/sluice-io/sluice/internal/rustwasm"
	"github.com/sluice-io/sluice/internal/sdkcheck"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/runtimes"
)

// languages are the SDKs with a pass-through operator, in LANG/passthrough.
var languages = []struct {
	name    string
	require func(testing.TB)
	build   func(dir string) ([]byte, error)
}{
	{"go", func(testing.TB) {}, gowasm.BuildBytes},
	{"c", cwasm.RequireToolchain, cwasm.BuildBytes},
	{"rust", rustwasm.RequireToolchain, rustwasm.BuildBytes},
	{"as", aswasm.RequireToolchain, aswasm.BuildBytes},
}

// batch is one sluice_process call's input.
type batch struct {
	partition int32
	recs      []abi.Record
}

// Every language's pass-through, built from source and run on every
// runtime of this binary, answers each batch with one emit call whose bytes
// are exactly the batch's records forwarded (output 0, partition by key,
// the record's own timestamp, key, value and headers with null and empty
// kept apart), and an empty batch with none: so the four make the same
// bytes batch by batch, which is what the Go SDK's Emitter.Forward makes.
func TestLanguagesPassRecordsUnchanged(t *testing.T) {
	batches := inputBatches()
	ctx := context.Background()
	rts := map[string]plugins.Runtime{}
	for _, name := range runtimes.Available() {
		// Compiled code is cached on disk across runs: compiling the Go
		// build (a few MB of Wasm) takes most of a minute under -race.
		rt, err := runtimes.Open(ctx, name, runtimes.Options{CacheDir: filepath.Join(os.TempDir(), "sluice-runtimes-test-cache")})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close(ctx)
		rts[name] = rt
	}
	for _, lang := range languages {
		t.Run(lang.name, func(t *testing.T) {
			lang.require(t)
			wasm, err := lang.build(lang.name + "/passthrough")
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range runtimes.Available() {
				t.Run(name, func(t *testing.T) {
					g := sdkcheck.StartGuest(t, rts[name], wasm)
					for i, b := range batches {
						emits := g.Process(t, sdkcheck.EncodeBatch(b.partition, b.recs))
						if len(b.recs) == 0 {
							if len(emits) != 0 {
								t.Errorf("batch %d (empty): %d emit calls, want none", i, len(emits))
							}
							continue
						}
						if want := forwarded(b.recs); len(emits) != 1 || !bytes.Equal(emits[0], want) {
							t.Fatalf("batch %d (%d records, partition %d): %s", i, len(b.recs), b.partition, diff(emits, want))
						}
					}
				})
			}
		})
	}
}

// forwarded is the emit call that passes recs through.
func forwarded(recs []abi.Record) []byte {
	var b []byte
	for _, r := range recs {
		b = abi.AppendOutput(b, &abi.Output{Partition: abi.PartitionByKey, Timestamp: r.Timestamp,
			Key: r.Key, Value: r.Value, Headers: r.Headers})
	}
	return b
}

// diff says how emits differs from the one emit call want.
func diff(emits [][]byte, want []byte) string {
	if len(emits) != 1 {
		return fmt.Sprintf("%d emit calls, want 1", len(emits))
	}
	got := emits[0]
	i := 0
	for i < min(len(got), len(want)) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("emitted %d bytes, want %d; first difference at byte %d: got % x, want % x",
		len(got), len(want), i, got[i:min(i+32, len(got))], want[i:min(i+32, len(want))])
}

// inputBatches makes batches of uneven sizes (empty, single records, a few
// thousand) from every partition, of records with null and empty keys,
// values and header values, binary bytes, up to a dozen headers (the C SDK
// takes more than 8 another way), timestamps from none (-1) to the
// largest, and values from none to several MiB (so the guest's input and
// output buffers grow).
func inputBatches() []batch {
	rng := rand.New(rand.NewPCG(5, 6))
	bytesOf := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	nullable := func(maxLen int) []byte {
		switch rng.IntN(8) {
		case 0:
			return nil
		case 1:
			return []byte{}
		}
		return bytesOf(1 + rng.IntN(maxLen))
	}
	timestamps := []int64{-1, 0, 1, 1_700_000_000_000, math.MaxInt64}
	record := func(off int64) abi.Record {
		r := abi.Record{Offset: off, Input: uint32(rng.IntN(2)), Key: nullable(20), Value: nullable(300)}
		if rng.IntN(4) == 0 {
			r.Timestamp = timestamps[rng.IntN(len(timestamps))]
		} else {
			r.Timestamp = 1_700_000_000_000 + rng.Int64N(1_000_000)
		}
		if rng.IntN(3) == 0 {
			for range rng.IntN(13) {
				h := abi.Header{Key: nullable(10), Value: nullable(30)}
				if h.Key == nil {
					h.Key = []byte{} // header keys are never null
				}
				r.Headers = append(r.Headers, h)
			}
		}
		return r
	}
	sizes := []int{0, 1, 2, 3, 1, 0, 500, 7, 2000, 1, 64, 3000, 13}
	for range 20 {
		sizes = append(sizes, 1+rng.IntN(700))
	}
	var batches []batch
	var off int64
	for i, n := range sizes {
		b := batch{partition: int32(i % 5)}
		for range n {
			b.recs = append(b.recs, record(off))
			off++
		}
		batches = append(batches, b)
	}
	// Big values, alone and among small records: 100 KiB, 1 MiB and 4 MiB.
	big := batch{partition: 1, recs: []abi.Record{record(off), {Offset: off + 1, Timestamp: 5, Key: []byte("k"), Value: bytesOf(100 << 10)}}}
	big.recs = append(big.recs, abi.Record{Offset: off + 2, Timestamp: 6, Value: bytesOf(1 << 20),
		Headers: []abi.Header{{Key: []byte("h"), Value: bytesOf(70 << 10)}}}, record(off+3))
	batches = append(batches, big, batch{recs: []abi.Record{{Offset: off + 4, Timestamp: -1, Value: bytesOf(4 << 20)}}})
	// And small batches again once the buffers have grown.
	return append(batches, batches[:5]...)
}
