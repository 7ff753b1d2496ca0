package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// recover brings the directory to a consistent state and loads it:
//
//  1. leftovers of interrupted work are resolved: uncommitted compaction
//     output (*.cleaned), temp files and half-deleted files are removed; a
//     committed compaction swap (*.log.swap) is finished;
//  2. stray indexes without a log and empty segments in the middle of the
//     log are removed;
//  3. each closed segment's index files are checked (checksum, log size,
//     monotonic, in bounds, last entry lands on the batch it names, the
//     headers after it end exactly at the end of the file) and rebuilt
//     from the log when any check fails;
//  4. the active segment is scanned batch by batch (CRC and offset
//     continuity) and cut at the first bad batch; its index is rebuilt in
//     memory, then it is fsynced so everything left is durable;
//  5. producer state is loaded from a snapshot plus the headers after it;
//  6. the leader-epoch cache is loaded, or rebuilt from batch headers.
func (p *Partition) recover() error {
	if err := p.resolveLeftovers(); err != nil {
		return err
	}
	bases, err := p.listSegments()
	if err != nil {
		return err
	}
	if len(bases) == 0 {
		bases = []int64{0}
		f, err := os.OpenFile(filepath.Join(p.dir, fileName(0, logSuffix)), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		_ = f.Close()
		if err := syncDir(p.dir); err != nil {
			return err
		}
	}
	for i, base := range bases {
		f, err := os.OpenFile(filepath.Join(p.dir, fileName(base, logSuffix)), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return err
		}
		seg := newSegment(p.dir, base, f)
		seg.size.Store(st.Size())
		if st.Size() == 0 && len(p.segs) > 0 && i < len(bases)-1 {
			// An empty segment between others holds nothing; the first one
			// is kept because it anchors the log start offset.
			p.log.Info("storage: removing empty segment", "segment", seg.path(logSuffix))
			_ = f.Close()
			if err := seg.removeFiles(); err != nil {
				return err
			}
			continue
		}
		p.segs = append(p.segs, seg)
	}
	last := len(p.segs) - 1
	for i, seg := range p.segs[:last] {
		if err := p.loadClosed(seg, p.segs[i+1].base); err != nil {
			return err
		}
	}
	p.active = p.segs[last]
	if last > 0 && p.segs[last-1].next > p.active.base {
		return fmt.Errorf("segment %s overlaps the next one (ends at %d)", p.segs[last-1].path(logSuffix), p.segs[last-1].next)
	}
	if err := p.recoverActive(p.active); err != nil {
		return err
	}
	p.leo.Store(p.active.next)
	p.lso.Store(p.segs[0].base)
	p.durable = p.active.next
	p.durEnd.Store(p.active.next)
	p.hw.Store(p.active.next)
	p.cleanedUpTo = p.segs[0].base
	if err := p.loadProducers(); err != nil {
		return err
	}
	return p.loadEpochs()
}

// resolveLeftovers handles files that interrupted operations leave behind.
func (p *Partition) resolveLeftovers() error {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return err
	}
	changed := false
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(p.dir, name)
		switch {
		case strings.HasSuffix(name, cleanedSuffix), strings.HasSuffix(name, tmpSuffix), strings.HasSuffix(name, deletedSuffix):
			p.log.Info("storage: removing leftover file", "file", path)
			if err := os.Remove(path); err != nil {
				return err
			}
			changed = true
		case strings.HasSuffix(name, logSuffix+swapSuffix):
			base, ok := parseBase(strings.TrimSuffix(name, swapSuffix), logSuffix)
			if !ok {
				continue
			}
			// The rename to .swap is compaction's commit point: finish it.
			// The indexes may belong to either version, so they are dropped
			// and rebuilt from the new log.
			p.log.Info("storage: completing interrupted compaction swap", "file", path)
			for _, suf := range []string{indexSuffix, timeIndexSuffix} {
				if err := os.Remove(filepath.Join(p.dir, fileName(base, suf))); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			if err := os.Rename(path, filepath.Join(p.dir, fileName(base, logSuffix))); err != nil {
				return err
			}
			changed = true
		}
	}
	if changed {
		return syncDir(p.dir)
	}
	return nil
}

// listSegments returns the base offsets of the segment logs in order and
// removes index files whose log is gone.
func (p *Partition) listSegments() ([]int64, error) {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, err
	}
	logs := map[int64]bool{}
	var bases []int64
	for _, e := range entries {
		if base, ok := parseBase(e.Name(), logSuffix); ok && e.Type().IsRegular() {
			logs[base] = true
			bases = append(bases, base)
		}
	}
	for _, e := range entries {
		for _, suf := range []string{indexSuffix, timeIndexSuffix} {
			if base, ok := parseBase(e.Name(), suf); ok && !logs[base] {
				p.log.Info("storage: removing index without a log", "file", e.Name())
				if err := os.Remove(filepath.Join(p.dir, e.Name())); err != nil {
					return nil, err
				}
			}
		}
	}
	slices.Sort(bases)
	return bases, nil
}

// loadClosed loads a closed segment's indexes, rebuilding them if they do
// not pass every check. nextBase is the following segment's base offset.
func (p *Partition) loadClosed(seg *segment, nextBase int64) error {
	err := p.loadIndexFiles(seg, nextBase)
	if err == nil {
		return nil
	}
	if !isIndexProblem(err) {
		return err
	}
	p.log.Warn("storage: rebuilding segment index", "segment", seg.path(logSuffix), "reason", err)
	return p.rebuildClosed(seg, nextBase)
}

func isIndexProblem(err error) bool {
	return errors.Is(err, errBadIndex) || errors.Is(err, os.ErrNotExist) || isDamage(err)
}

