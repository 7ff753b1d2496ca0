package runtimetest

import (
	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/wasmasm"
)

// wasmModule is a minimal WebAssembly binary encoder for modules that Go
// cannot produce (wrong signatures, a _start export, foreign imports).
// Every defined function's body returns constants: consts[i] for an i32
// result of function i (0 unless set), 0 for an i64 result.
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

func leb(n int) []byte { return wasmasm.ULEB(nil, uint64(n)) }

// section is a section whose content is count entries, body.
func section(id byte, count int, body []byte) []byte {
	return wasmasm.Section(nil, id, append(leb(count), body...))
}

func valTypes(ts []abi.ValType) []byte {
	b := leb(len(ts))
	for _, t := range ts {
		b = append(b, byte(t))
	}
	return b
}

func (m *wasmModule) bytes() []byte {
	out := append([]byte(nil), wasmasm.Header...)
	var b []byte
	for _, t := range m.types {
		b = append(b, 0x60)
		b = append(b, valTypes(t[0])...)
		b = append(b, valTypes(t[1])...)
	}
	out = append(out, section(wasmasm.SectionType, len(m.types), b)...)
	b = nil
	for _, im := range m.imports {
		b = wasmasm.Name(b, im.module)
		b = wasmasm.Name(b, im.name)
		b = append(b, 0)
		b = append(b, leb(im.typ)...)
	}
	out = append(out, section(wasmasm.SectionImport, len(m.imports), b)...)
	b = nil
	for _, f := range m.funcs {
		b = append(b, leb(f)...)
	}
	out = append(out, section(wasmasm.SectionFunc, len(m.funcs), b)...)
	if m.memory {
		out = append(out, section(wasmasm.SectionMemory, 1, []byte{0, 2})...) // 2 pages, no maximum
	}
	b = nil
	for _, e := range m.exports {
		b = wasmasm.Name(b, e.name)
		b = append(b, e.kind)
		b = append(b, leb(e.idx)...)
	}
	out = append(out, section(wasmasm.SectionExport, len(m.exports), b)...)
	b = nil
	for i, f := range m.funcs {
		var body []byte
		body = append(body, 0) // no locals
		for _, r := range m.types[f][1] {
			if r == abi.I64 {
				body = append(body, 0x42, 0) // i64.const 0
			} else {
				body = append(body, 0x41)
				body = wasmasm.SLEB(body, int64(m.consts[i])) // i32.const
			}
		}
		body = append(body, 0x0b)
		b = append(b, leb(len(body))...)
		b = append(b, body...)
	}
	out = append(out, section(wasmasm.SectionCode, len(m.funcs), b)...)
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

// NoopModule returns a valid operator module that does nothing: its
// sluice_alloc returns address 1024 (its memory has 2 pages), its
// sluice_init and sluice_process return StatusOK without reading anything.
// Benchmarks use it to measure what a runtime adds per call.
func NoopModule() []byte {
	m := validModule()
	m.consts[0] = 1024 // sluice_alloc
	return m.bytes()
}
