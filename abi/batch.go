package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Byte layouts (all integers little-endian; see SPEC.md "Batches"):
//
//	input batch   = BatchHeader record*
//	BatchHeader   = count:u32 partition:i32 flags:u32 reserved:u32      (16 bytes)
//	record        = offset:i64 timestamp:i64 input:u32 key_len:i32
//	                value_len:i32 header_count:u32 key value header*     (32 + ...)
//	output batch  = output*
//	output        = output:u32 partition:i32 timestamp:i64 key_len:i32
//	                value_len:i32 header_count:u32 key value header*     (28 + ...)
//	header        = key_len:i32 value_len:i32 key value                  (8 + ...)
//	scan result   = (key_len:u32 value_len:u32 key value)*
//
// A length of -1 is null (no bytes follow); 0 is empty. Header keys are
// never null.
const (
	BatchHeaderSize  = 16
	RecordFixedSize  = 32
	OutputFixedSize  = 28
	HeaderFixedSize  = 8
	ScanEntryFixedSz = 8
)

// ErrBadBatch is returned by the decoders for bytes that do not follow
// the layout.
var ErrBadBatch = errors.New("abi: malformed batch")

// Header is a record header. A nil Value is null.
type Header struct {
	Key   []byte
	Value []byte
}

// Record is an input record. Nil Key or Value is null; an empty non-nil
// slice is empty. Decoded records alias the batch they came from.
type Record struct {
	Offset    int64
	Timestamp int64
	// Input is the index of the job input (topic) the record came from.
	Input   uint32
	Key     []byte
	Value   []byte
	Headers []Header
}

// Output is a record the guest emits. Partition is an explicit partition
// or PartitionByKey; Timestamp is milliseconds or TimestampInherit.
type Output struct {
	Output    uint32
	Partition int32
	Timestamp int64
	Key       []byte
	Value     []byte
	Headers   []Header
}

// BatchHeader is the fixed start of an input batch.
type BatchHeader struct {
	Count     uint32
	Partition int32
	Flags     uint32
}

var le = binary.LittleEndian

// PutBatchHeader writes h into the first BatchHeaderSize bytes of dst.
func PutBatchHeader(dst []byte, h BatchHeader) {
	_ = dst[BatchHeaderSize-1]
	le.PutUint32(dst[0:], h.Count)
	le.PutUint32(dst[4:], uint32(h.Partition))
	le.PutUint32(dst[8:], h.Flags)
	le.PutUint32(dst[12:], 0)
}

// ReadBatchHeader parses the fixed start of an input batch.
func ReadBatchHeader(b []byte) (BatchHeader, error) {
	if len(b) < BatchHeaderSize {
		return BatchHeader{}, fmt.Errorf("%w: %d bytes is shorter than the batch header", ErrBadBatch, len(b))
	}
	return BatchHeader{Count: le.Uint32(b[0:]), Partition: int32(le.Uint32(b[4:])), Flags: le.Uint32(b[8:])}, nil
}

func headersSize(hs []Header) int {
	n := 0
	for i := range hs {
		n += HeaderFixedSize + len(hs[i].Key) + len(hs[i].Value)
	}
	return n
}

// RecordSize is the encoded size of an input record.
func RecordSize(keyLen, valueLen int, headers []Header) int {
	return RecordFixedSize + keyLen + valueLen + headersSize(headers)
}

// EncodedSize is the encoded size of r.
func (r *Record) EncodedSize() int { return RecordSize(len(r.Key), len(r.Value), r.Headers) }

// EncodedSize is the encoded size of o.
func (o *Output) EncodedSize() int {
	return OutputFixedSize + len(o.Key) + len(o.Value) + headersSize(o.Headers)
}

func nullableLen(b []byte) uint32 {
	if b == nil {
		return 0xFFFFFFFF
	}
	return uint32(len(b))
}

// PutRecordFixed writes the fixed part of an input record into dst and
// returns RecordFixedSize; the caller then copies key, value and headers
// (PutHeader) right after it. Hosts that decode records straight from a
// storage format use it to avoid building a Record.
func PutRecordFixed(dst []byte, offset, timestamp int64, input uint32, key, value []byte, headerCount int) int {
	_ = dst[RecordFixedSize-1]
	le.PutUint64(dst[0:], uint64(offset))
	le.PutUint64(dst[8:], uint64(timestamp))
	le.PutUint32(dst[16:], input)
	le.PutUint32(dst[20:], nullableLen(key))
	le.PutUint32(dst[24:], nullableLen(value))
	le.PutUint32(dst[28:], uint32(headerCount))
	return RecordFixedSize
}

// PutHeader writes one header into dst and returns its size.
func PutHeader(dst []byte, key, value []byte) int {
	le.PutUint32(dst[0:], uint32(len(key)))
	le.PutUint32(dst[4:], nullableLen(value))
	n := HeaderFixedSize
	n += copy(dst[n:], key)
	n += copy(dst[n:], value)
	return n
}

