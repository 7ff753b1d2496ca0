package state

import (
	"fmt"

	"github.com/sluice-io/sluice/abi"
)

// An entry is what the State knows about one key of one store beyond
// Pebble. Its committed value is in one of the committed states; a staged
// value written by the current call sits next to it.
//
// Invariants:
//   - an entry is in its store's dirty list iff its state is dirtyPut or
//     dirtyDel;
//   - an entry is in State.staged iff staged != stagedNone;
//   - a clean entry's val equals Pebble's value; an absent entry's key is
//     not in Pebble.
type entry struct {
	key       string
	st        *store
	val       []byte // committed value: for clean and dirtyPut
	stagedVal []byte // for stagedPut
	state     entryState
	staged    stagedState
	ovGen     uint32 // == st.ovGen: in st.overlay or st.pending
}

type entryState uint8

const (
	stateUnknown  entryState = iota // not read from Pebble yet
	stateClean                      // val is Pebble's value
	stateAbsent                     // Pebble has no value
	stateDirtyPut                   // val is newer than Pebble
	stateDirtyDel                   // deleted since the last Flush
)

type stagedState uint8

const (
	stagedNone stagedState = iota
	stagedPut
	stagedDel
)

// entryOverhead approximates an entry's memory beyond its key and value
// buffers: the struct, the map slot and the string header.
const entryOverhead = 128

func (e *entry) size() int64 {
	return int64(len(e.key) + cap(e.val) + cap(e.stagedVal) + entryOverhead)
}

// evictable: nothing in the entry is newer than Pebble.
func (e *entry) evictable() bool {
	return e.staged == stagedNone && e.state <= stateAbsent
}

// current returns the value a read sees, resolving an unknown committed
// value from Pebble first.
func (s *State) current(e *entry) ([]byte, bool, error) {
	switch e.staged {
	case stagedPut:
		return e.stagedVal, true, nil
	case stagedDel:
		return nil, false, nil
	}
	if e.state == stateUnknown {
		if err := s.load(e); err != nil {
			return nil, false, err
		}
	}
	switch e.state {
	case stateClean, stateDirtyPut:
		return e.val, true, nil
	}
	return nil, false, nil
}

// load fills an unknown entry's committed value from Pebble.
func (s *State) load(e *entry) error {
	s.keyBuf = append(append(s.keyBuf[:0], e.st.prefix...), e.key...)
	v, found, err := s.pebbleGet(s.keyBuf)
	if err != nil {
		return fmt.Errorf("state: read %q from store %q: %w", e.key, e.st.name, err)
	}
	if !found {
		e.state = stateAbsent
		return nil
	}
	old := cap(e.val)
	e.val = append(nonNil(e.val)[:0], v...)
	s.cacheBytes += int64(cap(e.val) - old)
	e.state = stateClean
	return nil
}

// lookup returns the entry for key, creating an unknown one if needed.
func (s *State) lookup(st *store, key []byte) *entry {
	if e := st.entries[string(key)]; e != nil {
		return e
	}
	e := &entry{key: string(key), st: st}
	st.entries[e.key] = e
	s.cacheBytes += e.size()
	return e
}

// Get returns the value of key in store h as the current call sees it. The
// value is valid until the next call into the State.
func (s *State) Get(h int32, key []byte) (value []byte, found bool, err error) {
	st, err := s.store(h)
	if err != nil {
		return nil, false, err
	}
	if e := st.entries[string(key)]; e != nil {
		return s.current(e)
	}
	if len(key) > abi.MaxKeySize {
		return nil, false, nil // such a key can never have been written
	}
	return s.current(s.lookup(st, key))
}

// Put stages value for key in store h; the State keeps copies of both.
func (s *State) Put(h int32, key, value []byte) error {
	st, err := s.store(h)
	if err != nil {
		return err
	}
	if st.table {
		return fmt.Errorf("%w: put to table %q", ErrReadOnly, st.name)
	}
	if len(key) > abi.MaxKeySize || len(value) > abi.MaxValueSize {
		return fmt.Errorf("%w: key %d bytes (max %d), value %d bytes (max %d)",
			ErrTooLarge, len(key), abi.MaxKeySize, len(value), abi.MaxValueSize)
	}
	e := s.lookup(st, key)
	s.stage(e, stagedPut)
	old := cap(e.stagedVal)
	// Non-nil even when empty: nil means "delete" in the changelog.
	e.stagedVal = append(nonNil(e.stagedVal)[:0], value...)
	s.cacheBytes += int64(cap(e.stagedVal) - old)
	return nil
}

