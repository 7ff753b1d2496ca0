package suites

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/inputbatch"
	"github.com/sluice-io/sluice/plugins"
)

// Function indexes of every runtime-suite guest: it imports all of
// sluice_v1 in this order, then proc_exit, then defines its three
// exports.
const (
	fnCheck uint32 = iota
	fnEmit
	fnStoreOpen
	fnStateGet
	fnStatePut
	fnStateDelete
	fnStateScan
	fnLog
	fnSetError
	fnStreamTime
	fnProcExit
	fnAlloc
	fnInit
	fnProcess
)

var guestImports = []wasmImport{
	{abi.Module, abi.FuncCheckVersion, 0, 0},
	{abi.Module, abi.FuncEmit, 2, 1},
	{abi.Module, abi.FuncStoreOpen, 2, 1},
	{abi.Module, abi.FuncStateGet, 5, 1},
	{abi.Module, abi.FuncStatePut, 5, 1},
	{abi.Module, abi.FuncStateDelete, 3, 1},
	{abi.Module, abi.FuncStateScan, 7, 1},
	{abi.Module, abi.FuncLog, 3, 0},
	{abi.Module, abi.FuncSetError, 3, 0},
	{abi.Module, abi.FuncStreamTime, 1, 1},
	{abi.WASIModule, "proc_exit", 1, 0},
}

// Guest memory layout: page 0 holds constants (from dataAt) and scratch
// buffers; the input region is allocated above the initial pages.
const (
	dataAt    = 1024  // constant data segments
	scratchAt = 8192  // a buffer the guest passes to state_get / state_scan
	bigAt     = 16384 // start of a zeroed area for long keys and messages
	pageSize  = 64 << 10
	// badPtr is far past any guest memory; badLen is a plausible length,
	// so that only the address is wrong.
	badPtr = int32(-65536) // 0xffff0000
	badLen = 16
)

// guestSpec describes a runtime-suite guest. sluice_process's locals are
// 0 (batch pointer), 1 (batch length) and 2..5 (scratch).
type guestSpec struct {
	init    code // leaves the status; nil returns 0
	process code // leaves the status; nil returns 0
	alloc   code // leaves the pointer; nil grows memory by what is asked
	pages   uint32
	data    []wasmData
	mutate  func(*wasmModule)
}

// bumpAlloc grows memory by the pages asked for and returns the first new
// byte (0 if memory cannot grow).
var bumpAlloc = code{}.get(0).i32(pageSize-1).op(opI32Add).i32(16).op(opI32ShrU).growMemory().tee(1).
	i32(-1).op(opI32Eq).op(opIf, blockI32).i32(0).op(opElse).get(1).i32(16).op(opI32Shl).op(opEnd)

func (g guestSpec) wasm() []byte {
	orZero := func(c code) code {
		if c == nil {
			return code{}.i32(0)
		}
		return c
	}
	alloc := g.alloc
	if alloc == nil {
		alloc = bumpAlloc
	}
	pages := g.pages
	if pages == 0 {
		pages = 2
	}
	m := &wasmModule{
		imports:  append([]wasmImport(nil), guestImports...),
		memPages: pages,
		funcs: []wasmFunc{
			{params: 1, results: 1, locals: 1, body: alloc},
			{params: 2, results: 1, locals: 4, body: orZero(g.init)},
			{params: 2, results: 1, locals: 4, body: orZero(g.process)},
		},
		exports: []wasmExport{
			{abi.ExportMemory, 2, 0},
			{abi.ExportAlloc, 0, fnAlloc},
			{abi.ExportInit, 0, fnInit},
			{abi.ExportProcess, 0, fnProcess},
		},
		data: g.data,
	}
	if g.mutate != nil {
		g.mutate(m)
	}
	return m.encode()
}

// logResult logs the i32 on the stack as a log level with an empty
// message: how the guests report a host function's return code.
func (c code) logResult() code { return c.i32(0).i32(0).call(fnLog) }

// logBytes logs n bytes at ptr at level.
func (c code) logBytes(level, ptr, n int32) code { return c.i32(level).i32(ptr).i32(n).call(fnLog) }

// vector is one runtime-suite case: a guest, the job around it, the
// batches it gets and what must come out.
type vector struct {
	name, doc string
	guest     guestSpec
	raw       []byte // instead of guest: a module that is not built by guestSpec
	// compiled, when set, gives the module instead of guest or raw (the
	// user's module, compiled once per Run).
	compiled func(plugins.Runtime) (plugins.Module, error)
	host     hostConfig
	limits   plugins.Limits
	params   []byte
	// batches are encoded input batches, processed in order (after a
	// fault too: the dead instance must keep failing).
	batches [][]byte
	check   func(o *vectorOutcome) error
}

// vectorOutcome is everything a vector's run did.
type vectorOutcome struct {
	compileErr error
	initErr    error
	calls      []callResult
	host       *recHost
}

// codes returns the levels of the logs with an empty message: the
// return codes the guest reported (see logResult).
func (o *vectorOutcome) codes() []int32 {
	var out []int32
	if o.host == nil {
		return nil
	}
	for _, l := range o.host.logs {
		if l.msg == "" {
			out = append(out, l.level)
		}
	}
	return out
}

