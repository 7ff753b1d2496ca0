// Package suites is sluice's conformance suites as a library: the checks
// that define a correct operator module and a correct Wasm runtime
// independently of the language the module is written in and of the
// runtime that runs it. `go test ./conformance/...` runs them on the
// example operators in every language, and `sluice conformance run` runs
// them on any module, so that a third party can check their own.
//
// There are four suites (List describes every case):
//
//   - abi: any module validates, instantiates and survives the golden
//     input layouts of conformance/abi, an empty batch, large values and
//     many batches, emitting only well-formed outputs to declared outputs
//     and using only the state handles it was given.
//   - runtime: the runtime's side of the ABI, with small hand-assembled
//     guests (no user module): the bounds check of every host function
//     under hostile pointers and lengths, return codes, statuses, traps,
//     exits, timeouts and memory limits.
//   - operator: a module that claims a contract (split, count or
//     passthrough, as defined in examples/wordcount/README.md and
//     examples/passthrough) produces, batch by batch, the outputs and the
//     state that an independent reference implementation in this package
//     computes, byte for byte.
//   - equivalence: the same module on every available runtime yields
//     identical outputs, emit calls, logs, state and errors.
//
// Run takes the module bytes and the runtimes to use and returns a Report
// with one Result per case and runtime.
package suites

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-io/sluice/plugins"
)

// Operator contracts a module can be checked against.
const (
	OperatorSplit       = "split"
	OperatorCount       = "count"
	OperatorPassthrough = "passthrough"
)

// Operators lists the contracts of the operator suite.
var Operators = []string{OperatorSplit, OperatorCount, OperatorPassthrough}

// Suite names.
const (
	SuiteABI         = "abi"
	SuiteRuntime     = "runtime"
	SuiteOperator    = "operator"
	SuiteEquivalence = "equivalence"
)

// Suite is a named group of cases.
type Suite struct {
	Name string
	// Doc says what the suite checks and what it needs.
	Doc   string
	Cases []Case
}

// Case is one check.
type Case struct {
	Suite string
	// Name is unique within the suite; operator cases start with their
	// contract ("split/whitespace").
	Name string
	// Doc says what the case checks.
	Doc string

	// operator is the contract the case belongs to ("" for generic cases).
	operator string
	// needsModule: the case checks the user's module (abi, operator);
	// otherwise it runs the suite's own guests.
	needsModule bool
	// crossRuntime: the case runs once over all runtimes (equivalence)
	// rather than once per runtime.
	crossRuntime bool
	run          func(ctx context.Context, e *env) error
}

// ID is "suite/name", what the --run filter matches.
func (c Case) ID() string { return c.Suite + "/" + c.Name }

// Config says what to check.
type Config struct {
	// Module is the operator module to check. Nil runs only the cases
	// that need no module (the runtime suite and its equivalence).
	Module []byte
	// Runtimes are the runtimes to check on, opened by the caller (see
	// OpenRuntimes). Run does not close them.
	Runtimes []plugins.Runtime
	// Operator is the contract to check the module against (split, count,
	// passthrough); "" runs only the generic suites.
	Operator string
	// Filter, when set, selects the cases whose ID ("abi/validate",
	// "operator/split/whitespace") it matches.
	Filter *regexp.Regexp
	// Params are passed to the module's sluice_init in the abi suite
	// (default: none). The operator contracts take no parameters.
	Params []byte
	// Progress, when set, receives each Result as soon as it is known.
	Progress func(Result)
}

// Status is a case's outcome.
type Status string

const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
)

// Result is one case on one runtime.
type Result struct {
	Suite, Case string
	// Runtime is the runtime's name, or the runtimes compared joined by
	// "=" for equivalence cases ("wasmtime=wazero").
	Runtime  string
	Status   Status
	Duration time.Duration
	// Message says why a case failed or was skipped. A failure names the
	// case and shows what was expected and what the module did.
	Message string
}

// ID is "suite/case".
func (r Result) ID() string { return r.Suite + "/" + r.Case }

func (r Result) String() string {
	s := fmt.Sprintf("%s %s [%s] (%s)", r.Status, r.ID(), r.Runtime, r.Duration.Round(time.Millisecond))
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}

// Report is the outcome of Run.
type Report struct {
	Results []Result
}

// Count returns how many results have status s.
func (r Report) Count(s Status) int {
	n := 0
	for _, res := range r.Results {
		if res.Status == s {
			n++
		}
	}
	return n
}

// Failed reports whether any case failed.
func (r Report) Failed() bool { return r.Count(Fail) > 0 }

// Failures returns the failed results.
func (r Report) Failures() []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Status == Fail {
			out = append(out, res)
		}
	}
	return out
}

// Summary is a one-line count of the results.
func (r Report) Summary() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", r.Count(Pass), r.Count(Fail), r.Count(Skip))
}

