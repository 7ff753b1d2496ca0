// Package batch reads, validates and builds Kafka RecordBatch v2, the unit
// sluice stores on disk and moves over the wire.
//
// A batch is kept as the bytes the producer sent. The broker only rewrites
// the two header fields the CRC does not cover (base offset and partition
// leader epoch); everything from the attributes field to the end is covered
// by a CRC-32C that Validate checks on produce and that recovery checks on
// every read from disk.
//
// Layout of the 61-byte header (big-endian):
//
//	offset  size  field
//	0       8     baseOffset
//	8       4     batchLength (bytes after this field)
//	12      4     partitionLeaderEpoch
//	16      1     magic (2)
//	17      4     crc (CRC-32C of bytes 21..end)
//	21      2     attributes
//	23      4     lastOffsetDelta
//	27      8     baseTimestamp
//	35      8     maxTimestamp
//	43      8     producerId
//	51      2     producerEpoch
//	53      4     baseSequence
//	57      4     recordCount
//	61      ...   records (possibly compressed)
package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Header field positions and sizes.
const (
	HeaderSize = 61
	// LengthPrefix is the number of bytes before and including batchLength;
	// a batch occupies LengthPrefix + batchLength bytes.
	LengthPrefix = 12

	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57

	// MaxBatchSize bounds a single batch; larger lengths are treated as corrupt.
	MaxBatchSize = 64 << 20
)

// Attribute bits.
const (
	CompressionMask        = 0x07
	TimestampLogAppendTime = 0x08
	Transactional          = 0x10
	Control                = 0x20
	DeleteHorizon          = 0x40
)

// Compression codecs as stored in the low three attribute bits.
const (
	CompressionNone   = 0
	CompressionGzip   = 1
	CompressionSnappy = 2
	CompressionLZ4    = 3
	CompressionZstd   = 4
)

// Errors returned for malformed batches. Callers map ErrCorrupt to Kafka's
// CORRUPT_MESSAGE and ErrTooShort to a truncated read.
var (
	ErrTooShort  = errors.New("batch: truncated")
	ErrCorrupt   = errors.New("batch: corrupt")
	ErrBadMagic  = errors.New("batch: unsupported magic (only RecordBatch v2 is accepted)")
	ErrTooLarge  = errors.New("batch: larger than the maximum batch size")
	ErrBadRecord = errors.New("batch: malformed record")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the decoded fixed part of a batch.
type Header struct {
	BaseOffset      int64
	BatchLength     int32
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	RecordCount     int32
}

// Size is the number of bytes the whole batch occupies.
func (h *Header) Size() int { return LengthPrefix + int(h.BatchLength) }

// LastOffset is the offset of the last record in the batch.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset that follows this batch.
func (h *Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Compression returns the codec of the records section.
func (h *Header) Compression() int { return int(h.Attributes & CompressionMask) }

// IsControl reports whether the batch holds transaction markers.
func (h *Header) IsControl() bool { return h.Attributes&Control != 0 }

// IsTransactional reports whether the batch was written in a transaction.
func (h *Header) IsTransactional() bool { return h.Attributes&Transactional != 0 }

// ParseHeader decodes the header at the start of b without checking the CRC.
// It needs only HeaderSize bytes.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrTooShort
	}
	h := Header{
		BaseOffset:      int64(binary.BigEndian.Uint64(b[offBaseOffset:])),
		BatchLength:     int32(binary.BigEndian.Uint32(b[offBatchLength:])),
		LeaderEpoch:     int32(binary.BigEndian.Uint32(b[offLeaderEpoch:])),
		Magic:           int8(b[offMagic]),
		CRC:             binary.BigEndian.Uint32(b[offCRC:]),
		Attributes:      int16(binary.BigEndian.Uint16(b[offAttributes:])),
		LastOffsetDelta: int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:])),
		BaseTimestamp:   int64(binary.BigEndian.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:    int64(binary.BigEndian.Uint64(b[offMaxTimestamp:])),
		ProducerID:      int64(binary.BigEndian.Uint64(b[offProducerID:])),
		ProducerEpoch:   int16(binary.BigEndian.Uint16(b[offProducerEpoch:])),
		BaseSequence:    int32(binary.BigEndian.Uint32(b[offBaseSequence:])),
		RecordCount:     int32(binary.BigEndian.Uint32(b[offRecordCount:])),
	}
	if h.Magic != 2 {
		return h, ErrBadMagic
	}
	if h.BatchLength < HeaderSize-LengthPrefix {
		return h, fmt.Errorf("%w: batch length %d below header size", ErrCorrupt, h.BatchLength)
	}
	if h.BatchLength > MaxBatchSize {
		return h, ErrTooLarge
	}
	if h.LastOffsetDelta < 0 || h.RecordCount < 0 {
		return h, fmt.Errorf("%w: negative record count or offset delta", ErrCorrupt)
	}
	return h, nil
}

// Validate checks that b starts with one complete, well-formed batch whose
// CRC matches, and returns its header. Bytes after the batch are ignored.
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	size := h.Size()
	if len(b) < size {
		return h, ErrTooShort
	}
	if got := crc32.Checksum(b[offAttributes:size], castagnoli); got != h.CRC {
		return h, fmt.Errorf("%w: crc mismatch (stored %08x, computed %08x)", ErrCorrupt, h.CRC, got)
	}
	return h, nil
}

// SetBaseOffset rewrites the base offset of the batch at the start of b.
// The CRC does not cover this field.
func SetBaseOffset(b []byte, offset int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(offset))
}

// SetLeaderEpoch rewrites the partition leader epoch of the batch at the
// start of b. The CRC does not cover this field.
func SetLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// Next splits the first batch off buf after validating it, returning the
// batch, its header and the remaining bytes. A trailing partial batch yields
// ErrTooShort, which callers reading from a fetch treat as "no more".
func Next(buf []byte) (b []byte, h Header, rest []byte, err error) {
	h, err = Validate(buf)
	if err != nil {
		return nil, h, buf, err
	}
	n := h.Size()
	return buf[:n], h, buf[n:], nil
}