func (p *Partition) loadIndexFiles(seg *segment, nextBase int64) error {
	size := seg.size.Load()
	span := nextBase - seg.base
	ib, err := os.ReadFile(seg.path(indexSuffix))
	if err != nil {
		return err
	}
	if err := seg.index.decode(ib, size, span); err != nil {
		return fmt.Errorf("%s: %w", seg.path(indexSuffix), err)
	}
	tb, err := os.ReadFile(seg.path(timeIndexSuffix))
	if err != nil {
		return err
	}
	if err := seg.timeIndex.decode(tb, size, span); err != nil {
		return fmt.Errorf("%s: %w", seg.path(timeIndexSuffix), err)
	}
	if err := checkTail(seg, nextBase); err != nil {
		return fmt.Errorf("%s: %w", seg.path(logSuffix), err)
	}
	if e, ok := seg.timeIndex.last(); ok {
		if seg.base+int64(e.rel) >= seg.next {
			return fmt.Errorf("%w: time index names offset %d past the log end %d", errBadIndex, seg.base+int64(e.rel), seg.next)
		}
		seg.maxTS.Store(e.ts)
	} else if size > 0 {
		return fmt.Errorf("%w: empty time index for a non-empty log", errBadIndex)
	}
	return nil
}

// checkTail walks the headers from the last index entry to the end of the
// log. It costs at most one index interval of reads and proves that the
// last entry names a batch start and that the log ends on a batch
// boundary; it also finds the segment's end offset.
func checkTail(seg *segment, nextBase int64) error {
	size := seg.size.Load()
	pos, expect := int64(0), int64(-1)
	if e, ok := seg.index.last(); ok {
		pos, expect = int64(e.pos), seg.base+int64(e.rel)
	}
	hr := getHeaderReader()
	defer putHeaderReader(hr)
	next := seg.base
	for pos < size {
		h, err := hr.at(seg.log, pos, size)
		if err != nil {
			return err
		}
		if expect >= 0 && h.BaseOffset != expect {
			return fmt.Errorf("%w: last index entry names offset %d, batch there has %d", errBadIndex, expect, h.BaseOffset)
		}
		expect = -1
		if h.BaseOffset < next || h.LastOffset() >= nextBase {
			return fmt.Errorf("%w: batch at %d has offsets %d..%d outside [%d, %d)", errDiscontinuity, pos, h.BaseOffset, h.LastOffset(), next, nextBase)
		}
		next = h.NextOffset()
		pos += int64(h.Size())
	}
	if pos != size {
		return fmt.Errorf("last batch overruns the log end by %d bytes: %w", pos-size, errTorn)
	}
	seg.next = next
	return nil
}

// rebuildClosed rebuilds a closed segment's indexes from its log. Damage
// found on the way is cut off at the last good batch: the bytes after it
// cannot be parsed, and the segments after this one stay (reads skip the
// gap the way they skip compacted offsets).
func (p *Partition) rebuildClosed(seg *segment, nextBase int64) error {
	seg.resetIndexes()
	interval := p.cfg.IndexIntervalBytes
	sc := newBatchScanner(seg.log, 0, seg.size.Load())
	for {
		_, h, pos, err := sc.next()
		if err == nil && (h.BaseOffset < seg.next || h.LastOffset() >= nextBase) {
			err = fmt.Errorf("%w: offsets %d..%d outside [%d, %d)", errDiscontinuity, h.BaseOffset, h.LastOffset(), seg.next, nextBase)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if !isDamage(err) {
				return err
			}
			p.log.Error("storage: closed segment is damaged; cutting it at the last valid batch",
				"segment", seg.path(logSuffix), "position", pos, "bytes_cut", seg.size.Load()-pos, "cause", err)
			if err := truncateSegment(seg, pos); err != nil {
				return err
			}
			break
		}
		seg.track(pos, &h, interval)
	}
	seg.finalize()
	return seg.writeIndexFiles("")
}

// recoverActive scans the whole active segment, rebuilds its in-memory
// indexes and truncates a torn or corrupt tail.
func (p *Partition) recoverActive(seg *segment) error {
	seg.resetIndexes()
	interval := p.cfg.IndexIntervalBytes
	origSize := seg.size.Load()
	sc := newBatchScanner(seg.log, 0, origSize)
	first := true
	for {
		_, h, pos, err := sc.next()
		if err == nil && h.BaseOffset != seg.next {
			err = fmt.Errorf("%w: batch at %d has offset %d, expected %d", errDiscontinuity, pos, h.BaseOffset, seg.next)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if !isDamage(err) {
				return err
			}
			p.log.Warn("storage: truncating damaged tail of the active segment",
				"segment", seg.path(logSuffix), "position", pos, "bytes_cut", origSize-pos, "cause", err)
			if err := truncateSegment(seg, pos); err != nil {
				return err
			}
			break
		}
		if first {
			seg.rollStartMs = nowMs()
			if h.MaxTimestamp > 0 && h.MaxTimestamp < seg.rollStartMs {
				seg.rollStartMs = h.MaxTimestamp
			}
			first = false
		}
		seg.track(pos, &h, interval)
	}
	// Index files of the active segment are written when it rolls; any on
	// disk now are stale.
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		if err := os.Remove(seg.path(suf)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	// Bytes that survived a process crash may still be only in the page
	// cache; make them durable before they count as committed.
	return fdatasync(seg.log)
}

func truncateSegment(seg *segment, pos int64) error {
	if err := seg.log.Truncate(pos); err != nil {
		return fmt.Errorf("truncate %s: %w", seg.path(logSuffix), err)
	}
	if err := fdatasync(seg.log); err != nil {
		return err
	}
	seg.size.Store(pos)
	return nil
}
