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
// AppendInfo, once the original is durable; nothing is written.
//
// The request is all or nothing: if any batch is rejected, none is written.
//
// Append does not keep records: the bytes are in the log file (or rejected)
// before it returns, so the caller may reuse the buffer at once.
func (p *Partition) Append(records []byte, leaderEpoch int32) (AppendInfo, error) {
	info, pending, err := p.AppendAsync(records, leaderEpoch)
	if werr := pending.Wait(); werr != nil {
		return AppendInfo{}, werr
	}
	return info, err
}

// AppendAsync is Append without the wait for durability: it validates,
// assigns offsets and writes the batches, so their place in the log is
// fixed when it returns, and hands back a Pending whose Wait blocks until
// they are durable as the flush mode promises. Several appends followed by
// their waits share fsyncs: the first Wait's fsync covers everything
// written before it starts. The records must not be acknowledged before
// Wait returns; under FlushSync readers do not see them before then either
// (unless another append's fsync covered them first).
//
// For ErrDuplicateSequence the Pending covers the original batch, which may
// itself still be waiting for its fsync; for any other error it is the zero
// Pending. Like Append, AppendAsync does not keep records after it returns.
func (p *Partition) AppendAsync(records []byte, leaderEpoch int32) (AppendInfo, Pending, error) {
	// CRCs are checked before taking the lock so that concurrent producers
	// use every core for it.
	if err := validateRecords(records); err != nil {
		return AppendInfo{}, Pending{}, err
	}
	p.mu.Lock()
	info, pending, err := p.appendLocked(records, leaderEpoch)
	fire := p.takeFire()
	p.mu.Unlock()
	if fire {
		p.fireOnDurable()
	}
	return info, pending, err
}

// Pending is an append that is written but possibly not yet durable. It is
// a value, not a closure, so that the append path does not allocate. The
// zero Pending is already complete.
type Pending struct {
	p   *Partition
	end int64 // every offset below end must be fsynced
	gen int64 // Partition.truncGen when written: a truncation since fails Wait
}

// Wait blocks until the append is durable: under FlushSync until a group
// commit fsync covers it, otherwise not at all. An error means the fsync
// failed (the partition then refuses further writes) and the append must
// not be acknowledged. Wait also fails if the log was truncated (TruncateTo,
// TruncateFullyAndStartAt) before the append became durable. Wait may be
// called more than once, from any goroutine.
func (w Pending) Wait() error {
	if w.p == nil {
		return nil
	}
	return w.p.waitDurable(w.end, w.gen)
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

// appendLocked does the work of AppendAsync under mu. Only headers are
// touched: no per-record work, and no allocation once producer state is warm.
func (p *Partition) appendLocked(records []byte, leaderEpoch int32) (info AppendInfo, pending Pending, err error) {
	if p.closed {
		return info, pending, ErrClosed
	}
	if err := p.failure(); err != nil {
		return info, pending, err
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
					// The retry is acknowledged like the original, so not
					// before the original is durable: it may be in the very
					// group commit its first attempt is still waiting for.
					pending = p.pendingUntil(dup.lastOffset + 1)
				}
				return info, pending, err
			}
		}
		next += int64(h.LastOffsetDelta) + 1
		rest = rest[h.Size():]
	}

	if p.shouldRoll(len(records), next, now) {
		if err := p.roll(now); err != nil {
			p.staged = p.staged[:0]
			return info, pending, err
		}
	}
	// The epoch cache learns a new epoch before its first batch is written,
	// as in Kafka: a crash in between leaves an entry at or past the log
	// end, which recovery drops.
	if n := len(p.epochs); leaderEpoch >= 0 && (n == 0 || leaderEpoch > p.epochs[n-1].Epoch) {
		if next, changed := epochsWith(p.epochs, leaderEpoch, leo); changed {
			if err := p.setEpochs(next); err != nil {
				p.staged = p.staged[:0]
				return info, pending, err
			}
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
	if err := p.writeActive(records, pos, now, false); err != nil {
		p.staged = p.staged[:0]
		return info, pending, err
	}
	p.commitStaged()
	p.advanceLogEnd(next)

	info = AppendInfo{BaseOffset: leo, LastOffset: next - 1, LogAppendTime: now, LogStartOffset: p.lso.Load()}
	return info, p.pendingUntil(next), nil
}

// advanceLogEnd publishes a new log end after a successful write. In the
// modes without fsync on the write path the data counts as durable at
// once. Needs mu.
func (p *Partition) advanceLogEnd(next int64) {
	p.leo.Store(next)
	p.wakeAppend()
	if p.cfg.FlushMode != FlushSync {
		p.raiseDurableEnd(next)
		p.fireDue = true
	}
}

// takeFire reports (and clears) whether the durable end advanced under mu
// since the last call, so that the caller runs the OnDurable callback
// after releasing mu. Needs mu.
func (p *Partition) takeFire() bool {
	f := p.fireDue
	p.fireDue = false
	return f
}

// writeActive writes whole batches at pos of the active segment and
// indexes them; replay also applies their producer state without checks
// (for replica appends, whose sequences the leader checked). Needs mu.
func (p *Partition) writeActive(records []byte, pos, now int64, replay bool) error {
	seg := p.active
	if _, err := seg.log.WriteAt(records, pos); err != nil {
		// A short write leaves part of a batch behind; cut it so the file
		// stays a sequence of whole batches.
		if terr := seg.log.Truncate(pos); terr != nil {
			p.markFailed(fmt.Errorf("storage: cannot undo a failed write: %w", errors.Join(err, terr)))
		}
		return fmt.Errorf("storage: append to %s: %w", seg.path(logSuffix), err)
	}
	if pos == 0 {
		seg.rollStartMs = now
	}
	interval := p.cfg.IndexIntervalBytes
	for rest, at := records, pos; len(rest) > 0; {
		h, _ := batch.ParseHeader(rest)
		seg.track(at, &h, interval)
		if replay {
			p.producers.replay(&h)
		}
		at += int64(h.Size())
		rest = rest[h.Size():]
	}
	return nil
}

// pendingUntil is what an append ending before offset end waits for under
// the current flush mode. Needs mu.
func (p *Partition) pendingUntil(end int64) Pending {
	if p.cfg.FlushMode != FlushSync {
		return Pending{}
	}
	return Pending{p: p, end: end, gen: p.truncGen.Load()}
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
