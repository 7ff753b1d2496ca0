package wazero

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins"
)

// wasmModule is a minimal WebAssembly binary encoder for modules that Go
// cannot produce (wrong signatures, a _start export, foreign imports).
// Every defined function's body returns zeros.
type wasmModule struct {
	types   [][2][]abi.ValType
	imports []wasmImport
	funcs   []int   // type index of each defined function
	consts  []int32 // what each defined function returns (an i32 result)
	memory  bool
	exports []wasmExport
}

type wasmImport struct {
	module, name string
	typ          int
}

type wasmExport struct {
	name string
	kind byte // 0 function, 2 memory
	idx  int
}

func (m *wasmModule) typ(params, results []abi.ValType) int {
	m.types = append(m.types, [2][]abi.ValType{params, results})
	return len(m.types) - 1
}

func (m *wasmModule) importFunc(module, name string, params, results []abi.ValType) {
	m.imports = append(m.imports, wasmImport{module, name, m.typ(params, results)})
}

// exportFunc defines a function and exports it.
func (m *wasmModule) exportFunc(name string, params, results []abi.ValType) {
	m.funcs = append(m.funcs, m.typ(params, results))
	m.consts = append(m.consts, 0)
	m.exports = append(m.exports, wasmExport{name, 0, len(m.imports) + len(m.funcs) - 1})
}

func leb(n int) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func sleb(v int32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func wasmName(s string) []byte { return append(leb(len(s)), s...) }

func section(id byte, count int, body []byte) []byte {
	content := append(leb(count), body...)
	return append(append([]byte{id}, leb(len(content))...), content...)
}

func valTypes(ts []abi.ValType) []byte {
	b := leb(len(ts))
	for _, t := range ts {
		b = append(b, byte(t))
	}
	return b
}

func (m *wasmModule) bytes() []byte {
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	var b []byte
	for _, t := range m.types {
		b = append(b, 0x60)
		b = append(b, valTypes(t[0])...)
		b = append(b, valTypes(t[1])...)
	}
	out = append(out, section(1, len(m.types), b)...)
	b = nil
	for _, im := range m.imports {
		b = append(b, wasmName(im.module)...)
		b = append(b, wasmName(im.name)...)
		b = append(b, 0)
		b = append(b, leb(im.typ)...)
	}
	out = append(out, section(2, len(m.imports), b)...)
	b = nil
	for _, f := range m.funcs {
		b = append(b, leb(f)...)
	}
	out = append(out, section(3, len(m.funcs), b)...)
	if m.memory {
		out = append(out, section(5, 1, []byte{0, 2})...) // 2 pages, no maximum
	}
	b = nil
	for _, e := range m.exports {
		b = append(b, wasmName(e.name)...)
		b = append(b, e.kind)
		b = append(b, leb(e.idx)...)
	}
	out = append(out, section(7, len(m.exports), b)...)
	b = nil
	for i, f := range m.funcs {
		var body []byte
		body = append(body, 0) // no locals
		for _, r := range m.types[f][1] {
			if r == abi.I64 {
				body = append(body, 0x42, 0) // i64.const 0
			} else {
				body = append(body, 0x41)
				body = append(body, sleb(m.consts[i])...) // i32.const
			}
		}
		body = append(body, 0x0b)
		b = append(b, leb(len(body))...)
		b = append(b, body...)
	}
	out = append(out, section(10, len(m.funcs), b)...)
	return out
}

var (
	i32 = abi.I32
	i64 = abi.I64
)

// validModule is a minimal module that passes validation.
func validModule() *wasmModule {
	m := &wasmModule{memory: true}
	m.importFunc(abi.Module, abi.FuncCheckVersion, nil, nil)
	m.exports = append(m.exports, wasmExport{abi.ExportMemory, 2, 0})
	m.exportFunc(abi.ExportAlloc, []abi.ValType{i32}, []abi.ValType{i32})
	m.exportFunc(abi.ExportInit, []abi.ValType{i32, i32}, []abi.ValType{i32})
	m.exportFunc(abi.ExportProcess, []abi.ValType{i32, i32}, []abi.ValType{i32})
	return m
}

func validationProblems(t *testing.T, wasm []byte) []string {
	t.Helper()
	_, err := testRuntime(t).Compile(context.Background(), wasm)
	var ve *plugins.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a *plugins.ValidationError", err)
	}
	t.Logf("%v", ve)
	return ve.Problems
}

