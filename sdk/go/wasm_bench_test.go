//go:build !wasip1

package sluice_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/gowasm"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/wazero"
)

// The benchmarks below run the example operators, compiled to Wasm, in the
// wazero runtime against a host that does almost nothing, so that they
// measure what the SDK and the guest code cost per record: the part of the
// pipeline figures (sluice bench pipeline) that lives inside the sandbox.

// benchHost keeps state in a map and counts emitted bytes.
type benchHost struct {
	state   map[string][]byte
	emitted int
}

func (h *benchHost) Emit(b []byte) int32             { h.emitted += len(b); return 0 }
func (h *benchHost) StoreOpen([]byte) int32          { return 0 }
func (h *benchHost) Log(int32, []byte)               {}
func (h *benchHost) StreamTime() int64               { return -1 }
func (h *benchHost) StateDelete(int32, []byte) int32 { return 0 }
func (h *benchHost) StatePut(_ int32, k, v []byte) int32 {
	if old, ok := h.state[string(k)]; ok && cap(old) >= len(v) {
		h.state[string(k)] = append(old[:0], v...)
		return 0
	}
	h.state[string(k)] = append([]byte(nil), v...)
	return 0
}
func (h *benchHost) StateGet(_ int32, k []byte) ([]byte, bool, int32) {
	v, ok := h.state[string(k)]
	return v, ok, 0
}
func (h *benchHost) StateScan(_ int32, _, _ []byte, dst []byte, _ int) ([]byte, int, int32) {
	return dst, 0, 0
}

func benchInstance(b *testing.B, dir string, host plugins.Host) plugins.Instance {
	b.Helper()
	ctx := context.Background()
	cache := filepath.Join(os.TempDir(), "sluice-wazero-test-cache")
	rt, err := wazero.New(ctx, wazero.Options{CacheDir: cache})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(ctx) })
	mod, err := rt.Compile(ctx, gowasm.MustBuild(dir))
	if err != nil {
		b.Fatal(err)
	}
	inst, err := mod.Instantiate(ctx, plugins.InstanceConfig{Name: "bench/0", Params: []byte("{}"), Host: host})
	if err != nil {
		b.Fatal(err)
	}
	return inst
}

// loadBatch encodes records into inst's input region and returns its size.
func loadBatch(b *testing.B, inst plugins.Instance, records []abi.Record) int {
	b.Helper()
	n := abi.BatchHeaderSize
	for i := range records {
		n += records[i].EncodedSize()
	}
	buf, err := inst.Input(context.Background(), n)
	if err != nil {
		b.Fatal(err)
	}
	abi.PutBatchHeader(buf, abi.BatchHeader{Count: uint32(len(records))})
	off := abi.BatchHeaderSize
	for i := range records {
		off += abi.PutRecord(buf[off:], &records[i])
	}
	return n
}

func runBatches(b *testing.B, inst plugins.Instance, records []abi.Record, unit string, units int) {
	n := loadBatch(b, inst, records)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if err := inst.Process(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*units)/b.Elapsed().Seconds(), unit+"/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*units), "ns/"+unit)
}

// BenchmarkWasmPassThrough: one op is one batch of 1000 records of 100
// bytes through examples/passthrough.
func BenchmarkWasmPassThrough(b *testing.B) {
	h := &benchHost{}
	inst := benchInstance(b, "../../examples/passthrough/go/passthrough", h)
	records := make([]abi.Record, 1000)
	value := make([]byte, 92)
	for i := range records {
		records[i] = abi.Record{Offset: int64(i), Timestamp: 1, Key: fmt.Appendf(nil, "k%07d", i), Value: value}
	}
	runBatches(b, inst, records, "record", len(records))
	if h.emitted == 0 {
		b.Fatal("the operator emitted nothing")
	}
}

// BenchmarkWasmSplit: one op is one batch of 100 sentences of 10 words.
func BenchmarkWasmSplit(b *testing.B) {
	h := &benchHost{}
	inst := benchInstance(b, "../../examples/wordcount/go/split", h)
	records := make([]abi.Record, 100)
	for i := range records {
		records[i] = abi.Record{Offset: int64(i), Timestamp: 1,
			Value: fmt.Appendf(nil, "The quick brown fox %d jumps over the lazy dog's back", i)}
	}
	runBatches(b, inst, records, "word", 10*len(records))
	if h.emitted == 0 {
		b.Fatal("the operator emitted nothing")
	}
}

// BenchmarkWasmCount runs examples/wordcount/go/count over batches of
// words: "new-words", 1000 words of a 500-word vocabulary, so that every
// word's count is read, written and emitted once per two words; "hot",
// 20,000 words of a 293-word vocabulary (as in a 1 MiB batch of the demo's
// text), where most words only add one to a tally.
func BenchmarkWasmCount(b *testing.B) {
	for _, c := range []struct {
		name              string
		words, vocabulary int
	}{{"new-words", 1000, 500}, {"hot", 20000, 293}} {
		b.Run(c.name, func(b *testing.B) {
			h := &benchHost{state: map[string][]byte{}}
			inst := benchInstance(b, "../../examples/wordcount/go/count", h)
			records := make([]abi.Record, c.words)
			for i := range records {
				w := fmt.Appendf(nil, "word%d", (i*7919)%c.vocabulary)
				records[i] = abi.Record{Offset: int64(i), Timestamp: 1, Key: w, Value: w}
			}
			runBatches(b, inst, records, "word", len(records))
			if len(h.state) != c.vocabulary {
				b.Fatalf("state has %d words, want %d", len(h.state), c.vocabulary)
			}
		})
	}
}
