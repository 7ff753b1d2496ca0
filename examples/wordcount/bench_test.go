//go:build !wasip1

package wordcount_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/aswasm"
	"github.com/sluice-io/sluice/internal/cwasm"
	"github.com/sluice-io/sluice/internal/gowasm"
	"github.com/sluice-io/sluice/internal/rustwasm"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/runtimes"
)

// BenchmarkOperators runs split and count, built from Go, C, Rust and
// AssemblyScript, on every runtime of the build against a host that keeps
// state in a map, on batches like the demo's: the guest's cost per word in
// each language on each runtime.
//
//	go test -run XXX -bench Operators ./examples/wordcount
func BenchmarkOperators(b *testing.B) {
	builds := map[string]func(dir string) ([]byte, error){"go": gowasm.BuildBytes, "c": cwasm.BuildBytes, "rust": rustwasm.BuildBytes, "as": aswasm.BuildBytes}
	sentences := make([]abi.Record, 500)
	for i := range sentences {
		sentences[i] = abi.Record{Offset: int64(i), Timestamp: 1,
			Value: fmt.Appendf(nil, "the quick brown fox %d jumps over the lazy dog's back", i%50)}
	}
	words := make([]abi.Record, 20000)
	for i := range words {
		w := fmt.Appendf(nil, "word%d", (i*7919)%293)
		words[i] = abi.Record{Offset: int64(i), Timestamp: 1, Key: w, Value: w}
	}
	for _, runtime := range runtimes.Available() {
		for _, lang := range []string{"go", "c", "rust", "as"} {
			benchLanguage(b, runtime, lang, builds[lang], sentences, words)
		}
	}
}

// benchLanguage runs split and count, built in lang, on runtime.
func benchLanguage(b *testing.B, runtime, lang string, build func(string) ([]byte, error), sentences, words []abi.Record) {
	for _, op := range []struct {
		name  string
		batch []abi.Record
		words int
	}{{"split", sentences, 10 * len(sentences)}, {"count", words, len(words)}} {
		b.Run(runtime+"/"+lang+"/"+op.name, func(b *testing.B) {
			switch lang {
			case "c":
				cwasm.RequireToolchain(b)
			case "rust":
				rustwasm.RequireToolchain(b)
			case "as":
				aswasm.RequireToolchain(b)
			}
			wasm, err := build(filepath.Join(lang, op.name))
			if err != nil {
				b.Fatal(err)
			}
			h := &mapHost{state: map[string][]byte{}}
			inst := instantiate(b, runtime, wasm, h)
			n := abi.BatchHeaderSize
			for i := range op.batch {
				n += op.batch[i].EncodedSize()
			}
			buf, err := inst.Input(context.Background(), n)
			if err != nil {
				b.Fatal(err)
			}
			abi.PutBatchHeader(buf, abi.BatchHeader{Count: uint32(len(op.batch))})
			off := abi.BatchHeaderSize
			for i := range op.batch {
				off += abi.PutRecord(buf[off:], &op.batch[i])
			}
			b.ResetTimer()
			for range b.N {
				if err := inst.Process(context.Background(), n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*op.words), "ns/word")
			if h.emitted == 0 {
				b.Fatal("the operator emitted nothing")
			}
		})
	}
}

func instantiate(b *testing.B, runtime string, wasm []byte, h plugins.Host) plugins.Instance {
	ctx := context.Background()
	rt, err := runtimes.Open(ctx, runtime, runtimes.Options{CacheDir: filepath.Join(os.TempDir(), "sluice-bench-cache")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(ctx) })
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	inst, err := mod.Instantiate(ctx, plugins.InstanceConfig{Name: "bench/0", Params: []byte("{}"), Host: h})
	if err != nil {
		b.Fatal(err)
	}
	return inst
}

// mapHost keeps state in a map and counts emitted bytes.
type mapHost struct {
	state   map[string][]byte
	emitted int
}

func (h *mapHost) Emit(b []byte) int32             { h.emitted += len(b); return 0 }
func (h *mapHost) StoreOpen(name []byte) int32     { return 0 }
func (h *mapHost) Log(int32, []byte)               {}
func (h *mapHost) StreamTime() int64               { return -1 }
func (h *mapHost) StateDelete(int32, []byte) int32 { return 0 }
func (h *mapHost) StatePut(_ int32, k, v []byte) int32 {
	h.state[string(k)] = append(h.state[string(k)][:0], v...)
	return 0
}
func (h *mapHost) StateGet(_ int32, k []byte) ([]byte, bool, int32) {
	v, ok := h.state[string(k)]
	return v, ok, 0
}
func (h *mapHost) StateScan(_ int32, _, _ []byte, dst []byte, _ int) ([]byte, int, int32) {
	return dst, 0, 0
}
