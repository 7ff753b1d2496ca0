// Package meter instruments WebAssembly modules so that a running guest
// regularly calls back into the host, which can then stop it.
//
// Why this exists: sluice runs untrusted operators in wazero and must be
// able to stop a guest that loops forever. wazero's own answer,
// RuntimeConfig.WithCloseOnContextDone(true), makes the compiler emit a
// call out to Go at every loop header so that it can look at the context,
// and that makes Go-compiled guests (whose code is full of loops) 2-4x
// slower. Instead, sluice turns that option off and rewrites each module
// once, before compiling it, so that every function entry and every loop
// header runs a cheap countdown on a module-owned global:
//
//	global.get $fuel
//	i32.eqz
//	if
//	  call $yield
//	end
//	global.get $fuel
//	i32.const 1
//	i32.sub
//	global.set $fuel
//
// That is a load, a compare and a predicted-not-taken branch plus a
// decrement and a store on the fast path, all of which the compiler keeps
// in the function. Only when the countdown reaches zero does the guest
// call $yield, an imported host function that refills the fuel, checks
// the call's deadline, traps the guest if it is over, and gives the Go
// scheduler a chance to preempt. Function entries are counted as well as
// loops so that unbounded recursion also yields.
//
// Instrumentation keeps every function and global index unchanged (the
// fuel global is appended after all existing globals and $yield is an
// import the module already has), so element segments, the start
// function, exports and the "name" section stay valid byte for byte.
// DWARF custom sections (".debug*") are dropped because their code
// offsets would be wrong.
package meter

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Section ids of the binary format.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// sectionRank gives the position a non-custom section must have in a
// module (ids are not in order: tag and data count were added later).
// Zero means the id is unknown.
var sectionRank = [...]int{
	secType:      1,
	secImport:    2,
	secFunction:  3,
	secTable:     4,
	secMemory:    5,
	secTag:       6,
	secGlobal:    7,
	secExport:    8,
	secStart:     9,
	secElement:   10,
	secDataCount: 11,
	secCode:      12,
	secData:      13,
}

// Import and export kinds.
const (
	externFunc   = 0
	externTable  = 1
	externMemory = 2
	externGlobal = 3
	externTag    = 4
)

var magicVersion = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// newGlobalDecl is the appended global: (mut i32) initialised with i32.const 0.
var newGlobalDecl = []byte{0x7f, 0x01, 0x41, 0x00, 0x0b}

// Instrument returns a copy of a WebAssembly binary module in which every function body
// and every `loop` starts with a countdown on a new mutable i32 global:
//
//	global.get $fuel
//	i32.eqz
//	if
//	  call $yield
//	end
//	global.get $fuel
//	i32.const 1
//	i32.sub
//	global.set $fuel
//
// $yield is the function index of the (first) function IMPORT with the given module and
// field names, which must exist and have type [] -> []. $fuel is a new global appended after all
// existing globals (so no existing global index changes), initialised to i32 0, and exported under the name exportName.
// No function index changes (nothing new is added to the function index space).
//
// The injected sequence is stack-neutral, so it is valid at the start of
// any loop, including loops with block parameters. Instrument checks the
// structure of the module and decodes every instruction, but it does not
// type-check: a module the runtime would reject may still be instrumented
// (and the result will be rejected too). Errors name the function index
// and the byte offset in wasm.
func Instrument(wasm []byte, yieldModule, yieldName, exportName string) ([]byte, error) {
	return InstrumentWithOptions(wasm, yieldModule, yieldName, exportName, Options{})
}

// Options are the optional rewrites of InstrumentWithOptions.
type Options struct {
	// GrowRefusedExport, when not "", makes every memory.grow on memory 0
	// record a refusal: the instruction is replaced by a stack-neutral
	// sequence with the same result that, when the grow fails (returns
	// -1), stores the refused delta in pages into a new mutable i32
	// global exported under this name, unless an earlier refusal is
	// already stored there. The global starts at 0, so a nonzero value
	// means some grow was refused (a refused grow always has a nonzero
	// delta: growing by 0 pages cannot fail).
	//
	// This is for runtimes that cannot observe a refused growth
	// themselves (wasmtime's store limiter just makes memory.grow return
	// -1): the host reads the global after a guest died to tell "ran out
	// of memory" from other traps. The rewrite uses a second appended
	// global as a temporary instead of a local, so no local, function,
	// type or existing global index changes:
	//
	//	global.set $tmp            ;; the delta
	//	global.get $tmp
	//	memory.grow 0
	//	i32.const 1
	//	i32.add                    ;; 0 exactly when the grow failed
	//	if (result i32)
	//	  memory.size 0
	//	  global.get $tmp
	//	  i32.sub                  ;; the old size, which memory.grow returned
	//	else
	//	  global.get $refused
	//	  i32.eqz
	//	  if
	//	    global.get $tmp
	//	    global.set $refused
	//	  end
	//	  i32.const -1
	//	end
	GrowRefusedExport string
}

