package sluice

import "github.com/sluice-io/sluice/abi"

// AppendTimeKey appends the 8-byte time key of ts (milliseconds since the
// Unix epoch) to dst and returns the extended slice. Time keys sort
// bytewise in the numeric order of their timestamps (negative ones
// first), so a store keyed by AppendTimeKey(nil, ts) followed by the rest
// of the key keeps its entries in time order, and the entries older than
// a cutoff are one Scan:
//
//	end := sluice.AppendTimeKey(nil, cutoff)
//	for k := range window.Scan(nil, end) { ... window.Delete(k) ... }
//
// The encoding is big-endian uint64(ts) XOR 1<<63 (abi/SPEC.md, "Stream
// time and expiring state"); it does not allocate when dst has room.
func AppendTimeKey(dst []byte, ts int64) []byte { return abi.AppendTimeKey(dst, ts) }

// DecodeTimeKey returns the timestamp of the time key at the start of b,
// and false if b is shorter than 8 bytes.
func DecodeTimeKey(b []byte) (ts int64, ok bool) { return abi.DecodeTimeKey(b) }