// PutRecord encodes r into dst, which must hold r.EncodedSize() bytes, and
// returns the number of bytes written.
func PutRecord(dst []byte, r *Record) int {
	n := PutRecordFixed(dst, r.Offset, r.Timestamp, r.Input, r.Key, r.Value, len(r.Headers))
	n += copy(dst[n:], r.Key)
	n += copy(dst[n:], r.Value)
	for i := range r.Headers {
		n += PutHeader(dst[n:], r.Headers[i].Key, r.Headers[i].Value)
	}
	return n
}

// AppendRecord appends the encoding of r to dst.
func AppendRecord(dst []byte, r *Record) []byte {
	dst = grow(dst, r.EncodedSize())
	n := PutRecord(dst[len(dst):cap(dst)], r)
	return dst[:len(dst)+n]
}

// PutOutput encodes o into dst, which must hold o.EncodedSize() bytes, and
// returns the number of bytes written.
func PutOutput(dst []byte, o *Output) int {
	_ = dst[OutputFixedSize-1]
	le.PutUint32(dst[0:], o.Output)
	le.PutUint32(dst[4:], uint32(o.Partition))
	le.PutUint64(dst[8:], uint64(o.Timestamp))
	le.PutUint32(dst[16:], nullableLen(o.Key))
	le.PutUint32(dst[20:], nullableLen(o.Value))
	le.PutUint32(dst[24:], uint32(len(o.Headers)))
	n := OutputFixedSize
	n += copy(dst[n:], o.Key)
	n += copy(dst[n:], o.Value)
	for i := range o.Headers {
		n += PutHeader(dst[n:], o.Headers[i].Key, o.Headers[i].Value)
	}
	return n
}

// AppendOutput appends the encoding of o to dst.
func AppendOutput(dst []byte, o *Output) []byte {
	dst = grow(dst, o.EncodedSize())
	n := PutOutput(dst[len(dst):cap(dst)], o)
	return dst[:len(dst)+n]
}

// AppendScanEntry appends one state_scan result entry to dst.
func AppendScanEntry(dst, key, value []byte) []byte {
	dst = grow(dst, ScanEntryFixedSz+len(key)+len(value))
	dst = le.AppendUint32(dst, uint32(len(key)))
	dst = le.AppendUint32(dst, uint32(len(value)))
	dst = append(dst, key...)
	return append(dst, value...)
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), 2*cap(b)+n)
	copy(nb, b)
	return nb
}

// reader walks a byte slice, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or invalid %s", ErrBadBatch, what)
	}
}

func (r *reader) u32(what string) uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.fail(what)
		return 0
	}
	v := le.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64(what string) uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail(what)
		return 0
	}
	v := le.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// bytes takes n bytes (n as read from a length field; 0xFFFFFFFF is null).
