package sluice

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"

	"github.com/sluice-io/sluice/abi"
)

// Errors of state operations. They are wrapped with the store's name and
// the operation; test with errors.Is.
var (
	// ErrUnknownStore: the job file declares no store with this name.
	ErrUnknownStore = errors.New("unknown store (declare it under stores: in the job file)")
	// ErrTooLarge: a key or value is over the host's limit (64 KiB keys,
	// 8 MiB values).
	ErrTooLarge = errors.New("key or value too large")
	// ErrNotAllowed: the operation is not allowed now, for example a
	// write from the init function.
	ErrNotAllowed = errors.New("not allowed now")
	// ErrHost: the host failed (for example its storage). The task is
	// failing; return the error promptly.
	ErrHost = errors.New("host error")
	// ErrReadOnly: a Put or Delete on a table (NewTableStore), which only
	// the host updates.
	ErrReadOnly = errors.New("a table is read-only (the host updates it from its topic)")
)

func codeError(code int32) error {
	switch abi.Code(code) {
	case abi.ErrBadStore:
		return ErrUnknownStore
	case abi.ErrLimit:
		return ErrTooLarge
	case abi.ErrNotAllowed:
		return ErrNotAllowed
	case abi.ErrInternal:
		return ErrHost
	}
	return fmt.Errorf("%w: unexpected code %d (%s)", ErrHost, code, abi.Code(code))
}

// Store is a named key-value state store of the job (declared under
// stores: in the job file). Keys are ordered bytewise. Writes are part of
// the current sluice_process call: they become durable, and visible in the
// store's changelog, only if the batch succeeds; reads see the call's own
// writes. A Store is not safe for concurrent use (an operator instance is
// single-threaded).
type Store struct {
	name   string
	handle int32 // -1 until resolved with store_open
	// table: a read-only table of the job (NewTableStore), which the
	// host changes between calls: not cached, never written.
	table bool

	// The state cache (cache.go).
	cache      map[string]*cacheEntry
	cacheBytes int
	written    []*cacheEntry
	// unsent are the written entries not yet sent to the host (dirty), so
	// that a scan, which sends them first, costs what was written since
	// the last one rather than everything the call wrote.
	unsent []*cacheEntry
	active bool
	last   *cacheEntry
	// val backs the values Get returns; scan and next back the one Scan
	// that may run at a time without allocating.
	val      []byte
	scan     []byte
	next     []byte
	scanning bool
	err      error
}

const (
	initialValueBuf = 512
	initialScanBuf  = 16 << 10
	unopened        = -1
)

var stores = map[string]*Store{}

// NewStore returns the state store called name. Declaring it at package
// level is fine: the name is resolved on first use. Calls with the same
// name return the same *Store.
func NewStore(name string) *Store {
	if s, ok := stores[name]; ok {
		return s
	}
	s := &Store{name: name, handle: unopened}
	stores[name] = s
	return s
}

// NewTableStore returns the read-only store of the job's table called name
// (declared under tables: in the job file): the host keeps in it the
// latest value of every key of the table's compacted topic, for the
// task's partition, and applies the topic's records between calls, in
// timestamp order with the stream records. Get, Scan and ScanPrefix work
// as on any Store; Put and Delete return an error wrapping ErrReadOnly.
// Reads are never cached across calls (the host changes the table between
// them). Calls with the same name return the same *Store, so a typed view
// is NewTable with the same name (its Put and Delete fail the same way).
//
// (sluice.NewTable is the older typed wrapper of any store; tables of the
// job file are opened with NewTableStore.)
func NewTableStore(name string) *Store {
	s := NewStore(name)
	s.table = true
	return s
}

// IsTable reports whether s is a read-only table (NewTableStore).
func (s *Store) IsTable() bool { return s.table }

func (s *Store) readOnly(op string) error {
	return fmt.Errorf("sluice: table %q: %s: %w", s.name, op, ErrReadOnly)
}

// resetStores forgets handles resolved against a previous host (tests).
func resetStores() {
	for _, s := range stores {
		s.handle = unopened
		s.cache, s.cacheBytes, s.written, s.unsent, s.active, s.last = nil, 0, nil, nil, false, nil
	}
	activeStores = nil
}

// Name returns the store's name.
func (s *Store) Name() string { return s.name }

func (s *Store) open() error {
	if s.handle >= 0 {
		return nil
	}
	h := hostStoreOpen(s.name)
	if h < 0 {
		return s.fail("open", h)
	}
	s.handle = h
	return nil
}

func (s *Store) fail(op string, code int32) error {
	return fmt.Errorf("sluice: store %q: %s: %w", s.name, op, codeError(code))
}

// Get returns the value of key and whether it exists. The value is valid
// until the next call of a method of s (or of a Table over the same
// store): copy it to keep it.
func (s *Store) Get(key []byte) (value []byte, found bool, err error) {
	if s.table {
		// The host changes a table between calls: always ask it.
		return s.get(key)
	}
	if e := s.lookup(key); e != nil && inProcess {
		return e.value, e.found, nil
	}
	value, found, err = s.get(key)
	if err == nil && inProcess {
		s.remember(key, value, found)
	}
	return value, found, err
}