// InstrumentWithOptions is Instrument with the optional rewrites of opts.
// With the zero Options it returns exactly what Instrument returns.
func InstrumentWithOptions(wasm []byte, yieldModule, yieldName, exportName string, opts Options) ([]byte, error) {
	out, err := instrument(wasm, yieldModule, yieldName, exportName, opts)
	if err != nil {
		return nil, fmt.Errorf("meter: %w", err)
	}
	return out, nil
}

type instrumenter struct {
	wasm []byte
	out  []byte

	yieldModule, yieldName, exportName string

	// emptyFuncType[i] reports whether type i is the function type [] -> [].
	emptyFuncType []bool

	importedFuncs   uint32
	importedGlobals uint32
	yieldFound      bool
	yieldFunc       uint32
	yieldType       uint32
	yieldChecked    bool

	definedGlobals uint32
	globalDone     bool // the global section (original or new) has been written
	exportDone     bool

	fuelGlobal uint32
	prologue   []byte

	// The grow-refusal rewrite (Options.GrowRefusedExport), if enabled.
	growExport    string
	tmpGlobal     uint32
	refusedGlobal uint32
	growSeq       []byte // replaces memory.grow 0; nil when disabled
}

func instrument(wasm []byte, yieldModule, yieldName, exportName string, opts Options) ([]byte, error) {
	if !utf8.ValidString(exportName) {
		return nil, fmt.Errorf("export name %q is not valid UTF-8", exportName)
	}
	if !utf8.ValidString(opts.GrowRefusedExport) {
		return nil, fmt.Errorf("export name %q is not valid UTF-8", opts.GrowRefusedExport)
	}
	if opts.GrowRefusedExport != "" && opts.GrowRefusedExport == exportName {
		return nil, fmt.Errorf("the fuel and grow-refusal exports are both named %q", exportName)
	}
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], magicVersion[:4]) {
		return nil, errors.New("not a WebAssembly binary module (bad magic number)")
	}
	if !bytes.Equal(wasm[4:8], magicVersion[4:8]) {
		return nil, fmt.Errorf("unsupported binary format version % x (want 01 00 00 00)", wasm[4:8])
	}
	in := &instrumenter{
		wasm:        wasm,
		yieldModule: yieldModule,
		yieldName:   yieldName,
		exportName:  exportName,
		growExport:  opts.GrowRefusedExport,
		// Headroom for the prologues; growing once is fine too.
		out: make([]byte, 0, len(wasm)+len(wasm)/4+64),
	}
	in.out = append(in.out, magicVersion...)

	r := &reader{b: wasm, pos: 8, end: len(wasm)}
	lastRank := 0
	for r.pos < len(wasm) {
		sectionStart := r.pos
		id := r.byte()
		size := r.u32("section size")
		if r.err != nil {
			return nil, r.err
		}
		if uint64(size) > uint64(len(wasm)-r.pos) {
			return nil, fmt.Errorf("at byte offset %#x: section %d of %d bytes runs past the end of the module: %w",
				sectionStart, id, size, errTruncated)
		}
		// s reads only this section's contents.
		s := &reader{b: wasm, pos: r.pos, end: r.pos + int(size)}
		r.pos = s.end
		raw := wasm[sectionStart:s.end]

		if id == secCustom {
			name := s.name("custom section name")
			if s.err != nil {
				return nil, fmt.Errorf("custom section: %w", s.err)
			}
			// DWARF refers to code offsets, which we are about to move.
			if !bytes.HasPrefix(name, []byte(".debug")) {
				in.out = append(in.out, raw...)
			}
			continue
		}
		if int(id) >= len(sectionRank) || sectionRank[id] == 0 {
			return nil, fmt.Errorf("at byte offset %#x: unknown section id %d", sectionStart, id)
		}
		rank := sectionRank[id]
		if rank <= lastRank {
			return nil, fmt.Errorf("at byte offset %#x: section %d is out of order or repeated", sectionStart, id)
		}
		lastRank = rank

		// Sections we must add go in their ordered place, just before the
		// first section that has to follow them.
		if rank > sectionRank[secGlobal] && !in.globalDone {
			if err := in.writeGlobals(nil); err != nil {
				return nil, err
			}
		}
		if rank > sectionRank[secExport] && !in.exportDone {
			if err := in.writeExports(nil); err != nil {
				return nil, err
			}
		}

		var err error
		switch id {
		case secType:
			err = in.readTypes(s)
			in.out = append(in.out, raw...)
		case secImport:
			err = in.readImports(s)
			in.out = append(in.out, raw...)
		case secGlobal:
			err = in.writeGlobals(s)
		case secExport:
			err = in.writeExports(s)
		case secCode:
			err = in.writeCode(s)
		default:
			in.out = append(in.out, raw...)
		}
		if err != nil {
			return nil, err
		}
	}
	if !in.globalDone {
		if err := in.writeGlobals(nil); err != nil {
			return nil, err
		}
	}
	if !in.exportDone {
		if err := in.writeExports(nil); err != nil {
			return nil, err
		}
	}
	return in.out, nil
}

