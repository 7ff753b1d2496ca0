package state

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluice-io/sluice/broker/batch"
)

// restoreReadBytes is how much changelog Restore reads, and applies to
// Pebble in one batch, at a time.
const restoreReadBytes = 1 << 20

// Restore brings every store up to its changelog's high watermark, starting
// from the offset Pebble recorded (or from the log start for a new or
// rebuilt store), applying puts and tombstones in order. It drops whatever
// the State holds in memory, so it can also be called after a failed Flush
// or a Rollback; it is cheap when Pebble is caught up, so a task calls it
// on every (re)start.
//
// progress, if not nil, is called with changelog offsets covered so far
// and to cover in total; restored reaches total when the store is done.
//
// Table stores are not replayed: the host applies their records itself,
// in timestamp order with its other inputs, from TableOffset on. Restore
// only checks that a table store's meta offset lies within its topic
// partition's [log start, high watermark]; a store without one, or whose
// offset lies outside (the topic was recreated or truncated), is wiped and
// starts again at the log start. progress is not called for tables.
func (s *State) Restore(ctx context.Context, progress func(store string, restored, total int64)) error {
	if s.closed {
		return ErrClosed
	}
	if s.corrupt.Load() {
		return fmt.Errorf("state: pebble reported corruption in %s; reopen to rebuild", s.dir)
	}
	s.ready = false
	s.dropEntries()
	for _, st := range s.stores {
		if st.table {
			if err := s.checkTable(st); err != nil {
				return fmt.Errorf("state: restore table %q: %w", st.name, err)
			}
			continue
		}
		if err := s.restoreStore(ctx, st, progress); err != nil {
			return fmt.Errorf("state: restore store %q: %w", st.name, err)
		}
	}
	s.ready, s.notReady = true, nil
	return nil
}

func (s *State) restoreStore(ctx context.Context, st *store, progress func(string, int64, int64)) error {
	lso, hw := st.log.LogStartOffset(), st.log.HighWatermark()
	from := st.next
	if from < lso || from > hw {
		if from >= 0 {
			// Ahead: the changelog was recreated or lost its tail. Behind
			// its start: retention removed records this store never saw.
			// Either way the local data cannot be patched up.
			s.log.Warn("state: local store does not match its changelog; rebuilding it from the changelog",
				"dir", s.dir, "store", st.name, "local_offset", from, "changelog_start", lso, "changelog_end", hw)
		}
		if err := s.wipe(st, lso); err != nil {
			return err
		}
		from = lso
	}
	total := hw - from
	if progress != nil {
		progress(st.name, 0, total)
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	var readBuf []byte
	for off := from; off < hw; {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf, err := st.log.ReadInto(readBuf, off, restoreReadBytes)
		if err != nil {
			return fmt.Errorf("read changelog at %d: %w", off, err)
		}
		readBuf = buf[:0]
		next := off
		if len(buf) == 0 {
			// Compaction emptied the rest below the high watermark.
			next = hw
		}
		for len(buf) > 0 {
			h, err := batch.ParseHeader(buf)
			if err != nil {
				return fmt.Errorf("changelog batch after offset %d: %w", next, err)
			}
			if !h.IsControl() {
				if err := applyBatch(wb, st, buf[:h.Size()], off, hw); err != nil {
					return fmt.Errorf("changelog batch at offset %d: %w", h.BaseOffset, err)
				}
			}
			next = h.NextOffset()
			buf = buf[h.Size():]
		}
		next = min(next, hw)
		if err := s.commitRestored(wb, st, next); err != nil {
			return err
		}
		wb.Reset()
		off = next
		if progress != nil {
			progress(st.name, off-from, total)
		}
	}
	if st.next != hw {
		// Nothing to read (an empty or fully compacted range), but the
		// store now exists and is at hw.
		if err := s.commitRestored(wb, st, hw); err != nil {
			return err
		}
		if progress != nil {
			progress(st.name, total, total)
		}
	}
	return nil
}

// checkTable wipes table store st unless its meta offset lies within its
// topic partition's range.
func (s *State) checkTable(st *store) error {
	lso, hw := st.log.LogStartOffset(), st.log.HighWatermark()
	if st.next >= lso && st.next <= hw {
		st.applied = st.next
		return nil
	}
	if st.next >= 0 {
		s.log.Warn("state: local table does not match its topic; reading the table again from its start",
			"dir", s.dir, "store", st.name, "local_offset", st.next, "table_start", lso, "table_end", hw)
	}
	return s.wipe(st, lso)
}

// applyBatch adds the records of one changelog batch at offsets in
// [from, hw) to wb: a put for a value, a delete for a tombstone.
func applyBatch(wb *pebble.Batch, st *store, b []byte, from, hw int64) error {
	var key []byte
	return batch.Records(b, func(r *batch.Record) bool {
		if r.Offset < from || r.Offset >= hw || r.Key == nil {
			return true
		}
		key = append(append(key[:0], st.prefix...), r.Key...)
		if r.Value == nil {
			_ = wb.Delete(key, nil)
		} else {
			_ = wb.Set(key, r.Value, nil)
		}
		return true
	})
}

// commitRestored writes wb and st's meta offset next in one atomic batch.
func (s *State) commitRestored(wb *pebble.Batch, st *store, next int64) error {
	_ = wb.Set(st.metaKey, binary.BigEndian.AppendUint64(nil, uint64(next)), nil)
	if err := wb.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("write to pebble: %w", err)
	}
	st.next, st.applied = next, next
	return nil
}

// wipe deletes st's data and sets its meta offset to at.
func (s *State) wipe(st *store, at int64) error {
	wb := s.db.NewBatch()
	defer wb.Close()
	_ = wb.DeleteRange(st.prefix, prefixEnd(st.prefix), nil)
	_ = wb.Delete(st.otherMetaKey, nil)
	return s.commitRestored(wb, st, at)
}