// get asks the host.
func (s *Store) get(key []byte) (value []byte, found bool, err error) {
	if err := s.open(); err != nil {
		return nil, false, err
	}
	if s.val == nil {
		s.val = make([]byte, initialValueBuf)
	}
	// The host writes the value only if it fits and always returns its
	// length, so a too-small buffer costs one more call.
	for range 3 {
		buf := s.val[:cap(s.val)]
		n := hostStateGet(s.handle, key, buf)
		switch {
		case n == int32(abi.ErrNotFound):
			return nil, false, nil
		case n < 0:
			return nil, false, s.fail("get", n)
		case int(n) <= len(buf):
			return buf[:n], true, nil
		}
		s.val = make([]byte, n)
	}
	return nil, false, fmt.Errorf("sluice: store %q: get: %w: the value kept changing size", s.name, ErrHost)
}

// Put sets key to value. A nil value is stored as an empty value.
func (s *Store) Put(key, value []byte) error {
	if s.table {
		return s.readOnly("put")
	}
	if err := s.open(); err != nil {
		return err
	}
	if inProcess {
		if err := checkSizes(key, value); err != nil {
			return fmt.Errorf("sluice: store %q: put: %w", s.name, err)
		}
		if value == nil {
			value = []byte{}
		}
		s.write(key, value, true)
		return nil
	}
	if code := hostStatePut(s.handle, key, value); code != 0 {
		return s.fail("put", code)
	}
	return nil
}

// Delete removes key. Deleting a missing key is not an error.
func (s *Store) Delete(key []byte) error {
	if s.table {
		return s.readOnly("delete")
	}
	if err := s.open(); err != nil {
		return err
	}
	if inProcess {
		if err := checkSizes(key, nil); err != nil {
			return fmt.Errorf("sluice: store %q: delete: %w", s.name, err)
		}
		s.write(key, nil, false)
		return nil
	}
	if code := hostStateDelete(s.handle, key); code != 0 {
		return s.fail("delete", code)
	}
	return nil
}

// Scan returns an iterator over the entries with start <= key < end in key
// order. A nil or empty end means no upper bound; a nil start begins at the
// first key. The key and value passed to the loop body are valid only
// during that iteration. If the scan fails, the loop ends early and Err
// returns the error: check it after the loop.
//
//	for k, v := range store.Scan(nil, nil) { ... }
//	if err := store.Err(); err != nil { return err }
//
// The entries are fetched from the host a buffer at a time, so writes made
// inside the loop to keys not yet reached may or may not be seen.
func (s *Store) Scan(start, end []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func(key, value []byte) bool) {
		s.err = s.scanRange(start, end, yield)
	}
}

// ScanPrefix is Scan over the keys that begin with prefix.
func (s *Store) ScanPrefix(prefix []byte) iter.Seq2[[]byte, []byte] {
	return s.Scan(prefix, prefixEnd(prefix))
}

// Err returns the error that ended the last Scan early, or nil.
func (s *Store) Err() error { return s.err }

func (s *Store) scanRange(start, end []byte, yield func(key, value []byte) bool) error {
	if err := s.open(); err != nil {
		return err
	}
	// The host's scan sees the call's writes once they are sent.
	if _, err := s.sendWrites(); err != nil {
		return err
	}
	// A loop body may start another scan of the same store; only the
	// outer one uses the store's reusable buffers.
	var buf, next []byte
	if s.scanning {
		buf, next = make([]byte, initialScanBuf), nil
	} else {
		s.scanning = true
		defer func() { s.scanning = false }()
		if s.scan == nil {
			s.scan = make([]byte, initialScanBuf)
		}
		buf, next = s.scan, s.next
		defer func() { s.scan, s.next = buf, next[:0] }()
	}
	next = append(next[:0], start...)
	var sr abi.ScanReader
	for {
		buf = buf[:cap(buf)]
		n := hostStateScan(s.handle, next, end, buf)
		switch {
		case n == 0:
			return nil
		case n == int32(abi.ErrBufferTooSmall):
			need := int(binary.LittleEndian.Uint32(buf))
			if need <= len(buf) {
				return fmt.Errorf("sluice: store %q: scan: %w: the host asked for a %d-byte buffer but has %d", s.name, ErrHost, need, len(buf))
			}
			buf = make([]byte, need)
			continue
		case n < 0:
			return s.fail("scan", n)
		case int(n) > len(buf):
			return fmt.Errorf("sluice: store %q: scan: %w: %d bytes reported for a %d-byte buffer", s.name, ErrHost, n, len(buf))
		}
		sr.Reset(buf[:n])
		var last []byte
		for {
			k, v, ok := sr.Next()
			if !ok {
				break
			}
			last = k
			if !yield(k, v) {
				return nil
			}
		}
		if err := sr.Err(); err != nil {
			return fmt.Errorf("sluice: store %q: scan: %w: %v", s.name, ErrHost, err)
		}
		if last == nil {
			return nil
		}
		// The next page starts just after the last key seen.
		next = append(append(next[:0], last...), 0)
	}
}

// prefixEnd is the smallest key greater than every key with prefix, or nil
// (no bound) when the prefix is all 0xff bytes.
func prefixEnd(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xff {
			end := append([]byte(nil), prefix[:i+1]...)
			end[i]++
			return end
		}
	}
	return nil
}
