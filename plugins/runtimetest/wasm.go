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
	// bodies, when bodies[i] is set, is function i's code instead
	// (locals declaration, instructions, end).
	bodies  [][]byte
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
		if i < len(m.bodies) && m.bodies[i] != nil {
			b = append(b, leb(len(m.bodies[i]))...)
			b = append(b, m.bodies[i]...)
			continue
		}
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

// streamTimeModule is an operator that reports what stream_time writes.
// Imports: check_abi_version_1 (function 0), stream_time (1), log (2).
// sluice_alloc returns 1024 (memory: 2 pages, never grown); sluice_init
// calls stream_time(64) and logs the 8 bytes at 64; sluice_process calls
// stream_time(p) where p is the low 32 bits of the first record's offset,
// then logs the 8 bytes at p (level 0), or executes unreachable if
// stream_time did not return OK.
func streamTimeModule() []byte {
	m := &wasmModule{memory: true}
	m.importFunc(abi.Module, abi.FuncCheckVersion, nil, nil)
	m.importFunc(abi.Module, abi.FuncStreamTime, []abi.ValType{i32}, []abi.ValType{i32})
	m.importFunc(abi.Module, abi.FuncLog, []abi.ValType{i32, i32, i32}, nil)
	m.exports = append(m.exports, wasmExport{abi.ExportMemory, 2, 0})
	m.exportFunc(abi.ExportAlloc, []abi.ValType{i32}, []abi.ValType{i32})
	m.exportFunc(abi.ExportInit, []abi.ValType{i32, i32}, []abi.ValType{i32})
	m.exportFunc(abi.ExportProcess, []abi.ValType{i32, i32}, []abi.ValType{i32})
	m.consts[0] = 1024
	const (
		localGet  = 0x20
		localSet  = 0x21
		i32Load   = 0x28
		i32Const  = 0x41
		call      = 0x10
		i32Eqz    = 0x45
		opIf      = 0x04
		opElse    = 0x05
		opEnd     = 0x0b
		unreach   = 0x00
		blockVoid = 0x40
	)
	m.bodies = [][]byte{
		nil, // sluice_alloc: the constant 1024
		{ // sluice_init
			0,
			i32Const, 0xc0, 0x00, call, 1, i32Eqz,
			opIf, blockVoid,
			i32Const, 0, i32Const, 0xc0, 0x00, i32Const, 8, call, 2,
			opElse, unreach, opEnd,
			i32Const, 0, opEnd,
		},
		{ // sluice_process
			1, 1, byte(i32), // one i32 local (2): the pointer
			localGet, 0, i32Load, 2, abi.BatchHeaderSize, localSet, 2,
			localGet, 2, call, 1, i32Eqz,
			opIf, blockVoid,
			i32Const, 0, localGet, 2, i32Const, 8, call, 2,
			opElse, unreach, opEnd,
			i32Const, 0, opEnd,
		},
	}
	return m.bytes()
}
