// Package runtimetest is the conformance suite of plugins.Runtime: one set
// of tests that every WebAssembly runtime of sluice (plugins/wazero,
// plugins/wasmtime) must pass unchanged, so that an operator behaves the
// same whichever runtime a job names. It runs the Go test guests of
// internal/testguests and hand-assembled modules through the plugins
// interfaces only, and checks what sluice promises: byte-exact batches,
// init and record failures, captured output, deterministic clocks and
// random bytes, state calls, isolation, fault kinds and the sluice-written
// parts of their details, limits, and validation messages.
//
// A runtime's tests call Run with a function that opens the runtime:
//
//	func TestSuite(t *testing.T) {
//		runtimetest.Run(t, func(t testing.TB) plugins.Runtime { return open(t) })
//	}
//
// The package also exports the helpers a runtime's own tests and
// benchmarks need: MemHost and DiscardHost (plugins.Host implementations),
// Compile, Instantiate, Process, FaultOf, Values and NoopModule.
//
// It is a normal package (not a _test file) so that other packages can
// import it; only tests should.
package runtimetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins"
)

// Kinds of trap, the keys of RunOptions.TrapText.
const (
	// TrapUnreachable is the unreachable instruction (a Go guest executes
	// it after printing an unrecovered panic).
	TrapUnreachable = "unreachable"
	// TrapOutOfBounds is a load or store outside the guest's memory.
	TrapOutOfBounds = "out of bounds memory access"
)

// RunOptions adjust Run to a runtime. The zero value runs every
// runtime-neutral assertion.
type RunOptions struct {
	// TrapText holds, by kind of trap (TrapUnreachable, TrapOutOfBounds),
	// the runtime's own message for that trap: a trap fault's Detail must
	// then contain "<guest function>: " followed by it, e.g. wazero's
	// "sluice_process: wasm error: unreachable". Kinds without an entry
	// are checked only for the sluice-written parts of the detail.
	TrapText map[string]string
}

// suite is what every case gets.
type suite struct {
	rt   plugins.Runtime
	opts RunOptions
}

// testCase is one subtest of Run.
type testCase struct {
	name string
	run  func(s *suite, t *testing.T)
}

// cases is every case, in the order Run runs them. Names are stable: CI
// and people select cases with -run 'Suite/Name'.
var cases = []testCase{
	{"EchoRoundTripIsByteExact", (*suite).echoRoundTripIsByteExact},
	{"ParamsReachInit", (*suite).paramsReachInit},
	{"InitFailure", (*suite).initFailure},
	{"RecordFailureKeepsInstanceUsable", (*suite).recordFailureKeepsInstanceUsable},
	{"OpenFileFails", (*suite).openFileFails},
	{"StdoutStderrAndLogCaptured", (*suite).stdoutStderrAndLogCaptured},
	{"DeterministicClockAndRandom", (*suite).deterministicClockAndRandom},
	{"StateFunctions", (*suite).stateFunctions},
	{"StateCounter", (*suite).stateCounter},
	{"InstancesAreIsolated", (*suite).instancesAreIsolated},
	{"CompileTwiceReturnsCachedModule", (*suite).compileTwiceReturnsCachedModule},
	{"ModuleCloseCountsHolders", (*suite).moduleCloseCountsHolders},
	{"ModuleCloseKeepsInstances", (*suite).moduleCloseKeepsInstances},
	{"HostileGuests", (*suite).hostileGuests},
	{"TriggerParamsEchoOtherRecords", (*suite).triggerParamsEchoOtherRecords},
	{"OutOfBoundsEveryHostFunction", (*suite).outOfBoundsEveryHostFunction},
	{"StreamTimeWritesValue", (*suite).streamTimeWritesValue},
	{"StreamTimeOutOfBounds", (*suite).streamTimeOutOfBounds},
	{"OutputLimit", (*suite).outputLimit},
	{"CallerContextStopsCall", (*suite).callerContextStopsCall},
	{"MemoryLimitBelowModuleMinimum", (*suite).memoryLimitBelowModuleMinimum},
	{"MemoryLimitAllowsUpToLimit", (*suite).memoryLimitAllowsUpToLimit},
	{"BadStatusIsAnABIFault", (*suite).badStatusIsAnABIFault},
	{"HandAssembledValidModuleCompiles", (*suite).handAssembledValidModuleCompiles},
	{"ValidationOfGoGuests", (*suite).validationOfGoGuests},
	{"ValidationOfHandAssembledModules", (*suite).validationOfHandAssembledModules},
}