func (o *vectorOutcome) describe() string {
	var b strings.Builder
	if o.compileErr != nil {
		fmt.Fprintf(&b, "compile: %s\n", describeErr(o.compileErr))
		return b.String()
	}
	fmt.Fprintf(&b, "instantiate: %s\n", describeErr(o.initErr))
	for i, c := range o.calls {
		fmt.Fprintf(&b, "batch %d: %s; emit calls %d:", i, describeErr(c.err), c.emitCalls)
		for _, e := range c.emits {
			b.WriteString(" " + digest(e))
		}
		b.WriteString("\n")
	}
	if o.host != nil {
		for _, l := range o.host.logs {
			fmt.Fprintf(&b, "log %d %s\n", l.level, digest([]byte(l.msg)))
		}
		fmt.Fprintf(&b, "state %s\n", stateString(o.host.state()))
	}
	return b.String()
}

func runVector(ctx context.Context, rt plugins.Runtime, v vector) *vectorOutcome {
	o := &vectorOutcome{}
	var mod plugins.Module
	var err error
	switch {
	case v.compiled != nil:
		mod, err = v.compiled(rt)
	case v.raw != nil:
		mod, err = rt.Compile(ctx, v.raw)
	default:
		mod, err = rt.Compile(ctx, v.guest.wasm())
	}
	if err != nil {
		o.compileErr = err
		return o
	}
	h := newRecHost(v.host)
	o.host = h
	h.beginCall()
	inst, err := mod.Instantiate(ctx, plugins.InstanceConfig{Name: "conformance/" + v.name, Params: v.params, Limits: v.limits, Host: h})
	h.endCall(false)
	if err != nil {
		o.initErr = err
		return o
	}
	s := &session{host: h, inst: inst}
	defer s.close()
	for _, b := range v.batches {
		o.calls = append(o.calls, s.process(ctx, b))
	}
	return o
}

// oneRecord is a batch of one record with value v.
func oneRecord(v string) []byte {
	return inputbatch.Encode(0, []abi.Record{{Offset: 1, Timestamp: 1000, Value: []byte(v)}})
}

func faultOf(err error) *plugins.Fault {
	var f *plugins.Fault
	if errors.As(err, &f) {
		return f
	}
	return nil
}

// wantFault checks that batch i ended with a fault of kind whose detail
// contains every one of details.
func wantFault(o *vectorOutcome, i int, kind plugins.FaultKind, details ...string) error {
	if o.compileErr != nil || o.initErr != nil {
		return fmt.Errorf("want batch %d to end with a %s fault; got:\n%s", i, kind, o.describe())
	}
	f := faultOf(o.calls[i].err)
	if f == nil || f.Kind != kind {
		return fmt.Errorf("want batch %d to end with a %s fault, got %v", i, kind, o.calls[i].err)
	}
	for _, d := range details {
		if !strings.Contains(f.Detail, d) {
			return fmt.Errorf("want the %s fault's detail to contain %q, got %q", kind, d, f.Detail)
		}
	}
	return nil
}

func wantOK(o *vectorOutcome) error {
	if o.compileErr != nil || o.initErr != nil {
		return fmt.Errorf("want every call to succeed; got:\n%s", o.describe())
	}
	for i, c := range o.calls {
		if c.err != nil {
			return fmt.Errorf("batch %d: want success, got %v", i, c.err)
		}
	}
	return nil
}

func wantCodes(o *vectorOutcome, want ...int32) error {
	if err := wantOK(o); err != nil {
		return err
	}
	if got := o.codes(); fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("want the host functions to return %s, got %s", codeNames(want), codeNames(got))
	}
	return nil
}

