package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/storage"
)

// changelogBatchBytes is the size past which Flush starts another
// changelog batch. A record larger than that gets a batch of its own.
const changelogBatchBytes = 1 << 20

type batchBuilder = batch.Builder

// Flush makes every committed write durable: it appends the dirty set to
// each store's changelog, waits until the appends are durable, writes the
// same entries and the new changelog offsets to Pebble in one batch, and
// clears the dirty set. Staged writes of a call in progress are left
// alone.
//
// A table store's dirty set (its applies) goes to Pebble in the same batch
// with its next table offset as its meta offset; nothing is appended to
// its partition, which is the table's topic.
//
// After an error the State refuses reads and writes until Restore, since
// the changelog may hold records Pebble lacks.
func (s *State) Flush() error {
	if !s.ready {
		return s.notReadyErr()
	}
	if s.corrupt.Load() {
		return s.failFlush(errors.New("pebble reported corruption"))
	}
	now := time.Now().UnixMilli()
	next := make([]int64, len(s.stores))
	var pending []storage.Pending
	for i, st := range s.stores {
		next[i] = st.next
		if st.table {
			next[i] = st.applied
			continue
		}
		if len(st.dirty) == 0 {
			continue
		}
		var err error
		next[i], pending, err = s.appendChangelog(st, now, pending)
		if err != nil {
			// What was appended must still become readable, or Restore
			// (which reads up to the high watermark) would miss it and the
			// next append would not line up with the restored offset.
			for _, p := range pending {
				_ = p.Wait()
			}
			return s.failFlush(err)
		}
	}
	for _, p := range pending {
		if err := p.Wait(); err != nil {
			return s.failFlush(fmt.Errorf("changelog not durable: %w", err))
		}
	}

	b := s.db.NewBatch()
	defer b.Close()
	for i, st := range s.stores {
		if len(st.dirty) == 0 && next[i] == st.next {
			continue
		}
		for _, e := range st.dirty {
			s.keyBuf = append(append(s.keyBuf[:0], st.prefix...), e.key...)
			if e.state == stateDirtyPut {
				_ = b.Set(s.keyBuf, e.val, nil)
			} else {
				_ = b.Delete(s.keyBuf, nil)
			}
		}
		_ = b.Set(st.metaKey, binary.BigEndian.AppendUint64(nil, uint64(next[i])), nil)
	}
	// No fsync: the changelog is durable, and a Pebble that loses this
	// batch has an older meta offset, from which Restore replays.
	if err := b.Commit(pebble.NoSync); err != nil {
		return s.failFlush(fmt.Errorf("write to pebble: %w", err))
	}

	for i, st := range s.stores {
		st.next, st.applied = next[i], next[i]
		for _, e := range st.dirty {
			if e.state == stateDirtyPut {
				e.state = stateClean
			} else {
				e.state = stateAbsent
			}
		}
		if len(st.dirty) > 0 {
			clear(st.dirty)
			st.dirty = st.dirty[:0]
			st.dirtyBytes = 0
			st.version++
		}
	}
	s.evictAt = s.cacheBudget
	if s.cacheBytes > s.evictAt {
		s.evict()
	}
	return nil
}

// appendChangelog appends st's dirty set to its changelog and returns the
// offset after it, with the appends' Pendings added to pending.
func (s *State) appendChangelog(st *store, now int64, pending []storage.Pending) (int64, []storage.Pending, error) {
	b := &s.builder
	next := st.next
	send := func() error {
		info, p, err := st.log.AppendAsync(b.Finish(), 0)
		if err != nil {
			return fmt.Errorf("append to the changelog of store %q: %w", st.name, err)
		}
		pending = append(pending, p)
		if info.BaseOffset != next {
			return fmt.Errorf("changelog of store %q: append landed at offset %d but the local state ends at %d; something else writes to the changelog",
				st.name, info.BaseOffset, next)
		}
		next = info.LastOffset + 1
		return nil
	}
	b.Reset(now)
	for _, e := range st.dirty {
		var v []byte // nil: a tombstone
		if e.state == stateDirtyPut {
			v = nonNil(e.val)
		}
		if b.Len() > 0 && b.Size()+len(e.key)+len(v)+32 > changelogBatchBytes {
			if err := send(); err != nil {
				return next, pending, err
			}
			b.Reset(now)
		}
		s.keyBuf = append(s.keyBuf[:0], e.key...)
		b.Add(int32(b.Len()), now, s.keyBuf, v, nil)
	}
	if err := send(); err != nil {
		return next, pending, err
	}
	return next, pending, nil
}

func (s *State) failFlush(err error) error {
	s.ready = false
	s.notReady = fmt.Errorf("%w: a flush failed (%v)", ErrNotRestored, err)
	return fmt.Errorf("state: flush: %w", err)
}
