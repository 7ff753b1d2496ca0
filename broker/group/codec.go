package group

import (
	"encoding/binary"
	"errors"
	"math"
)

// Record format of the offsets topic. Every key and value starts with a
// big-endian int16 version that says what follows, so that a newer node
// can add kinds and an older one refuses them instead of misreading them.
// Strings are an int16 length and the bytes; a null string has length -1.
//
//	offset key   (v1): group string, topic string, partition int32
//	offset value (v1): offset int64, leader epoch int32, metadata string, commit time int64 (ms)
//	fact key     (v2): group string, name string
//	fact value   (v1): value bytes (int32 length, then the bytes)
//	group deleted key (v3): group string; value always null
//
// A null value is a tombstone: the key's entry is deleted, and compaction
// eventually removes both. Kafka's own __consumer_offsets uses key versions
// 0 and 1 for offsets and 2 for group metadata; sluice's layout is its own
// (the topic is not read by Kafka tools), so the numbers do not line up.
const (
	kindOffset       int16 = 1
	kindFact         int16 = 2
	kindGroupDeleted int16 = 3

	offsetValueV1 int16 = 1
	factValueV1   int16 = 1
)

var errBadRecord = errors.New("group: malformed offsets-topic record")

type key struct {
	kind  int16
	group string
	tp    TopicPartition
	name  string
}

func appendString(b []byte, s string) []byte {
	if len(s) > math.MaxInt16 {
		s = s[:math.MaxInt16] // names are validated far below this
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func encodeOffsetKey(group string, tp TopicPartition) []byte {
	b := make([]byte, 0, 2+2+len(group)+2+len(tp.Topic)+4)
	b = binary.BigEndian.AppendUint16(b, uint16(kindOffset))
	b = appendString(b, group)
	b = appendString(b, tp.Topic)
	return binary.BigEndian.AppendUint32(b, uint32(tp.Partition))
}

func encodeFactKey(group, name string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(kindFact))
	b = appendString(b, group)
	return appendString(b, name)
}

func encodeGroupDeletedKey(group string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(kindGroupDeleted))
	return appendString(b, group)
}

func encodeOffset(o Offset) []byte {
	b := make([]byte, 0, 2+8+4+2+16+8)
	b = binary.BigEndian.AppendUint16(b, uint16(offsetValueV1))
	b = binary.BigEndian.AppendUint64(b, uint64(o.Offset))
	b = binary.BigEndian.AppendUint32(b, uint32(o.LeaderEpoch))
	if o.Metadata == nil {
		b = binary.BigEndian.AppendUint16(b, 0xffff)
	} else {
		b = appendString(b, *o.Metadata)
	}
	return binary.BigEndian.AppendUint64(b, uint64(o.CommitTime))
}

func encodeFact(v []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(factValueV1))
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// reader decodes the fields above; any short read sets bad.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) n(k int) []byte {
	if r.bad || len(r.b) < k {
		r.bad = true
		return make([]byte, k)
	}
	v := r.b[:k]
	r.b = r.b[k:]
	return v
}

func (r *reader) i16() int16 { return int16(binary.BigEndian.Uint16(r.n(2))) }
func (r *reader) i32() int32 { return int32(binary.BigEndian.Uint32(r.n(4))) }
func (r *reader) i64() int64 { return int64(binary.BigEndian.Uint64(r.n(8))) }

func (r *reader) nullableString() *string {
	l := r.i16()
	if l < 0 {
		return nil
	}
	s := string(r.n(int(l)))
	return &s
}

func (r *reader) string() string {
	s := r.nullableString()
	if s == nil {
		r.bad = true
		return ""
	}
	return *s
}

func decodeKey(b []byte) (key, error) {
	r := reader{b: b}
	k := key{kind: r.i16()}
	switch k.kind {
	case kindOffset:
		k.group = r.string()
		k.tp.Topic = r.string()
		k.tp.Partition = r.i32()
	case kindFact:
		k.group = r.string()
		k.name = r.string()
	case kindGroupDeleted:
		k.group = r.string()
	default:
		return k, errBadRecord
	}
	if r.bad || len(r.b) != 0 {
		return k, errBadRecord
	}
	return k, nil
}

func decodeOffset(b []byte) (Offset, error) {
	r := reader{b: b}
	if r.i16() != offsetValueV1 {
		return Offset{}, errBadRecord
	}
	o := Offset{Offset: r.i64(), LeaderEpoch: r.i32(), Metadata: r.nullableString(), CommitTime: r.i64()}
	if r.bad {
		return Offset{}, errBadRecord
	}
	return o, nil
}

func decodeFact(b []byte) ([]byte, error) {
	r := reader{b: b}
	if r.i16() != factValueV1 {
		return nil, errBadRecord
	}
	n := r.i32()
	if n < 0 || int(n) != len(r.b) {
		return nil, errBadRecord
	}
	return append([]byte(nil), r.b...), nil
}
