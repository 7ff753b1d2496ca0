package wazero

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"

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

// fakeEpoch is where every instance's wall clock starts:
// 2024-01-01T00:00:00Z.
const fakeEpoch = int64(1704067200) * 1e9

// clockStep is how far the fake clocks advance per reading, as in wazero's
// own fake clocks: time moves, so guests that measure durations or wait
// for deadlines make progress, but only as a function of what the guest
// did, never of the host's real time.
const clockStep = int64(1e6)

// fakeClocks are one instance's deterministic clocks.
type fakeClocks struct {
	wall, mono int64
}

func newFakeClocks() *fakeClocks { return &fakeClocks{wall: fakeEpoch - clockStep, mono: -clockStep} }

func (c *fakeClocks) walltime() (sec int64, nsec int32) {
	c.wall += clockStep
	return c.wall / 1e9, int32(c.wall % 1e9)
}

func (c *fakeClocks) nanotime() int64 {
	c.mono += clockStep
	return c.mono
}

// seededRand is the instance's random_get source: ChaCha8 keyed by the
// task's seed, so a replayed task sees the same bytes.
func seededRand(seed uint64) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	copy(key[8:], "sluice random_get")
	return rand.NewChaCha8(key)
}

// stderrWriter forwards the guest's stderr to w and keeps what the guest
// wrote since the current call began (the first 4 KiB of it), so that a
// fault's detail can quote the guest's dying words ("panic: ...", "fatal
// error: ..."), which the Go runtime prints before a long goroutine dump.
type stderrWriter struct {
	w    io.Writer
	head []byte
}

const stderrKept = 4 << 10

// startCall forgets what earlier calls wrote.
func (s *stderrWriter) startCall() { s.head = s.head[:0] }

func (s *stderrWriter) Write(p []byte) (int, error) {
	if room := stderrKept - len(s.head); room > 0 {
		s.head = append(s.head, p[:min(room, len(p))]...)
	}
	if s.w == nil {
		return len(p), nil
	}
	return s.w.Write(p)
}

// deathLine returns the first "panic: ..." or "fatal error: ..." line the
// guest wrote during the current call, or "".
func (s *stderrWriter) deathLine() string {
	first := -1
	for _, marker := range []string{"panic: ", "fatal error: "} {
		if i := bytes.Index(s.head, []byte(marker)); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first < 0 {
		return ""
	}
	line := s.head[first:]
	if nl := bytes.IndexByte(line, '\n'); nl >= 0 {
		line = line[:nl]
	}
	return string(bytes.TrimSpace(line))
}
