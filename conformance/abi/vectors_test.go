// Package abi_test checks the ABI v1 byte layouts against golden vectors
// in testdata/. The vectors are the contract every SDK and runtime is
// checked against: each file is hex, one field per line with a comment
// naming it ('#' to end of line), written field by field by this test
// independently of package abi's codec. Regenerate them (only for a
// deliberate change of the layout, which means a new ABI version) with
//
//	go test ./conformance/abi -update
package abi_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/abi"
)

var update = flag.Bool("update", false, "rewrite the golden vectors")

// vector is one golden file: the Go values it encodes and the annotated
// field-by-field form of the bytes.
type vector struct {
	file   string
	encode func() []byte      // with package abi
	fields func(*fieldWriter) // independently, field by field
	decode func(t *testing.T, b []byte)
}

// fieldWriter writes annotated hex.
type fieldWriter struct {
	text  strings.Builder
	bytes []byte
}

func (w *fieldWriter) comment(s string) { fmt.Fprintf(&w.text, "# %s\n", s) }

func (w *fieldWriter) raw(b []byte, what string) {
	w.bytes = append(w.bytes, b...)
	h := hex.EncodeToString(b)
	if h == "" {
		h = "--"
	}
	fmt.Fprintf(&w.text, "%-40s # %s\n", h, what)
}

func (w *fieldWriter) u32(v uint32, what string) {
	w.raw(binary.LittleEndian.AppendUint32(nil, v), fmt.Sprintf("%s = %d", what, v))
}

func (w *fieldWriter) i32(v int32, what string) {
	w.raw(binary.LittleEndian.AppendUint32(nil, uint32(v)), fmt.Sprintf("%s = %d", what, v))
}

func (w *fieldWriter) i64(v int64, what string) {
	w.raw(binary.LittleEndian.AppendUint64(nil, uint64(v)), fmt.Sprintf("%s = %d", what, v))
}

// bytesField writes a length (-1 for nil) then the bytes.
func (w *fieldWriter) lenOf(b []byte, what string) {
	if b == nil {
		w.i32(-1, what+" (null)")
		return
	}
	w.i32(int32(len(b)), what)
}

func (w *fieldWriter) data(b []byte, what string) {
	if len(b) == 0 {
		return
	}
	w.raw(b, fmt.Sprintf("%s %q", what, b))
}

func (w *fieldWriter) headers(hs []abi.Header) {
	for i, h := range hs {
		w.lenOf(h.Key, fmt.Sprintf("  header %d key_len", i))
		w.lenOf(h.Value, fmt.Sprintf("  header %d value_len", i))
		w.data(h.Key, fmt.Sprintf("  header %d key", i))
		w.data(h.Value, fmt.Sprintf("  header %d value", i))
	}
}

var inputRecords = []abi.Record{
	{Offset: 100, Timestamp: 1700000000000, Input: 0, Key: nil, Value: []byte("hello")},
	{Offset: 101, Timestamp: 1700000000001, Input: 1, Key: []byte{}, Value: []byte{},
		Headers: []abi.Header{{Key: []byte("h1"), Value: []byte("v1")}, {Key: []byte("h2"), Value: nil}, {Key: []byte("h3"), Value: []byte{}}}},
	{Offset: 102, Timestamp: -1, Input: 0, Key: []byte("k"), Value: nil},
}

var outputs = []abi.Output{
	{Output: 0, Partition: abi.PartitionByKey, Timestamp: abi.TimestampInherit, Key: []byte("word"), Value: []byte("1")},
	{Output: 1, Partition: 3, Timestamp: 1700000000123, Key: nil, Value: []byte("x"),
		Headers: []abi.Header{{Key: []byte("trace"), Value: nil}}},
}

var scanEntries = [][2][]byte{
	{[]byte("a"), []byte("1")},
	{[]byte("b"), []byte{}},
	{[]byte("c\x00"), []byte("xyz")},
}

// timeKeyStamps are the timestamps of time_keys.hex, in ascending order:
// their time keys must be in ascending byte order too.
var timeKeyStamps = []int64{
	-9223372036854775808, // min int64: the lower bound of an expiry scan
	-1000,
	-1,
	0,
	1,
	1000,
	1700000000000,
	9223372036854775807,
}

