package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// TruncateTo removes every batch whose base offset is at or above offset;
// a batch that offset falls inside is removed whole, so the log always ends
// on a batch boundary. It returns the new log end offset. A follower uses
// it to drop a tail that diverged from the leader.
//
// Later segments are deleted, the segment holding the cut is shortened and
// becomes the active one. The durable end and the high watermark are
// lowered to the new end if above it (the only way the high watermark goes
// down), producer state is rebuilt from the newest snapshot at or below the
// new end plus the headers after it, and the leader-epoch cache loses the
// entries starting at or after the new end. Appends not yet durable fail
// their Pending.Wait.
//
// Truncating at or after the log end does nothing and returns it;
// truncating below the log start is TruncateFullyAndStartAt(offset).
func (p *Partition) TruncateTo(offset int64) (int64, error) {
	if offset < 0 {
		return 0, fmt.Errorf("storage: truncate %s to negative offset %d", p.dir, offset)
	}
	// cleanMu keeps Clean from swapping or deleting segments under us; it
	// comes before mu, as in Clean.
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, ErrClosed
	}
	if err := p.failure(); err != nil {
		return 0, err
	}
	if leo := p.leo.Load(); offset >= leo {
		return leo, nil
	}
	if offset < p.lso.Load() {
		if err := p.truncateFullyLocked(offset); err != nil {
			return 0, err
		}
		return offset, nil
	}
	return p.truncateLocked(offset)
}

// TruncateFullyAndStartAt deletes every segment and starts an empty log at
// offset: log start, log end and high watermark all become offset. A
// follower whose log ends below the leader's log start uses it.
func (p *Partition) TruncateFullyAndStartAt(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("storage: restart %s at negative offset %d", p.dir, offset)
	}
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if err := p.failure(); err != nil {
		return err
	}
	return p.truncateFullyLocked(offset)
}

