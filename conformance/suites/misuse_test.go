package suites

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/plugins"
)

// runModule runs the cases matching filter on a module and returns the
// results by "case [runtime]".
func runModule(t *testing.T, wasm []byte, operator, filter string) map[string]Result {
	t.Helper()
	rep := Run(context.Background(), Config{Module: wasm, Runtimes: testRuntimes(t), Operator: operator, Filter: regexp.MustCompile(filter)})
	out := map[string]Result{}
	for _, r := range rep.Results {
		out[r.ID()+" ["+r.Runtime+"]"] = r
	}
	if len(out) == 0 {
		t.Fatalf("no case matches %s", filter)
	}
	return out
}

func requireFail(t *testing.T, results map[string]Result, id string, substrs ...string) {
	t.Helper()
	for _, rt := range testRuntimes(t) {
		r, ok := results[id+" ["+rt.Name()+"]"]
		if !ok || r.Status != Fail {
			t.Errorf("%s [%s]: %v, want FAIL", id, rt.Name(), r)
			continue
		}
		for _, s := range append([]string{id + " [" + rt.Name() + "]"}, substrs...) {
			if !strings.Contains(r.Message, s) {
				t.Errorf("%s [%s]: message lacks %q: %s", id, rt.Name(), s, r.Message)
			}
		}
	}
}

// The abi suite fails a module that emits to an output the job does not
// declare, or uses a store handle it was never given, naming the case and
// the misuse.
func TestABISuiteCatchesMisuse(t *testing.T) {
	emitsToOutput1 := guestSpec{data: []wasmData{{dataAt, goldenOutputBatch()}},
		process: code{}.i32(dataAt).i32(int32(len(goldenOutputBatch()))).call(fnEmit).op(opDrop).i32(0)}
	requireFail(t, runModule(t, emitsToOutput1.wasm(), "", "^abi/golden-input$"),
		"abi/golden-input", "emit: an output names output 1; the job declares 1")

	badHandle := guestSpec{process: code{}.i32(7).i32(scratchAt).i32(1).i32(scratchAt).i32(8).call(fnStateGet).op(opDrop).i32(0)}
	requireFail(t, runModule(t, badHandle.wasm(), "", "^abi/empty-batch$"),
		"abi/empty-batch", "state_get: store handle 7 was never given by store_open")

	traps := guestSpec{process: code{}.op(opUnreachable)}
	requireFail(t, runModule(t, traps.wasm(), "", "^abi/large-values$"), "abi/large-values", "trap")
}

// An operator that emits nothing fails every contract case that expects
// outputs with "0 outputs, want N" and the first missing output; one that
// fails a record fails with the record named.
func TestOperatorSuiteReportsMissingOutputsAndFailures(t *testing.T) {
	silent := guestSpec{}
	requireFail(t, runModule(t, silent.wasm(), OperatorCount, "^operator/count/first-batch$"),
		"operator/count/first-batch", "batch 0 (6 records): 0 outputs, want 3; first missing output 0", `key="b" value="3"`)

	failsFirst := guestSpec{data: []wasmData{{dataAt, []byte("nope")}},
		process: code{}.i32(0).i32(dataAt).i32(4).call(fnSetError).i32(1)}
	requireFail(t, runModule(t, failsFirst.wasm(), OperatorSplit, "^operator/split/ascii-whitespace$"),
		"operator/split/ascii-whitespace", "the module failed record 0", "(nope), the contract fails none")

	// count that never fails a record misses the corrupt stored counts.
	requireFail(t, runModule(t, silent.wasm(), OperatorCount, "^operator/count/corrupt-stored-count$"),
		"operator/count/corrupt-stored-count", `stored count "x"`, "the module failed no record, the contract fails record 2")
}

// Equivalence needs two runtimes and says which is missing; given two
// that differ, it names the first differing line of their outcomes.
func TestEquivalence(t *testing.T) {
	rts := testRuntimes(t)
	rep := Run(context.Background(), Config{Runtimes: rts[:1], Filter: regexp.MustCompile("^equivalence/")})
	if len(rep.Results) != 1 || rep.Results[0].Status != Skip || !strings.Contains(rep.Results[0].Message, "needs two runtimes to compare, have only "+rts[0].Name()) {
		t.Errorf("with one runtime: %v", rep.Results)
	}

	e := &env{rts: []plugins.Runtime{fakeRuntime("a"), fakeRuntime("b")}}
	err := sameEverywhere(e, "guest x", func(rt plugins.Runtime) string {
		return "compile: ok\nbatch 0: fault: " + rt.Name() + "\nlog 0 00\n"
	})
	if err == nil || !strings.Contains(err.Error(), "guest x: a and b differ at line 2 of the outcome\n  a: batch 0: fault: a\n  b: batch 0: fault: b") {
		t.Errorf("got %v", err)
	}
	if err := sameEverywhere(e, "guest x", func(plugins.Runtime) string { return "same" }); err != nil {
		t.Errorf("identical outcomes: %v", err)
	}
}

// describeErr keeps what a task acts on and drops an engine's wording.
func TestDescribeErr(t *testing.T) {
	for err, want := range map[error]string{
		&plugins.Fault{Kind: plugins.FaultTrap, Detail: "wasm error: unreachable"}:                    "fault: trap",
		&plugins.Fault{Kind: plugins.FaultABI, Detail: "emit: batch [ptr 0x1, len 2]"}:                "fault: ABI violation: emit: batch [ptr 0x1, len 2]",
		&plugins.Fault{Kind: plugins.FaultExit, ExitCode: 3}:                                          "fault: exit, code 3",
		&plugins.RecordError{Index: 2, Message: "bad"}:                                                `record error: index 2, message "bad"`,
		&plugins.ValidationError{Problems: []string{"not a valid WebAssembly module: engine says x"}}: "validation error: not a valid WebAssembly module",
	} {
		if got := describeErr(err); got != want {
			t.Errorf("describeErr(%v) = %q, want %q", err, got, want)
		}
	}
}

type fakeRuntime string

func (f fakeRuntime) Name() string { return string(f) }
func (f fakeRuntime) Compile(context.Context, []byte) (plugins.Module, error) {
	panic("not used")
}
func (f fakeRuntime) Close(context.Context) error { return nil }
