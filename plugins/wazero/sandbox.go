package wazero

import (
	"github.com/tetratelabs/wazero/experimental"
)

const pageSize = 65536

// limitedMemory backs one instance's linear memory and refuses to grow it
// past the instance's limit. wazero calls it from the goroutine running the
// guest, so it needs no lock.
//
// Where the platform allows (reserveMemory), the whole limit is reserved
// as address space up front and growing is a reslice: the kernel supplies
// zeroed pages as the guest touches them. Otherwise growth copies into a
// buffer twice the size, which costs a zeroing and a copy of the whole
// memory each time.
type limitedMemory struct {
	buf      []byte
	reserved []byte // the mapping, when reserveMemory worked
	limit    uint64
	// refused is the size of the first growth refused, 0 if none.
	refused uint64
}

func (m *limitedMemory) Allocate(_, max uint64) experimental.LinearMemory {
	if max < m.limit {
		m.limit = max
	}
	if r, err := reserveMemory(m.limit); err == nil {
		m.reserved = r
		m.buf = r[:0]
	}
	return m
}

// Reallocate grows the memory to size bytes or returns nil, which makes
// the guest's memory.grow return -1.
func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		if m.refused == 0 {
			m.refused = size
		}
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		// Bytes past len are zero (fresh pages, or zeroed by make) and
		// were never written: the guest cannot reach past the memory's
		// length.
		m.buf = m.buf[:size]
		return m.buf
	}
	newCap := min(max(size, 2*uint64(cap(m.buf))), m.limit)
	nb := make([]byte, size, newCap)
	copy(nb, m.buf)
	m.buf = nb
	return nb
}

// Free releases the memory. wazero calls it when the module closes, after
// which no host code touches guest memory: host functions copy what they
// keep.
func (m *limitedMemory) Free() {
	if m.reserved != nil {
		releaseMemory(m.reserved)
		m.reserved = nil
	}
	m.buf = nil
}
