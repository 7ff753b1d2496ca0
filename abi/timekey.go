package abi

import "encoding/binary"

// TimeKeySize is the length of a time key.
const TimeKeySize = 8

// AppendTimeKey appends the 8-byte time key of ts (milliseconds) to dst:
// big-endian uint64(ts) XOR 1<<63, so that the byte-wise order of time
// keys is the numeric order of their timestamps, negative ones included.
// Operators key windowed state by AppendTimeKey(ts) followed by the rest
// of the key and expire it by scanning [time key of min int64, time key of
// cutoff) (SPEC.md, "Stream time and expiring state").
func AppendTimeKey(dst []byte, ts int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(ts)^(1<<63))
}

// DecodeTimeKey returns the timestamp encoded by the first 8 bytes of b,
// or ok=false when b is shorter than 8 bytes.
func DecodeTimeKey(b []byte) (ts int64, ok bool) {
	if len(b) < TimeKeySize {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)), true
}
