package runtimetest

import (
	"context"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
)

// The benchmarks every runtime runs, under the same names, so that their
// numbers compare: a runtime's bench_test.go has
//
//	func BenchmarkProcess(b *testing.B) { runtimetest.BenchProcess(b, open(b)) }

// benchBatch encodes records 100-byte values into inst's input region
// once; the benchmark then re-runs the same batch.
func benchBatch(b *testing.B, inst plugins.Instance, records, valueSize int) int {
	rs := make([]abi.Record, records)
	value := make([]byte, valueSize)
	for i := range rs {
		rs[i] = abi.Record{Offset: int64(i), Timestamp: 1, Key: []byte("key-0001"), Value: value}
	}
	n := abi.BatchHeaderSize
	for i := range rs {
		n += rs[i].EncodedSize()
	}
	buf, err := inst.Input(context.Background(), n)
	if err != nil {
		b.Fatal(err)
	}
	abi.PutBatchHeader(buf, abi.BatchHeader{Count: uint32(records)})
	off := abi.BatchHeaderSize
	for i := range rs {
		off += abi.PutRecord(buf[off:], &rs[i])
	}
	return n
}

// BenchProcess is one sluice_process call over 1000 records of 100
// bytes through the echo guest, which decodes every record and emits them
// all with one emit call (the host validates the output batch).
func BenchProcess(b *testing.B, rt plugins.Runtime) {
	inst := Instantiate(b, rt, "echo", plugins.InstanceConfig{Host: &DiscardHost{}})
	const records = 1000
	n := benchBatch(b, inst, records, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := inst.Process(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*records)/b.Elapsed().Seconds(), "records/s")
}

// BenchHostCall measures state_get from the guest: one op is one
// batch of 1000 records, each making one state_get that copies a 64-byte
// value into guest memory.
func BenchHostCall(b *testing.B, rt plugins.Runtime) {
	inst := Instantiate(b, rt, "getloop", plugins.InstanceConfig{Host: &DiscardHost{Value: make([]byte, 64)}})
	const calls = 1000
	n := benchBatch(b, inst, calls, 8)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := inst.Process(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*calls), "ns/hostcall")
}

// BenchCallOverhead is the cost of one Process call into a guest that
// does nothing (a hand-assembled module whose sluice_process returns 0):
// what the runtime adds per batch.
func BenchCallOverhead(b *testing.B, rt plugins.Runtime) {
	mod, err := rt.Compile(context.Background(), NoopModule())
	if err != nil {
		b.Fatal(err)
	}
	inst, err := mod.Instantiate(context.Background(), plugins.InstanceConfig{Name: "noop", Host: &DiscardHost{},
		Limits: plugins.Limits{}})
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Close(context.Background())
	buf, err := inst.Input(context.Background(), abi.BatchHeaderSize)
	if err != nil {
		b.Fatal(err)
	}
	abi.PutBatchHeader(buf, abi.BatchHeader{})
	for _, tc := range []struct {
		name string
		ctx  context.Context
	}{{"background", context.Background()}, {"cancellable", cancellable(b)}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if err := inst.Process(tc.ctx, abi.BatchHeaderSize); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func cancellable(b *testing.B) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	return ctx
}