// Delete stages the deletion of key in store h.
func (s *State) Delete(h int32, key []byte) error {
	st, err := s.store(h)
	if err != nil {
		return err
	}
	if st.table {
		return fmt.Errorf("%w: delete from table %q", ErrReadOnly, st.name)
	}
	if len(key) > abi.MaxKeySize {
		return fmt.Errorf("%w: key %d bytes (max %d)", ErrTooLarge, len(key), abi.MaxKeySize)
	}
	s.stage(s.lookup(st, key), stagedDel)
	return nil
}

func (s *State) stage(e *entry, how stagedState) {
	if e.staged == stagedNone {
		s.staged = append(s.staged, e)
		e.st.addToOverlay(e)
	}
	e.staged = how
}

// EndCall ends a sluice_process call: commit moves the call's staged writes
// into the dirty set, otherwise they are discarded.
func (s *State) EndCall(commit bool) {
	for _, e := range s.staged {
		if commit {
			st := e.st
			wasDirty := e.state >= stateDirtyPut
			if !wasDirty {
				st.dirty = append(st.dirty, e)
			} else {
				st.dirtyBytes -= e.dirtySize()
			}
			if e.staged == stagedPut {
				// Swap rather than copy: the old committed buffer becomes
				// the next call's staging buffer.
				e.val, e.stagedVal = e.stagedVal, e.val
				e.state = stateDirtyPut
			} else {
				e.state = stateDirtyDel
			}
			st.dirtyBytes += e.dirtySize()
		}
		e.staged = stagedNone
	}
	clear(s.staged)
	s.staged = s.staged[:0]
	if s.cacheBytes > s.evictAt {
		s.evict()
	}
}

// dirtySize is what a dirty entry adds to the next Flush.
func (e *entry) dirtySize() int64 {
	if e.state == stateDirtyPut {
		return int64(len(e.key) + len(e.val))
	}
	return int64(len(e.key))
}

// DirtyBytes is the size of the keys and values the next Flush writes. A
// task may checkpoint early when it grows large.
func (s *State) DirtyBytes() int64 {
	var n int64
	for _, st := range s.stores {
		n += st.dirtyBytes
	}
	return n
}

// Rollback drops the dirty set and the current call's staged writes, so
// that the State reads as of the last Flush again (after a guest fault).
// That includes table applies: each table's TableOffset goes back to the
// flushed one, from which the host reads the table again.
func (s *State) Rollback() {
	for _, e := range s.staged {
		e.staged = stagedNone
	}
	clear(s.staged)
	s.staged = s.staged[:0]
	for _, st := range s.stores {
		for _, e := range st.dirty {
			// What Pebble holds for the key is not known here; forget the
			// entry and let the next read ask.
			delete(st.entries, e.key)
			s.cacheBytes -= e.size()
		}
		clear(st.dirty)
		st.dirty = st.dirty[:0]
		st.dirtyBytes = 0
		st.version++
		st.applied = st.next
	}
}

// evict drops evictable entries, in the map's random order, until the
// cache is below 7/8 of its budget. When dirty and staged entries keep it
// above that, the next attempt waits until it has grown by another eighth,
// so that full passes over the map stay rare.
func (s *State) evict() {
	target := s.cacheBudget - s.cacheBudget/8
	for _, st := range s.stores {
		for k, e := range st.entries {
			if s.cacheBytes <= target {
				break
			}
			if e.evictable() {
				delete(st.entries, k)
				s.cacheBytes -= e.size()
			}
		}
	}
	s.evictAt = max(s.cacheBudget, s.cacheBytes+s.cacheBudget/8)
}

// dropEntries forgets everything in memory (for Restore).
func (s *State) dropEntries() {
	clear(s.staged)
	s.staged = s.staged[:0]
	for _, st := range s.stores {
		st.entries = make(map[string]*entry)
		st.dirty = nil
		st.dirtyBytes = 0
		st.overlay = nil
		st.version++
	}
	s.cacheBytes = 0
	s.evictAt = s.cacheBudget
}

// empty is a non-nil, zero-length slice; growing it allocates a fresh
// array (zero-size allocations share one address and cost nothing).
var empty = []byte{}

func nonNil(b []byte) []byte {
	if b == nil {
		return empty
	}
	return b
}