func codeNames(cs []int32) string {
	var s []string
	for _, c := range cs {
		if c < 0 {
			s = append(s, fmt.Sprintf("%d (%v)", c, abi.Code(c)))
		} else {
			s = append(s, fmt.Sprint(c))
		}
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func wantValidation(o *vectorOutcome, substr string) error {
	var ve *plugins.ValidationError
	if !errors.As(o.compileErr, &ve) {
		return fmt.Errorf("want the runtime to refuse the module with a validation error naming %q, got %v", substr, o.compileErr)
	}
	if !strings.Contains(ve.Error(), substr) {
		return fmt.Errorf("want the validation error to name %q, got %q", substr, ve.Error())
	}
	return nil
}

// oobCall is a host call with one out-of-bounds pointer argument.
type oobCall struct {
	fn     string // the function and argument as named in the fault
	call   code
	result bool // the function returns an i32 to drop
}

func oobCalls() []oobCall {
	ok := int32(scratchAt)
	c := code{}
	return []oobCall{
		{"emit: batch", c.i32(badPtr).i32(badLen).call(fnEmit), true},
		{"store_open: name", c.i32(badPtr).i32(badLen).call(fnStoreOpen), true},
		{"state_get: key", c.i32(0).i32(badPtr).i32(badLen).i32(ok).i32(8).call(fnStateGet), true},
		{"state_get: value buffer", c.i32(0).i32(ok).i32(1).i32(badPtr).i32(badLen).call(fnStateGet), true},
		{"state_put: key", c.i32(0).i32(badPtr).i32(badLen).i32(ok).i32(1).call(fnStatePut), true},
		{"state_put: value", c.i32(0).i32(ok).i32(1).i32(badPtr).i32(badLen).call(fnStatePut), true},
		{"state_delete: key", c.i32(0).i32(badPtr).i32(badLen).call(fnStateDelete), true},
		{"state_scan: start key", c.i32(0).i32(badPtr).i32(badLen).i32(ok).i32(1).i32(ok).i32(64).call(fnStateScan), true},
		{"state_scan: end key", c.i32(0).i32(ok).i32(1).i32(badPtr).i32(badLen).i32(ok).i32(64).call(fnStateScan), true},
		{"state_scan: result buffer", c.i32(0).i32(ok).i32(1).i32(ok).i32(1).i32(badPtr).i32(badLen).call(fnStateScan), true},
		{"log: message", c.i32(0).i32(badPtr).i32(badLen).call(fnLog), false},
		{"set_error: message", c.i32(0).i32(badPtr).i32(badLen).call(fnSetError), false},
	}
}

// storeOpenS opens store "s" (at dataAt) into local 2.
var storeOpenS = code{}.i32(dataAt).i32(1).call(fnStoreOpen).set(2)

var dataS = []wasmData{{offset: dataAt, bytes: []byte("s")}}

func runtimeVectors() []vector {
	var vs []vector
	ok := guestSpec{}
	vs = append(vs,
		vector{name: "validate/minimal", doc: "A minimal valid guest compiles, instantiates and processes a batch.",
			guest: ok, batches: [][]byte{oneRecord("x")}, check: wantOK},
		vector{name: "validate/no-version-import", doc: "A module that does not import check_abi_version_1 is refused, naming it.",
			guest: guestSpec{mutate: func(m *wasmModule) { dropImport(m, abi.FuncCheckVersion) }},
			check: func(o *vectorOutcome) error { return wantValidation(o, abi.FuncCheckVersion) }},
		vector{name: "validate/abi-version-2", doc: "A module built for another ABI version (importing check_abi_version_2) is refused, naming the import.",
			guest: guestSpec{mutate: func(m *wasmModule) { m.imports[fnCheck].name = "check_abi_version_2" }},
			check: func(o *vectorOutcome) error { return wantValidation(o, "check_abi_version_2") }},
		vector{name: "validate/sluice-v2-module", doc: "A module importing from sluice_v2 is refused, naming the module.",
			guest: guestSpec{mutate: func(m *wasmModule) { m.imports[fnCheck].module = "sluice_v2" }},
			check: func(o *vectorOutcome) error { return wantValidation(o, "sluice_v2") }},
		vector{name: "validate/unknown-host-function", doc: "Importing a sluice_v1 function that ABI v1 does not have is refused, naming it.",
			guest: guestSpec{mutate: func(m *wasmModule) {
				m.imports = append(m.imports[:fnProcExit:fnProcExit], wasmImport{abi.Module, "teleport", 0, 0}, m.imports[fnProcExit])
				shiftFuncs(m, 1)
			}},
			check: func(o *vectorOutcome) error { return wantValidation(o, "teleport") }},
		vector{name: "validate/bad-signature", doc: "Importing emit with the wrong signature is refused, naming it.",
			guest: guestSpec{mutate: func(m *wasmModule) { m.imports[fnEmit].params = 1 }},
			check: func(o *vectorOutcome) error { return wantValidation(o, "emit") }},
		vector{name: "validate/missing-export", doc: "A module without sluice_process is refused, naming the export.",
			guest: guestSpec{mutate: func(m *wasmModule) { m.exports = m.exports[:3] }},
			check: func(o *vectorOutcome) error { return wantValidation(o, abi.ExportProcess) }},
		vector{name: "validate/command-module", doc: "A module exporting _start (a WASI command) is refused.",
			guest: guestSpec{mutate: func(m *wasmModule) { m.exports = append(m.exports, wasmExport{abi.ExportStart, 0, fnInit}) }},
			check: func(o *vectorOutcome) error { return wantValidation(o, abi.ExportStart) }},
		vector{name: "validate/imported-memory", doc: "A module that imports its memory is refused.",
			guest: guestSpec{mutate: func(m *wasmModule) {
				m.importMemory = true
				m.exports = m.exports[1:]
			}},
			check: func(o *vectorOutcome) error { return wantValidation(o, "memory") }},
		vector{name: "validate/not-wasm", doc: "Bytes that are not WebAssembly are refused with an error, not a crash.",
			raw: []byte("\x00asm but not really"),
			check: func(o *vectorOutcome) error {
				if o.compileErr == nil {
					return errors.New("want the runtime to refuse bytes that are not a module")
				}
				return nil
			}},
	)

	for _, c := range oobCalls() {
		body := c.call
		if c.result {
			body = body.op(opDrop)
		}
		vs = append(vs, vector{
			name:    "bounds/" + strings.NewReplacer(": ", "-", " ", "-").Replace(c.fn),
			doc:     fmt.Sprintf("%s at pointer 0xffff0000 (past the end of memory) traps the guest with an ABI fault naming the function, the argument and the range.", c.fn),
			guest:   guestSpec{process: body.i32(0)},
			host:    hostConfig{stores: []string{"s"}},
			batches: [][]byte{oneRecord("x"), oneRecord("y")},
			check: func(o *vectorOutcome) error {
				if err := wantFault(o, 0, plugins.FaultABI, c.fn+" [ptr 0xffff0000, len 16] is outside guest memory"); err != nil {
					return err
				}
				if o.calls[1].err == nil || faultOf(o.calls[1].err) == nil {
					return fmt.Errorf("a faulted instance must stay dead: the next batch got %v", o.calls[1].err)
				}
				return nil
			},
		})
	}
	vs = append(vs,
		vector{name: "bounds/length-past-end", doc: "emit with a valid pointer and length 0x7fffffff traps with an ABI fault giving the length.",
			guest:   guestSpec{process: code{}.i32(scratchAt).i32(0x7fffffff).call(fnEmit).op(opDrop).i32(0)},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				return wantFault(o, 0, plugins.FaultABI, "emit: batch [ptr 0x2000, len 2147483647] is outside guest memory")
			}},
		vector{name: "bounds/negative-length", doc: "A negative length (-1) is read as unsigned and traps with an ABI fault.",
			guest:   guestSpec{process: code{}.i32(0).i32(scratchAt).i32(-1).call(fnLog).i32(0)},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				return wantFault(o, 0, plugins.FaultABI, "log: message [ptr 0x2000, len 4294967295] is outside guest memory")
			}},
		vector{name: "bounds/pointer-overflow", doc: "pointer + length overflowing 32 bits (0xffffffff + 2) traps rather than wrapping around.",
			guest:   guestSpec{process: code{}.i32(-1).i32(2).call(fnEmit).op(opDrop).i32(0)},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				return wantFault(o, 0, plugins.FaultABI, "emit: batch [ptr 0xffffffff, len 2] is outside guest memory")
			}},
		vector{name: "bounds/last-byte", doc: "A range ending exactly at the end of memory is in bounds (log of the last byte).",
			guest:   guestSpec{process: code{}.i32(7).memorySize().i32(16).op(opI32Shl).i32(1).op(opI32Sub).i32(1).call(fnLog).i32(0)},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				if err := wantOK(o); err != nil {
					return err
				}
				if len(o.host.logs) != 1 || o.host.logs[0] != (logEntry{7, "\x00"}) {
					return fmt.Errorf("want one log at level 7 with the byte 0, got %v", o.host.logs)
				}
				return nil
			}},
		vector{name: "bounds/stream-time-out", doc: "stream_time with out_ptr 0xffff0000 traps the guest with an ABI fault naming the function, the argument and the 8-byte range.",
			guest:   guestSpec{process: code{}.i32(badPtr).call(fnStreamTime).op(opDrop).i32(0)},
			batches: [][]byte{oneRecord("x"), oneRecord("y")},
			check: func(o *vectorOutcome) error {
				if err := wantFault(o, 0, plugins.FaultABI, "stream_time: out [ptr 0xffff0000, len 8] is outside guest memory"); err != nil {
					return err
				}
				if o.calls[1].err == nil || faultOf(o.calls[1].err) == nil {
					return fmt.Errorf("a faulted instance must stay dead: the next batch got %v", o.calls[1].err)
				}
				return nil
			}},
		vector{name: "bounds/stream-time-straddles-end", doc: "stream_time writing 8 bytes that start 7 bytes before the end of memory traps with an ABI fault, even though out_ptr itself is in bounds.",
			guest:   guestSpec{process: code{}.memorySize().i32(16).op(opI32Shl).i32(7).op(opI32Sub).call(fnStreamTime).op(opDrop).i32(0)},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				// Memory has grown for the input region: the pointer is 7
				// bytes before its end, whatever its size.
				if err := wantFault(o, 0, plugins.FaultABI, "stream_time: out [ptr 0x", "ff9, len 8] is outside guest memory"); err != nil {
					return err
				}
				f := faultOf(o.calls[0].err)
				var ptr, size uint64
				if _, err := fmt.Sscanf(f.Detail, "stream_time: out [ptr %v, len 8] is outside guest memory (%d bytes)", &ptr, &size); err != nil || ptr != size-7 {
					return fmt.Errorf("want the fault to name a pointer 7 bytes before the end of memory, got %q", f.Detail)
				}
				return nil
			}},
		vector{name: "bounds/stream-time-last-bytes", doc: "stream_time into the last 8 bytes of memory is in bounds and writes the value there.",
			guest: guestSpec{process: code{}.memorySize().i32(16).op(opI32Shl).i32(8).op(opI32Sub).call(fnStreamTime).logResult().
				i32(1).memorySize().i32(16).op(opI32Shl).i32(8).op(opI32Sub).i32(8).call(fnLog).i32(0)},
			host:    hostConfig{streamTimes: []int64{-1, 0x0102030405060708}},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				if err := wantCodes(o, 0); err != nil {
					return err
				}
				if want := "\x08\x07\x06\x05\x04\x03\x02\x01"; len(o.host.logs) != 2 || o.host.logs[1].msg != want {
					return fmt.Errorf("the guest logged %q, want the last 8 bytes of memory to be %q", o.host.logs, want)
				}
				return nil
			}},
		vector{name: "emit/malformed", doc: "emit of an in-bounds batch that does not parse (10 zero bytes) traps with an ABI fault.",
			guest:   guestSpec{process: code{}.i32(scratchAt).i32(10).call(fnEmit).op(opDrop).i32(0)},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				return wantFault(o, 0, plugins.FaultABI, "emit: malformed output batch")
			}},
		vector{name: "emit/golden-output-batch", doc: "The output_batch.hex vector emitted by a guest reaches the host byte for byte, and emit returns OK.",
			guest: guestSpec{data: []wasmData{{dataAt, goldenOutputBatch()}},
				process: code{}.i32(dataAt).i32(int32(len(goldenOutputBatch()))).call(fnEmit).logResult().i32(0)},
			host:    hostConfig{outputs: 2},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				if err := wantCodes(o, 0); err != nil {
					return err
				}
				if len(o.calls[0].emits) != 1 || !bytes.Equal(o.calls[0].emits[0], goldenOutputBatch()) {
					return fmt.Errorf("the host received %x, want %x", o.calls[0].emits, goldenOutputBatch())
				}
				return nil
			}},
		vector{name: "emit/host-code-passes-through", doc: "A code the host returns from emit (ErrBadOutput for output 1 of a job with 1 output) reaches the guest unchanged.",
			guest: guestSpec{data: []wasmData{{dataAt, goldenOutputBatch()}},
				process: code{}.i32(dataAt).i32(int32(len(goldenOutputBatch()))).call(fnEmit).logResult().i32(0)},
			batches: [][]byte{oneRecord("x")},
			check:   func(o *vectorOutcome) error { return wantCodes(o, int32(abi.ErrBadOutput)) }},
		vector{name: "emit/empty-batch", doc: "emit of zero bytes (no outputs) is valid and returns OK.",
			guest:   guestSpec{process: code{}.i32(scratchAt).i32(0).call(fnEmit).logResult().i32(0)},
			batches: [][]byte{oneRecord("x")},
			check:   func(o *vectorOutcome) error { return wantCodes(o, 0) }},
		vector{name: "emit/output-limit", doc: "emit past limits.max_output_bytes (1000) traps with an ABI fault naming the limit; 900 bytes pass.",
			guest: guestSpec{data: []wasmData{{dataAt, bigOutput(900)}},
				process: code{}.get(0).load(abi.BatchHeaderSize+24).i32(1).op(opI32Eq).op(opIf, blockVoid).
					i32(dataAt).i32(900).call(fnEmit).op(opDrop).i32(dataAt).i32(900).call(fnEmit).op(opDrop).
					op(opElse).i32(dataAt).i32(900).call(fnEmit).op(opDrop).op(opEnd).i32(0)},
			limits:  plugins.Limits{MaxOutputBytes: 1000},
			batches: [][]byte{oneRecord(""), oneRecord("x")},
			check: func(o *vectorOutcome) error {
				if o.compileErr != nil || o.initErr != nil || o.calls[0].err != nil {
					return fmt.Errorf("900 bytes under a 1000-byte limit must pass:\n%s", o.describe())
				}
				return wantFault(o, 1, plugins.FaultABI, "over the limit of 1000 bytes")
			}},
		vector{name: "init/not-allowed", doc: "In sluice_init, emit, state_put and state_delete return ErrNotAllowed (-7); store_open works.",
			guest: guestSpec{data: dataS, init: storeOpenS.
				i32(scratchAt).i32(0).call(fnEmit).logResult().
				get(2).i32(dataAt).i32(1).i32(dataAt).i32(1).call(fnStatePut).logResult().
				get(2).i32(dataAt).i32(1).call(fnStateDelete).logResult().
				get(2).logResult().i32(0)},
			host:  hostConfig{stores: []string{"s"}},
			check: func(o *vectorOutcome) error { return wantCodes(o, -7, -7, -7, 0) }},
		vector{name: "init/params", doc: "sluice_init receives the parameters byte for byte (logged back by the guest).",
			guest:  guestSpec{init: code{}.i32(0).get(0).get(1).call(fnLog).i32(0)},
			params: []byte(`{"k":"v","n":[1,2,3]}`),
			check: func(o *vectorOutcome) error {
				if err := wantOK(o); err != nil {
					return err
				}
				if len(o.host.logs) != 1 || o.host.logs[0].msg != `{"k":"v","n":[1,2,3]}` {
					return fmt.Errorf("want the guest to see the parameters, it logged %q", o.host.logs)
				}
				return nil
			}},
		vector{name: "init/failure", doc: "sluice_init returning 3 after set_error(-1, msg) is an init error with status 3 and the message.",
			guest: guestSpec{data: []wasmData{{dataAt, []byte("bad parameters")}},
				init: code{}.i32(-1).i32(dataAt).i32(14).call(fnSetError).i32(3)},
			check: func(o *vectorOutcome) error {
				var ie *plugins.InitError
				if !errors.As(o.initErr, &ie) || ie.Status != 3 || ie.Message != "bad parameters" {
					return fmt.Errorf(`want an init error with status 3 and message "bad parameters", got %v`, o.initErr)
				}
				return nil
			}},
		vector{name: "init/alloc-zero", doc: "sluice_alloc returning 0 fails the instance with an ABI fault.",
			guest: guestSpec{alloc: code{}.i32(0)},
			check: func(o *vectorOutcome) error {
				if f := faultOf(o.initErr); f == nil || f.Kind != plugins.FaultABI || !strings.Contains(f.Detail, "returned 0") {
					return fmt.Errorf("want an ABI fault saying sluice_alloc returned 0, got %v", o.initErr)
				}
				return nil
			}},
		vector{name: "init/alloc-out-of-bounds", doc: "sluice_alloc returning a region past the end of memory fails the instance with an ABI fault.",
			guest: guestSpec{alloc: code{}.i32(badPtr)},
			check: func(o *vectorOutcome) error {
				if f := faultOf(o.initErr); f == nil || f.Kind != plugins.FaultABI || !strings.Contains(f.Detail, "outside guest memory") {
					return fmt.Errorf("want an ABI fault saying the region is outside guest memory, got %v", o.initErr)
				}
				return nil
			}},
		vector{name: "input/golden-batch", doc: "The input_batch.hex vector reaches sluice_process byte for byte (the guest logs what it got).",
			guest:   guestSpec{process: code{}.i32(0).get(0).get(1).call(fnLog).i32(0)},
			batches: [][]byte{goldenInputBatch(), goldenEmptyBatch()},
			check: func(o *vectorOutcome) error {
				if err := wantOK(o); err != nil {
					return err
				}
				if len(o.host.logs) != 2 || o.host.logs[0].msg != string(goldenInputBatch()) || o.host.logs[1].msg != string(goldenEmptyBatch()) {
					return fmt.Errorf("the guest saw %q, want the golden batches", o.host.logs)
				}
				return nil
			}},
		vector{name: "input/region-regrows", doc: "A batch larger than the input region makes the host call sluice_alloc again; the guest sees the whole batch.",
			guest:   guestSpec{process: code{}.get(1).logResult().i32(0)},
			batches: [][]byte{oneRecord("x"), oneRecord(strings.Repeat("v", 300<<10)), oneRecord("y")},
			check: func(o *vectorOutcome) error {
				return wantCodes(o, int32(len(oneRecord("x"))), int32(len(oneRecord(strings.Repeat("v", 300<<10)))), int32(len(oneRecord("y"))))
			}},
		vector{name: "state/codes", doc: "store_open of an unknown or over-long name returns ErrBadStore; state_get returns ErrNotFound for a missing key, ErrBadStore for an unknown handle, ErrLimit for a key over 64 KiB; state_put ErrLimit for a key over 64 KiB or a value over 8 MiB.",
			guest: guestSpec{pages: 130, data: []wasmData{{dataAt, []byte("s?")}}, process: code{}.
				i32(dataAt).i32(2).call(fnStoreOpen).logResult().
				i32(bigAt).i32(abi.MaxStoreName + 1).call(fnStoreOpen).logResult().
				i32(dataAt).i32(1).call(fnStoreOpen).set(2).
				get(2).i32(dataAt).i32(1).i32(scratchAt).i32(8).call(fnStateGet).logResult().
				i32(99).i32(dataAt).i32(1).i32(scratchAt).i32(8).call(fnStateGet).logResult().
				get(2).i32(bigAt).i32(abi.MaxKeySize + 1).i32(scratchAt).i32(8).call(fnStateGet).logResult().
				get(2).i32(bigAt).i32(abi.MaxKeySize + 1).i32(dataAt).i32(1).call(fnStatePut).logResult().
				get(2).i32(dataAt).i32(1).i32(bigAt).i32(abi.MaxValueSize + 1).call(fnStatePut).logResult().
				get(2).i32(bigAt).i32(abi.MaxKeySize + 1).call(fnStateDelete).logResult().
				i32(0)},
			host:    hostConfig{stores: []string{"s"}},
			batches: [][]byte{oneRecord("x")},
			check:   func(o *vectorOutcome) error { return wantCodes(o, -3, -3, -1, -3, -6, -6, -6, -6) }},
		vector{name: "state/get-buffer-protocol", doc: "state_get of a 5-byte value returns 5 and writes nothing into a 4-byte buffer, then writes it into a 5-byte one; an empty value is found with length 0.",
			guest: guestSpec{data: []wasmData{{dataAt, []byte("s")}, {dataAt + 16, []byte("e")}}, process: storeOpenS.
				get(2).i32(dataAt).i32(1).i32(scratchAt).i32(4).call(fnStateGet).logResult().
				i32(1).i32(scratchAt).i32(8).call(fnLog).
				get(2).i32(dataAt).i32(1).i32(scratchAt).i32(5).call(fnStateGet).logResult().
				i32(2).i32(scratchAt).i32(8).call(fnLog).
				get(2).i32(dataAt + 16).i32(1).i32(scratchAt).i32(8).call(fnStateGet).logResult().
				i32(0)},
			host:    hostConfig{stores: []string{"s"}, state: map[string]map[string]string{"s": {"s": "hello", "e": ""}}},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				if err := wantCodes(o, 5, 5, 0); err != nil {
					return err
				}
				want := []logEntry{{5, ""}, {1, "\x00\x00\x00\x00\x00\x00\x00\x00"}, {5, ""}, {2, "hello\x00\x00\x00"}, {0, ""}}
				if fmt.Sprint(o.host.logs) != fmt.Sprint(want) {
					return fmt.Errorf("buffer contents: got %q, want %q", o.host.logs, want)
				}
				return nil
			}},
		vector{name: "state/put-delete-commit", doc: "state_put and state_delete of a successful call reach the host's store (an empty value is a value).",
			guest: guestSpec{data: []wasmData{{dataAt, []byte("s")}, {dataAt + 16, []byte("kv")}}, process: storeOpenS.
				get(2).i32(dataAt + 16).i32(1).i32(dataAt + 17).i32(1).call(fnStatePut).logResult().
				get(2).i32(dataAt).i32(1).i32(dataAt).i32(0).call(fnStatePut).logResult().
				get(2).i32(dataAt + 17).i32(1).call(fnStateDelete).logResult().
				i32(0)},
			host:    hostConfig{stores: []string{"s"}, state: map[string]map[string]string{"s": {"v": "old"}}},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				if err := wantCodes(o, 0, 0, 0); err != nil {
					return err
				}
				if got := fmt.Sprint(o.host.state()); got != "map[s:map[k:v s:]]" {
					return fmt.Errorf("store after the call: %s, want map[s:map[k:v s:]]", got)
				}
				return nil
			}},
		vector{name: "state/scan-golden", doc: "state_scan over a store holding the scan_result.hex entries writes exactly that vector and returns its length; the next page is empty.",
			guest: guestSpec{data: []wasmData{{dataAt, []byte("s")}, {dataAt + 16, []byte("c\x01")}}, process: storeOpenS.
				get(2).i32(scratchAt).i32(0).i32(scratchAt).i32(0).i32(scratchAt).i32(256).call(fnStateScan).tee(3).logResult().
				i32(1).i32(scratchAt).get(3).call(fnLog).
				get(2).i32(dataAt + 16).i32(2).i32(scratchAt).i32(0).i32(scratchAt).i32(256).call(fnStateScan).logResult().
				i32(0)},
			host:    hostConfig{stores: []string{"s"}, state: map[string]map[string]string{"s": goldenScanState()}},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				golden := goldenScanResult()
				if err := wantCodes(o, int32(len(golden)), 0); err != nil {
					return err
				}
				if o.host.logs[1].msg != string(golden) {
					return fmt.Errorf("scan result %x, want %x", o.host.logs[1].msg, golden)
				}
				return nil
			}},
		vector{name: "state/scan-buffer-too-small", doc: "state_scan whose first entry does not fit returns ErrBufferTooSmall and writes the entry's size (8 + key + value) at buf_ptr.",
			guest: guestSpec{data: dataS, process: storeOpenS.
				get(2).i32(scratchAt).i32(0).i32(scratchAt).i32(0).i32(scratchAt).i32(4).call(fnStateScan).logResult().
				i32(scratchAt).load(0).logResult().
				i32(0)},
			host:    hostConfig{stores: []string{"s"}, state: map[string]map[string]string{"s": {"key": "value"}}},
			batches: [][]byte{oneRecord("x")},
			check:   func(o *vectorOutcome) error { return wantCodes(o, int32(abi.ErrBufferTooSmall), 16) }},
		vector{name: "stream-time/values", doc: "stream_time returns OK and writes the host's stream time as an i64 little-endian at out_ptr: in sluice_init (42) and per batch (-1: none yet, 0, 1700000000000, the largest i64); it does not change within a call.",
			guest: guestSpec{
				init: code{}.i32(scratchAt).call(fnStreamTime).logResult().logBytes(1, scratchAt, 8).i32(0),
				process: code{}.i32(scratchAt).call(fnStreamTime).logResult().logBytes(1, scratchAt, 8).
					i32(scratchAt+8).call(fnStreamTime).op(opDrop).logBytes(2, scratchAt+8, 8).i32(0)},
			host:    hostConfig{streamTimes: []int64{42, -1, 0, 1700000000000, 1<<63 - 1}},
			batches: [][]byte{oneRecord("a"), oneRecord("b"), oneRecord("c"), oneRecord("d")},
			check: func(o *vectorOutcome) error {
				if err := wantCodes(o, 0, 0, 0, 0, 0); err != nil {
					return err
				}
				var got []int64
				for _, l := range o.host.logs {
					if l.level == 1 || l.level == 2 {
						if len(l.msg) != 8 {
							return fmt.Errorf("want 8 bytes written, got %q", l.msg)
						}
						got = append(got, int64(binary.LittleEndian.Uint64([]byte(l.msg))))
					}
				}
				want := []int64{42, -1, -1, 0, 0, 1700000000000, 1700000000000, 1<<63 - 1, 1<<63 - 1}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					return fmt.Errorf("stream_time wrote %v, want %v", got, want)
				}
				return nil
			}},
		vector{name: "status/record-failed", doc: "set_error(0, msg) then status 1 is a record error for record 0 with the message; the instance stays usable and the failed call's emits are dropped.",
			guest: guestSpec{data: []wasmData{{dataAt, []byte("no good")}, {dataAt + 16, bigOutput(0)}}, process: code{}.
				i32(dataAt+16).i32(abi.OutputFixedSize).call(fnEmit).op(opDrop).
				get(0).load(abi.BatchHeaderSize+24).i32(1).op(opI32Eq).op(opIf, blockI32).
				i32(0).i32(dataAt).i32(7).call(fnSetError).i32(1).op(opElse).i32(0).op(opEnd)},
			batches: [][]byte{oneRecord("x"), oneRecord("")},
			check: func(o *vectorOutcome) error {
				var re *plugins.RecordError
				if o.compileErr != nil || o.initErr != nil || !errors.As(o.calls[0].err, &re) || re.Index != 0 || re.Message != "no good" {
					return fmt.Errorf(`want a record error for record 0 with message "no good":\n%s`, o.describe())
				}
				if len(o.calls[0].emits) != 0 {
					return errors.New("the failed call's emits were kept")
				}
				if o.calls[1].err != nil || len(o.calls[1].emits) != 1 {
					return fmt.Errorf("the instance must stay usable after a record error: %v", o.calls[1].err)
				}
				return nil
			}},
		vector{name: "status/error-message-truncated", doc: "A set_error message over 4 KiB is truncated to 4096 bytes.",
			guest:   guestSpec{process: code{}.i32(0).i32(bigAt).i32(abi.MaxErrorMessage + 100).call(fnSetError).i32(1)},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				var re *plugins.RecordError
				if o.compileErr != nil || o.initErr != nil || !errors.As(o.calls[0].err, &re) || len(re.Message) != abi.MaxErrorMessage {
					return fmt.Errorf("want a record error with a %d-byte message:\n%s", abi.MaxErrorMessage, o.describe())
				}
				return nil
			}},
		vector{name: "status/log-truncated", doc: "A log message over 16 KiB is truncated to 16384 bytes, at the level given.",
			guest:   guestSpec{process: code{}.i32(8).i32(bigAt).i32(abi.MaxLogMessage + 100).call(fnLog).i32(0)},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				if err := wantOK(o); err != nil {
					return err
				}
				if len(o.host.logs) != 1 || o.host.logs[0].level != 8 || len(o.host.logs[0].msg) != abi.MaxLogMessage {
					return fmt.Errorf("want one level-8 log of %d bytes, got %d logs", abi.MaxLogMessage, len(o.host.logs))
				}
				return nil
			}},
		vector{name: "status/failed-without-set-error", doc: "Status 1 without set_error is an ABI fault.",
			guest:   guestSpec{process: code{}.i32(1)},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				return wantFault(o, 0, plugins.FaultABI, "without calling set_error")
			}},
		vector{name: "status/set-error-index-outside-batch", doc: "Status 1 with a set_error index outside the batch is an ABI fault.",
			guest:   guestSpec{process: code{}.i32(5).i32(scratchAt).i32(1).call(fnSetError).i32(1)},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				return wantFault(o, 0, plugins.FaultABI, "index 5, outside the batch of 1 records")
			}},
		vector{name: "status/unknown-status", doc: "A status other than 0 and 1 from sluice_process is an ABI fault naming it.",
			guest:   guestSpec{process: code{}.i32(2)},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				return wantFault(o, 0, plugins.FaultABI, "sluice_process returned status 2")
			}},
		vector{name: "fault/unreachable", doc: "unreachable in sluice_process is a trap fault; the instance stays dead.",
			guest:   guestSpec{process: code{}.op(opUnreachable)},
			batches: [][]byte{oneRecord("x"), oneRecord("y")},
			check: func(o *vectorOutcome) error {
				if err := wantFault(o, 0, plugins.FaultTrap, "sluice_process"); err != nil {
					return err
				}
				if faultOf(o.calls[1].err) == nil {
					return fmt.Errorf("a faulted instance must stay dead: got %v", o.calls[1].err)
				}
				return nil
			}},
		vector{name: "fault/memory-access", doc: "A load past the end of memory is a trap fault.",
			guest:   guestSpec{process: code{}.i32(badPtr).load(0)},
			batches: [][]byte{oneRecord("x")},
			check:   func(o *vectorOutcome) error { return wantFault(o, 0, plugins.FaultTrap, "sluice_process") }},
		vector{name: "fault/proc-exit", doc: "proc_exit(3) is an exit fault with code 3.",
			guest:   guestSpec{process: code{}.i32(3).call(fnProcExit).i32(0)},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				if err := wantFault(o, 0, plugins.FaultExit); err != nil {
					return err
				}
				if f := faultOf(o.calls[0].err); f.ExitCode != 3 {
					return fmt.Errorf("exit code %d, want 3", f.ExitCode)
				}
				return nil
			}},
		vector{name: "fault/timeout", doc: "An endless loop is stopped by limits.call_timeout (200ms) with a timeout fault.",
			guest:   guestSpec{process: code{}.op(opLoop, blockVoid, opBr, 0, opEnd).i32(0)},
			limits:  plugins.Limits{CallTimeout: 200 * time.Millisecond},
			batches: [][]byte{oneRecord("x")},
			check:   func(o *vectorOutcome) error { return wantFault(o, 0, plugins.FaultTimeout) }},
		vector{name: "fault/timeout-in-init", doc: "An endless loop in sluice_init is stopped by the call timeout with a timeout fault.",
			guest:  guestSpec{init: code{}.op(opLoop, blockVoid, opBr, 0, opEnd).i32(0)},
			limits: plugins.Limits{CallTimeout: 200 * time.Millisecond},
			check: func(o *vectorOutcome) error {
				if f := faultOf(o.initErr); f == nil || f.Kind != plugins.FaultTimeout {
					return fmt.Errorf("want a timeout fault from instantiation, got %v", o.initErr)
				}
				return nil
			}},
		vector{name: "fault/memory-limit", doc: "memory.grow past limits.memory (32 MiB) returns -1 (the guest logs it), and the trap that follows is a memory-limit fault.",
			guest:   guestSpec{process: code{}.i32(1024).growMemory().logResult().op(opUnreachable)},
			limits:  plugins.Limits{MemoryBytes: 32 << 20},
			batches: [][]byte{oneRecord("x")},
			check: func(o *vectorOutcome) error {
				if err := wantFault(o, 0, plugins.FaultMemory, "over the limit of 33554432 bytes"); err != nil {
					return err
				}
				if got := o.codes(); len(got) != 1 || got[0] != -1 {
					return fmt.Errorf("memory.grow returned %v to the guest, want -1", got)
				}
				return nil
			}},
		vector{name: "fault/initial-memory-over-limit", doc: "A module whose initial memory (4 MiB) exceeds limits.memory (1 MiB) fails to start with a memory-limit fault.",
			guest:  guestSpec{pages: 64},
			limits: plugins.Limits{MemoryBytes: 1 << 20},
			check: func(o *vectorOutcome) error {
				if f := faultOf(o.initErr); f == nil || f.Kind != plugins.FaultMemory {
					return fmt.Errorf("want a memory-limit fault from instantiation, got %v", o.initErr)
				}
				return nil
			}},
	)
	return vs
}