// readTypes records which types are [] -> [], for checking $yield. It
// understands GC-era encodings (rec groups, sub types, struct and array
// types) only far enough to count type indices correctly.
func (in *instrumenter) readTypes(s *reader) error {
	n := s.u32("type count")
	for i := uint32(0); i < n && s.err == nil; i++ {
		if s.pos < s.end && s.b[s.pos] == 0x4e { // rec group
			s.pos++
			m := s.u32("rec group size")
			for j := uint32(0); j < m && s.err == nil; j++ {
				in.readSubType(s)
			}
			continue
		}
		in.readSubType(s)
	}
	return in.sectionEnd(s, "type")
}

func (in *instrumenter) readSubType(s *reader) {
	if s.pos < s.end && (s.b[s.pos] == 0x50 || s.b[s.pos] == 0x4f) { // sub / sub final
		s.pos++
		m := s.u32("supertype count")
		for j := uint32(0); j < m && s.err == nil; j++ {
			s.u32("supertype")
		}
	}
	empty := false
	switch form := s.byte(); form {
	case 0x60: // func
		params := s.u32("parameter count")
		for k := uint32(0); k < params && s.err == nil; k++ {
			s.valType()
		}
		results := s.u32("result count")
		for k := uint32(0); k < results && s.err == nil; k++ {
			s.valType()
		}
		empty = params == 0 && results == 0
	case 0x5f: // struct
		fields := s.u32("field count")
		for k := uint32(0); k < fields && s.err == nil; k++ {
			s.fieldType()
		}
	case 0x5e: // array
		s.fieldType()
	default:
		if s.err == nil {
			s.pos--
			s.fail("invalid type form %#x", form)
		}
	}
	if s.err == nil {
		in.emptyFuncType = append(in.emptyFuncType, empty)
	}
}

func (r *reader) fieldType() {
	if r.pos < r.end && (r.b[r.pos] == 0x78 || r.b[r.pos] == 0x77) { // packed i8, i16
		r.pos++
	} else {
		r.valType()
	}
	r.byte() // mutability
}

// readImports counts imported functions and globals (they come first in
// their index spaces) and finds $yield.
func (in *instrumenter) readImports(s *reader) error {
	n := s.u32("import count")
	for i := uint32(0); i < n && s.err == nil; i++ {
		module := s.name("import module name")
		field := s.name("import field name")
		switch kind := s.byte(); kind {
		case externFunc:
			typ := s.u32("import type index")
			if s.err == nil && !in.yieldFound &&
				string(module) == in.yieldModule && string(field) == in.yieldName {
				in.yieldFound = true
				in.yieldFunc = in.importedFuncs
				in.yieldType = typ
			}
			in.importedFuncs++
		case externTable:
			s.valType()
			s.limits()
		case externMemory:
			s.limits()
		case externGlobal:
			s.valType()
			s.byte() // mutability
			in.importedGlobals++
		case externTag:
			s.byte() // attribute
			s.u32("tag type index")
		default:
			if s.err == nil {
				s.pos--
				s.fail("invalid import kind %#x", kind)
			}
		}
	}
	return in.sectionEnd(s, "import")
}

