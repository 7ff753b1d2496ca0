package storage

import (
	"errors"
	"fmt"
	"time"
)

// Clean runs retention (if Delete) and compaction (if Compact) once. It never
// touches the active segment and does not block appends or reads for longer
// than a segment swap.
func (p *Partition) Clean(now time.Time) error {
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	if p.isClosed() {
		return ErrClosed
	}
	cfg := p.config()
	nowMs := now.UnixMilli()
	var errs []error
	if cfg.Delete {
		if err := p.applyRetention(cfg, nowMs); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.Compact {
		if err := p.compact(cfg, nowMs); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("storage: clean %s: %w", p.dir, err)
	}
	return nil
}

// applyRetention deletes the oldest closed segments while they are older
// than RetentionMs (by their largest timestamp) or while the rest of the
// log still holds at least RetentionBytes. Like Kafka, the size limit is
// where deletion stops, so the log stays between RetentionBytes and
// RetentionBytes plus one segment. Only a prefix is deleted: the log never
// gets a hole. Needs cleanMu.
func (p *Partition) applyRetention(cfg Config, now int64) error {
	if cfg.RetentionMs < 0 && cfg.RetentionBytes < 0 {
		return nil
	}
	p.segMu.RLock()
	closed := p.segs[:len(p.segs)-1]
	var total int64
	for _, s := range p.segs {
		total += s.size.Load()
	}
	n := 0
	for _, s := range closed {
		expired := cfg.RetentionMs >= 0 && s.maxTS.Load() < now-cfg.RetentionMs
		tooBig := cfg.RetentionBytes >= 0 && total-s.size.Load() >= cfg.RetentionBytes
		if !expired && !tooBig {
			break
		}
		total -= s.size.Load()
		n++
	}
	p.segMu.RUnlock()
	if n == 0 {
		return nil
	}
	return p.deletePrefix(n, "retention")
}

// deletePrefix removes the first n segments (never the active one) and
// moves the log start offset to the next. Needs cleanMu.
func (p *Partition) deletePrefix(n int, why string) error {
	p.segMu.Lock()
	n = min(n, len(p.segs)-1)
	gone := p.segs[:n:n]
	p.segs = append([]*segment(nil), p.segs[n:]...)
	lso := p.segs[0].base
	p.lso.Store(lso)
	p.segMu.Unlock()

	// No reader can reach the removed segments any more: readers find
	// segments under segMu, which they could not hold while we swapped.
	var errs []error
	for _, s := range gone {
		p.log.Info("storage: deleting segment", "segment", s.path(logSuffix), "reason", why, "log_start_offset", lso)
		if err := s.log.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := s.removeFiles(); err != nil {
			errs = append(errs, err)
		}
	}
	if p.cleanedUpTo < lso {
		p.cleanedUpTo = lso
	}
	p.mu.Lock()
	p.producers.evictBelow(lso)
	if next, changed := epochsFrom(p.epochs, lso); changed {
		if err := p.setEpochs(next); err != nil {
			errs = append(errs, err)
		}
	}
	p.mu.Unlock()
	return errors.Join(errs...)
}
