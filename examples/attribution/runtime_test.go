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
	"strings"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/examples/attribution/gen"
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

func format(outs []output) string {
	var b strings.Builder
	for _, o := range outs {
		b.WriteString(o.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func params(window, lateness string) []byte {
	return []byte(fmt.Sprintf(`{"window":%q,"lateness":%q}`, window, lateness))
}

func records(recs []gen.Record) []abi.Record {
	out := make([]abi.Record, len(recs))
	for i, r := range recs {
		out[i] = abi.Record{Offset: int64(i), Timestamp: r.Timestamp, Input: uint32(r.Input()), Key: r.Key, Value: r.Value}
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
		goOp := startOperator(t, goWasm, prm, stores, nil)
		cOp := startOperator(t, cWasm, prm, stores, nil)
		merged := records(gen.Merge(imps[p], clks[p]))
		var got [3][]gen.Output
		for start := 0; start < len(merged); {
			n := 1 + rng.IntN(60)
			if rng.IntN(5) == 0 {
				n = 1
			}
			batch := merged[start:min(start+n, len(merged))]
			if start < len(merged)/2 && start+len(batch) >= len(merged)/2 {
				goOp.restart(goWasm, prm)
				cOp.restart(cWasm, prm)
			}
			start += len(batch)
			g, c := goOp.process(p, batch), cOp.process(p, batch)
			if format(g) != format(c) {
				t.Fatalf("partition %d: outputs differ\nGo:\n%sC:\n%s", p, format(g), format(c))
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
				t.Errorf("partition %d, %s: %d records, want %d\n%s", p, gen.Outputs[o], len(g), len(w), diff(g, w))
			}
			total[o] += len(got[o])
		}
		if !reflect.DeepEqual(goOp.h.data, cOp.h.data) {
			t.Errorf("partition %d: the Go and C operators' stores differ", p)
		}
	}
	if total[0] != stats.Attributed || total[1] != stats.Unmatched || total[2] != stats.Late || total[2] == 0 {
		t.Errorf("outputs %v, model %+v", total, stats)
	}
}

// diff shows the first records only one side has.
func diff(got, want []string) string {
	count := map[string]int{}
	for _, s := range got {
		count[s]++
	}
	for _, s := range want {
		count[s]--
	}
	var b strings.Builder
	n, extra, missing := 0, 0, 0
	for s, c := range count {
		if c != 0 && n < 10 {
			fmt.Fprintf(&b, "  %+d %s\n", c, s)
			n++
		}
		extra, missing = extra+max(c, 0), missing+max(-c, 0)
	}
	return fmt.Sprintf("%d extra, %d missing:\n%s", extra, missing, b.String())
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
			op := startOperator(t, wasm, params(c.window, "1h"), stores, nil)
			outs := op.process(0, []abi.Record{
				{Timestamp: 1_000_000, Input: 0, Key: []byte("ad"), Value: []byte("i")},
				{Offset: 0, Timestamp: 1_090_000, Input: 1, Key: []byte("ad"), Value: []byte("c")},
			})
			want := ""
			if c.pairs {
				want = `out=0 part=-1 ts=1090000 key="ad" value="i c"` + "\n"
			}
			if got := format(outs); got != want {
				t.Errorf("%s, window %s: %q, want %q", lang, c.window, got, want)
			}
		}
	}
	for _, bad := range []string{`{"window":"ten minutes"}`, `{"lateness":"5 s"}`, `{"window":"-1m"}`} {
		for lang, wasm := range map[string][]byte{"Go": goWasm, "C": cWasm} {
			if err := initError(wasm, []byte(bad)); err == nil {
				t.Errorf("%s accepted the parameters %s", lang, bad)
			}
		}
	}
}
