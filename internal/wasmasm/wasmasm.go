// Package wasmasm holds the primitives of the WebAssembly binary format
// that the hand-assembled test modules of sluice are written with: LEB128
// integers, names, sections and the module header.
//
// It exists because two assemblers need them: the runtime suite's guests
// in conformance/suites and the modules of plugins/runtimetest (shapes Go
// cannot produce). Each keeps its own small module model; the encoding
// underneath is this one.
package wasmasm

// Header is the start of every module: the magic "\0asm" and version 1.
var Header = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// Section ids of the binary format.
const (
	SectionType   = 1
	SectionImport = 2
	SectionFunc   = 3
	SectionMemory = 5
	SectionExport = 7
	SectionCode   = 10
	SectionData   = 11
)

// ULEB appends v as an unsigned LEB128 integer to b.
func ULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

// SLEB appends v as a signed LEB128 integer to b.
func SLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// Name appends s as a name (its length, then its bytes) to b.
func Name(b []byte, s string) []byte { return append(ULEB(b, uint64(len(s))), s...) }

// Section appends the section id with content to b.
func Section(b []byte, id byte, content []byte) []byte {
	b = append(b, id)
	b = ULEB(b, uint64(len(content)))
	return append(b, content...)
}

// SectionCustom is the id of custom sections, which runtimes ignore.
const SectionCustom = 0

// WithCustomSection returns a copy of module with a custom section named
// name holding payload appended: a module that behaves the same with
// another sha256, so that a runtime compiles it anew (tests and `sluice
// bench swap` use it to make new versions of one operator).
func WithCustomSection(module []byte, name string, payload []byte) []byte {
	content := append(Name(nil, name), payload...)
	out := make([]byte, len(module), len(module)+len(content)+16)
	copy(out, module)
	return Section(out, SectionCustom, content)
}