// dropImport removes an import and renumbers the calls to the functions
// after it.
func dropImport(m *wasmModule, fn string) {
	for i, im := range m.imports {
		if im.name == fn {
			m.imports = append(m.imports[:i:i], m.imports[i+1:]...)
			shiftFuncs(m, -1)
			return
		}
	}
}

// shiftFuncs renumbers the exports of defined functions after the import
// count changed by d. The guests' bodies only call imports before the
// changed one or none at all, so only exports need it.
func shiftFuncs(m *wasmModule, d int) {
	for i := range m.exports {
		if m.exports[i].kind == 0 {
			m.exports[i].index = uint32(int(m.exports[i].index) + d)
		}
	}
}

// bigOutput is one output batch of n bytes (a single output whose value
// fills the rest; n ≥ 28).
func bigOutput(n int) []byte {
	if n < abi.OutputFixedSize {
		n = abi.OutputFixedSize
	}
	o := abi.Output{Partition: abi.PartitionByKey, Timestamp: abi.TimestampInherit, Key: nil,
		Value: bytes.Repeat([]byte("o"), n-abi.OutputFixedSize)}
	return abi.AppendOutput(nil, &o)
}

func runtimeCases() []Case {
	var cs []Case
	for _, v := range runtimeVectors() {
		cs = append(cs, Case{Suite: SuiteRuntime, Name: v.name, Doc: v.doc,
			run: func(ctx context.Context, e *env) error { return v.check(runVector(ctx, e.rt, v)) }})
	}
	return cs
}
