package host

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/storage"
	"github.com/sluice-io/sluice/internal/gowasm"
	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins"
)

// BenchmarkPassThrough measures the host's own ceiling: b.N 100-byte
// records, pre-produced into 4 partitions, through the pass-through
// operator to an output topic, from deploy until all are in the output.
// Profile with -cpuprofile to see where the time goes.
func BenchmarkPassThrough(b *testing.B) {
	wasm := gowasm.MustBuild("../examples/passthrough/go/passthrough")
	n := newNode(b)
	const partitions = 4
	n.createTopic("in", partitions)
	total := max(b.N, 1000)
	value := make([]byte, 100-8)
	for p := int32(0); p < partitions; p++ {
		part, err := n.b.Partition("in", p)
		if err != nil {
			b.Fatal(err)
		}
		var bld batch.Builder
		count := total / partitions
		if p == 0 {
			count += total % partitions
		}
		for i := 0; i < count; {
			bld.Reset(time.Now().UnixMilli())
			for j := 0; j < 1000 && i < count; j, i = j+1, i+1 {
				key := fmt.Appendf(nil, "k%07d", i)
				bld.Add(int32(j), time.Now().UnixMilli(), key, value, nil)
			}
			if _, err := part.Append(bld.Finish(), 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Compile once outside the measurement (the runtime caches it).
	if _, err := n.m.compile(context.Background(), DefaultRuntime, wasm); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(100)
	b.ResetTimer()
	start := time.Now()
	_, err := n.m.Deploy(context.Background(), JobSpec{Name: "pt", Inputs: []string{"in"}, Outputs: []OutputSpec{{Topic: "out"}}}, wasm)
	if err != nil {
		b.Fatal(err)
	}
	for n.count("out") < int64(total) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "records/s")
}

// BenchmarkTaskChunk runs one task's hot path on its own goroutine: read a
// chunk of 5000 100-byte records, encode it into the guest, run the echo
// operator, build and append the output batches. allocs/op shows whether
// the steady state allocates.
func BenchmarkTaskChunk(b *testing.B) {
	n := newNode(b)
	n.createTopic("in", 1)
	n.createTopic("out", 1)
	const count = 5000
	value := make([]byte, 90)
	n.produce("in", 0, records(count, func(i int) kv { return kv{key: fmt.Appendf(nil, "k%07d", i), value: value} }))
	spec, err := NormalizeSpec(JobSpec{Name: "chunk", Inputs: []string{"in"}, Outputs: []OutputSpec{{Topic: "out"}}})
	if err != nil {
		b.Fatal(err)
	}
	mod, err := n.m.compile(context.Background(), DefaultRuntime, testguests.Build("echo"))
	if err != nil {
		b.Fatal(err)
	}
	j := n.m.newJob(spec, mod.SHA256(), time.Now(), JobRunning)
	j.module = mod
	inPart, _ := n.b.Partition("in", 0)
	outPart, _ := n.b.Partition("out", 0)
	in := &inputSource{topic: "in", part: inPart, committed: -1}
	tk := newTask(j, 0, []*inputSource{in}, nil, []*outputSink{newOutputSink("out", []*storage.Partition{outPart})}, nil, nil, n.m.metrics.forTask("chunk", 0, []*inputSource{in}))
	tk.inst, err = mod.Instantiate(context.Background(), plugins.InstanceConfig{Name: "chunk/0", Params: []byte("{}"), Limits: j.limits, Host: &tk.host})
	if err != nil {
		b.Fatal(err)
	}
	defer tk.inst.Close(context.Background())
	run := func() {
		in.pos = 0
		for in.pos < count {
			if _, err := tk.processChunk(in); err != nil {
				b.Fatal(err)
			}
		}
	}
	run() // warm the buffers up
	b.ReportAllocs()
	b.SetBytes(count * 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*count)/b.Elapsed().Seconds(), "records/s")
}
