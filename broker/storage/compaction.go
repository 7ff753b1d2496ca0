package storage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/sluice-io/sluice/broker/batch"
)

// Compaction keeps the last record for each key in the closed segments.
//
// The closed segments below cleanedUpTo are "clean": already compacted
// against each other. The rest are "dirty". One pass:
//
//  1. Read the dirty segments and map every key to its latest offset.
//     Clean segments need no entries: any key they share with the dirty
//     part has a later offset there.
//  2. For each closed segment, oldest first, decide per record: drop it if
//     the map has a later offset for its key, or if it is a tombstone (key,
//     null value) whose timestamp + DeleteRetentionMs has passed. Records
//     with a null key are kept. If nothing would be dropped the segment is
//     left alone.
//  3. Otherwise write the survivors to "<base>.log.cleaned" (plus cleaned
//     indexes) without any partition lock: untouched batches are copied
//     byte for byte (compression and all), partly emptied ones are
//     re-encoded uncompressed with their original offsets, timestamps,
//     producer fields and last offset delta, and emptied ones disappear,
//     except a producer's last batch, kept as an empty batch so that its
//     sequence numbers survive a replay from the log (as Kafka does).
//  4. Swap: rename the log to ".log.swap" (the commit point: recovery
//     completes a swap from here), move the indexes into place, rename the
//     log into place, then take segMu for the moment it takes to replace
//     the segment in the list. Offsets never change and stay increasing.
//
// A segment left empty is deleted, unless it is the first one, which keeps
// the log start offset where it was.
//
// Clean segments are re-read only when there are dirty ones, or when a
// tombstone they hold has become removable. cleanedUpTo lives in memory:
// after a restart the first Clean treats every closed segment as dirty.
//
// The key map holds every distinct key of the dirty part in memory;
// Kafka's bounded dedupe buffer, which compacts in several passes when
// keys do not fit, is not implemented.

