package storage

import (
	"encoding/binary"
	"fmt"
	"sync"
)

const (
	timeEntrySize  = 12
	timeIndexMagic = 0x534c5449 // "SLTI"
)

// timeEntry says: no record at or before offset base+rel has a timestamp
// above ts. Entries have strictly increasing ts and offsets.
type timeEntry struct {
	ts  int64
	rel uint32
}

// timeIndex is the sparse timestamp index of one segment.
type timeIndex struct {
	mu      sync.RWMutex
	entries []timeEntry
}

// maybeAdd appends (ts, rel) if ts exceeds the last entry, which keeps the
// index small when timestamps do not grow (or go backwards).
func (x *timeIndex) maybeAdd(ts int64, rel uint32) {
	x.mu.Lock()
	if n := len(x.entries); n == 0 || ts > x.entries[n-1].ts {
		x.entries = append(x.entries, timeEntry{ts, rel})
	}
	x.mu.Unlock()
}

// lookupBefore returns the last entry whose timestamp is below ts: every
// record up to its offset is older than ts, so a search may start after it.
func (x *timeIndex) lookupBefore(ts int64) (timeEntry, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	lo, hi := 0, len(x.entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.entries[m].ts < ts {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return timeEntry{}, false
	}
	return x.entries[lo-1], true
}

func (x *timeIndex) last() (timeEntry, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.entries) == 0 {
		return timeEntry{}, false
	}
	return x.entries[len(x.entries)-1], true
}

func (x *timeIndex) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.entries)
}

func (x *timeIndex) reset() {
	x.mu.Lock()
	x.entries = nil
	x.mu.Unlock()
}

func (x *timeIndex) encode(logSize int64) []byte {
	x.mu.RLock()
	defer x.mu.RUnlock()
	b := make([]byte, 0, len(x.entries)*timeEntrySize+trailerSize)
	for _, e := range x.entries {
		b = binary.BigEndian.AppendUint64(b, uint64(e.ts))
		b = binary.BigEndian.AppendUint32(b, e.rel)
	}
	return appendTrailer(b, logSize, timeIndexMagic)
}

// decode replaces the entries with those in file b after checking that
// both fields strictly increase and offsets stay below maxRel.
func (x *timeIndex) decode(b []byte, logSize int64, maxRel int64) error {
	body, err := checkTrailer(b, logSize, timeIndexMagic, timeEntrySize)
	if err != nil {
		return err
	}
	entries := make([]timeEntry, 0, len(body)/timeEntrySize)
	for i := 0; i < len(body); i += timeEntrySize {
		e := timeEntry{int64(binary.BigEndian.Uint64(body[i:])), binary.BigEndian.Uint32(body[i+8:])}
		if n := len(entries); n > 0 && (e.ts <= entries[n-1].ts || e.rel <= entries[n-1].rel) {
			return fmt.Errorf("%w: time entry %d not increasing", errBadIndex, n)
		}
		if int64(e.rel) >= maxRel {
			return fmt.Errorf("%w: time entry %d offset %d outside the segment", errBadIndex, len(entries), e.rel)
		}
		entries = append(entries, e)
	}
	x.mu.Lock()
	x.entries = entries
	x.mu.Unlock()
	return nil
}
