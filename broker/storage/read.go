package storage

import (
	"fmt"
	"sync/atomic"

	"github.com/sluice-io/sluice/broker/batch"
)

// Read returns whole stored batches, as stored, starting with the batch that
// contains offset, up to maxBytes in total. The first batch is returned even
// if it alone exceeds maxBytes, so a consumer can always make progress.
// Nothing at or above the high watermark is returned. Reading exactly at the
// high watermark returns no bytes and no error; below LogStartOffset or above
// the high watermark returns ErrOffsetOutOfRange.
//
// Batches come from a single segment per call. If compaction removed the
// offset, reading starts at the next batch after it. Every returned batch
// has passed its CRC check; damage stops the read before the bad batch
// (or fails it with ErrCorruptBatch if it is the first).
func (p *Partition) Read(offset int64, maxBytes int) ([]byte, error) {
	return p.ReadInto(nil, offset, maxBytes)
}

// ReadInto is Read that reuses dst's storage when it is large enough, so a
// fetch loop can read without allocating. The result aliases dst.
func (p *Partition) ReadInto(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	return p.readBelow(&p.hw, dst, offset, maxBytes)
}

// ReadReplica is ReadInto bounded by the log end offset instead of the
// high watermark: a follower replicates everything the leader has written,
// committed or not. Reading at the log end returns no bytes; outside
// [LogStartOffset, LogEndOffset] it fails with ErrOffsetOutOfRange.
func (p *Partition) ReadReplica(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	return p.readBelow(&p.leo, dst, offset, maxBytes)
}

// readBelow serves reads that stop at the offset in end (the high
// watermark or the log end). It is loaded under segMu, so a truncation,
// which lowers both under segMu, is seen together with its segments.
func (p *Partition) readBelow(end *atomic.Int64, dst []byte, offset int64, maxBytes int) ([]byte, error) {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	if p.filesClosed {
		return nil, ErrClosed
	}
	hw, lso := end.Load(), p.lso.Load()
	if offset == hw {
		return dst[:0], nil
	}
	if offset < lso || offset > hw {
		return nil, fmt.Errorf("%w: %d is outside [%d, %d]", ErrOffsetOutOfRange, offset, lso, hw)
	}
	hr := getHeaderReader()
	defer putHeaderReader(hr)
	for i := p.segmentFor(offset); i < len(p.segs); i++ {
		seg := p.segs[i]
		pos, h, ok, err := p.find(seg, hr, offset, hw)
		if err != nil {
			return nil, err
		}
		if ok {
			return seg.readFrom(dst, pos, &h, maxBytes, hw)
		}
	}
	return dst[:0], nil
}

