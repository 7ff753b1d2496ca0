package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-io/sluice/broker/batch"
)

// Append validates records (one or more concatenated RecordBatch v2, as in a
// produce request), checks idempotent-producer sequences, assigns offsets
// and the leader epoch by rewriting those header fields in place in records,
// and appends the bytes unchanged otherwise. Under FlushSync it returns after
// the data is fsynced. A duplicate of a recently appended batch from the same
// producer returns ErrDuplicateSequence together with the original
// AppendInfo; nothing is written.
//
// The request is all or nothing: if any batch is rejected, none is written.
func (p *Partition) Append(records []byte, leaderEpoch int32) (AppendInfo, error) {
	// CRCs are checked before taking the lock so that concurrent producers
	// use every core for it.
	if err := validateRecords(records); err != nil {
		return AppendInfo{}, err
	}
	p.mu.Lock()
	info, wait, err := p.appendLocked(records, leaderEpoch)
	p.mu.Unlock()
	if err != nil || !wait {
		return info, err
	}
	if err := p.waitDurable(info.LastOffset + 1); err != nil {
		return AppendInfo{}, err
	}
	return info, nil
}

// validateRecords checks that records is a sequence of whole, CRC-valid
// batches each of which consumes exactly as many offsets as it has records.
func validateRecords(records []byte) error {
	if len(records) == 0 {
		return fmt.Errorf("%w: no batches", ErrCorruptBatch)
	}
	for rest := records; len(rest) > 0; {
		h, err := batch.Validate(rest)
		if err != nil {
			return fmt.Errorf("%w: batch at byte %d: %w", ErrCorruptBatch, len(records)-len(rest), err)
		}
		if h.RecordCount < 1 || h.LastOffsetDelta != h.RecordCount-1 {
			return fmt.Errorf("%w: batch at byte %d has %d records and last offset delta %d",
				ErrCorruptBatch, len(records)-len(rest), h.RecordCount, h.LastOffsetDelta)
		}
		rest = rest[h.Size():]
	}
	return nil
}

// appendLocked does the work of Append under mu. Only headers are touched:
// no per-record work, and no allocation once producer state is warm.
func (p *Partition) appendLocked(records []byte, leaderEpoch int32) (info AppendInfo, wait bool, err error) {
	if p.closed {
		return info, false, ErrClosed
	}
	if err := p.failure(); err != nil {
		return info, false, err
	}
	now := nowMs()
	leo := p.leo.Load()

	// Producer checks, against the state as it will be after the earlier
	// batches of this same request.
	p.staged = p.staged[:0]
	next := leo
	for rest := records; len(rest) > 0; {
		h, _ := batch.ParseHeader(rest)
		if h.ProducerID >= 0 && !h.IsControl() {
			if dup, err := p.stage(&h, next, now); err != nil {
				p.staged = p.staged[:0]
				if dup != nil {
					info = AppendInfo{BaseOffset: dup.baseOffset, LastOffset: dup.lastOffset, LogAppendTime: dup.appendTime, LogStartOffset: p.lso.Load()}
				}
				return info, false, err
			}
		}
		next += int64(h.LastOffsetDelta) + 1
		rest = rest[h.Size():]
	}

	if p.shouldRoll(len(records), next, now) {
		if err := p.roll(now); err != nil {
			p.staged = p.staged[:0]
			return info, false, err
		}
	}
	seg := p.active
	pos := seg.size.Load()
	off := leo
	for rest := records; len(rest) > 0; {
		h, _ := batch.ParseHeader(rest)
		batch.SetBaseOffset(rest, off)
		batch.SetLeaderEpoch(rest, leaderEpoch)
		off += int64(h.LastOffsetDelta) + 1
		rest = rest[h.Size():]
	}
	if _, err := seg.log.WriteAt(records, pos); err != nil {
		p.staged = p.staged[:0]
		// A short write leaves part of a batch behind; cut it so the file
		// stays a sequence of whole batches.
		if terr := seg.log.Truncate(pos); terr != nil {
			p.markFailed(fmt.Errorf("storage: cannot undo a failed write: %w", errors.Join(err, terr)))
		}
		return info, false, fmt.Errorf("storage: append to %s: %w", seg.path(logSuffix), err)
	}
	if pos == 0 {
		seg.rollStartMs = now
	}
	interval := p.cfg.IndexIntervalBytes
	for rest, at := records, pos; len(rest) > 0; {
		h, _ := batch.ParseHeader(rest)
		seg.track(at, &h, interval)
		at += int64(h.Size())
		rest = rest[h.Size():]
	}
	p.commitStaged()
	p.leo.Store(next)

	info = AppendInfo{BaseOffset: leo, LastOffset: next - 1, LogAppendTime: now, LogStartOffset: p.lso.Load()}
	if p.cfg.FlushMode == FlushSync {
		return info, true, nil
	}
	p.publishHW(next)
	return info, false, nil
}

// shouldRoll decides whether the next append (of n bytes, ending before
// offset end) starts a new segment. An empty segment never rolls, so a
// request larger than SegmentBytes still lands somewhere.
func (p *Partition) shouldRoll(n int, end int64, now int64) bool {
	seg := p.active
	size := seg.size.Load()
	if size == 0 {
		return false
	}
	return size+int64(n) > p.cfg.SegmentBytes ||
		now-seg.rollStartMs >= p.cfg.SegmentMs ||
		end-1-seg.base > maxRel
}

// roll closes the active segment and starts a new one at the log end.
// The old segment is fsynced with its indexes and a producer snapshot
// before the new file exists, so on disk every closed segment is complete
// and only the last one can have a torn tail. Needs mu.
func (p *Partition) roll(now int64) error {
	old := p.active
	newBase := p.leo.Load()
	old.finalize()
	if err := fdatasync(old.log); err != nil {
		err = fmt.Errorf("storage: fsync %s before roll: %w", old.path(logSuffix), err)
		p.markFailed(err)
		return err
	}
	if err := old.writeIndexFiles(""); err != nil {
		return fmt.Errorf("storage: roll: %w", err)
	}
	if err := p.writeSnapshot(newBase); err != nil {
		return fmt.Errorf("storage: roll: %w", err)
	}
	path := filepath.Join(p.dir, fileName(newBase, logSuffix))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("storage: roll: %w", err)
	}
	if err := syncDir(p.dir); err != nil {
		_ = f.Close()
		return fmt.Errorf("storage: roll: %w", err)
	}
	seg := newSegment(p.dir, newBase, f)
	seg.rollStartMs = now
	p.segMu.Lock()
	p.segs = append(p.segs, seg)
	p.segMu.Unlock()
	p.active = seg
	// The fsync above made everything before newBase durable.
	p.advanceDurable(newBase)
	return nil
}
