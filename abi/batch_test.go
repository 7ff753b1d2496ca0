package abi

import (
	"bytes"
	"errors"
	"testing"
)

func sampleRecords() []Record {
	return []Record{
		{Offset: 0, Timestamp: 0},
		{Offset: 1, Timestamp: -1, Input: 2, Key: []byte{}, Value: []byte{}},
		{Offset: 1 << 40, Timestamp: 1700000000000, Input: 1, Key: []byte("key"), Value: bytes.Repeat([]byte{0xAB}, 300),
			Headers: []Header{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte{}, Value: nil}, {Key: []byte("e"), Value: []byte{}}}},
	}
}

func encodeBatch(partition int32, rs []Record) []byte {
	b := make([]byte, BatchHeaderSize)
	PutBatchHeader(b, BatchHeader{Count: uint32(len(rs)), Partition: partition, Flags: 0})
	for i := range rs {
		b = AppendRecord(b, &rs[i])
	}
	return b
}

// sameBytes compares including the null (nil) versus empty distinction.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func sameHeaders(a, b []Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Key, b[i].Key) || !sameBytes(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func TestRecordRoundTrip(t *testing.T) {
	in := sampleRecords()
	b := encodeBatch(-7, in)
	rr, err := NewRecordReader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h := rr.Header(); h.Count != 3 || h.Partition != -7 {
		t.Fatalf("header %+v", h)
	}
	var r Record
	for i := range in {
		if !rr.Next(&r) {
			t.Fatalf("record %d: %v", i, rr.Err())
		}
		w := in[i]
		if r.Offset != w.Offset || r.Timestamp != w.Timestamp || r.Input != w.Input ||
			!sameBytes(r.Key, w.Key) || !sameBytes(r.Value, w.Value) || !sameHeaders(r.Headers, w.Headers) {
			t.Fatalf("record %d: got %+v, want %+v", i, r, w)
		}
		if r.EncodedSize() != w.EncodedSize() {
			t.Fatalf("record %d: size %d, want %d", i, r.EncodedSize(), w.EncodedSize())
		}
	}
	if rr.Next(&r) || rr.Err() != nil {
		t.Fatalf("after the last record: more=%v err=%v", true, rr.Err())
	}
}

func TestOutputAndScanRoundTrip(t *testing.T) {
	outs := []Output{
		{Output: 0, Partition: PartitionByKey, Timestamp: TimestampInherit, Key: nil, Value: []byte("v")},
		{Output: 3, Partition: 5, Timestamp: 42, Key: []byte{}, Value: nil, Headers: []Header{{Key: []byte("h"), Value: nil}}},
	}
	var b []byte
	for i := range outs {
		b = AppendOutput(b, &outs[i])
	}
	var or OutputReader
	or.Reset(b)
	var o Output
	for i := range outs {
		if !or.Next(&o) {
			t.Fatalf("output %d: %v", i, or.Err())
		}
		w := outs[i]
		if o.Output != w.Output || o.Partition != w.Partition || o.Timestamp != w.Timestamp ||
			!sameBytes(o.Key, w.Key) || !sameBytes(o.Value, w.Value) || !sameHeaders(o.Headers, w.Headers) {
			t.Fatalf("output %d: got %+v, want %+v", i, o, w)
		}
	}
	if or.Next(&o) || or.Err() != nil {
		t.Fatalf("after the last output: err=%v", or.Err())
	}

	s := AppendScanEntry(nil, []byte("a"), []byte("1"))
	s = AppendScanEntry(s, []byte("b"), []byte{})
	var sr ScanReader
	sr.Reset(s)
	k, v, ok := sr.Next()
	if !ok || string(k) != "a" || string(v) != "1" {
		t.Fatalf("first entry %q=%q %v", k, v, ok)
	}
	k, v, ok = sr.Next()
	if !ok || string(k) != "b" || v == nil || len(v) != 0 {
		t.Fatalf("second entry %q=%q %v", k, v, ok)
	}
	if _, _, ok := sr.Next(); ok || sr.Err() != nil {
		t.Fatalf("after the last entry: err=%v", sr.Err())
	}
}

