package batch

import (
	"encoding/binary"
	"hash/crc32"
)

// Builder encodes an uncompressed RecordBatch v2. It is used where the broker
// must write batches itself (compaction rewrites, benchmarks, tests); batches
// from producers are never re-encoded. The zero value is ready to use and a
// Builder can be Reset and reused without allocating.
type Builder struct {
	buf          []byte
	count        int32
	baseTS       int64
	maxTS        int64
	lastDelta    int32
	producerID   int64
	producerEpch int16
	baseSequence int32
	attributes   int16
}

// Reset starts a new batch whose records' timestamps are relative to baseTS.
func (b *Builder) Reset(baseTS int64) {
	if cap(b.buf) < HeaderSize {
		b.buf = make([]byte, HeaderSize, 4096)
	}
	b.buf = b.buf[:HeaderSize]
	clear(b.buf)
	b.count = 0
	b.baseTS = baseTS
	b.maxTS = baseTS
	b.lastDelta = 0
	b.producerID = -1
	b.producerEpch = -1
	b.baseSequence = -1
	b.attributes = 0
}

// SetProducer marks the batch as written by an idempotent producer.
func (b *Builder) SetProducer(id int64, epoch int16, baseSequence int32) {
	b.producerID, b.producerEpch, b.baseSequence = id, epoch, baseSequence
}

// SetAttributes sets the attribute bits other than compression, which the
// builder never uses.
func (b *Builder) SetAttributes(attrs int16) { b.attributes = attrs &^ CompressionMask }

// Len is the number of records added since Reset.
func (b *Builder) Len() int { return int(b.count) }

// Size is the encoded size of the batch so far.
func (b *Builder) Size() int { return len(b.buf) }

// Add appends a record. offsetDelta must be at least the previous one; it is
// usually the record's index, but compaction keeps the original deltas so
// that offsets never change. A nil key or value is encoded as null.
func (b *Builder) Add(offsetDelta int32, timestamp int64, key, value []byte, headers []RecordHeader) {
	if b.buf == nil {
		b.Reset(timestamp)
	}
	bodyLen := 1 + varintLen(timestamp-b.baseTS) + varintLen(int64(offsetDelta)) +
		bytesLen(key) + bytesLen(value) + varintLen(int64(len(headers)))
	for _, h := range headers {
		bodyLen += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	b.buf = binary.AppendVarint(b.buf, int64(bodyLen))
	b.buf = append(b.buf, 0)
	b.buf = binary.AppendVarint(b.buf, timestamp-b.baseTS)
	b.buf = binary.AppendVarint(b.buf, int64(offsetDelta))
	b.buf = appendBytes(b.buf, key)
	b.buf = appendBytes(b.buf, value)
	b.buf = binary.AppendVarint(b.buf, int64(len(headers)))
	for _, h := range headers {
		b.buf = binary.AppendVarint(b.buf, int64(len(h.Key)))
		b.buf = append(b.buf, h.Key...)
		b.buf = appendBytes(b.buf, h.Value)
	}
	b.count++
	b.lastDelta = offsetDelta
	if timestamp > b.maxTS {
		b.maxTS = timestamp
	}
}

// Finish fills in the header, including the CRC, and returns the encoded
// batch with base offset 0. The slice is owned by the Builder until the next
// Reset; copy it to keep it.
func (b *Builder) Finish() []byte {
	return b.FinishWithLastDelta(b.lastDelta)
}

// FinishWithLastDelta is Finish with an explicit lastOffsetDelta, which
// compaction needs when the batch's last records were removed: the batch
// must still claim its whole original offset range.
func (b *Builder) FinishWithLastDelta(lastDelta int32) []byte {
	if b.buf == nil {
		b.Reset(0)
	}
	h := b.buf
	binary.BigEndian.PutUint64(h[offBaseOffset:], 0)
	binary.BigEndian.PutUint32(h[offBatchLength:], uint32(len(h)-LengthPrefix))
	binary.BigEndian.PutUint32(h[offLeaderEpoch:], 0)
	h[offMagic] = 2
	binary.BigEndian.PutUint16(h[offAttributes:], uint16(b.attributes))
	binary.BigEndian.PutUint32(h[offLastOffsetDelta:], uint32(lastDelta))
	binary.BigEndian.PutUint64(h[offBaseTimestamp:], uint64(b.baseTS))
	binary.BigEndian.PutUint64(h[offMaxTimestamp:], uint64(b.maxTS))
	binary.BigEndian.PutUint64(h[offProducerID:], uint64(b.producerID))
	binary.BigEndian.PutUint16(h[offProducerEpoch:], uint16(b.producerEpch))
	binary.BigEndian.PutUint32(h[offBaseSequence:], uint32(b.baseSequence))
	binary.BigEndian.PutUint32(h[offRecordCount:], uint32(b.count))
	binary.BigEndian.PutUint32(h[offCRC:], crc32.Checksum(h[offAttributes:], castagnoli))
	return h
}

func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

func bytesLen(v []byte) int {
	if v == nil {
		return 1
	}
	return varintLen(int64(len(v))) + len(v)
}

func appendBytes(dst, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(v)))
	return append(dst, v...)
}
