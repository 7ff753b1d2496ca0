package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
)

// Index files (both kinds) are their entries followed by a trailer:
//
//	logSize uint64 | magic uint32 | crc32c uint32
//
// The CRC covers everything before it. logSize ties the index to the exact
// log it was built from: a log that was truncated or rewritten since then
// no longer matches and the index is rebuilt instead of trusted.
const (
	trailerSize      = 16
	offsetEntrySize  = 8
	offsetIndexMagic = 0x534c4f49 // "SLOI"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadIndex marks an index file that cannot be trusted; it is rebuilt.
var errBadIndex = errors.New("index inconsistent with its log")

func appendTrailer(b []byte, logSize int64, magic uint32) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(logSize))
	b = binary.BigEndian.AppendUint32(b, magic)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// checkTrailer verifies an index file and returns its entries section.
func checkTrailer(b []byte, logSize int64, magic uint32, entrySize int) ([]byte, error) {
	if len(b) < trailerSize || (len(b)-trailerSize)%entrySize != 0 {
		return nil, fmt.Errorf("%w: file size %d", errBadIndex, len(b))
	}
	body, tr := b[:len(b)-4], b[len(b)-4:]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(tr) {
		return nil, fmt.Errorf("%w: checksum mismatch", errBadIndex)
	}
	t := b[len(b)-trailerSize:]
	if got := binary.BigEndian.Uint32(t[8:]); got != magic {
		return nil, fmt.Errorf("%w: magic %08x", errBadIndex, got)
	}
	if got := int64(binary.BigEndian.Uint64(t)); got != logSize {
		return nil, fmt.Errorf("%w: built for a %d-byte log, log has %d", errBadIndex, got, logSize)
	}
	return b[:len(b)-trailerSize], nil
}

type indexEntry struct {
	rel uint32 // offset minus the segment base
	pos uint32 // file position of the batch starting at that offset
}

// offsetIndex maps offsets to file positions, sparsely. The appender adds
// entries while readers look them up, hence the lock; it is taken once per
// index interval on the write side, never per record.
type offsetIndex struct {
	mu      sync.RWMutex
	entries []indexEntry
}

func (x *offsetIndex) add(rel, pos uint32) {
	x.mu.Lock()
	x.entries = append(x.entries, indexEntry{rel, pos})
	x.mu.Unlock()
}

// lookup returns the last entry at or before rel; ok is false when rel
// precedes every entry and the search must start at position 0.
func (x *offsetIndex) lookup(rel uint32) (e indexEntry, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	lo, hi := 0, len(x.entries) // first entry with rel > target is in [lo, hi]
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.entries[m].rel <= rel {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return indexEntry{}, false
	}
	return x.entries[lo-1], true
}

func (x *offsetIndex) last() (indexEntry, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.entries) == 0 {
		return indexEntry{}, false
	}
	return x.entries[len(x.entries)-1], true
}

func (x *offsetIndex) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.entries)
}

func (x *offsetIndex) reset() {
	x.mu.Lock()
	x.entries = nil
	x.mu.Unlock()
}

func (x *offsetIndex) encode(logSize int64) []byte {
	x.mu.RLock()
	defer x.mu.RUnlock()
	b := make([]byte, 0, len(x.entries)*offsetEntrySize+trailerSize)
	for _, e := range x.entries {
		b = binary.BigEndian.AppendUint32(b, e.rel)
		b = binary.BigEndian.AppendUint32(b, e.pos)
	}
	return appendTrailer(b, logSize, offsetIndexMagic)
}

// decode replaces the entries with those in file b after checking that
// they are strictly increasing, point inside the log and name offsets
// below maxRel (the next segment's base, relative).
func (x *offsetIndex) decode(b []byte, logSize int64, maxRel int64) error {
	body, err := checkTrailer(b, logSize, offsetIndexMagic, offsetEntrySize)
	if err != nil {
		return err
	}
	entries := make([]indexEntry, 0, len(body)/offsetEntrySize)
	for i := 0; i < len(body); i += offsetEntrySize {
		e := indexEntry{binary.BigEndian.Uint32(body[i:]), binary.BigEndian.Uint32(body[i+4:])}
		if n := len(entries); n > 0 && (e.rel <= entries[n-1].rel || e.pos <= entries[n-1].pos) {
			return fmt.Errorf("%w: entry %d not increasing", errBadIndex, n)
		}
		if int64(e.pos) >= logSize || int64(e.rel) >= maxRel {
			return fmt.Errorf("%w: entry %d (%d@%d) outside the segment", errBadIndex, len(entries), e.rel, e.pos)
		}
		entries = append(entries, e)
	}
	x.mu.Lock()
	x.entries = entries
	x.mu.Unlock()
	return nil
}
