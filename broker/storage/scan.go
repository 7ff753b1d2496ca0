package storage

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sluice-io/sluice/broker/batch"
)

// errTorn marks a batch cut short by the end of the file, the usual trace
// of a crash in the middle of a write.
var errTorn = errors.New("torn batch at end of segment")

// errDiscontinuity marks a CRC-valid batch whose offset does not follow
// its predecessor: a stale or misplaced write.
var errDiscontinuity = errors.New("batch offset breaks continuity")

// isDamage reports whether err describes bad bytes on disk (to be cut off)
// as opposed to a failing disk or system call (to be reported).
func isDamage(err error) bool {
	return errors.Is(err, errTorn) || errors.Is(err, errDiscontinuity) ||
		errors.Is(err, batch.ErrCorrupt) || errors.Is(err, batch.ErrBadMagic) ||
		errors.Is(err, batch.ErrTooLarge) || errors.Is(err, batch.ErrTooShort)
}

const scanBufSize = 1 << 20

// batchScanner reads whole batches sequentially and checks each CRC. It is
// the reader for recovery, index rebuilds and compaction, where every byte
// must be looked at anyway.
type batchScanner struct {
	f     *os.File
	limit int64 // end of the range to scan
	pos   int64 // file position of the next batch, i.e. of buf[r]
	buf   []byte
	r, w  int
}

func newBatchScanner(f *os.File, from, limit int64) *batchScanner {
	return &batchScanner{f: f, pos: from, limit: limit, buf: make([]byte, min(scanBufSize, max(limit-from, batch.HeaderSize)))}
}

// next returns the next batch (valid until the following call), its header
// and position. It returns io.EOF at the end of the range; an error for
// which isDamage holds leaves pos at the damaged batch.
func (s *batchScanner) next() ([]byte, batch.Header, int64, error) {
	if s.pos >= s.limit {
		return nil, batch.Header{}, s.pos, io.EOF
	}
	if err := s.fill(batch.HeaderSize); err != nil {
		return nil, batch.Header{}, s.pos, err
	}
	h, err := batch.ParseHeader(s.buf[s.r:s.w])
	if err != nil {
		return nil, h, s.pos, err
	}
	size := h.Size()
	if err := s.fill(size); err != nil {
		return nil, h, s.pos, err
	}
	b := s.buf[s.r : s.r+size]
	if _, err := batch.Validate(b); err != nil {
		return nil, h, s.pos, err
	}
	pos := s.pos
	s.r += size
	s.pos += int64(size)
	return b, h, pos, nil
}

// fill makes at least n bytes from pos available in buf[r:w].
func (s *batchScanner) fill(n int) error {
	if s.w-s.r >= n {
		return nil
	}
	if int64(n) > s.limit-s.pos {
		return errTorn
	}
	copy(s.buf, s.buf[s.r:s.w])
	s.w -= s.r
	s.r = 0
	if n > len(s.buf) {
		nb := make([]byte, n)
		copy(nb, s.buf[:s.w])
		s.buf = nb
	}
	for s.w < n {
		want := int(min(int64(len(s.buf)-s.w), s.limit-s.pos-int64(s.w)))
		m, err := s.f.ReadAt(s.buf[s.w:s.w+want], s.pos+int64(s.w))
		s.w += m
		if s.w >= n {
			return nil
		}
		if err == io.EOF {
			return errTorn
		}
		if err != nil {
			return fmt.Errorf("read %s at %d: %w", s.f.Name(), s.pos+int64(s.w), err)
		}
	}
	return nil
}
