package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kmsgBatch encodes records with franz-go's independent codec so that our
// decoder is checked against another implementation, not against itself.
func kmsgBatch(t testing.TB, recs []kmsg.Record) []byte {
	t.Helper()
	var body []byte
	for _, r := range recs {
		body = r.AppendTo(body)
	}
	rb := kmsg.RecordBatch{
		Magic:                2,
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       1000,
		MaxTimestamp:         1000 + int64(len(recs)),
		ProducerID:           7,
		ProducerEpoch:        1,
		FirstSequence:        40,
		NumRecords:           int32(len(recs)),
		Records:              body,
		PartitionLeaderEpoch: -1,
	}
	raw := rb.AppendTo(nil)
	rb.Length = int32(len(raw) - 12)
	raw = rb.AppendTo(nil)
	rb.CRC = int32(crc32.Checksum(raw[21:], castagnoli))
	return rb.AppendTo(nil)
}

func TestDecodeAgainstKmsg(t *testing.T) {
	recs := []kmsg.Record{
		{TimestampDelta64: 0, OffsetDelta: 0, Key: []byte("k0"), Value: []byte("v0")},
		{TimestampDelta64: 1, OffsetDelta: 1, Key: nil, Value: []byte{}},
		{TimestampDelta64: 2, OffsetDelta: 2, Key: []byte{}, Value: nil,
			Headers: []kmsg.Header{{Key: "h", Value: []byte("x")}}},
	}
	for i := range recs {
		// Length is the size of the record after its own varint prefix.
		recs[i].Length = 0
		enc := recs[i].AppendTo(nil)
		_, n := binary.Varint(enc)
		recs[i].Length = int32(len(enc) - n)
	}
	raw := kmsgBatch(t, recs)
	SetBaseOffset(raw, 100)
	h, err := Validate(raw)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 100 || h.RecordCount != 3 || h.LastOffset() != 102 || h.ProducerID != 7 || h.BaseSequence != 40 {
		t.Fatalf("header %+v", h)
	}
	var got []Record
	err = Records(raw, func(r *Record) bool {
		c := *r
		c.Headers = append([]RecordHeader(nil), r.Headers...)
		got = append(got, c)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d records", len(got))
	}
	if string(got[0].Key) != "k0" || string(got[0].Value) != "v0" || got[0].Offset != 100 || got[0].Timestamp != 1000 {
		t.Errorf("record 0: %+v", got[0])
	}
	if got[1].Key != nil || got[1].Value == nil || len(got[1].Value) != 0 {
		t.Errorf("record 1 must have null key and empty value: %+v", got[1])
	}
	if got[2].Key == nil || got[2].Value != nil || len(got[2].Headers) != 1 || got[2].Headers[0].Key != "h" {
		t.Errorf("record 2: %+v", got[2])
	}
}

func TestBuilderRoundTripAndKmsgAgrees(t *testing.T) {
	var b Builder
	b.Reset(5000)
	b.Add(0, 5000, []byte("a"), []byte("1"), nil)
	b.Add(3, 5007, nil, []byte("2"), []RecordHeader{{Key: "x", Value: nil}})
	raw := append([]byte(nil), b.FinishWithLastDelta(4)...)
	h, err := Validate(raw)
	if err != nil {
		t.Fatal(err)
	}
	if h.LastOffsetDelta != 4 || h.RecordCount != 2 || h.MaxTimestamp != 5007 {
		t.Fatalf("header %+v", h)
	}
	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(raw); err != nil {
		t.Fatalf("kmsg cannot read our batch: %v", err)
	}
	if kb.NumRecords != 2 || kb.LastOffsetDelta != 4 || uint32(kb.CRC) != h.CRC {
		t.Fatalf("kmsg sees %+v", kb)
	}
	var offs []int64
	_ = Records(raw, func(r *Record) bool { offs = append(offs, r.Offset); return true })
	if len(offs) != 2 || offs[1] != 3 {
		t.Fatalf("offsets %v", offs)
	}
}

func TestValidateRejects(t *testing.T) {
	var b Builder
	b.Reset(1)
	b.Add(0, 1, []byte("k"), []byte("v"), nil)
	good := append([]byte(nil), b.Finish()...)

	flip := bytes.Clone(good)
	flip[len(flip)-1] ^= 1
	if _, err := Validate(flip); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bit flip in records: %v", err)
	}
	if _, err := Validate(good[:len(good)-1]); !errors.Is(err, ErrTooShort) {
		t.Errorf("truncated: %v", err)
	}
	magic := bytes.Clone(good)
	magic[offMagic] = 1
	if _, err := Validate(magic); !errors.Is(err, ErrBadMagic) {
		t.Errorf("magic 1: %v", err)
	}
	// Base offset and leader epoch are outside the CRC.
	moved := bytes.Clone(good)
	SetBaseOffset(moved, 1<<40)
	SetLeaderEpoch(moved, 9)
	if h, err := Validate(moved); err != nil || h.BaseOffset != 1<<40 || h.LeaderEpoch != 9 {
		t.Errorf("rewritten header fields: %+v %v", h, err)
	}
}

func FuzzValidateAndDecode(f *testing.F) {
	var b Builder
	b.Reset(1)
	b.Add(0, 1, []byte("k"), []byte("v"), []RecordHeader{{Key: "h", Value: []byte("1")}})
	f.Add(append([]byte(nil), b.Finish()...))
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Validate(data)
		if err != nil {
			return
		}
		n := 0
		err = Records(data, func(r *Record) bool { n++; return true })
		if err == nil && n != int(h.RecordCount) {
			t.Fatalf("decoded %d records, header says %d", n, h.RecordCount)
		}
	})
}
