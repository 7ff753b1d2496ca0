//go:build !wasip1

// Package attribution_test checks the attribution example: its job file
// loads, its Go and C operators make byte-identical outputs in sluice's
// wazero runtime, equal to the reference model of package gen, and the job
// on a real node makes the model's output.
package attribution_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/examples/attribution/gen"
	"github.com/sluice-io/sluice/examples/internal/jointest"
	"github.com/sluice-io/sluice/internal/cwasm"
	"github.com/sluice-io/sluice/internal/gowasm"
)

var stores = []string{"impression-buffer", "click-buffer"}

// modules returns the Go and the C build of the operator.
func modules(t *testing.T) (goWasm, cWasm []byte) {
	t.Helper()
	cwasm.RequireToolchain(t)
	goWasm, err := gowasm.BuildBytes("go/attribution")
	if err != nil {
		t.Fatal(err)
	}
	cWasm, err = cwasm.BuildBytes("c/attribution")
	if err != nil {
		t.Fatal(err)
	}
	return goWasm, cWasm
}

func params(window, lateness string) []byte {
	return []byte(fmt.Sprintf(`{"window":%q,"lateness":%q}`, window, lateness))
}

func records(recs []gen.Record) []abi.Record {
	out := make([]abi.Record, len(recs))
	for i, r := range recs {
		out[i] = abi.Record{Offset: int64(i), Timestamp: r.Timestamp, Input: uint32(gen.Input(r)), Key: r.Key, Value: r.Value}
	}
	return out
}

// Each partition's records, in the merged order, go through the Go and
// the C operator in batches of random sizes, with both instances replaced
// by new ones (same stores, same stream time) in the middle: both emit the
// same bytes, batch by batch, and each output's records are the model's
// (as multisets; the order within a record's outputs is not specified).
func TestOperatorsInTheRuntime(t *testing.T) {
	goWasm, cWasm := modules(t)
	d := gen.Generate(5, 1500)
	prm := params("10m", "1m")
	want, stats := gen.Expected(d, gen.Partitions, gen.Window.Milliseconds(), gen.Lateness.Milliseconds())
	t.Logf("model: %+v", stats)
	imps, clks := gen.ByPartition(d.Impressions, gen.Partitions), gen.ByPartition(d.Clicks, gen.Partitions)
	rng := rand.New(rand.NewPCG(3, 4))
	var total [3]int
	for p := range gen.Partitions {
		goOp := jointest.StartOperator(t, goWasm, prm, stores, nil)
		cOp := jointest.StartOperator(t, cWasm, prm, stores, nil)
		merged := records(gen.Merge(imps[p], clks[p]))
		var got [3][]gen.Output
		for start := 0; start < len(merged); {
			n := 1 + rng.IntN(60)
			if rng.IntN(5) == 0 {
				n = 1
			}
			batch := merged[start:min(start+n, len(merged))]
			if start < len(merged)/2 && start+len(batch) >= len(merged)/2 {
				goOp.Restart(goWasm, prm)
				cOp.Restart(cWasm, prm)
			}
			start += len(batch)
			g, c := goOp.Process(p, batch), cOp.Process(p, batch)
			if jointest.Format(g) != jointest.Format(c) {
				t.Fatalf("partition %d: outputs differ\nGo:\n%sC:\n%s", p, jointest.Format(g), jointest.Format(c))
			}
			for _, o := range g {
				if o.Output < 0 || o.Output > 2 || o.Partition != abi.PartitionByKey {
					t.Fatalf("output %v", o)
				}
				got[o.Output] = append(got[o.Output], gen.Output{Key: string(o.Key), Value: string(o.Value), Timestamp: o.Timestamp})
			}
		}
		for o := range got {
			if g, w := gen.Sorted(got[o]), gen.Sorted(want[o][p]); !reflect.DeepEqual(g, w) {
				t.Errorf("partition %d, %s: %d records, want %d\n%s", p, gen.Outputs[o], len(g), len(w), jointest.Diff(g, w))
			}
			total[o] += len(got[o])
		}
		if !reflect.DeepEqual(goOp.Host.Data, cOp.Host.Data) {
			t.Errorf("partition %d: the Go and C operators' stores differ", p)
		}
	}
	if total[0] != stats.Attributed || total[1] != stats.Unmatched || total[2] != stats.Late || total[2] == 0 {
		t.Errorf("outputs %v, model %+v", total, stats)
	}
}

// The durations of the parameters, parsed alike in Go and C: an
// impression at 0 and a click at 90 s pair iff the window is at least
// 90 s.
func TestParameters(t *testing.T) {
	goWasm, cWasm := modules(t)
	for _, c := range []struct {
		window string
		pairs  bool
	}{{"90s", true}, {"1m30s", true}, {"90000ms", true}, {"89999ms", false}, {"1h", true}, {"1m", false}, {"0", false}} {
		for lang, wasm := range map[string][]byte{"Go": goWasm, "C": cWasm} {
			op := jointest.StartOperator(t, wasm, params(c.window, "1h"), stores, nil)
			outs := op.Process(0, []abi.Record{
				{Timestamp: 1_000_000, Input: 0, Key: []byte("ad"), Value: []byte("i")},
				{Offset: 0, Timestamp: 1_090_000, Input: 1, Key: []byte("ad"), Value: []byte("c")},
			})
			want := ""
			if c.pairs {
				want = `out=0 part=-1 ts=1090000 key="ad" value="i c"` + "\n"
			}
			if got := jointest.Format(outs); got != want {
				t.Errorf("%s, window %s: %q, want %q", lang, c.window, got, want)
			}
		}
	}
	for _, bad := range []string{`{"window":"ten minutes"}`, `{"lateness":"5 s"}`, `{"window":"-1m"}`} {
		for lang, wasm := range map[string][]byte{"Go": goWasm, "C": cWasm} {
			if err := jointest.InitError(wasm, []byte(bad), stores); err == nil {
				t.Errorf("%s accepted the parameters %s", lang, bad)
			}
		}
	}
}
