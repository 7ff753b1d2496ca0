package meter

import "fmt"

// rewriteBody appends to dst the function body in r.b[r.pos:r.end] (the
// bytes after the body's size) with prologue inserted after the local
// declarations and after the block type of every loop, and, when grow is
// not nil, every memory.grow on memory 0 replaced by grow. It copies the
// input in runs between insertion points, so the cost is one decode of
// each instruction's immediates plus a memmove.
//
// The decoder only needs to know where each instruction ends and where
// loops start; it does not type-check. Anything it does not recognise is
// an error, because skipping a wrong number of immediate bytes would make
// it misread the rest of the body and insert code in the middle of an
// immediate.
func rewriteBody(dst []byte, r *reader, prologue, grow []byte) ([]byte, error) {
	// Local declarations: vec(count, valtype), copied unchanged.
	start := r.pos
	groups := r.u32("local declaration count")
	for i := uint32(0); i < groups && r.err == nil; i++ {
		r.u32("local count")
		r.valType()
	}
	if r.err != nil {
		return dst, r.err
	}
	dst = append(dst, r.b[start:r.pos]...)
	dst = append(dst, prologue...)
	copyFrom := r.pos

	depth := 0 // open blocks; the body's own end takes it to -1
	for r.err == nil {
		if r.pos >= r.end {
			r.failTruncated("instruction (body has no final end)")
			break
		}
		at := r.pos
		op := r.b[r.pos]
		r.pos++
		// One table lookup and a dense switch: this loop is nearly all of
		// Instrument's run time.
		switch immediates[op] {
		case immNone:
		case immU32:
			idx := r.u32("index")
			if op == 0x40 && idx == 0 && grow != nil && r.err == nil {
				dst = append(dst, r.b[copyFrom:at]...)
				dst = append(dst, grow...)
				copyFrom = r.pos
			}
		case immMemarg:
			r.memarg()
		case immS32:
			r.s32("i32.const")
		case immS64:
			r.s64("i64.const")
		case immBytes4:
			r.bytes(4, "f32.const")
		case immBytes8:
			r.bytes(8, "f64.const")
		case immLoop:
			r.blockType()
			depth++
			if r.err == nil {
				dst = append(dst, r.b[copyFrom:r.pos]...)
				dst = append(dst, prologue...)
				copyFrom = r.pos
			}
		case immBlock: // block, if, try (legacy exception handling)
			r.blockType()
			depth++
		case immTryTable: // try_table bt vec(catch)
			r.blockType()
			n := r.u32("try_table catch count")
			for i := uint32(0); i < n && r.err == nil; i++ {
				switch kind := r.byte(); kind {
				case 0x00, 0x01: // catch / catch_ref tag label
					r.u32("tag index")
					r.u32("label")
				case 0x02, 0x03: // catch_all / catch_all_ref label
					r.u32("label")
				default:
					if r.err == nil {
						r.pos--
						r.fail("invalid try_table catch kind %#x", kind)
					}
				}
			}
			depth++
		case immEnd:
			depth--
			if depth < 0 {
				if r.pos != r.end {
					r.pos = at
					r.fail("function body continues after its final end")
					break
				}
				return append(dst, r.b[copyFrom:r.pos]...), nil
			}
		case immDelegate: // delegate label: ends a legacy try block
			r.u32("label")
			depth--
			if depth < 0 {
				r.pos = at
				r.fail("delegate outside a try block")
			}
		case immBrTable: // vec(label) label
			n := r.u32("br_table length")
			for i := uint32(0); i <= n && r.err == nil; i++ {
				r.u32("br_table label")
			}
		case immU32x2: // call_indirect / return_call_indirect: type table
			r.u32("type index")
			r.u32("table index")
		case immSelectT: // vec(valtype)
			n := r.u32("select type count")
			for i := uint32(0); i < n && r.err == nil; i++ {
				r.valType()
			}
		case immHeapType:
			r.s33("heap type")
		case immFC:
			r.prefixFC(at)
		case immFD:
			r.prefixFD(at)
		case immFE:
			r.prefixFE(at)
		default:
			r.pos = at
			r.fail("unknown opcode %#02x", op)
		}
	}
	return dst, r.err
}

// Immediate shapes of the one-byte opcodes.
const (
	immUnknown = iota
	immNone
	immU32
	immU32x2
	immMemarg
	immS32
	immS64
	immBytes4
	immBytes8
	immLoop
	immBlock
	immTryTable
	immEnd
	immDelegate
	immBrTable
	immSelectT
	immHeapType
	immFC
	immFD
	immFE
)