// Run runs the whole suite against the runtime that open returns, one
// subtest per case (named as in the cases list: "EchoRoundTripIsByteExact",
// "HostileGuests/loop", ...). open is called once, with t; every case
// compiles its guests with that runtime, so a runtime that caches compiled
// modules (as plugins.Runtime requires) compiles each guest once. Closing
// the runtime is open's business (t.Cleanup), which lets a runtime's
// tests share one runtime between Run and their own tests. At most one
// RunOptions may be given.
func Run(t *testing.T, open func(t testing.TB) plugins.Runtime, opts ...RunOptions) {
	t.Helper()
	if len(opts) > 1 {
		t.Fatalf("runtimetest.Run: %d RunOptions given, want at most 1", len(opts))
	}
	s := &suite{rt: open(t)}
	if s.rt == nil {
		t.Fatal("runtimetest.Run: open returned a nil runtime")
	}
	if len(opts) == 1 {
		s.opts = opts[0]
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(s, t) })
	}
}

// checkTrapDetail checks the detail of a trap fault of guest function fn:
// it starts with "fn: " and, if the runtime gave RunOptions.TrapText for
// kind, continues with that text.
func (s *suite) checkTrapDetail(t *testing.T, f *plugins.Fault, fn, kind string) {
	t.Helper()
	want := fn + ": "
	if text, ok := s.opts.TrapText[kind]; ok {
		want += text
	}
	if !strings.HasPrefix(f.Detail, want) {
		t.Errorf("trap detail %q does not start with %q", f.Detail, want)
	}
}

// Compile builds the Go test guest name (a directory of internal/testguests)
// and compiles it with rt, failing t if either fails.
func Compile(t testing.TB, rt plugins.Runtime, name string) plugins.Module {
	t.Helper()
	m, err := rt.Compile(context.Background(), testguests.Build(name))
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return m
}

// Instantiate compiles the Go test guest name with rt and instantiates it,
// failing t if that fails. cfg.Host defaults to NewMemHost("s") and
// cfg.Name to name+"/0". The instance is closed when t ends.
func Instantiate(t testing.TB, rt plugins.Runtime, name string, cfg plugins.InstanceConfig) plugins.Instance {
	t.Helper()
	if cfg.Host == nil {
		cfg.Host = NewMemHost("s")
	}
	if cfg.Name == "" {
		cfg.Name = name + "/0"
	}
	inst, err := Compile(t, rt, name).Instantiate(context.Background(), cfg)
	if err != nil {
		t.Fatalf("instantiate %s: %v", name, err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst
}

// Process encodes records as one input batch (package abi layout, for
// partition 3) into inst's input region and runs sluice_process over it.
// It returns what inst.Input or inst.Process returned.
func Process(ctx context.Context, inst plugins.Instance, records ...abi.Record) error {
	n := abi.BatchHeaderSize
	for i := range records {
		n += records[i].EncodedSize()
	}
	buf, err := inst.Input(ctx, n)
	if err != nil {
		return err
	}
	abi.PutBatchHeader(buf, abi.BatchHeader{Count: uint32(len(records)), Partition: 3})
	off := abi.BatchHeaderSize
	for i := range records {
		off += abi.PutRecord(buf[off:], &records[i])
	}
	return inst.Process(ctx, n)
}

// FaultOf processes one batch of records and returns the *plugins.Fault it
// must end with, failing t if it ends otherwise.
func FaultOf(t testing.TB, inst plugins.Instance, records ...abi.Record) *plugins.Fault {
	t.Helper()
	err := Process(context.Background(), inst, records...)
	var f *plugins.Fault
	if !errors.As(err, &f) {
		t.Fatalf("got %v, want a *plugins.Fault", err)
	}
	return f
}

// Values makes one record per value: record i has offset i, timestamp
// 1000+i, key "k<i mod 10>" and value vs[i].
func Values(vs ...string) []abi.Record {
	rs := make([]abi.Record, len(vs))
	for i, v := range vs {
		rs[i] = abi.Record{Offset: int64(i), Timestamp: 1000 + int64(i), Key: []byte("k" + string(rune('0'+i%10))), Value: []byte(v)}
	}
	return rs
}
