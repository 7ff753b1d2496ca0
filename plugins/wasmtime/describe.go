//go:build cgo && !nowasmtime

package wasmtime

import (
	"errors"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins/internal/modcheck"
)

// describe reads the function and memory imports and exports of a module
// that Wasmtime has validated, for modcheck, without compiling it: Cranelift
// takes seconds on a Go guest, and a module that breaks the ABI should be
// refused at once. It understands the MVP-era encodings only (function
// types, no GC types); for anything else it returns ok=false and the
// caller validates the compiled module instead. It describes the same
// imports and exports as validate does from a compiled module.
func describe(wasm []byte) (imports []modcheck.Import, exports []modcheck.Export, ok bool) {
	d := &decoder{b: wasm}
	if len(wasm) < 8 {
		return nil, nil, false
	}
	d.pos = 8
	var types []modcheck.Signature
	var funcTypes []uint32 // type index of every function, imports first
	var mems []modcheck.Import
	for d.pos < len(d.b) && d.err == nil {
		id := d.byte()
		size := d.u32()
		if d.err != nil || uint64(size) > uint64(len(d.b)-d.pos) {
			return nil, nil, false
		}
		end := d.pos + int(size)
		switch id {
		case 1: // type
			n := d.u32()
			for i := uint32(0); i < n && d.err == nil; i++ {
				if d.byte() != 0x60 {
					return nil, nil, false
				}
				var sig modcheck.Signature
				sig.Params = d.valTypes()
				sig.Results = d.valTypes()
				types = append(types, sig)
			}
		case 2: // import
			n := d.u32()
			for i := uint32(0); i < n && d.err == nil; i++ {
				module, name := d.name(), d.name()
				switch kind := d.byte(); kind {
				case 0: // func
					ti := d.u32()
					if uint64(ti) >= uint64(len(types)) {
						return nil, nil, false
					}
					funcTypes = append(funcTypes, ti)
					imports = append(imports, modcheck.Import{Module: module, Name: name, Kind: modcheck.Func, Sig: types[ti]})
				case 1: // table
					d.byte()
					d.limits()
				case 2: // memory
					d.limits()
					mems = append(mems, modcheck.Import{Module: module, Name: name, Kind: modcheck.Memory})
				case 3: // global
					d.byte()
					d.byte()
				default:
					return nil, nil, false
				}
			}
		case 3: // function
			n := d.u32()
			for i := uint32(0); i < n && d.err == nil; i++ {
				funcTypes = append(funcTypes, d.u32())
			}
		case 7: // export
			n := d.u32()
			for i := uint32(0); i < n && d.err == nil; i++ {
				name := d.name()
				kind := d.byte()
				idx := d.u32()
				switch kind {
				case 0:
					if uint64(idx) >= uint64(len(funcTypes)) || uint64(funcTypes[idx]) >= uint64(len(types)) {
						return nil, nil, false
					}
					exports = append(exports, modcheck.Export{Name: name, Kind: modcheck.Func, Sig: types[funcTypes[idx]]})
				case 2:
					exports = append(exports, modcheck.Export{Name: name, Kind: modcheck.Memory})
				}
			}
		}
		if d.err != nil {
			return nil, nil, false
		}
		d.pos = end
	}
	if d.err != nil {
		return nil, nil, false
	}
	return append(imports, mems...), exports, true
}

type decoder struct {
	b   []byte
	pos int
	err error
}

var errDecode = errors.New("cannot decode")

func (d *decoder) byte() byte {
	if d.err != nil || d.pos >= len(d.b) {
		d.err = errDecode
		return 0
	}
	c := d.b[d.pos]
	d.pos++
	return c
}

func (d *decoder) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := d.byte()
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	d.err = errDecode
	return 0
}

func (d *decoder) name() string {
	n := d.u32()
	if d.err != nil || uint64(n) > uint64(len(d.b)-d.pos) {
		d.err = errDecode
		return ""
	}
	s := string(d.b[d.pos : d.pos+int(n)])
	d.pos += int(n)
	return s
}

func (d *decoder) valTypes() []abi.ValType {
	n := d.u32()
	ts := make([]abi.ValType, 0, min(n, 64))
	for i := uint32(0); i < n && d.err == nil; i++ {
		t := d.byte()
		switch t {
		case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
			ts = append(ts, abi.ValType(t))
		default:
			d.err = errDecode // a reference type with a heap type: GC era
		}
	}
	return ts
}

func (d *decoder) limits() {
	flags := d.byte()
	d.u32()
	if flags&1 != 0 {
		d.u32()
	}
	// Memory64 limits are u64, which u32 cannot read: give up.
	if flags&4 != 0 {
		d.err = errDecode
	}
}
