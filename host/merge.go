package host

import (
	"errors"
	"fmt"
	"time"

	"github.com/sluice-io/sluice/broker/storage"
)

// A task with several sources (inputs, tables, or both) handles their
// records in one deterministic order, so that a join gives the same
// answer however the records arrived and whenever it is replayed:
//
//   - by timestamp;
//   - equal timestamps: table records first, then by index (tables in the
//     job's tables order, inputs in its inputs order);
//   - each source's own records in offset order: the merge only ever
//     compares the sources' next records, as in a merge of sorted runs.
//
// To compare, every source needs a next record. One that has none (it is
// caught up) is waited for, up to the job's max-input-wait from when it
// ran dry, because its producer may just be behind; after that the others
// go on without it until it has records again. Records that were already
// in the logs when the task got to them are therefore always handled in
// the same order; only data arriving live more than max-input-wait apart
// can be handled in another order than their timestamps say.
//
// A stream record goes to the operator; a run of consecutive stream
// records is one sluice_process call (several inputs' records may share
// one). A table record is applied to the table's store by the host,
// between calls, so that each call sees the table as of its records'
// time.

// mergeQueue is one source's records read but not yet handled.
type mergeQueue struct {
	recs []inRec
	hdrs []batchHeader
	next int   // recs[next] is the source's next record
	end  int64 // the offset after the last batch read into recs
	// idleSince is when the source was first seen caught up with nothing
	// queued (zero while it has records).
	idleSince time.Time
}

func (q *mergeQueue) empty() bool { return q.next >= len(q.recs) }

func (q *mergeQueue) clear() {
	q.recs, q.hdrs, q.next = q.recs[:0], q.hdrs[:0], 0
	q.idleSince = time.Time{}
}

// position is the source's next offset given what its queue has handed out.
func (q *mergeQueue) position() int64 {
	if q.empty() {
		return q.end
	}
	return q.recs[q.next].off
}

// fill reads the next chunk of a source whose queue is empty. It reports
// whether the source's position moved (past control batches or records
// removed by retention) without records to queue.
func (t *task) fill(s *inputSource) (moved bool, err error) {
	s.q.recs, s.q.hdrs, s.q.next = s.q.recs[:0], s.q.hdrs[:0], 0
	for s.pos < s.part.HighWatermark() {
		data, err := s.part.ReadInto(s.buf, s.pos, t.job.spec.Limits.MaxBatchBytes)
		if errors.Is(err, storage.ErrOffsetOutOfRange) {
			if lso := s.part.LogStartOffset(); s.pos < lso {
				t.log.Warn("records were deleted before they were read; skipping ahead", "topic", s.topic, "from", s.pos, "to", lso)
				t.setPosition(s, lso)
				moved = true
				continue
			}
		}
		if err != nil {
			return moved, fmt.Errorf("reading %s-%d: %w", s.topic, t.partition, err)
		}
		if cap(data) > cap(s.buf) {
			s.buf = data[:0]
		}
		next, err := t.decode(s, data, &s.q.recs, &s.q.hdrs)
		if err != nil {
			return moved, err
		}
		if next == s.pos {
			return moved, nil // nothing whole to read yet
		}
		s.q.end = next
		if len(s.q.recs) > 0 {
			return moved, nil
		}
		t.setPosition(s, next) // only control batches
		moved = true
	}
	return moved, nil
}

// setPosition moves a source's position when its queue is empty.
func (t *task) setPosition(s *inputSource, pos int64) {
	s.pos = pos
	s.q.end = pos
	s.posA.Store(pos)
	// A table's position lives in its store, as the offset after the last
	// record applied; a restart reads control batches after it again.
	if !s.table {
		t.dirty = true
	}
}