func wantProblems(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d problems %q, want %d", len(got), got, len(want))
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("problem %d is %q, want it to contain %q", i, got[i], want[i])
		}
	}
}

func TestHandAssembledValidModuleCompiles(t *testing.T) {
	// Guards the encoder: the other validation tests would pass for any
	// malformed module otherwise.
	m, err := testRuntime(t).Compile(context.Background(), validModule().bytes())
	if err != nil {
		t.Fatal(err)
	}
	// Its alloc returns 0, which Instantiate reports as an ABI fault.
	_, err = m.Instantiate(context.Background(), plugins.InstanceConfig{Name: "zero", Host: newMemHost()})
	var f *plugins.Fault
	if !errors.As(err, &f) || f.Kind != plugins.FaultABI || !strings.Contains(f.Detail, "sluice_alloc(65536) returned 0") {
		t.Fatalf("got %v", err)
	}
}

func TestValidationOfGoGuests(t *testing.T) {
	wantProblems(t, validationProblems(t, testguests.Build("noexport")),
		"missing export sluice_process (i32, i32) -> (i32)")
	wantProblems(t, validationProblems(t, testguests.Build("badimport")),
		"imports sluice_v1.no_such_function (i32) -> (i32), which ABI v1 does not have (it has: check_abi_version_1, emit,")
	wantProblems(t, validationProblems(t, testguests.Build("noversion")),
		"does not import sluice_v1.check_abi_version_1 () -> ()")
}

func TestValidationOfHandAssembledModules(t *testing.T) {
	t.Run("wrong signatures", func(t *testing.T) {
		m := &wasmModule{memory: true}
		m.importFunc(abi.Module, abi.FuncCheckVersion, nil, nil)
		m.importFunc(abi.Module, abi.FuncEmit, []abi.ValType{i32, i64}, []abi.ValType{i32})
		m.importFunc(abi.WASIModule, "fd_write", []abi.ValType{i32}, nil)
		m.exports = append(m.exports, wasmExport{abi.ExportMemory, 2, 0})
		m.exportFunc(abi.ExportAlloc, []abi.ValType{i64}, []abi.ValType{i32})
		m.exportFunc(abi.ExportInit, []abi.ValType{i32, i32}, []abi.ValType{i32})
		m.exportFunc(abi.ExportProcess, []abi.ValType{i32, i32}, nil)
		wantProblems(t, validationProblems(t, m.bytes()),
			"imports sluice_v1.emit with signature (i32, i64) -> (i32), want (i32, i32) -> (i32)",
			"imports wasi_snapshot_preview1.fd_write with signature (i32) -> (), want (i32, i32, i32, i32) -> (i32)",
			"export sluice_alloc has signature (i64) -> (i32), want (i32) -> (i32)",
			"export sluice_process has signature (i32, i32) -> (), want (i32, i32) -> (i32)")
	})
	t.Run("command module", func(t *testing.T) {
		m := validModule()
		m.exportFunc(abi.ExportStart, nil, nil)
		wantProblems(t, validationProblems(t, m.bytes()),
			"exports _start, so it is a WASI command module; build it as a reactor")
	})
	t.Run("foreign import and no memory", func(t *testing.T) {
		m := &wasmModule{}
		m.importFunc("env", "abort", []abi.ValType{i32}, nil)
		m.importFunc(abi.WASIModule, "no_such_wasi_call", nil, nil)
		m.exportFunc(abi.ExportAlloc, []abi.ValType{i32}, []abi.ValType{i32})
		wantProblems(t, validationProblems(t, m.bytes()),
			`imports env.abort (i32) -> () from module "env"; operators may import only from sluice_v1 and wasi_snapshot_preview1`,
			"imports wasi_snapshot_preview1.no_such_wasi_call () -> (), which the host's WASI preview 1 does not provide",
			"does not import sluice_v1.check_abi_version_1",
			"missing export sluice_init (i32, i32) -> (i32)",
			"missing export sluice_process (i32, i32) -> (i32)",
			"missing export memory")
	})
	t.Run("not wasm", func(t *testing.T) {
		wantProblems(t, validationProblems(t, []byte("#!/bin/sh\necho hi\n")), "not a valid WebAssembly module")
	})
}