// sectionEnd checks that a fully decoded section ended where its size said.
func (in *instrumenter) sectionEnd(s *reader, name string) error {
	if s.err == nil && s.pos != s.end {
		s.fail("%d unexpected bytes at the end of the section", s.end-s.pos)
	}
	if s.err != nil {
		return fmt.Errorf("%s section: %w", name, s.err)
	}
	return nil
}

// checkYield validates $yield once the type and import sections have
// been seen (the global section, which is always written, follows both).
func (in *instrumenter) checkYield() error {
	if in.yieldChecked {
		return nil
	}
	in.yieldChecked = true
	if !in.yieldFound {
		return fmt.Errorf("module does not import function %s.%s", in.yieldModule, in.yieldName)
	}
	if uint64(in.yieldType) >= uint64(len(in.emptyFuncType)) {
		return fmt.Errorf("import %s.%s has type index %d, which does not exist", in.yieldModule, in.yieldName, in.yieldType)
	}
	if !in.emptyFuncType[in.yieldType] {
		return fmt.Errorf("import %s.%s must have type [] -> [] (type %d is not)", in.yieldModule, in.yieldName, in.yieldType)
	}
	return nil
}

// writeGlobals writes the global section with the fuel global appended;
// s is the original section or nil if the module has none.
func (in *instrumenter) writeGlobals(s *reader) error {
	if err := in.checkYield(); err != nil {
		return err
	}
	in.globalDone = true
	var rest []byte
	if s != nil {
		n := s.u32("global count")
		if s.err != nil {
			return fmt.Errorf("global section: %w", s.err)
		}
		in.definedGlobals = n
		// The existing declarations are kept verbatim; we only need their count.
		rest = s.b[s.pos:s.end]
	}
	added := uint32(1)
	if in.growExport != "" {
		added = 3 // fuel, the temporary, the refusal
	}
	if uint64(in.importedGlobals)+uint64(in.definedGlobals) >= 1<<32-uint64(added) {
		return errors.New("too many globals")
	}
	in.fuelGlobal = in.importedGlobals + in.definedGlobals

	var count [5]byte
	c := appendU32(count[:0], in.definedGlobals+added)
	in.out = appendSectionHeader(in.out, secGlobal, len(c)+len(rest)+int(added)*len(newGlobalDecl))
	in.out = append(in.out, c...)
	in.out = append(in.out, rest...)
	for range added {
		in.out = append(in.out, newGlobalDecl...)
	}
	if in.growExport != "" {
		in.tmpGlobal = in.fuelGlobal + 1
		in.refusedGlobal = in.fuelGlobal + 2
		in.growSeq = growSequence(in.tmpGlobal, in.refusedGlobal)
	}

	// The prologue, with this module's indices (see the package comment).
	p := make([]byte, 0, 32)
	p = append(p, 0x23) // global.get
	p = appendU32(p, in.fuelGlobal)
	p = append(p, 0x45, 0x04, 0x40, 0x10) // i32.eqz; if (empty); call
	p = appendU32(p, in.yieldFunc)
	p = append(p, 0x0b, 0x23) // end; global.get
	p = appendU32(p, in.fuelGlobal)
	p = append(p, 0x41, 0x01, 0x6b, 0x24) // i32.const 1; i32.sub; global.set
	p = appendU32(p, in.fuelGlobal)
	in.prologue = p
	return nil
}

// writeExports writes the export section with the fuel export appended;
// s is the original section or nil if the module has none.
func (in *instrumenter) writeExports(s *reader) error {
	in.exportDone = true
	var n uint32
	var rest []byte
	if s != nil {
		n = s.u32("export count")
		start := s.pos
		for i := uint32(0); i < n && s.err == nil; i++ {
			name := s.name("export name")
			s.byte() // kind
			s.u32("export index")
			if s.err == nil && string(name) == in.exportName {
				return fmt.Errorf("module already exports a %q", in.exportName)
			}
			if s.err == nil && in.growExport != "" && string(name) == in.growExport {
				return fmt.Errorf("module already exports a %q", in.growExport)
			}
		}
		if err := in.sectionEnd(s, "export"); err != nil {
			return err
		}
		rest = s.b[start:s.end]
	}
	added := appendGlobalExport(nil, in.exportName, in.fuelGlobal)
	count := n + 1
	if in.growExport != "" {
		added = appendGlobalExport(added, in.growExport, in.refusedGlobal)
		count++
	}
	var cb [5]byte
	c := appendU32(cb[:0], count)
	in.out = appendSectionHeader(in.out, secExport, len(c)+len(rest)+len(added))
	in.out = append(in.out, c...)
	in.out = append(in.out, rest...)
	in.out = append(in.out, added...)
	return nil
}