// TestTruncatedInputIsAnError cuts a valid batch at every length: the
// reader must report ErrBadBatch, never panic or succeed.
func TestTruncatedInputIsAnError(t *testing.T) {
	b := encodeBatch(0, sampleRecords())
	for cut := 0; cut < len(b); cut++ {
		rr, err := NewRecordReader(b[:cut])
		if err == nil {
			var r Record
			for rr.Next(&r) {
			}
			err = rr.Err()
		}
		if !errors.Is(err, ErrBadBatch) {
			t.Fatalf("batch cut at %d of %d bytes: err %v, want ErrBadBatch", cut, len(b), err)
		}
	}
	// Trailing bytes after the announced records are an error too.
	rr, _ := NewRecordReader(append(bytes.Clone(b), 0))
	var r Record
	for rr.Next(&r) {
	}
	if !errors.Is(rr.Err(), ErrBadBatch) {
		t.Fatalf("trailing byte: %v", rr.Err())
	}
}

func TestTruncatedOutputIsAnError(t *testing.T) {
	o := Output{Key: []byte("k"), Value: []byte("value"), Headers: []Header{{Key: []byte("h"), Value: []byte("v")}}}
	b := AppendOutput(nil, &o)
	for cut := 1; cut < len(b); cut++ {
		var or OutputReader
		or.Reset(b[:cut])
		var got Output
		for or.Next(&got) {
		}
		if !errors.Is(or.Err(), ErrBadBatch) {
			t.Fatalf("output cut at %d of %d bytes: err %v", cut, len(b), or.Err())
		}
	}
}

func TestMalformedLengths(t *testing.T) {
	rec := func(keyLen, valueLen, headerCount uint32, rest ...byte) []byte {
		b := make([]byte, BatchHeaderSize+RecordFixedSize)
		PutBatchHeader(b, BatchHeader{Count: 1})
		le.PutUint32(b[BatchHeaderSize+20:], keyLen)
		le.PutUint32(b[BatchHeaderSize+24:], valueLen)
		le.PutUint32(b[BatchHeaderSize+28:], headerCount)
		return append(b, rest...)
	}
	cases := map[string][]byte{
		"key length -2":          rec(0xFFFFFFFE, 0, 0),
		"value length too long":  rec(0, 1000, 0, 1, 2, 3),
		"header count too large": rec(0, 0, 0xFFFFFFFF),
		"null header key": rec(0, 0, 1,
			0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0),
		"count larger than records": func() []byte {
			b := rec(0, 0, 0)
			le.PutUint32(b, 2)
			return b
		}(),
	}
	for name, b := range cases {
		rr, err := NewRecordReader(b)
		if err == nil {
			var r Record
			for rr.Next(&r) {
			}
			err = rr.Err()
		}
		if !errors.Is(err, ErrBadBatch) {
			t.Errorf("%s: err %v, want ErrBadBatch", name, err)
		}
	}
}

func TestDecodingDoesNotAllocate(t *testing.T) {
	b := encodeBatch(0, sampleRecords())
	var rr RecordReader
	var r Record
	r.Headers = make([]Header, 0, 8)
	allocs := testing.AllocsPerRun(100, func() {
		rr.Reset(b)
		for rr.Next(&r) {
		}
	})
	if allocs != 0 {
		t.Fatalf("decoding a batch allocates %v times", allocs)
	}
}

func FuzzRecordReader(f *testing.F) {
	f.Add(encodeBatch(0, sampleRecords()))
	f.Add(encodeBatch(1, nil))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rr, err := NewRecordReader(b)
		if err != nil {
			return
		}
		var rs []Record
		var r Record
		for rr.Next(&r) {
			c := r
			c.Headers = append([]Header(nil), r.Headers...)
			rs = append(rs, c)
		}
		if rr.Err() != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes (but the reserved
		// header field, which readers ignore).
		again := encodeBatch(rr.Header().Partition, rs)
		le.PutUint32(again[8:], rr.Header().Flags)
		if !bytes.Equal(again[:12], b[:12]) || !bytes.Equal(again[16:], b[16:]) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, again)
		}
	})
}

func FuzzOutputReader(f *testing.F) {
	o := Output{Partition: PartitionByKey, Timestamp: TimestampInherit, Key: []byte("k"), Value: nil,
		Headers: []Header{{Key: []byte("h"), Value: []byte("v")}}}
	f.Add(AppendOutput(nil, &o))
	f.Add([]byte{})
	f.Add(make([]byte, OutputFixedSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		var or OutputReader
		or.Reset(b)
		var again []byte
		var o Output
		for or.Next(&o) {
			again = AppendOutput(again, &o)
		}
		if or.Err() != nil {
			return
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, again)
		}
	})
}