// List returns every suite with its cases, the operator cases of every
// contract included.
func List() []Suite {
	return []Suite{
		{Name: SuiteABI, Doc: "Any operator module: validation against ABI v1 (imports, exports, version), " +
			"instantiation, the golden input layouts of conformance/abi (null and empty keys, values and headers; " +
			"an empty batch), large values and many batches without a fault; every emit parses as an output batch " +
			"naming a declared output, and every state call uses a handle the host gave.",
			Cases: abiCases()},
		{Name: SuiteRuntime, Doc: "The runtime's side of the ABI, with the suite's own hand-assembled guests " +
			"(no module needed): bounds checks of every host function under hostile pointers and lengths, " +
			"return codes, statuses and set_error, traps, proc_exit, call timeouts, memory limits, and that " +
			"bytes cross the boundary unchanged.",
			Cases: runtimeCases()},
		{Name: SuiteOperator, Doc: "A module claiming a contract (--operator split|count|passthrough) gives, " +
			"batch by batch, the outputs (key, value, headers, output, partition, effective timestamp) and the final " +
			"state computed by the suite's own reference implementation, on hand-written edge cases and generated text; " +
			"failed records are re-run as the skip policy does.",
			Cases: operatorCases()},
		{Name: SuiteEquivalence, Doc: "The same module on every available runtime (at least two) yields identical " +
			"emitted bytes, emit calls, logs, final state and errors (fault kind and ABI fault detail, failed record " +
			"index and message, init error).",
			Cases: equivalenceCases()},
	}
}

// env is what a case runs with.
type env struct {
	cfg Config
	// rt is the runtime of a per-runtime case; rts all runtimes for a
	// cross-runtime case.
	rt  plugins.Runtime
	rts []plugins.Runtime
	// modules holds the user module compiled on each runtime, shared by
	// every case of a Run: compiling a large module takes seconds, and
	// a runtime need not cache a compilation that failed.
	modules *moduleCache
}

type moduleCache struct {
	mu sync.Mutex
	m  map[plugins.Runtime]compiled
}

type compiled struct {
	mod plugins.Module
	err error
}

// module compiles the user's module on rt once per Run.
func (e *env) module(ctx context.Context, rt plugins.Runtime) (plugins.Module, error) {
	e.modules.mu.Lock()
	defer e.modules.mu.Unlock()
	c, ok := e.modules.m[rt]
	if !ok {
		c.mod, c.err = rt.Compile(ctx, e.cfg.Module)
		if c.err != nil {
			c.err = compileError{c.err}
		}
		e.modules.m[rt] = c
	}
	return c.mod, c.err
}

// skipError marks a case that cannot run here; it is not a failure.
type skipError struct{ why string }

func (e skipError) Error() string { return e.why }

func skipf(format string, args ...any) error { return skipError{fmt.Sprintf(format, args...)} }

// Run runs the selected cases on every runtime of cfg and reports each.
func Run(ctx context.Context, cfg Config) Report {
	var rep Report
	add := func(r Result) {
		rep.Results = append(rep.Results, r)
		if cfg.Progress != nil {
			cfg.Progress(r)
		}
	}
	if cfg.Operator != "" && !slices.Contains(Operators, cfg.Operator) {
		add(Result{Suite: SuiteOperator, Case: cfg.Operator, Runtime: "-", Status: Fail,
			Message: fmt.Sprintf("%q is not an operator contract (use %s)", cfg.Operator, strings.Join(Operators, ", "))})
		return rep
	}
	modules := &moduleCache{m: map[plugins.Runtime]compiled{}}
	for _, s := range List() {
		for _, c := range s.Cases {
			if cfg.Filter != nil && !cfg.Filter.MatchString(c.ID()) {
				continue
			}
			if c.operator != "" && c.operator != cfg.Operator {
				continue
			}
			if c.needsModule && cfg.Module == nil {
				continue
			}
			if c.crossRuntime {
				add(runCase(ctx, c, &env{cfg: cfg, rts: cfg.Runtimes, modules: modules}, runtimeNames(cfg.Runtimes)))
				continue
			}
			for _, rt := range cfg.Runtimes {
				add(runCase(ctx, c, &env{cfg: cfg, rt: rt, modules: modules}, rt.Name()))
			}
		}
	}
	return rep
}

func runtimeNames(rts []plugins.Runtime) string {
	var names []string
	for _, rt := range rts {
		names = append(names, rt.Name())
	}
	return strings.Join(names, "=")
}

func runCase(ctx context.Context, c Case, e *env, runtime string) (res Result) {
	res = Result{Suite: c.Suite, Case: c.Name, Runtime: runtime}
	start := time.Now()
	defer func() {
		res.Duration = time.Since(start)
		if p := recover(); p != nil {
			res.Status, res.Message = Fail, fmt.Sprintf("%s: the suite panicked: %v", c.ID(), p)
		}
	}()
	err := c.run(ctx, e)
	var skip skipError
	switch {
	case err == nil:
		res.Status = Pass
	case errors.As(err, &skip):
		res.Status, res.Message = Skip, skip.why
	default:
		// The message names the case even when printed on its own.
		res.Status, res.Message = Fail, fmt.Sprintf("%s [%s]: %v", c.ID(), runtime, err)
	}
	return res
}
