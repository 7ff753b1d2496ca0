//go:build !wasip1

// Package enrich_test checks the enrich example: its job file loads, its
// Go and C operators make byte-identical outputs in sluice's wazero
// runtime, equal to the reference model of package gen, and the job on a
// real node makes the model's output.
package enrich_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/examples/enrich/gen"
	"github.com/sluice-io/sluice/examples/internal/jointest"
	"github.com/sluice-io/sluice/internal/cwasm"
	"github.com/sluice-io/sluice/internal/gowasm"
)

// modules returns the Go and the C build of the operator.
func modules(t *testing.T) (goWasm, cWasm []byte) {
	t.Helper()
	cwasm.RequireToolchain(t)
	goWasm, err := gowasm.BuildBytes("go/enrich")
	if err != nil {
		t.Fatal(err)
	}
	cWasm, err = cwasm.BuildBytes("c/enrich")
	if err != nil {
		t.Fatal(err)
	}
	return goWasm, cWasm
}

// Each partition's records, in the merged order, go through the Go and
// the C operator in batches of random sizes (cut at every profile change,
// which the host applies between calls, as it does): both emit the same
// bytes, batch by batch, and exactly the model's records.
func TestOperatorsInTheRuntime(t *testing.T) {
	goWasm, cWasm := modules(t)
	d := gen.Generate(7, 4000)
	want := gen.Expected(d, gen.Partitions)
	profiles, clicks := gen.ByPartition(d.Profiles, gen.Partitions), gen.ByPartition(d.Clicks, gen.Partitions)
	rng := rand.New(rand.NewPCG(1, 2))
	total := 0
	for p := range gen.Partitions {
		goOp := jointest.StartOperator(t, goWasm, nil, nil, []string{"profiles"})
		cOp := jointest.StartOperator(t, cWasm, nil, nil, []string{"profiles"})
		var got []jointest.Output
		var batch []abi.Record
		limit := 1 + rng.IntN(40)
		flush := func() {
			if len(batch) == 0 {
				return
			}
			g, c := goOp.Process(p, batch), cOp.Process(p, batch)
			if jointest.Format(g) != jointest.Format(c) {
				t.Fatalf("partition %d: outputs differ\nGo:\n%sC:\n%s", p, jointest.Format(g), jointest.Format(c))
			}
			got = append(got, g...)
			batch, limit = batch[:0], 1+rng.IntN(40)
		}
		offset := 0
		for _, r := range gen.Merge(profiles[p], clicks[p]) {
			if r.Topic == gen.ProfilesTopic {
				flush()
				goOp.Table("profiles", r.Key, r.Value)
				cOp.Table("profiles", r.Key, r.Value)
				continue
			}
			batch = append(batch, abi.Record{Offset: int64(offset), Timestamp: r.Timestamp, Key: r.Key, Value: r.Value})
			offset++
			if len(batch) == limit {
				flush()
			}
		}
		flush()
		if len(got) != len(want[p]) {
			t.Fatalf("partition %d: %d outputs, want %d", p, len(got), len(want[p]))
		}
		for i, o := range got {
			w := want[p][i]
			if o.Output != 0 || o.Partition != abi.PartitionByKey || string(o.Key) != w.Key || string(o.Value) != w.Value || o.Timestamp != w.Timestamp {
				t.Fatalf("partition %d output %d: %v, want %v", p, i, o, w)
			}
		}
		total += len(got)
	}
	if total != len(d.Clicks) {
		t.Errorf("%d outputs for %d clicks", total, len(d.Clicks))
	}
}

// Null keys and values, empty values and a deleted profile, byte for byte.
func TestOperatorsEdgeCases(t *testing.T) {
	goWasm, cWasm := modules(t)
	for _, wasm := range [][]byte{goWasm, cWasm} {
		op := jointest.StartOperator(t, wasm, nil, nil, []string{"profiles"})
		op.Table("profiles", []byte("u"), []byte(`{"p":1}`))
		op.Table("profiles", []byte(""), []byte(`"empty key"`))
		outs := op.Process(2, []abi.Record{
			{Timestamp: 5, Key: []byte("u"), Value: []byte(`{"c":1}`)},
			{Offset: 1, Timestamp: 4, Key: []byte("v"), Value: []byte(`2`)},
			{Offset: 2, Timestamp: 6, Key: nil, Value: nil},
			{Offset: 3, Timestamp: 7, Key: []byte(""), Value: []byte{}},
		})
		op.Table("profiles", []byte("u"), nil)
		outs = append(outs, op.Process(2, []abi.Record{{Offset: 4, Timestamp: 8, Key: []byte("u"), Value: []byte(`3`)}})...)
		want := []string{
			`out=0 part=-1 ts=5 key="u" value="{\"click\":{\"c\":1},\"profile\":{\"p\":1}}"`,
			`out=0 part=-1 ts=4 key="v" value="{\"click\":2,\"profile\":null}"`,
			`out=0 part=-1 ts=6 key=null value="{\"click\":null,\"profile\":null}"`,
			`out=0 part=-1 ts=7 key="" value="{\"click\":,\"profile\":\"empty key\"}"`,
			`out=0 part=-1 ts=8 key="u" value="{\"click\":3,\"profile\":null}"`,
		}
		if got := jointest.Format(outs); got != strings.Join(want, "\n")+"\n" {
			t.Errorf("got\n%swant\n%s", got, strings.Join(want, "\n"))
		}
		if op.Host.EmitCalls != 2 {
			t.Errorf("%d emit calls for 2 batches", op.Host.EmitCalls)
		}
	}
}