// timeKeyFields writes the time key of ts the way SPEC.md defines it: the
// 8 bytes of ts, most significant first, with the top bit flipped.
func timeKeyFields(w *fieldWriter, ts int64) {
	var b [8]byte
	u := uint64(ts)
	for i := 7; i >= 0; i-- {
		b[i] = byte(u)
		u >>= 8
	}
	b[0] ^= 0x80
	w.raw(b[:], fmt.Sprintf("time key of %d", ts))
}

var vectors = []vector{
	{
		file: "input_batch.hex",
		encode: func() []byte {
			b := make([]byte, abi.BatchHeaderSize)
			abi.PutBatchHeader(b, abi.BatchHeader{Count: 3, Partition: 2})
			for i := range inputRecords {
				b = abi.AppendRecord(b, &inputRecords[i])
			}
			return b
		},
		fields: func(w *fieldWriter) {
			w.comment("input batch: 3 records from partition 2 (ABI v1)")
			w.u32(3, "count")
			w.i32(2, "partition")
			w.u32(0, "flags")
			w.u32(0, "reserved")
			for i, r := range inputRecords {
				w.comment(fmt.Sprintf("record %d", i))
				w.i64(r.Offset, "offset")
				w.i64(r.Timestamp, "timestamp")
				w.u32(r.Input, "input")
				w.lenOf(r.Key, "key_len")
				w.lenOf(r.Value, "value_len")
				w.u32(uint32(len(r.Headers)), "header_count")
				w.data(r.Key, "key")
				w.data(r.Value, "value")
				w.headers(r.Headers)
			}
		},
		decode: func(t *testing.T, b []byte) {
			rr, err := abi.NewRecordReader(b)
			if err != nil {
				t.Fatal(err)
			}
			if h := rr.Header(); h.Count != 3 || h.Partition != 2 || h.Flags != 0 {
				t.Fatalf("header %+v", h)
			}
			var r abi.Record
			for i, want := range inputRecords {
				if !rr.Next(&r) {
					t.Fatalf("record %d: %v", i, rr.Err())
				}
				if r.Offset != want.Offset || r.Timestamp != want.Timestamp || r.Input != want.Input ||
					!same(r.Key, want.Key) || !same(r.Value, want.Value) || !sameHeaders(r.Headers, want.Headers) {
					t.Fatalf("record %d: got %+v, want %+v", i, r, want)
				}
			}
			if rr.Next(&r) || rr.Err() != nil {
				t.Fatalf("trailing data: %v", rr.Err())
			}
		},
	},
	{
		file: "empty_batch.hex",
		encode: func() []byte {
			b := make([]byte, abi.BatchHeaderSize)
			abi.PutBatchHeader(b, abi.BatchHeader{Count: 0, Partition: 0})
			return b
		},
		fields: func(w *fieldWriter) {
			w.comment("input batch with no records, partition 0")
			w.u32(0, "count")
			w.i32(0, "partition")
			w.u32(0, "flags")
			w.u32(0, "reserved")
		},
		decode: func(t *testing.T, b []byte) {
			rr, err := abi.NewRecordReader(b)
			if err != nil {
				t.Fatal(err)
			}
			var r abi.Record
			if rr.Next(&r) || rr.Err() != nil {
				t.Fatalf("an empty batch yields a record or an error: %v", rr.Err())
			}
		},
	},
	{
		file: "output_batch.hex",
		encode: func() []byte {
			var b []byte
			for i := range outputs {
				b = abi.AppendOutput(b, &outputs[i])
			}
			return b
		},
		fields: func(w *fieldWriter) {
			w.comment("output batch (what a guest passes to emit): 2 outputs")
			for i, o := range outputs {
				w.comment(fmt.Sprintf("output %d", i))
				w.u32(o.Output, "output")
				w.i32(o.Partition, "partition")
				w.i64(o.Timestamp, "timestamp")
				w.lenOf(o.Key, "key_len")
				w.lenOf(o.Value, "value_len")
				w.u32(uint32(len(o.Headers)), "header_count")
				w.data(o.Key, "key")
				w.data(o.Value, "value")
				w.headers(o.Headers)
			}
		},
		decode: func(t *testing.T, b []byte) {
			var or abi.OutputReader
			or.Reset(b)
			var o abi.Output
			for i, want := range outputs {
				if !or.Next(&o) {
					t.Fatalf("output %d: %v", i, or.Err())
				}
				if o.Output != want.Output || o.Partition != want.Partition || o.Timestamp != want.Timestamp ||
					!same(o.Key, want.Key) || !same(o.Value, want.Value) || !sameHeaders(o.Headers, want.Headers) {
					t.Fatalf("output %d: got %+v, want %+v", i, o, want)
				}
			}
			if or.Next(&o) || or.Err() != nil {
				t.Fatalf("trailing data: %v", or.Err())
			}
		},
	},
	{
		file: "scan_result.hex",
		encode: func() []byte {
			var b []byte
			for _, e := range scanEntries {
				b = abi.AppendScanEntry(b, e[0], e[1])
			}
			return b
		},
		fields: func(w *fieldWriter) {
			w.comment("state_scan result: 3 entries in key order")
			for i, e := range scanEntries {
				w.comment(fmt.Sprintf("entry %d", i))
				w.u32(uint32(len(e[0])), "key_len")
				w.u32(uint32(len(e[1])), "value_len")
				w.data(e[0], "key")
				w.data(e[1], "value")
			}
		},
		decode: func(t *testing.T, b []byte) {
			var sr abi.ScanReader
			sr.Reset(b)
			for i, want := range scanEntries {
				k, v, ok := sr.Next()
				if !ok || !bytes.Equal(k, want[0]) || !bytes.Equal(v, want[1]) {
					t.Fatalf("entry %d: %q=%q (%v), want %q=%q", i, k, v, sr.Err(), want[0], want[1])
				}
			}
			if _, _, ok := sr.Next(); ok || sr.Err() != nil {
				t.Fatalf("trailing data: %v", sr.Err())
			}
		},
	},
	{
		file: "time_keys.hex",
		encode: func() []byte {
			var b []byte
			for _, ts := range timeKeyStamps {
				b = abi.AppendTimeKey(b, ts)
			}
			return b
		},
		fields: func(w *fieldWriter) {
			w.comment("time keys (8 bytes each: big-endian uint64(ts) XOR 1<<63), timestamps ascending")
			for _, ts := range timeKeyStamps {
				timeKeyFields(w, ts)
			}
		},
		decode: func(t *testing.T, b []byte) {
			if len(b) != 8*len(timeKeyStamps) {
				t.Fatalf("%d bytes, want %d", len(b), 8*len(timeKeyStamps))
			}
			for i, want := range timeKeyStamps {
				k := b[8*i : 8*i+8]
				if ts, ok := abi.DecodeTimeKey(k); !ok || ts != want {
					t.Fatalf("key %d (%x) decodes to %d, %v; want %d", i, k, ts, ok, want)
				}
				if i > 0 && bytes.Compare(b[8*(i-1):8*i], k) >= 0 {
					t.Fatalf("key %d (%x) does not sort after key %d", i, k, i-1)
				}
			}
			if _, ok := abi.DecodeTimeKey(b[:7]); ok {
				t.Fatal("a 7-byte time key must not decode")
			}
		},
	},
}

func same(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func sameHeaders(a, b []abi.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Key, b[i].Key) || !same(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// parseHex reads a golden file: hex digits, '#' comments, "--" for a field
// with no bytes, whitespace ignored.
func parseHex(text string) ([]byte, error) {
	var digits strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.ReplaceAll(line, "--", "")
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	return hex.DecodeString(digits.String())
}

func TestGoldenVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.file, func(t *testing.T) {
			var w fieldWriter
			v.fields(&w)
			encoded := v.encode()
			if !bytes.Equal(encoded, w.bytes) {
				t.Fatalf("package abi encodes\n%x\nbut the layout, field by field, is\n%x", encoded, w.bytes)
			}
			path := filepath.Join("testdata", v.file)
			if *update {
				if err := os.WriteFile(path, []byte(w.text.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			golden, err := parseHex(string(text))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if !bytes.Equal(encoded, golden) {
				t.Fatalf("%s differs from the encoding:\n got %x\nwant %x", path, encoded, golden)
			}
			v.decode(t, golden)
		})
	}
}
