package batch

import (
	"encoding/binary"
	"fmt"
)

// RecordHeader is one key/value header attached to a record.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Record is one decoded record. Key and Value alias the batch (or the
// decompressed buffer) and are nil when the record's key or value is null,
// which is distinct from an empty, non-nil slice.
type Record struct {
	Offset    int64
	Timestamp int64
	Key       []byte
	Value     []byte
	Headers   []RecordHeader
}

// Records decodes every record in batch b (which must already be validated),
// decompressing the records section if needed, and calls fn for each until
// fn returns false.
func Records(b []byte, fn func(*Record) bool) error {
	h, err := ParseHeader(b)
	if err != nil {
		return err
	}
	if len(b) < h.Size() {
		return ErrTooShort
	}
	body := b[HeaderSize:h.Size()]
	if c := h.Compression(); c != CompressionNone {
		body, err = decompress(c, body)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	}
	var r Record
	for i := int32(0); i < h.RecordCount; i++ {
		n, err := decodeRecord(body, &h, &r)
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		body = body[n:]
		if !fn(&r) {
			return nil
		}
	}
	return nil
}

// decodeRecord parses one length-prefixed record from body into r and
// returns the number of bytes consumed.
func decodeRecord(body []byte, h *Header, r *Record) (int, error) {
	length, n := binary.Varint(body)
	if n <= 0 || length < 0 || int64(len(body)-n) < length {
		return 0, ErrBadRecord
	}
	total := n + int(length)
	rec := body[n:total]
	d := decoder{b: rec}
	d.byte() // attributes, unused in v2
	tsDelta := d.varint()
	offDelta := d.varint()
	r.Key = d.bytes()
	r.Value = d.bytes()
	nh := d.varint()
	if nh < 0 || nh > int64(len(rec)) {
		return 0, ErrBadRecord
	}
	r.Headers = r.Headers[:0]
	for j := int64(0); j < nh && d.err == nil; j++ {
		k := d.bytes()
		v := d.bytes()
		r.Headers = append(r.Headers, RecordHeader{Key: string(k), Value: v})
	}
	if d.err != nil {
		return 0, d.err
	}
	r.Offset = h.BaseOffset + offDelta
	r.Timestamp = h.BaseTimestamp + tsDelta
	if h.Attributes&TimestampLogAppendTime != 0 {
		r.Timestamp = h.MaxTimestamp
	}
	return total, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.err = ErrBadRecord
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = ErrBadRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a varint-length-prefixed byte string; length -1 means null.
func (d *decoder) bytes() []byte {
	l := d.varint()
	if d.err != nil {
		return nil
	}
	if l == -1 {
		return nil
	}
	if l < -1 || l > int64(len(d.b)) {
		d.err = ErrBadRecord
		return nil
	}
	v := d.b[:l:l]
	d.b = d.b[l:]
	return v
}
