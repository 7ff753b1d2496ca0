package suites

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/runtimes"

	"github.com/sluice-io/sluice/internal/inputbatch"
)

func equivalenceCases() []Case {
	cs := []Case{
		{Suite: SuiteEquivalence, Name: "runtime-vectors", crossRuntime: true,
			Doc: "Every runtime-suite guest gives the same outcome on every runtime: compile and init errors, per batch the error " +
				"(fault kind, ABI fault detail, exit code, failed record and message), emitted bytes and emit calls, logs and state.",
			run: func(ctx context.Context, e *env) error {
				if err := needTwo(e); err != nil {
					return err
				}
				for _, v := range runtimeVectors() {
					if err := sameEverywhere(e, "guest "+v.name, func(rt plugins.Runtime) string {
						return runVector(ctx, rt, v).describe()
					}); err != nil {
						return err
					}
				}
				return nil
			}},
		{Suite: SuiteEquivalence, Name: "abi-vectors", crossRuntime: true, needsModule: true,
			Doc: "The module gives the same outcome on every runtime for the abi suite's inputs (golden batches, large values) " +
				"and 60 generated batches: errors, emitted bytes, emit calls, logs and state.",
			run: func(ctx context.Context, e *env) error {
				if err := needTwo(e); err != nil {
					return err
				}
				batches := [][]byte{goldenInputBatch(), goldenEmptyBatch(), inputbatch.Encode(1, largeRecords())}
				batches = append(batches, generatedBatches(60, 400, 7)...)
				return sameEverywhere(e, "the abi inputs", func(rt plugins.Runtime) string {
					return runVector(ctx, rt, vector{name: "module", compiled: userModule(ctx, e), host: hostConfig{anyStore: true},
						params: e.cfg.Params, batches: batches}).describe()
				})
			}},
	}
	for _, op := range Operators {
		cs = append(cs, Case{Suite: SuiteEquivalence, Name: op + "-vectors", crossRuntime: true, needsModule: true, operator: op,
			Doc: "The module gives the same outcome on every runtime for every input of the operator suite's " + op + " cases.",
			run: func(ctx context.Context, e *env) error {
				if err := needTwo(e); err != nil {
					return err
				}
				for _, v := range opVectors() {
					if v.op != op {
						continue
					}
					var batches [][]byte
					for _, b := range v.batches() {
						batches = append(batches, inputbatch.Encode(0, b))
					}
					states := []map[string]string{v.state}
					for _, bad := range v.corrupt {
						states = append(states, map[string]string{"v": bad})
					}
					for _, st := range states {
						if err := sameEverywhere(e, "the inputs of operator/"+op+"/"+v.name, func(rt plugins.Runtime) string {
							return runVector(ctx, rt, vector{name: v.name, compiled: userModule(ctx, e), host: opHostConfig(op, st), batches: batches}).describe()
						}); err != nil {
							return err
						}
					}
				}
				return nil
			}})
	}
	return cs
}

func userModule(ctx context.Context, e *env) func(plugins.Runtime) (plugins.Module, error) {
	return func(rt plugins.Runtime) (plugins.Module, error) { return e.module(ctx, rt) }
}

// needTwo skips a case that has fewer than two runtimes to compare, naming
// what is missing.
func needTwo(e *env) error {
	if len(e.rts) >= 2 {
		return nil
	}
	have := runtimeNames(e.rts)
	var missing []string
	for _, k := range runtimes.Known {
		if !strings.Contains("="+have+"=", "="+k+"=") {
			if err := runtimes.Check(k); err != nil {
				missing = append(missing, err.Error())
			} else {
				missing = append(missing, k+" was not selected (use --runtime all)")
			}
		}
	}
	return skipf("needs two runtimes to compare, have only %s; %s", have, strings.Join(missing, "; "))
}

// sameEverywhere runs outcome on every runtime and fails with the first
// line where two runtimes differ.
func sameEverywhere(e *env, what string, outcome func(plugins.Runtime) string) error {
	first := outcome(e.rts[0])
	for _, rt := range e.rts[1:] {
		other := outcome(rt)
		if other == first {
			continue
		}
		a, b := strings.Split(first, "\n"), strings.Split(other, "\n")
		for i := range max(len(a), len(b)) {
			la, lb := line(a, i), line(b, i)
			if la != lb {
				return fmt.Errorf("%s: %s and %s differ at line %d of the outcome\n  %s: %s\n  %s: %s",
					what, e.rts[0].Name(), rt.Name(), i+1, e.rts[0].Name(), la, rt.Name(), lb)
			}
		}
	}
	return nil
}

func line(ls []string, i int) string {
	if i < len(ls) {
		return ls[i]
	}
	return "(nothing)"
}

// digest shortens large emitted bytes in outcomes.
func digest(b []byte) string {
	if len(b) <= 256 {
		return fmt.Sprintf("%x", b)
	}
	return fmt.Sprintf("%d bytes sha256 %x", len(b), sha256.Sum256(b))
}

// stateString renders a state deterministically.
func stateString(st map[string]map[string]string) string {
	var b strings.Builder
	for _, s := range slices.Sorted(maps.Keys(st)) {
		for _, k := range slices.Sorted(maps.Keys(st[s])) {
			fmt.Fprintf(&b, "%s[%q]=%q ", s, k, st[s][k])
		}
	}
	return b.String()
}