// immediates maps each opcode byte to the shape of its immediates;
// immUnknown (zero) marks bytes that are not opcodes.
var immediates = func() (t [256]uint8) {
	set := func(kind uint8, ops ...byte) {
		for _, op := range ops {
			t[op] = kind
		}
	}
	setRange := func(kind uint8, lo, hi byte) {
		for op := int(lo); op <= int(hi); op++ {
			t[op] = kind
		}
	}
	// unreachable, nop, else, throw_ref, return, catch_all (legacy), drop,
	// select, ref.is_null, ref.eq, ref.as_non_null
	set(immNone, 0x00, 0x01, 0x05, 0x0a, 0x0f, 0x19, 0x1a, 0x1b, 0xd1, 0xd3, 0xd4)
	setRange(immNone, 0x45, 0xc4)   // numeric instructions and sign extension
	set(immBlock, 0x02, 0x04, 0x06) // block, if, try (legacy)
	set(immLoop, 0x03)
	set(immTryTable, 0x1f)
	set(immEnd, 0x0b)
	set(immDelegate, 0x18)
	// catch tag, throw tag, rethrow label (legacy), br, br_if, call,
	// return_call, call_ref type, return_call_ref type, ref.func,
	// br_on_null, br_on_non_null
	set(immU32, 0x07, 0x08, 0x09, 0x0c, 0x0d, 0x10, 0x12, 0x14, 0x15, 0xd2, 0xd5, 0xd6)
	// local.get/set/tee, global.get/set, table.get/set
	setRange(immU32, 0x20, 0x26)
	set(immU32, 0x3f, 0x40) // memory.size, memory.grow: memory index
	set(immBrTable, 0x0e)
	set(immU32x2, 0x11, 0x13) // call_indirect, return_call_indirect
	set(immSelectT, 0x1c)
	setRange(immMemarg, 0x28, 0x3e) // loads and stores
	set(immS32, 0x41)
	set(immS64, 0x42)
	set(immBytes4, 0x43)
	set(immBytes8, 0x44)
	set(immHeapType, 0xd0) // ref.null
	set(immFC, 0xfc)
	set(immFD, 0xfd)
	set(immFE, 0xfe)
	return t
}()

// memarg reads align and offset. With multi-memory, bit 6 of the
// alignment field says a memory index follows; offsets are u64 so that
// memory64 modules decode too.
func (r *reader) memarg() {
	align := r.u32("memarg alignment")
	if align&0x40 != 0 {
		r.u32("memarg memory index")
	}
	r.u64("memarg offset")
}

// prefixFC decodes the 0xFC (saturating truncation, bulk memory, table)
// instructions.
func (r *reader) prefixFC(at int) {
	sub := r.u32("0xfc sub-opcode")
	if r.err != nil {
		return
	}
	switch {
	case sub <= 7: // iNN.trunc_sat_fMM_{s,u}
	case sub == 9, sub == 11, sub == 13, sub == 15, sub == 16, sub == 17:
		// data.drop, memory.fill, elem.drop, table.grow, table.size, table.fill
		r.u32("index")
	case sub == 8, sub == 10, sub == 12, sub == 14:
		// memory.init data mem, memory.copy mem mem, table.init elem table,
		// table.copy table table
		r.u32("index")
		r.u32("index")
	default:
		r.pos = at
		r.fail("unknown opcode 0xfc %d", sub)
	}
}

// prefixFD decodes the 0xFD (fixed-width SIMD) instructions. The
// immediate shapes are: memarg for the loads and stores (0-11, 92-93),
// memarg plus a lane byte for the lane loads/stores (84-91), 16 bytes for
// v128.const (12) and i8x16.shuffle (13), one lane byte for
// extract/replace_lane (21-34), and nothing for the rest of 0-255.
func (r *reader) prefixFD(at int) {
	sub := r.u32("0xfd sub-opcode")
	if r.err != nil {
		return
	}
	switch {
	case sub <= 11, sub == 92, sub == 93:
		r.memarg()
	case sub == 12, sub == 13:
		r.bytes(16, "v128 immediate")
	case sub >= 21 && sub <= 34:
		r.byte()
	case sub >= 84 && sub <= 91:
		r.memarg()
		r.byte()
	case sub <= 255:
	default:
		// 0x100 and up are relaxed SIMD, which wazero does not implement.
		r.pos = at
		r.fail("unknown opcode 0xfd %d", sub)
	}
}

// prefixFE decodes the 0xFE (threads) instructions: atomic.fence has a
// single zero byte, everything else a memarg.
func (r *reader) prefixFE(at int) {
	sub := r.u32("0xfe sub-opcode")
	if r.err != nil {
		return
	}
	switch {
	case sub == 3:
		if c := r.byte(); c != 0 && r.err == nil {
			r.pos--
			r.fail("atomic.fence: expected zero byte, got %#x", c)
		}
	case sub <= 2, sub >= 0x10 && sub <= 0x4e:
		r.memarg()
	default:
		r.pos = at
		r.fail("unknown opcode 0xfe %d", sub)
	}
}

// funcError names the function a body error is in.
func funcError(funcIndex uint32, err error) error {
	return fmt.Errorf("function %d: %w", funcIndex, err)
}
