package sluice

import (
	"fmt"
	"unsafe"

	"github.com/sluice-io/sluice/abi"
)

// The state cache keeps the values an operator read or wrote in guest
// memory, across calls, in front of the host's store. Each state call is a
// round trip out of the sandbox (a few hundred nanoseconds), which would
// dominate an operator like word count that reads and writes one key per
// record; with the cache, a hot key costs a map lookup, and each key written
// during a batch reaches the host once, at the end of the batch. Kafka
// Streams puts a record cache in front of RocksDB for the same reason.
//
// It is sound because a task's store has one writer, the instance that owns
// the cache: the host changes it only through this instance's calls and
// rolls back only the writes of a call that failed, which the cache rolls
// back too (by forgetting those keys). A restarted task gets a new
// instance, so a new, empty cache.

// cacheLimit bounds the bytes of keys and values a store's cache holds; past
// it the cache is emptied at the end of the call.
const cacheLimit = 16 << 20

// cacheEntry is a key's value as the operator sees it.
type cacheEntry struct {
	key   string
	value []byte
	found bool
	// dirty: written in this call and not yet sent to the host.
	dirty bool
	// written: written in this call (sent or not); forgotten if the call
	// fails.
	written bool
	// record is the index in the batch of the record that last wrote the
	// key, so that a write the host refuses at the end of the batch fails
	// that record.
	record int32
}

// inProcess is true during sluice_process, the only time the cache is
// used: calls from init go straight to the host.
var inProcess bool

// recordIndex is the index in the batch of the record being handled.
var recordIndex int32

// activeStores are the stores written during the current call.
var activeStores []*Store

func (s *Store) lookup(key []byte) *cacheEntry {
	// Read-modify-write of one key is the common pattern (a Get, then a
	// Put of the same key), and a map lookup is dear in a Go guest, so the
	// last entry found is checked first.
	if e := s.last; e != nil && e.key == string(key) {
		return e
	}
	if s.cache == nil {
		return nil
	}
	e := s.cache[string(key)]
	if e != nil {
		s.last = e
	}
	return e
}

// remember adds a key the host was asked about to the cache.
func (s *Store) remember(key, value []byte, found bool) {
	if s.cache == nil {
		s.cache = make(map[string]*cacheEntry)
	}
	e := &cacheEntry{key: string(key), found: found}
	if found {
		// An empty value stays non-nil: it is not a missing key.
		e.value = append(make([]byte, 0, len(value)), value...)
	}
	s.cache[e.key] = e
	s.cacheBytes += len(key) + len(value)
}

// write sets key's cached value (nil with found false for a delete) and
// marks it for the host.
func (s *Store) write(key, value []byte, found bool) {
	e := s.lookup(key)
	if e == nil {
		s.remember(key, value, found)
		e = s.cache[string(key)]
	} else {
		s.cacheBytes += len(value) - len(e.value)
		switch {
		case !found:
			e.value = nil
		case e.value == nil:
			e.value = append(make([]byte, 0, len(value)), value...)
		default:
			e.value = append(e.value[:0], value...)
		}
		e.found = found
	}
	e.record = recordIndex
	if !e.dirty {
		e.dirty = true
		s.unsent = append(s.unsent, e)
		if !e.written {
			e.written = true
			s.written = append(s.written, e)
		}
		if !s.active {
			s.active = true
			activeStores = append(activeStores, s)
		}
	}
}

// sendWrites sends the writes not yet sent to the host. A refused write
// fails the record that made it.
func (s *Store) sendWrites() (failed int32, err error) {
	for i, e := range s.unsent {
		if !e.dirty {
			continue
		}
		var code int32
		key := unsafeBytes(e.key)
		if e.found {
			code = hostStatePut(s.handle, key, e.value)
		} else {
			code = hostStateDelete(s.handle, key)
		}
		if code != 0 {
			op := "put"
			if !e.found {
				op = "delete"
			}
			s.unsent = s.unsent[i:]
			return e.record, s.fail(op, code)
		}
		e.dirty = false
	}
	clear(s.unsent)
	s.unsent = s.unsent[:0]
	return 0, nil
}

// endCall closes the call for s: on failure the keys it wrote are
// forgotten, as the host discarded those writes.
func (s *Store) endCall(ok bool) {
	for _, e := range s.written {
		if ok {
			e.written, e.dirty = false, false
		} else {
			delete(s.cache, e.key)
			s.cacheBytes -= len(e.key) + len(e.value)
		}
	}
	s.last = nil
	clear(s.written)
	s.written = s.written[:0]
	clear(s.unsent)
	s.unsent = s.unsent[:0]
	s.active = false
	if s.cacheBytes > cacheLimit {
		clear(s.cache)
		s.cacheBytes = 0
	}
}

// finishStores sends every store's pending writes at the end of a
// successful batch. It returns the index of a record whose write the host
// refused, with the error.
func finishStores() (int32, error) {
	for _, s := range activeStores {
		if i, err := s.sendWrites(); err != nil {
			return i, err
		}
	}
	return 0, nil
}

// endStores closes the call for every store written in it.
func endStores(ok bool) {
	for _, s := range activeStores {
		s.endCall(ok)
	}
	clear(activeStores)
	activeStores = activeStores[:0]
}

func checkSizes(key, value []byte) error {
	if len(key) > abi.MaxKeySize || len(value) > abi.MaxValueSize {
		return fmt.Errorf("%w: key of %d bytes (at most %d), value of %d bytes (at most %d)",
			ErrTooLarge, len(key), abi.MaxKeySize, len(value), abi.MaxValueSize)
	}
	return nil
}

// unsafeBytes views s as bytes without copying; the host only reads them.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
