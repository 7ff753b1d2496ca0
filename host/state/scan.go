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
	ov, pending := s.overlayOf(st)
	i := sort.Search(len(ov), func(i int) bool { return ov[i].key >= string(start) })
	j := sort.Search(len(pending), func(j int) bool { return pending[j].key >= string(start) })

	lower := append(slices.Clip(st.prefix), start...)
	upper := prefixEnd(st.prefix)
	if end != nil {
		upper = append(slices.Clip(st.prefix), end...)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("state: scan store %q: %w", st.name, err)
	}
	err = s.merge(st, ov[i:], pending[j:], end, it, fn)
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("state: scan store %q: %w", st.name, cerr)
	}
	return err
}

// merge walks the overlay and pending entries (each sorted, from start)
// and Pebble's iterator together. An entry with a staged or dirty value
// hides Pebble's value for its key.
func (s *State) merge(st *store, ov, pending []*entry, end []byte, it *pebble.Iterator, fn func(key, value []byte) bool) error {
	valid := it.First()
	n := len(st.prefix)
	for {
		// The next entry of the two lists.
		var e *entry
		fromOv := false
		if len(ov) > 0 && (end == nil || ov[0].key < string(end)) {
			e, fromOv = ov[0], true
		}
		if len(pending) > 0 && (end == nil || pending[0].key < string(end)) && (e == nil || pending[0].key < e.key) {
			e, fromOv = pending[0], false
		}
		if e == nil && !valid {
			break
		}
		if e != nil && (!valid || e.key <= string(it.Key()[n:])) {
			if fromOv {
				ov = ov[1:]
			} else {
				pending = pending[1:]
			}
			v, found, has := e.overlayValue()
			if !has {
				continue // Pebble's value, if any, comes next
			}
			if valid && e.key == string(it.Key()[n:]) {
				valid = it.Next()
			}
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

// overlayValue is an overlay entry's value as a scan sees it. has is
// false when the entry has no staged or dirty value (any more: a call's
// writes were discarded): Pebble's value, if any, stands.
func (e *entry) overlayValue() (value []byte, found, has bool) {
	switch e.staged {
	case stagedPut:
		return e.stagedVal, true, true
	case stagedDel:
		return nil, false, true
	}
	switch e.state {
	case stateDirtyPut:
		return e.val, true, true
	case stateDirtyDel:
		return nil, false, true
	}
	return nil, false, false
}

// maxPending is how many entries wait in a store's pending list before
// they are merged into its overlay: merging costs the overlay's length,
// inserting into pending up to maxPending pointer moves.
// (A variable for tests.)
var maxPending = 1024

// addToOverlay records that e has a staged or dirty value, so that scans
// see it: it goes into pending, in key order, unless it is already listed.
func (st *store) addToOverlay(e *entry) {
	if st.overlay == nil || e.ovGen == st.ovGen {
		// Not built yet (the next scan collects the dirty set and the
		// staged entries), or already there.
		return
	}
	e.ovGen = st.ovGen
	i, _ := slices.BinarySearchFunc(st.pending, e.key, func(x *entry, k string) int { return strings.Compare(x.key, k) })
	st.pending = slices.Insert(st.pending, i, e)
}

// overlayOf returns the store's overlay and pending lists (see store),
// building the overlay first if needed.
func (s *State) overlayOf(st *store) (overlay, pending []*entry) {
	if st.overlay != nil && st.overlayVersion == st.version {
		if len(st.pending) > maxPending {
			st.overlay = mergeEntries(st.overlay, st.pending)
			clear(st.pending)
			st.pending = st.pending[:0]
		}
		return st.overlay, st.pending
	}
	st.ovGen++
	clear(st.pending)
	st.pending = st.pending[:0]
	ov := append(st.overlay[:0], st.dirty...)
	for _, e := range s.staged {
		if e.st == st && e.state < stateDirtyPut {
			ov = append(ov, e)
		}
	}
	for _, e := range ov {
		e.ovGen = st.ovGen
	}
	slices.SortFunc(ov, func(a, b *entry) int { return strings.Compare(a.key, b.key) })
	if ov == nil {
		ov = []*entry{}
	}
	st.overlay, st.overlayVersion = ov, st.version
	return ov, st.pending
}

// mergeEntries merges two lists sorted by key (no key in both) into a new
// one.
func mergeEntries(a, b []*entry) []*entry {
	out := make([]*entry, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0].key < b[0].key {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
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
