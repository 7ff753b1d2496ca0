package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluice-io/sluice/broker/batch"
)

// File name suffixes. A segment's files share the 20-digit base offset.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	snapshotSuffix  = ".snapshot"
	cleanedSuffix   = ".cleaned" // compaction output, not yet committed
	swapSuffix      = ".swap"    // committed compaction output, not yet in place
	tmpSuffix       = ".tmp"     // any file being written before a rename
	deletedSuffix   = ".deleted" // a file on its way out
)

func fileName(base int64, suffix string) string { return fmt.Sprintf("%020d%s", base, suffix) }

// parseBase parses "<20 digits><suffix>" and rejects everything else, so
// that unrelated files in the directory are never mistaken for segments.
func parseBase(name, suffix string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, suffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// segment is one log file and its two sparse indexes.
//
// Invariants: the log holds whole batches back to back from position 0 to
// size; their offsets increase (strictly contiguous in the active segment,
// possibly with gaps left by compaction in closed ones) and all lie in
// [base, next). Every index entry names a batch start. The active segment
// is changed only under Partition.mu and publishes size, maxTS and index
// entries to lock-free readers; closed segments are immutable until Clean
// swaps or deletes them.
type segment struct {
	base int64
	dir  string
	log  *os.File

	size  atomic.Int64 // bytes of complete batches
	maxTS atomic.Int64 // largest batch max timestamp, -1 when empty

	index     offsetIndex
	timeIndex timeIndex

	// Written by whoever builds the segment (the appender under
	// Partition.mu, recovery, or the cleaner for a new file).
	next        int64 // offset after the last batch
	sinceIndex  int   // bytes since the last index entry
	rollStartMs int64 // broker time of the first append, for segment.ms

	// tombstoneExpiry is the earliest time a surviving tombstone in this
	// segment may be removed, 0 if none; kept by the cleaner (cleanMu).
	tombstoneExpiry int64

	// badIndex is set when a lookup found an entry that does not name a
	// batch start; lookups then scan from position 0 until a rebuild.
	badIndex atomic.Bool
}

func newSegment(dir string, base int64, f *os.File) *segment {
	s := &segment{base: base, dir: dir, log: f, next: base}
	s.maxTS.Store(-1)
	return s
}

func (s *segment) path(suffix string) string { return filepath.Join(s.dir, fileName(s.base, suffix)) }

// rel converts an offset of this segment to its index form.
func (s *segment) rel(offset int64) uint32 { return uint32(offset - s.base) }

// track records a batch just written at pos. Appending, index rebuilds and
// compaction all go through here, so an index is a function of the log and
// the interval alone.
func (s *segment) track(pos int64, h *batch.Header, interval int) {
	maxTS := s.maxTS.Load()
	if h.MaxTimestamp > maxTS {
		maxTS = h.MaxTimestamp
	}
	if s.sinceIndex >= interval {
		s.index.add(s.rel(h.BaseOffset), uint32(pos))
		s.timeIndex.maybeAdd(maxTS, s.rel(h.LastOffset()))
		s.sinceIndex = 0
	}
	s.sinceIndex += h.Size()
	s.maxTS.Store(maxTS)
	s.next = h.NextOffset()
	s.size.Store(pos + int64(h.Size()))
}

// finalize adds the closing time index entry so that a closed segment's
// max timestamp can be read from its time index after a restart.
func (s *segment) finalize() {
	if s.next > s.base {
		s.timeIndex.maybeAdd(s.maxTS.Load(), s.rel(s.next-1))
	}
}

// resetIndexes forgets all index state before a rebuild.
func (s *segment) resetIndexes() {
	s.index.reset()
	s.timeIndex.reset()
	s.sinceIndex = 0
	s.maxTS.Store(-1)
	s.next = s.base
	s.badIndex.Store(false)
}

// writeIndexFiles persists both indexes under their names plus suffix.
func (s *segment) writeIndexFiles(suffix string) error {
	size := s.size.Load()
	if err := writeFileSync(s.path(indexSuffix+suffix), s.index.encode(size)); err != nil {
		return err
	}
	return writeFileSync(s.path(timeIndexSuffix+suffix), s.timeIndex.encode(size))
}

// removeFiles deletes the segment's files, log first: without its log a
// segment no longer exists, and stray indexes are swept on open.
func (s *segment) removeFiles() error {
	var errs []error
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if err := os.Remove(s.path(suf)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = fdatasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// headerReader walks batch headers without reading records, through a
// window so that a run of small batches costs one pread.
type headerReader struct {
	f     *os.File
	buf   []byte
	start int64 // file position of buf[0]
	n     int   // valid bytes in buf
}

const headerWindow = 16 << 10

var headerReaders = sync.Pool{New: func() any { return &headerReader{buf: make([]byte, headerWindow)} }}

func getHeaderReader() *headerReader { return headerReaders.Get().(*headerReader) }

func putHeaderReader(r *headerReader) {
	r.f = nil
	headerReaders.Put(r)
}

// at parses the header of the batch at pos; limit is the end of valid data.
func (r *headerReader) at(f *os.File, pos, limit int64) (batch.Header, error) {
	if f != r.f {
		r.f, r.n = f, 0
	}
	if pos+batch.HeaderSize > limit {
		return batch.Header{}, fmt.Errorf("header at %d: %w", pos, errTorn)
	}
	if pos < r.start || pos+batch.HeaderSize > r.start+int64(r.n) {
		want := min(int64(len(r.buf)), limit-pos)
		n, err := f.ReadAt(r.buf[:want], pos)
		if n < batch.HeaderSize {
			r.n = 0
			if err == nil || err == io.EOF {
				err = errTorn
			}
			return batch.Header{}, fmt.Errorf("header at %d: %w", pos, err)
		}
		r.start, r.n = pos, n
	}
	return batch.ParseHeader(r.buf[pos-r.start : r.n])
}