// segmentFor returns the index of the segment whose range holds offset.
// Needs segMu.
func (p *Partition) segmentFor(offset int64) int {
	lo, hi := 0, len(p.segs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p.segs[m].base <= offset {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return max(lo-1, 0)
}

// find locates the first batch in seg whose last offset is at least offset
// and whose base is below hw: an index lookup, then a walk over headers of
// at most about one index interval. ok is false if seg has no such batch.
func (p *Partition) find(seg *segment, hr *headerReader, offset, hw int64) (pos int64, h batch.Header, ok bool, err error) {
	size := seg.size.Load()
	expect := int64(-1) // offset the indexed batch must start at
	if offset > seg.base && offset-seg.base <= maxRel && !seg.badIndex.Load() {
		if e, found := seg.index.lookup(seg.rel(offset)); found {
			pos, expect = int64(e.pos), seg.base+int64(e.rel)
		}
	}
	for pos < size {
		h, err = hr.at(seg.log, pos, size)
		if expect >= 0 && (err != nil || h.BaseOffset != expect) {
			// The index points somewhere that is not the batch it names.
			// Answers stay correct by scanning from the start; the index is
			// rebuilt the next time the partition opens.
			if !seg.badIndex.Swap(true) {
				p.log.Warn("storage: index entry does not match the log; scanning instead",
					"segment", seg.path(logSuffix), "position", pos, "want_offset", expect, "err", err)
			}
			pos, expect = 0, -1
			continue
		}
		if err != nil {
			return 0, h, false, fmt.Errorf("%w: %s at %d: %w", ErrCorruptBatch, seg.path(logSuffix), pos, err)
		}
		expect = -1
		if h.BaseOffset >= hw {
			return 0, h, false, nil
		}
		if h.LastOffset() >= offset {
			return pos, h, true, nil
		}
		pos += int64(h.Size())
	}
	return 0, h, false, nil
}

// readFrom reads whole batches starting with first at pos, up to maxBytes
// (at least the first batch), stopping before hw and before any batch that
// fails its CRC.
func (s *segment) readFrom(dst []byte, pos int64, first *batch.Header, maxBytes int, hw int64) ([]byte, error) {
	n := max(int64(maxBytes), int64(first.Size()))
	n = min(n, s.size.Load()-pos)
	buf := dst[:0]
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if m, err := s.log.ReadAt(buf, pos); int64(m) < n {
		return nil, fmt.Errorf("storage: read %s at %d: %w", s.path(logSuffix), pos, err)
	}
	off := 0
	for off < len(buf) {
		h, err := batch.Validate(buf[off:])
		if err != nil {
			if off == 0 {
				return nil, fmt.Errorf("%w: %s at %d: %w", ErrCorruptBatch, s.path(logSuffix), pos, err)
			}
			// A batch cut by maxBytes is the normal case. Damage further on
			// is reported when a read starts at it.
			break
		}
		if h.BaseOffset >= hw {
			break
		}
		off += h.Size()
	}
	return buf[:off], nil
}

// OffsetForTimestamp returns the first offset whose record timestamp is at
// least ts, with that timestamp, or (-1, -1, nil) if there is none.
func (p *Partition) OffsetForTimestamp(ts int64) (offset, timestamp int64, err error) {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	if p.filesClosed {
		return -1, -1, ErrClosed
	}
	hw := p.hw.Load()
	hr := getHeaderReader()
	defer putHeaderReader(hr)
	var scratch []byte
	for _, seg := range p.segs {
		if seg.base >= hw {
			break
		}
		if seg.maxTS.Load() < ts {
			continue
		}
		from := seg.base
		if e, ok := seg.timeIndex.lookupBefore(ts); ok {
			from = seg.base + int64(e.rel) + 1
		}
		var found bool
		offset, timestamp, found, scratch, err = p.searchTimestamp(seg, hr, from, ts, hw, scratch)
		if err != nil || found {
			return offset, timestamp, err
		}
	}
	return -1, -1, nil
}

// searchTimestamp walks seg from offset from to the first batch whose max
// timestamp reaches ts and finds the record inside it.
func (p *Partition) searchTimestamp(seg *segment, hr *headerReader, from, ts, hw int64, scratch []byte) (int64, int64, bool, []byte, error) {
	pos, h, ok, err := p.find(seg, hr, from, hw)
	if err != nil || !ok {
		return -1, -1, false, scratch, err
	}
	size := seg.size.Load()
	for {
		if h.MaxTimestamp >= ts {
			if cap(scratch) < h.Size() {
				scratch = make([]byte, h.Size())
			}
			b := scratch[:h.Size()]
			if _, err := seg.log.ReadAt(b, pos); err != nil {
				return -1, -1, false, scratch, fmt.Errorf("storage: read %s at %d: %w", seg.path(logSuffix), pos, err)
			}
			if _, err := batch.Validate(b); err != nil {
				return -1, -1, false, scratch, fmt.Errorf("%w: %s at %d: %w", ErrCorruptBatch, seg.path(logSuffix), pos, err)
			}
			off, t := int64(-1), int64(-1)
			err := batch.Records(b, func(r *batch.Record) bool {
				if r.Timestamp >= ts {
					off, t = r.Offset, r.Timestamp
					return false
				}
				return true
			})
			if err != nil {
				return -1, -1, false, scratch, fmt.Errorf("%w: %s at %d: %w", ErrCorruptBatch, seg.path(logSuffix), pos, err)
			}
			if off >= 0 {
				return off, t, true, scratch, nil
			}
			// The header's max timestamp overstated its records; go on.
		}
		pos += int64(h.Size())
		if pos >= size {
			return -1, -1, false, scratch, nil
		}
		if h, err = hr.at(seg.log, pos, size); err != nil {
			return -1, -1, false, scratch, fmt.Errorf("%w: %s at %d: %w", ErrCorruptBatch, seg.path(logSuffix), pos, err)
		}
		if h.BaseOffset >= hw {
			return -1, -1, false, scratch, nil
		}
	}
}
