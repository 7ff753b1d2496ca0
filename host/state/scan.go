package state

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluice-io/sluice/abi"
)

// Scan calls fn for every key of store h with start <= key < end (end nil:
// no upper bound) in key order, with its value as the current call sees
// it: staged writes over the dirty set over Pebble, deleted keys hidden.
// It stops when fn returns false. Key and value are valid only during fn,
// and fn must not call into the State.
func (s *State) Scan(h int32, start, end []byte, fn func(key, value []byte) bool) error {
	st, err := s.store(h)
	if err != nil {
		return err
	}
	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil
	}
	ov := s.overlayOf(st)
	i := sort.Search(len(ov), func(i int) bool { return ov[i].key >= string(start) })

	lower := append(slices.Clip(st.prefix), start...)
	upper := prefixEnd(st.prefix)
	if end != nil {
		upper = append(slices.Clip(st.prefix), end...)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("state: scan store %q: %w", st.name, err)
	}
	err = s.merge(st, ov[i:], end, it, fn)
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("state: scan store %q: %w", st.name, cerr)
	}
	return err
}

// merge walks the overlay entries (sorted, from start) and Pebble's
// iterator together. An overlay entry hides Pebble's value for its key.
func (s *State) merge(st *store, ov []*entry, end []byte, it *pebble.Iterator, fn func(key, value []byte) bool) error {
	valid := it.First()
	n := len(st.prefix)
	for {
		var e *entry
		if len(ov) > 0 && (end == nil || ov[0].key < string(end)) {
			e = ov[0]
		}
		if e == nil && !valid {
			break
		}
		if e != nil && (!valid || e.key <= string(it.Key()[n:])) {
			if valid && e.key == string(it.Key()[n:]) {
				valid = it.Next()
			}
			ov = ov[1:]
			v, found := e.overlayValue()
			if !found {
				continue
			}
			s.scanKey = append(s.scanKey[:0], e.key...)
			if !fn(s.scanKey, v) {
				return nil
			}
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("state: scan store %q: %w", st.name, err)
		}
		if !fn(it.Key()[n:], v) {
			return nil
		}
		valid = it.Next()
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("state: scan store %q: %w", st.name, err)
	}
	return nil
}

// overlayValue is the value of an entry that has a staged or dirty value.
func (e *entry) overlayValue() ([]byte, bool) {
	switch e.staged {
	case stagedPut:
		return e.stagedVal, true
	case stagedDel:
		return nil, false
	}
	if e.state == stateDirtyPut {
		return e.val, true
	}
	return nil, false
}

// overlayOf returns the store's entries that have staged or dirty values,
// sorted by key. The sorted list is kept until the set changes, so that a
// guest paging through a scan sorts once.
func (s *State) overlayOf(st *store) []*entry {
	if st.overlay != nil && st.overlayVersion == st.version {
		return st.overlay
	}
	ov := append(st.overlay[:0], st.dirty...)
	for _, e := range s.staged {
		if e.st == st && e.state < stateDirtyPut {
			ov = append(ov, e)
		}
	}
	slices.SortFunc(ov, func(a, b *entry) int { return strings.Compare(a.key, b.key) })
	if ov == nil {
		ov = []*entry{}
	}
	st.overlay, st.overlayVersion = ov, st.version
	return ov
}

// ScanAppend is Scan in the state_scan result layout: it appends entries
// to dst with abi.AppendScanEntry while they fit in max bytes. If not even
// the first entry fits, it returns dst unchanged and that entry's encoded
// size as needed (0 otherwise).
func (s *State) ScanAppend(h int32, start, end, dst []byte, max int) (out []byte, needed int, err error) {
	base := len(dst)
	err = s.Scan(h, start, end, func(k, v []byte) bool {
		size := abi.ScanEntryFixedSz + len(k) + len(v)
		if len(dst)-base+size > max {
			if len(dst) == base {
				needed = size
			}
			return false
		}
		dst = abi.AppendScanEntry(dst, k, v)
		return true
	})
	return dst, needed, err
}
