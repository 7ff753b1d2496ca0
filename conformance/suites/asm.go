package suites

// A minimal WebAssembly binary encoder for the runtime suite's guests.
//
// The runtime vectors need guests that make one precise hostile or
// boundary call each (a pointer past the end of memory, a status the ABI
// does not allow, a loop that never ends). Writing them by hand in bytecode
// keeps the suite self-contained: it needs no compiler at run time, so
// `sluice conformance run` can check a runtime anywhere, and each guest is
// a few hundred bytes that any runtime compiles in microseconds.

import (
	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/wasmasm"
)

// Instructions used by the guests (WebAssembly core 1.0 opcodes).
const (
	opUnreachable = 0x00
	opLoop        = 0x03
	opIf          = 0x04
	opElse        = 0x05
	opEnd         = 0x0b
	opBr          = 0x0c
	opCall        = 0x10
	opDrop        = 0x1a
	opLocalGet    = 0x20
	opLocalSet    = 0x21
	opLocalTee    = 0x22
	opI32Load     = 0x28
	opMemorySize  = 0x3f
	opMemoryGrow  = 0x40
	opI32Const    = 0x41
	opI32Eq       = 0x46
	opI32Ne       = 0x47
	opI32Add      = 0x6a
	opI32Sub      = 0x6b
	opI32Shl      = 0x74
	opI32ShrU     = 0x76
	blockVoid     = 0x40
	blockI32      = 0x7f
)

// wasmImport is an imported function whose parameters and results are all
// i32.
type wasmImport struct {
	module, name    string
	params, results int
}

// wasmFunc is a defined function: all-i32 parameters, results and locals.
type wasmFunc struct {
	params, results, locals int
	body                    []byte // without the final end
}

type wasmExport struct {
	name  string
	kind  byte // 0 function, 2 memory
	index uint32
}

type wasmData struct {
	offset uint32
	bytes  []byte
}

// wasmModule is everything the encoder can express.
type wasmModule struct {
	imports []wasmImport
	// importMemory imports the memory from env.memory instead of defining
	// it, which the ABI forbids.
	importMemory bool
	memPages     uint32
	funcs        []wasmFunc
	exports      []wasmExport
	data         []wasmData
}

// encode returns the module's binary form.
func (m *wasmModule) encode() []byte {
	type sig struct{ params, results int }
	var sigs []sig
	typeOf := func(s sig) uint64 {
		for i, t := range sigs {
			if t == s {
				return uint64(i)
			}
		}
		sigs = append(sigs, s)
		return uint64(len(sigs) - 1)
	}
	importTypes := make([]uint64, len(m.imports))
	for i, im := range m.imports {
		importTypes[i] = typeOf(sig{im.params, im.results})
	}
	funcTypes := make([]uint64, len(m.funcs))
	for i, f := range m.funcs {
		funcTypes[i] = typeOf(sig{f.params, f.results})
	}

	out := append([]byte(nil), wasmasm.Header...)

	var types []byte
	types = wasmasm.ULEB(types, uint64(len(sigs)))
	for _, s := range sigs {
		types = append(types, 0x60)
		types = wasmasm.ULEB(types, uint64(s.params))
		for range s.params {
			types = append(types, byte(abi.I32))
		}
		types = wasmasm.ULEB(types, uint64(s.results))
		for range s.results {
			types = append(types, byte(abi.I32))
		}
	}
	out = wasmasm.Section(out, wasmasm.SectionType, types)

	var imports []byte
	n := len(m.imports)
	if m.importMemory {
		n++
	}
	imports = wasmasm.ULEB(imports, uint64(n))
	for i, im := range m.imports {
		imports = wasmasm.Name(imports, im.module)
		imports = wasmasm.Name(imports, im.name)
		imports = append(imports, 0x00)
		imports = wasmasm.ULEB(imports, importTypes[i])
	}
	if m.importMemory {
		imports = wasmasm.Name(imports, "env")
		imports = wasmasm.Name(imports, "memory")
		imports = append(imports, 0x02, 0x00)
		imports = wasmasm.ULEB(imports, uint64(m.memPages))
	}
	out = wasmasm.Section(out, wasmasm.SectionImport, imports)

	var funcs []byte
	funcs = wasmasm.ULEB(funcs, uint64(len(m.funcs)))
	for _, t := range funcTypes {
		funcs = wasmasm.ULEB(funcs, t)
	}
	out = wasmasm.Section(out, wasmasm.SectionFunc, funcs)

	if !m.importMemory {
		mem := []byte{0x01, 0x00}
		mem = wasmasm.ULEB(mem, uint64(m.memPages))
		out = wasmasm.Section(out, wasmasm.SectionMemory, mem)
	}

	var exports []byte
	exports = wasmasm.ULEB(exports, uint64(len(m.exports)))
	for _, e := range m.exports {
		exports = wasmasm.Name(exports, e.name)
		exports = append(exports, e.kind)
		exports = wasmasm.ULEB(exports, uint64(e.index))
	}
	out = wasmasm.Section(out, wasmasm.SectionExport, exports)

	var code []byte
	code = wasmasm.ULEB(code, uint64(len(m.funcs)))
	for _, f := range m.funcs {
		var body []byte
		if f.locals > 0 {
			body = append(body, 0x01)
			body = wasmasm.ULEB(body, uint64(f.locals))
			body = append(body, byte(abi.I32))
		} else {
			body = append(body, 0x00)
		}
		body = append(body, f.body...)
		body = append(body, opEnd)
		code = wasmasm.ULEB(code, uint64(len(body)))
		code = append(code, body...)
	}
	out = wasmasm.Section(out, wasmasm.SectionCode, code)

	if len(m.data) > 0 {
		var data []byte
		data = wasmasm.ULEB(data, uint64(len(m.data)))
		for _, d := range m.data {
			data = append(data, 0x00, opI32Const)
			data = wasmasm.SLEB(data, int64(int32(d.offset)))
			data = append(data, opEnd)
			data = wasmasm.ULEB(data, uint64(len(d.bytes)))
			data = append(data, d.bytes...)
		}
		out = wasmasm.Section(out, wasmasm.SectionData, data)
	}
	return out
}

// code builds a function body from instructions.
type code []byte

func (c code) i32(v int32) code        { return wasmasm.SLEB(append(c, opI32Const), int64(v)) }
func (c code) call(f uint32) code      { return wasmasm.ULEB(append(c, opCall), uint64(f)) }
func (c code) get(local uint32) code   { return wasmasm.ULEB(append(c, opLocalGet), uint64(local)) }
func (c code) set(local uint32) code   { return wasmasm.ULEB(append(c, opLocalSet), uint64(local)) }
func (c code) tee(local uint32) code   { return wasmasm.ULEB(append(c, opLocalTee), uint64(local)) }
func (c code) op(ops ...byte) code     { return append(c, ops...) }
func (c code) load(offset uint32) code { return wasmasm.ULEB(append(c, opI32Load, 2), uint64(offset)) }
func (c code) growMemory() code        { return append(c, opMemoryGrow, 0x00) }
func (c code) memorySize() code        { return append(c, opMemorySize, 0x00) }