// appendGlobalExport appends the export entry of global index gi as name.
func appendGlobalExport(b []byte, name string, gi uint32) []byte {
	b = appendU32(b, uint32(len(name)))
	b = append(b, name...)
	b = append(b, externGlobal)
	return appendU32(b, gi)
}

// growSequence is the replacement of memory.grow 0 (see
// Options.GrowRefusedExport) for these global indices.
func growSequence(tmp, refused uint32) []byte {
	p := make([]byte, 0, 48)
	p = append(p, 0x24) // global.set $tmp
	p = appendU32(p, tmp)
	p = append(p, 0x23) // global.get $tmp
	p = appendU32(p, tmp)
	p = append(p, 0x40, 0x00)       // memory.grow 0
	p = append(p, 0x41, 0x01, 0x6a) // i32.const 1; i32.add
	p = append(p, 0x04, 0x7f)       // if (result i32)
	p = append(p, 0x3f, 0x00, 0x23) // memory.size 0; global.get $tmp
	p = appendU32(p, tmp)
	p = append(p, 0x6b)       // i32.sub
	p = append(p, 0x05, 0x23) // else; global.get $refused
	p = appendU32(p, refused)
	p = append(p, 0x45, 0x04, 0x40, 0x23) // i32.eqz; if; global.get $tmp
	p = appendU32(p, tmp)
	p = append(p, 0x24) // global.set $refused
	p = appendU32(p, refused)
	p = append(p, 0x0b)             // end
	p = append(p, 0x41, 0x7f, 0x0b) // i32.const -1; end
	return p
}

// writeCode rewrites every function body, straight into the output.
func (in *instrumenter) writeCode(s *reader) error {
	n := s.u32("function body count")
	if s.err != nil {
		return fmt.Errorf("code section: %w", s.err)
	}
	in.out = append(in.out, secCode)
	section := in.beginSized()
	in.out = appendU32(in.out, n)
	for i := uint32(0); i < n; i++ {
		funcIndex := in.importedFuncs + i
		size := s.u32("function body size")
		if s.err != nil {
			return funcError(funcIndex, s.err)
		}
		if uint64(size) > uint64(s.end-s.pos) {
			s.failTruncated(fmt.Sprintf("function body of %d bytes", size))
			return funcError(funcIndex, s.err)
		}
		br := &reader{b: s.b, pos: s.pos, end: s.pos + int(size)}
		s.pos = br.end
		body := in.beginSized()
		var err error
		if in.out, err = rewriteBody(in.out, br, in.prologue, in.growSeq); err != nil {
			return funcError(funcIndex, err)
		}
		if err := in.endSized(body); err != nil {
			return funcError(funcIndex, err)
		}
	}
	if err := in.sectionEnd(s, "code"); err != nil {
		return err
	}
	return in.endSized(section)
}

// beginSized reserves room for the largest u32 LEB128 in front of
// content whose size is not known yet, and returns where the content
// starts. endSized then writes the minimal encoding and slides the
// content down over the unused bytes: one memmove instead of a separate
// buffer per body and section.
func (in *instrumenter) beginSized() int {
	in.out = append(in.out, 0, 0, 0, 0, 0)
	return len(in.out)
}

func (in *instrumenter) endSized(start int) error {
	size := len(in.out) - start
	if uint64(size) > 1<<32-1 {
		return errors.New("instrumented code is too large")
	}
	var buf [5]byte
	enc := appendU32(buf[:0], uint32(size))
	at := start - 5
	copy(in.out[at:], enc)
	copy(in.out[at+len(enc):], in.out[start:])
	in.out = in.out[:at+len(enc)+size]
	return nil
}

func appendSectionHeader(b []byte, id byte, size int) []byte {
	return appendU32(append(b, id), uint32(size))
}
