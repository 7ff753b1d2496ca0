package state

import "fmt"

// ApplyTable applies one record of table store h's topic, at offset, to
// the store: value nil deletes key, any other value (an empty one too) is
// the key's value. It is for the host, between guest calls: the change
// goes straight into the dirty set (it is not staged, so EndCall does not
// affect it) and the next Get or Scan sees it. The next Flush writes it to
// Pebble with the store's table offset; Rollback discards it.
//
// The store's next table offset (TableOffset) becomes offset+1. Offsets
// must not go backwards: offset below TableOffset is an error, since
// applying an older record again could undo a newer one. Gaps (compacted
// records) are fine. A record with a nil key only moves the offset on.
//
// The State copies key and value, so the caller may reuse its buffers.
// Applying to a key already in memory does not allocate once its value
// buffer is large enough.
func (s *State) ApplyTable(h int32, offset int64, key, value []byte) error {
	st, err := s.store(h)
	if err != nil {
		return err
	}
	if !st.table {
		return fmt.Errorf("state: ApplyTable on store %q, which is not a table", st.name)
	}
	if offset < st.applied {
		return fmt.Errorf("state: table %q: record at offset %d is below the next table offset %d", st.name, offset, st.applied)
	}
	st.applied = offset + 1
	if key == nil {
		return nil
	}
	e := s.lookup(st, key)
	if e.state >= stateDirtyPut {
		st.dirtyBytes -= e.dirtySize()
	} else {
		st.dirty = append(st.dirty, e)
		st.addToOverlay(e)
	}
	if value != nil {
		old := cap(e.val)
		e.val = append(nonNil(e.val)[:0], value...)
		s.cacheBytes += int64(cap(e.val) - old)
		e.state = stateDirtyPut
	} else {
		e.state = stateDirtyDel
	}
	st.dirtyBytes += e.dirtySize()
	if s.cacheBytes > s.evictAt {
		s.evict()
	}
	return nil
}

// TableOffset returns the next offset of table store h's topic to apply:
// the offset after the last record applied with ApplyTable, or, with no
// applies since the last Flush, Restore or Rollback, the offset Pebble
// recorded at that Flush or Restore (the log start after Restore wiped the
// store). The host reads the table from there after opening, restoring or
// rolling back the State. It returns -1 for a handle that is not a table
// store and before the first Restore.
func (s *State) TableOffset(h int32) int64 {
	if h < 0 || int(h) >= len(s.stores) || !s.stores[h].table {
		return -1
	}
	return s.stores[h].applied
}