func (r *reader) bytes(n uint32, nullable bool, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n == 0xFFFFFFFF {
		if !nullable {
			r.fail(what)
		}
		return nil
	}
	if uint64(n) > uint64(len(r.b)) {
		r.fail(what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// The decoders below read fields straight off the slice in one function
// each, with the few helpers small enough to inline: inside a Go guest
// (GOOS=wasip1) every non-inlined call costs far more than on a native
// build, and these loops run once per record.

// take splits n bytes (a length field's value; 0xFFFFFFFF is null) off b.
func take(b []byte, n uint32) (v, rest []byte, ok bool) {
	if n == 0xFFFFFFFF {
		return nil, b, true
	}
	if uint64(n) > uint64(len(b)) {
		return nil, b, false
	}
	return b[:n:n], b[n:], true
}

// TakeKeyValue splits a key and a value (length fields kl and vl, either
// of which may be null) off b with one bounds check. It is small enough to
// inline, for decoders that walk a batch in their own loop (the Go SDK
// does, because calls are dear inside a Go guest).
func TakeKeyValue(b []byte, kl, vl uint32) (key, value, rest []byte, ok bool) {
	kn, vn := uint64(kl), uint64(vl)
	if kl == 0xFFFFFFFF {
		kn = 0
	}
	if vl == 0xFFFFFFFF {
		vn = 0
	}
	if kn+vn > uint64(len(b)) {
		return nil, nil, b, false
	}
	if kl != 0xFFFFFFFF {
		key = b[:kn:kn]
	}
	if vl != 0xFFFFFFFF {
		value = b[kn : kn+vn : kn+vn]
	}
	return key, value, b[kn+vn:], true
}

// TakeHeaders decodes count headers off b into dst[:0] and returns the
// rest of b; ok is false when they do not fit or a header key is null.
func TakeHeaders(dst []Header, b []byte, count uint32) ([]Header, []byte, bool) {
	dst = dst[:0]
	if count == 0 {
		return dst, b, true
	}
	// Each header takes at least HeaderFixedSize bytes; a count that
	// cannot fit is rejected before anything is allocated for it.
	if uint64(count)*HeaderFixedSize > uint64(len(b)) {
		return dst, b, false
	}
	for range count {
		if len(b) < HeaderFixedSize {
			return dst, b, false
		}
		kl, vl := le.Uint32(b), le.Uint32(b[4:])
		if kl == 0xFFFFFFFF {
			return dst, b, false // header keys are never null
		}
		b = b[HeaderFixedSize:]
		var h Header
		var ok bool
		if h.Key, b, ok = take(b, kl); !ok {
			return dst, b, false
		}
		if h.Value, b, ok = take(b, vl); !ok {
			return dst, b, false
		}
		dst = append(dst, h)
	}
	return dst, b, true
}

// RecordReader decodes the records of an input batch. The zero value is
// not usable; use NewRecordReader. Decoded records alias the batch and are
// valid until the next call to Next (their Headers slice is reused).
type RecordReader struct {
	h    BatchHeader
	r    reader
	left uint32
}

// NewRecordReader parses the batch header of b.
func NewRecordReader(b []byte) (*RecordReader, error) {
	rr := new(RecordReader)
	return rr, rr.Reset(b)
}

// Reset starts decoding batch b, reusing rr.
func (rr *RecordReader) Reset(b []byte) error {
	h, err := ReadBatchHeader(b)
	if err != nil {
		rr.r = reader{err: err}
		rr.left = 0
		return err
	}
	rr.h = h
	rr.r = reader{b: b[BatchHeaderSize:]}
	rr.left = h.Count
	return nil
}

// Header returns the batch header.
func (rr *RecordReader) Header() BatchHeader { return rr.h }

// Next decodes the next record into rec. It returns false at the end of
// the batch or on malformed input (see Err).
func (rr *RecordReader) Next(rec *Record) bool {
	b := rr.r.b
	if rr.left == 0 || len(b) < RecordFixedSize || rr.r.err != nil {
		return rr.stop()
	}
	rec.Offset = int64(le.Uint64(b[0:]))
	rec.Timestamp = int64(le.Uint64(b[8:]))
	rec.Input = le.Uint32(b[16:])
	kl, vl, hc := le.Uint32(b[20:]), le.Uint32(b[24:]), le.Uint32(b[28:])
	b = b[RecordFixedSize:]
	var ok bool
	if rec.Key, rec.Value, b, ok = TakeKeyValue(b, kl, vl); !ok {
		rr.r.fail("key or value")
		return false
	}
	if hc == 0 {
		rec.Headers = rec.Headers[:0]
	} else if rec.Headers, b, ok = TakeHeaders(rec.Headers, b, hc); !ok {
		rr.r.fail("headers")
		return false
	}
	rr.r.b = b
	rr.left--
	return true
}

// stop is Next's slow path: the end of the batch, or why it cannot go on.
func (rr *RecordReader) stop() bool {
	switch {
	case rr.r.err != nil:
	case rr.left == 0 && len(rr.r.b) != 0:
		rr.r.fail("batch: bytes after the last record")
	case rr.left != 0:
		rr.r.fail("record")
	}
	return false
}

// Err returns the first decoding error, if any.
func (rr *RecordReader) Err() error { return rr.r.err }

// OutputReader decodes an output batch (what a guest passes to emit).
// Decoded outputs alias the batch and are valid until the next Next.
type OutputReader struct {
	r reader
}

// Reset starts decoding output batch b.
func (or *OutputReader) Reset(b []byte) { or.r = reader{b: b} }

// Next decodes the next output into o; false at the end or on an error.
func (or *OutputReader) Next(o *Output) bool {
	b := or.r.b
	if len(b) < OutputFixedSize || or.r.err != nil {
		if len(b) != 0 {
			or.r.fail("output")
		}
		return false
	}
	o.Output = le.Uint32(b[0:])
	o.Partition = int32(le.Uint32(b[4:]))
	o.Timestamp = int64(le.Uint64(b[8:]))
	kl, vl, hc := le.Uint32(b[16:]), le.Uint32(b[20:]), le.Uint32(b[24:])
	b = b[OutputFixedSize:]
	var ok bool
	if o.Key, o.Value, b, ok = TakeKeyValue(b, kl, vl); !ok {
		or.r.fail("key or value")
		return false
	}
	if hc == 0 {
		o.Headers = o.Headers[:0]
	} else if o.Headers, b, ok = TakeHeaders(o.Headers, b, hc); !ok {
		or.r.fail("headers")
		return false
	}
	or.r.b = b
	return true
}

// Err returns the first decoding error, if any.
func (or *OutputReader) Err() error { return or.r.err }

// ScanReader decodes a state_scan result.
type ScanReader struct {
	r reader
}

// Reset starts decoding scan result b.
func (sr *ScanReader) Reset(b []byte) { sr.r = reader{b: b} }

// Next returns the next entry; ok is false at the end or on an error.
func (sr *ScanReader) Next() (key, value []byte, ok bool) {
	r := &sr.r
	if r.err != nil || len(r.b) == 0 {
		return nil, nil, false
	}
	kl := r.u32("scan key length")
	vl := r.u32("scan value length")
	key = r.bytes(kl, false, "scan key")
	value = r.bytes(vl, false, "scan value")
	return key, value, r.err == nil
}

// Err returns the first decoding error, if any.
func (sr *ScanReader) Err() error { return sr.r.err }