// compact runs one compaction pass. Needs cleanMu.
func (p *Partition) compact(cfg Config, now int64) error {
	p.segMu.RLock()
	closed := slices.Clone(p.segs[:len(p.segs)-1])
	end := p.segs[len(p.segs)-1].base
	p.segMu.RUnlock()
	if len(closed) == 0 {
		return nil
	}
	dirty := 0
	for dirty < len(closed) && closed[dirty].base < p.cleanedUpTo {
		dirty++
	}
	expiring := false
	for _, s := range closed[:dirty] {
		if s.tombstoneExpiry > 0 && s.tombstoneExpiry <= now {
			expiring = true
		}
	}
	if dirty == len(closed) && !expiring {
		return nil
	}

	c := &cleaner{p: p, now: now, deleteRetentionMs: cfg.DeleteRetentionMs, interval: cfg.IndexIntervalBytes}
	if err := c.mapKeys(closed[dirty:]); err != nil {
		return err
	}
	p.mu.Lock()
	c.producerLast = make(map[int64]int64, len(p.producers))
	for id, s := range p.producers {
		c.producerLast[id] = s.lastOffset()
	}
	p.mu.Unlock()

	var errs []error
	for _, seg := range closed {
		if p.isClosed() {
			return ErrClosed
		}
		changed, expiry, err := c.plan(seg)
		if err != nil {
			// A damaged segment is left as it is; the rest still gets
			// cleaned.
			errs = append(errs, err)
			continue
		}
		if !changed {
			seg.tombstoneExpiry = expiry
			continue
		}
		ns, err := c.rewrite(seg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ns.tombstoneExpiry = expiry
		if err := p.swap(seg, ns); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	p.cleanedUpTo = end
	return errors.Join(errs...)
}

type cleaner struct {
	p                 *Partition
	now               int64
	deleteRetentionMs int64
	interval          int

	keys    map[string]int32 // key -> index into latest
	latest  []int64          // latest offset per key
	kept    []batch.Record   // survivors of the current batch
	builder batch.Builder
	// producerLast is each producer's last offset in the log.
	producerLast map[int64]int64
}

// mapKeys records the latest offset of every key in segs.
func (c *cleaner) mapKeys(segs []*segment) error {
	c.keys = make(map[string]int32)
	for _, seg := range segs {
		err := forEachBatch(seg, func(b []byte, h *batch.Header, _ int64) error {
			if h.IsControl() {
				return nil
			}
			return batch.Records(b, func(r *batch.Record) bool {
				if r.Key == nil {
					return true
				}
				if i, ok := c.keys[string(r.Key)]; ok {
					c.latest[i] = r.Offset
				} else {
					c.keys[string(r.Key)] = int32(len(c.latest))
					c.latest = append(c.latest, r.Offset)
				}
				return true
			})
		})
		if err != nil {
			return fmt.Errorf("compaction: map keys of %s: %w", seg.path(logSuffix), err)
		}
	}
	return nil
}

// forEachBatch calls fn for every batch of seg, CRC-checked.
func forEachBatch(seg *segment, fn func(b []byte, h *batch.Header, pos int64) error) error {
	sc := newBatchScanner(seg.log, 0, seg.size.Load())
	for {
		b, h, pos, err := sc.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("batch at %d: %w", pos, err)
		}
		if err := fn(b, &h, pos); err != nil {
			return err
		}
	}
}

// filter decides which records of batch b survive. It returns whether all
// do and, when collect is set, leaves the survivors in c.kept. expiry is
// lowered to the removal time of each surviving tombstone.
func (c *cleaner) filter(b []byte, h *batch.Header, collect bool, expiry *int64) (keepAll bool, err error) {
	c.kept = c.kept[:0]
	if h.IsControl() {
		return true, nil
	}
	dropped := false
	err = batch.Records(b, func(r *batch.Record) bool {
		if r.Key != nil {
			if i, ok := c.keys[string(r.Key)]; ok && c.latest[i] > r.Offset {
				dropped = true
				return true
			}
			if r.Value == nil {
				if r.Timestamp <= c.now-c.deleteRetentionMs {
					dropped = true
					return true
				}
				at := int64(math.MaxInt64)
				if r.Timestamp <= math.MaxInt64-c.deleteRetentionMs {
					at = r.Timestamp + c.deleteRetentionMs
				}
				if *expiry == 0 || at < *expiry {
					*expiry = at
				}
			}
		}
		if collect {
			k := *r
			if len(r.Headers) > 0 {
				k.Headers = slices.Clone(r.Headers)
			} else {
				k.Headers = nil
			}
			c.kept = append(c.kept, k)
		}
		return true
	})
	if err != nil {
		// Records we cannot decode cannot be compacted either; the batch
		// stays as it is.
		c.p.log.Warn("storage: compaction keeps a batch it cannot decode", "offset", h.BaseOffset, "err", err)
		c.kept = c.kept[:0]
		return true, nil
	}
	return !dropped, nil
}

// plan reports whether cleaning would change seg.
func (c *cleaner) plan(seg *segment) (changed bool, expiry int64, err error) {
	err = forEachBatch(seg, func(b []byte, h *batch.Header, _ int64) error {
		keepAll, err := c.filter(b, h, false, &expiry)
		if !keepAll {
			changed = true
		}
		return err
	})
	if err != nil {
		return false, 0, fmt.Errorf("compaction: %s: %w", seg.path(logSuffix), err)
	}
	return changed, expiry, nil
}

// rewrite writes the cleaned copy of seg to "<base>.log.cleaned" and its
// indexes to "<base>.index.cleaned" and "<base>.timeindex.cleaned", all
// fsynced, and returns it as a segment ready to swap in.
func (c *cleaner) rewrite(seg *segment) (*segment, error) {
	path := seg.path(logSuffix + cleanedSuffix)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("compaction: %w", err)
	}
	ns := newSegment(seg.dir, seg.base, f)
	fail := func(err error) (*segment, error) {
		_ = f.Close()
		_ = os.Remove(path)
		_ = os.Remove(seg.path(indexSuffix + cleanedSuffix))
		_ = os.Remove(seg.path(timeIndexSuffix + cleanedSuffix))
		return nil, fmt.Errorf("compaction: rewrite %s: %w", seg.path(logSuffix), err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var pos int64
	var expiry int64
	err = forEachBatch(seg, func(b []byte, h *batch.Header, _ int64) error {
		keepAll, err := c.filter(b, h, true, &expiry)
		if err != nil {
			return err
		}
		out := b
		if !keepAll {
			out = c.reencode(h)
		}
		if out == nil {
			return nil
		}
		oh, err := batch.ParseHeader(out)
		if err != nil {
			return err
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
		ns.track(pos, &oh, c.interval)
		pos += int64(len(out))
		return nil
	})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = fdatasync(f)
	}
	if err != nil {
		return fail(err)
	}
	ns.finalize()
	if err := ns.writeIndexFiles(cleanedSuffix); err != nil {
		return fail(err)
	}
	return ns, nil
}

// reencode builds the replacement for batch h from c.kept, or returns nil
// if the batch should disappear.
func (c *cleaner) reencode(h *batch.Header) []byte {
	if len(c.kept) == 0 && (h.ProducerID < 0 || c.producerLast[h.ProducerID] != h.LastOffset()) {
		return nil
	}
	b := &c.builder
	b.Reset(h.BaseTimestamp)
	b.SetProducer(h.ProducerID, h.ProducerEpoch, h.BaseSequence)
	b.SetAttributes(h.Attributes)
	for i := range c.kept {
		r := &c.kept[i]
		b.Add(int32(r.Offset-h.BaseOffset), r.Timestamp, r.Key, r.Value, r.Headers)
	}
	out := b.FinishWithLastDelta(h.LastOffsetDelta)
	batch.SetBaseOffset(out, h.BaseOffset)
	batch.SetLeaderEpoch(out, h.LeaderEpoch)
	return out
}

// swap puts the cleaned segment ns in place of old, on disk and in the
// segment list. Needs cleanMu.
func (p *Partition) swap(old, ns *segment) error {
	rename := func(from, to string) error {
		if err := os.Rename(old.path(from), old.path(to)); err != nil {
			return fmt.Errorf("compaction swap: %w", err)
		}
		return nil
	}
	steps := []func() error{
		func() error { return rename(logSuffix+cleanedSuffix, logSuffix+swapSuffix) },
		func() error { return syncDir(p.dir) },
		func() error { return rename(indexSuffix+cleanedSuffix, indexSuffix) },
		func() error { return rename(timeIndexSuffix+cleanedSuffix, timeIndexSuffix) },
		func() error { return rename(logSuffix+swapSuffix, logSuffix) },
		func() error { return syncDir(p.dir) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			// The disk is between two states that recovery resolves; keep
			// serving the old segment, whose file handle is still valid.
			_ = ns.log.Close()
			return err
		}
	}

	p.segMu.Lock()
	i := slices.Index(p.segs, old)
	drop := i > 0 && ns.size.Load() == 0
	switch {
	case i < 0:
		// Cannot happen: only Clean removes segments, and we are Clean.
	case drop:
		p.segs = slices.Delete(p.segs, i, i+1)
	default:
		p.segs[i] = ns
	}
	p.segMu.Unlock()

	err := old.log.Close()
	if drop {
		p.log.Info("storage: compaction emptied segment; deleting it", "segment", ns.path(logSuffix))
		err = errors.Join(err, ns.log.Close(), ns.removeFiles())
	}
	return err
}
