package meter

import (
	"errors"
	"fmt"
)

// errTruncated is wrapped by every error about input that ends too early,
// so callers can tell a cut-off module from a malformed one.
var errTruncated = errors.New("unexpected end of input")

// reader decodes the primitive encodings of the WebAssembly binary format
// over one byte slice. It has a sticky error: after the first failure every
// read returns zero, so callers check err once per item (instruction,
// import, ...) instead of after every immediate. pos is always an index
// into b, which is the whole module, so error offsets are module offsets.
type reader struct {
	b   []byte
	pos int
	end int // reads must stay below end (a section or body limit)
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("at byte offset %#x: %s", r.pos, fmt.Sprintf(format, args...))
	}
}

func (r *reader) failTruncated(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("at byte offset %#x: reading %s: %w", r.pos, what, errTruncated)
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= r.end {
		r.failTruncated("byte")
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

// bytes skips n bytes and returns them (aliasing the input).
func (r *reader) bytes(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(r.end-r.pos) {
		r.failTruncated(what)
		return nil
	}
	s := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return s
}

// leb decodes a LEB128 number of at most bits significant bits, enforcing
// the spec's limits: at most ceil(bits/7) bytes, and the unused high bits
// of the last byte must be zero (unsigned) or a sign extension (signed).
// Signed results are sign-extended to 64 bits.
func (r *reader) leb(bits uint, signed bool, what string) uint64 {
	if r.err != nil {
		return 0
	}
	start := r.pos
	var result uint64
	var shift uint
	for {
		if r.pos >= r.end {
			r.pos = start
			r.failTruncated(what)
			return 0
		}
		c := r.b[r.pos]
		r.pos++
		v := uint64(c & 0x7f)
		if shift+7 >= bits {
			// Last byte this width allows.
			ok := c&0x80 == 0
			if ok {
				if signed {
					mask := byte(0x7f<<(bits-shift-1)) & 0x7f
					ok = c&mask == 0 || c&mask == mask
				} else {
					ok = c&0x7f>>(bits-shift) == 0
				}
			}
			if !ok {
				r.pos = start
				r.fail("%s: integer too large for %d-bit LEB128", what, bits)
				return 0
			}
			result |= v << shift
			shift += 7
			break
		}
		result |= v << shift
		shift += 7
		if c&0x80 == 0 {
			break
		}
	}
	if signed && shift < 64 && result&(1<<(shift-1)) != 0 {
		result |= ^uint64(0) << shift
	}
	return result
}

// u32 has a fast path for the one-byte encoding, which most indices
// and alignments use.
func (r *reader) u32(what string) uint32 {
	if r.pos < r.end && r.b[r.pos] < 0x80 && r.err == nil {
		r.pos++
		return uint32(r.b[r.pos-1])
	}
	return uint32(r.leb(32, false, what))
}

func (r *reader) u64(what string) uint64 { return r.leb(64, false, what) }
func (r *reader) s32(what string) int32  { return int32(r.leb(32, true, what)) }
func (r *reader) s33(what string) int64  { return int64(r.leb(33, true, what)) }
func (r *reader) s64(what string) int64  { return int64(r.leb(64, true, what)) }

// name reads a length-prefixed name. UTF-8 validity is left to the
// runtime: we only compare names, never interpret them.
func (r *reader) name(what string) []byte {
	n := r.u32(what + " length")
	return r.bytes(uint64(n), what)
}

// valType reads a value type: a one-byte number, vector or abstract
// reference type, or (function references / GC) 0x63/0x64 followed by a
// heap type.
func (r *reader) valType() {
	c := r.byte()
	if r.err != nil {
		return
	}
	switch {
	case c == 0x63 || c == 0x64: // (ref null ht), (ref ht)
		r.s33("heap type")
	case c >= 0x7b && c <= 0x7f: // v128, f64, f32, i64, i32
	case c >= 0x69 && c <= 0x74: // funcref, externref, exnref and the GC abstract refs
	default:
		r.pos--
		r.fail("invalid value type %#x", c)
	}
}

// blockType reads a block type: 0x40 (empty), a value type, or a type
// index encoded as a non-negative s33. A one-byte negative s33 is a value
// type; 0x63/0x64 start a two-part reference type.
func (r *reader) blockType() {
	if r.err != nil {
		return
	}
	if r.pos < r.end && (r.b[r.pos] == 0x63 || r.b[r.pos] == 0x64) {
		r.valType()
		return
	}
	r.s33("block type")
}

// limits reads table or memory limits. Flag bit 0 means a maximum
// follows, bit 1 is "shared" (threads), bit 2 is a 64-bit index type
// (memory64 / table64), whose bounds are u64.
func (r *reader) limits() {
	flags := r.byte()
	if flags > 7 {
		r.pos--
		r.fail("invalid limits flags %#x", flags)
		return
	}
	bits := uint(32)
	if flags&4 != 0 {
		bits = 64
	}
	r.leb(bits, false, "limits minimum")
	if flags&1 != 0 {
		r.leb(bits, false, "limits maximum")
	}
}

// appendU32 appends v as minimal unsigned LEB128.
func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