// stepMerged handles the next run of a multi-source task: table records
// are applied, or stream records processed in one call, whichever comes
// first in the merge order. It reports whether anything was handled.
func (t *task) stepMerged() (bool, error) {
	t.now = time.Time{}
	progressed := false
	for _, s := range t.sources {
		if !s.q.empty() {
			continue
		}
		moved, err := t.fill(s)
		if err != nil {
			return false, err
		}
		progressed = progressed || moved
		if !s.q.empty() {
			s.q.idleSince = time.Time{}
		} else if s.q.idleSince.IsZero() && s.pos >= s.part.HighWatermark() {
			s.q.idleSince = t.clock()
		}
	}
	t.wakeAt = time.Time{}
	t.recs, t.hdrs = t.recs[:0], t.hdrs[:0]
	size := 0
	for size < t.job.spec.Limits.MaxBatchBytes {
		s := t.nextSource()
		if s == nil {
			break
		}
		r := &s.q.recs[s.q.next]
		if s.table {
			if len(t.recs) > 0 {
				break // the stream records before it go first
			}
			if err := t.applyTableRecord(s, r); err != nil {
				return false, err
			}
			progressed = true
			continue
		}
		s.q.next++
		h0 := int32(len(t.hdrs))
		t.hdrs = append(t.hdrs, s.q.hdrs[r.h0:r.h1]...)
		rec := *r
		rec.h0, rec.h1 = h0, int32(len(t.hdrs))
		t.recs = append(t.recs, rec)
		size += len(r.key) + len(r.value) + 32
	}
	if len(t.recs) == 0 {
		return progressed, nil
	}
	if err := t.processRecs(); err != nil {
		return false, err
	}
	for _, in := range t.inputs {
		if pos := in.q.position(); pos != in.pos {
			in.pos = pos
			in.posA.Store(pos)
		}
	}
	t.dirty = true
	return true, nil
}

// nextSource returns the source whose next record comes first in the
// merge order, or nil when there is none or when a source without records
// must be read or waited for first (t.wakeAt then says until when).
func (t *task) nextSource() *inputSource {
	// A table in a full bootstrap goes first, whatever the others hold.
	for _, s := range t.tables {
		if s.fullBootstrap && !s.q.empty() && s.q.recs[s.q.next].off < s.bootstrapEnd {
			return s
		}
	}
	var best *inputSource
	for _, s := range t.sources {
		if s.q.empty() {
			if s.pos < s.part.HighWatermark() {
				return nil // records to read first: the next step does
			}
			if s.q.idleSince.IsZero() {
				s.q.idleSince = t.clock()
			}
			if until := s.q.idleSince.Add(t.job.spec.MaxInputWait); t.clock().Before(until) {
				if t.wakeAt.IsZero() || until.Before(t.wakeAt) {
					t.wakeAt = until
				}
				return nil
			}
			continue // waited long enough: go on without it
		}
		if best == nil || mergesBefore(s, best) {
			best = s
		}
	}
	if best == nil {
		t.wakeAt = time.Time{} // nothing to wait for: every source is dry
	}
	return best
}

// clock is the time of the current merge step, read once.
func (t *task) clock() time.Time {
	if t.now.IsZero() {
		t.now = time.Now()
	}
	return t.now
}

// mergesBefore reports whether a's next record comes before b's.
func mergesBefore(a, b *inputSource) bool {
	ra, rb := &a.q.recs[a.q.next], &b.q.recs[b.q.next]
	if ra.ts != rb.ts {
		return ra.ts < rb.ts
	}
	if a.table != b.table {
		return a.table
	}
	return a.index < b.index
}

// applyTableRecord writes a table record to its store (a null value
// deletes the key) and moves the table past it.
func (t *task) applyTableRecord(s *inputSource, r *inRec) error {
	if err := t.state.ApplyTable(s.store, r.off, r.key, r.value); err != nil {
		return fmt.Errorf("applying table %s (%s-%d offset %d): %w", s.name, s.topic, t.partition, r.off, err)
	}
	s.q.next++
	s.pos = s.q.position()
	s.posA.Store(s.pos)
	s.appliedA.Add(1)
	t.dirty = true
	return nil
}

// mergeAhead reports whether a source has records the merge has not read.
func (t *task) mergeAhead() bool {
	for _, s := range t.sources {
		if s.q.empty() && s.pos < s.part.HighWatermark() {
			return true
		}
	}
	return false
}

// loadTablePositions sets each table's position from its store, after the
// state is opened or rolled back, and notes where its bootstrap ends.
func (t *task) loadTablePositions() error {
	for _, s := range t.tables {
		h := t.state.Handle([]byte(s.name))
		if h < 0 {
			return fmt.Errorf("table %s has no store", s.name)
		}
		s.store = h
		s.q.clear()
		s.pos = t.state.TableOffset(h)
		s.q.end = s.pos
		s.posA.Store(s.pos)
		s.bootstrapEnd = s.part.HighWatermark()
		s.bootstrapEndA.Store(s.bootstrapEnd)
	}
	return nil
}