// truncateLocked cuts the log at the first batch that reaches offset, which
// lies in [LogStartOffset, LogEndOffset). Needs cleanMu and mu, which keep
// the segment list still except for what we do here.
func (p *Partition) truncateLocked(offset int64) (int64, error) {
	i := p.segmentFor(offset)
	last := len(p.segs) - 1
	ns, gapped, err := p.cutSegment(p.segs[i], offset, i == last)
	if err != nil {
		return 0, fmt.Errorf("storage: truncate %s: %w", p.dir, err)
	}
	newEnd := ns.next
	gone := slices.Clone(p.segs[i+1:])
	fail := func(err error) (int64, error) {
		// Disk and memory may now disagree; reopening recovers from disk.
		err = fmt.Errorf("storage: truncate %s to %d: %w", p.dir, offset, err)
		p.markFailed(err)
		return 0, err
	}

	// Later segments go first, newest first, so a crash at any point
	// leaves a prefix of the old log, which a retried truncation cuts
	// again. Their files stay open (and readable) until the swap below.
	for j := len(gone) - 1; j >= 0; j-- {
		if err := gone[j].removeFiles(); err != nil {
			return fail(err)
		}
	}
	// A segment that compaction left with offset gaps cannot be the
	// active one: recovery insists that the active segment is contiguous
	// and would cut it at the first gap. It stays closed, and an empty
	// active segment starts at the new end.
	active := ns
	if gapped {
		f, err := os.OpenFile(filepath.Join(p.dir, fileName(newEnd, logSuffix)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return fail(err)
		}
		if err := syncDir(p.dir); err != nil {
			_ = f.Close()
			return fail(err)
		}
		active = newSegment(p.dir, newEnd, f)
	}

	p.segMu.Lock()
	p.truncGen.Add(1)
	// A fresh array: a concurrent holder of the old slice (none today,
	// Clean is excluded) would otherwise see it change.
	segs := append(p.segs[:i:i], ns)
	if gapped {
		segs = append(segs, active)
	}
	p.segs = segs
	p.active = active
	p.lowerEnds(newEnd)
	p.segMu.Unlock()
	p.cleanedUpTo = min(p.cleanedUpTo, ns.base)

	var errs []error
	for _, s := range gone {
		errs = append(errs, s.log.Close())
	}
	// Now cut the holding segment on disk. Until this is done, recovery
	// would simply find the longer, still consistent, old segment.
	errs = append(errs, truncateSegment(ns, ns.size.Load()))
	if gapped {
		ns.finalize()
		errs = append(errs, ns.writeIndexFiles(""))
	} else {
		// The active segment has no index files (see recoverActive).
		for _, suf := range []string{indexSuffix, timeIndexSuffix} {
			if err := os.Remove(ns.path(suf)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	if err := p.afterTruncate(newEnd); err != nil {
		return fail(err)
	}
	return newEnd, nil
}

// cutSegment returns a copy of seg (sharing its file) holding only the
// batches that end before offset, with indexes rebuilt for them, and
// whether those batches have offset gaps (left by compaction). seg itself
// is not changed: readers keep using it until the swap.
func (p *Partition) cutSegment(seg *segment, offset int64, wasActive bool) (*segment, bool, error) {
	ns := newSegment(p.dir, seg.base, seg.log)
	interval := p.cfg.IndexIntervalBytes
	size := seg.size.Load()
	hr := getHeaderReader()
	defer putHeaderReader(hr)
	gapped := false
	for pos := int64(0); pos < size; {
		h, err := hr.at(seg.log, pos, size)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", seg.path(logSuffix), err)
		}
		if h.LastOffset() >= offset {
			break
		}
		if h.BaseOffset != ns.next {
			gapped = true
		}
		if pos == 0 && !wasActive {
			// As recoverActive does for a segment it makes active.
			ns.rollStartMs = nowMs()
			if h.MaxTimestamp > 0 && h.MaxTimestamp < ns.rollStartMs {
				ns.rollStartMs = h.MaxTimestamp
			}
		}
		ns.track(pos, &h, interval)
		pos += int64(h.Size())
	}
	if wasActive {
		ns.rollStartMs = seg.rollStartMs
	}
	return ns, gapped, nil
}

// lowerEnds sets the log end to end and lowers the durable end and the
// high watermark to it. Needs mu and segMu; takes syncMu, under which
// group commit and SetHighWatermark raise them.
func (p *Partition) lowerEnds(end int64) {
	p.syncMu.Lock()
	p.leo.Store(end)
	p.durable = min(p.durable, end)
	p.durEnd.Store(min(p.durEnd.Load(), end))
	p.hw.Store(min(p.hw.Load(), end))
	// Waiters for truncated offsets find the new generation and give up.
	p.syncCond.Broadcast()
	p.syncMu.Unlock()
}

// afterTruncate brings producer state and the epoch cache in line with a
// log that now ends at end, and wakes waiters. Needs mu.
func (p *Partition) afterTruncate(end int64) error {
	// loadProducers deletes the snapshots above the log end, which now
	// describe batches that are gone, and replays headers from the newest
	// one left. The deletions must be durable before new data reaches
	// those offsets, or a restart would load a stale snapshot.
	if err := p.loadProducers(); err != nil {
		return fmt.Errorf("rebuild producer state: %w", err)
	}
	if err := syncDir(p.dir); err != nil {
		return err
	}
	if next, changed := epochsBelow(p.epochs, end); changed {
		if err := p.setEpochs(next); err != nil {
			return err
		}
	}
	p.wakeAppend()
	p.wakeHW()
	return nil
}

// truncateFullyLocked replaces the whole log by an empty one at offset.
// Needs cleanMu and mu.
func (p *Partition) truncateFullyLocked(offset int64) error {
	fail := func(err error) error {
		err = fmt.Errorf("storage: truncate %s fully at %d: %w", p.dir, offset, err)
		p.markFailed(err)
		return err
	}
	gone := slices.Clone(p.segs)
	// Oldest first: a crash leaves a suffix of the old log, which is
	// consistent; the caller repeats the truncation after a restart.
	for _, s := range gone {
		if err := s.removeFiles(); err != nil {
			return fail(err)
		}
	}
	// No snapshot describes the new log, and one left at or below offset
	// would be loaded on open.
	offs, err := p.snapshotOffsets()
	if err != nil {
		return fail(err)
	}
	for _, off := range offs {
		if err := os.Remove(filepath.Join(p.dir, fileName(off, snapshotSuffix))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(err)
		}
	}
	f, err := os.OpenFile(filepath.Join(p.dir, fileName(offset, logSuffix)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fail(err)
	}
	if err := syncDir(p.dir); err != nil {
		_ = f.Close()
		return fail(err)
	}
	ns := newSegment(p.dir, offset, f)

	p.segMu.Lock()
	p.truncGen.Add(1)
	p.segs = []*segment{ns}
	p.active = ns
	p.lso.Store(offset)
	p.syncMu.Lock()
	p.leo.Store(offset)
	p.durable = offset
	p.durEnd.Store(offset)
	p.hw.Store(offset)
	p.syncCond.Broadcast()
	p.syncMu.Unlock()
	p.segMu.Unlock()

	var errs []error
	for _, s := range gone {
		errs = append(errs, s.log.Close())
	}
	p.producers = make(producerTable)
	p.cleanedUpTo = offset
	errs = append(errs, p.setEpochs(nil))
	p.wakeAppend()
	p.wakeHW()
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	return nil
}
