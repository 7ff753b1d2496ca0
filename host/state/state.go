package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/broker/storage"
)

// Store is one named store of a task and the task's partition of the
// store's changelog topic.
//
// A table store (Table true) is a read-only view of a compacted topic:
// Changelog is then the task's partition of the table's topic itself. The
// State never appends to it; the host feeds its records in with ApplyTable
// and the guest's Put and Delete fail with ErrReadOnly. See the package
// documentation.
type Store struct {
	Name      string
	Changelog *storage.Partition
	Table     bool
}

// Options configure Open.
type Options struct {
	// Dir is the task's Pebble directory (created if missing).
	Dir    string
	Stores []Store
	// CacheBytes bounds the memory of the read cache (entries known to equal
	// Pebble's) plus Pebble's block cache. Dirty and staged entries are not
	// bounded by it: Flush clears them. Default DefaultCacheBytes.
	CacheBytes int64
	Logger     *slog.Logger
}

// DefaultCacheBytes is the default Options.CacheBytes.
const DefaultCacheBytes = 64 << 20

// Errors callers branch on. The host maps ErrBadStore to abi.ErrBadStore,
// ErrTooLarge to abi.ErrLimit, ErrReadOnly to abi.ErrNotAllowed and
// anything else to abi.ErrInternal.
var (
	ErrBadStore = errors.New("state: unknown store handle")
	ErrTooLarge = errors.New("state: key or value too large")
	// ErrReadOnly: Put or Delete on a table store.
	ErrReadOnly = errors.New("state: store is a read-only table")
	// ErrNotRestored: the State must be (re)stored from its changelogs
	// first: after Open, and after a failed Flush.
	ErrNotRestored = errors.New("state: not restored from the changelog")
	ErrClosed      = errors.New("state: closed")
)

// formatVersion is the value of the format key. A database with another
// value (or none, but with data) is rebuilt from the changelogs.
const formatVersion = "sluice-state/1"

// corruptMarker is created in the Pebble directory when Pebble reports
// corruption at run time, so that the next Open rebuilds.
const corruptMarker = "SLUICE-CORRUPT"

var formatKey = []byte{0x00, 0x00}

const (
	metaTag      = 0x00 // a changelog store's meta key
	dataTag      = 0x01
	tableMetaTag = 0x02 // a table store's meta key
)

// State is a task's local state. See the package documentation.
type State struct {
	dir    string
	log    *slog.Logger
	db     *pebble.DB
	lock   *pebble.Lock
	cache  *pebble.Cache
	stores []*store
	byName map[string]int32

	// ready is false until Restore succeeds, and again after a failed
	// Flush: reads and writes then fail with notReady.
	ready    bool
	notReady error
	closed   bool

	// corrupt is set from Pebble's goroutines when it reports damage;
	// opening is set while Open checks the database, which reports damage
	// itself.
	corrupt atomic.Bool
	opening atomic.Bool

	// staged lists the entries the current call wrote, in all stores.
	staged []*entry

	// Read cache accounting: bytes held by all entries, the budget and the
	// level at which EndCall next tries to evict.
	cacheBytes  int64
	cacheBudget int64
	evictAt     int64

	// Scratch buffers, reused so the hot paths do not allocate.
	keyBuf  []byte
	scanKey []byte
	builder batchBuilder
	readBuf []byte
}

// store is one named store.
type store struct {
	name    string
	prefix  []byte // data key prefix
	metaKey []byte
	// otherMetaKey is the meta key the store would have as the other kind
	// (table or not), deleted when the store is wiped.
	otherMetaKey []byte
	log          *storage.Partition
	table        bool
	entries      map[string]*entry
	// next is the changelog offset that Pebble reflects: everything below
	// it is applied. -1 when the store has no meta key yet.
	next int64
	// applied is, for a table store, the next table offset to apply: next
	// plus the applies in the dirty set. Equal to next otherwise.
	applied    int64
	dirty      []*entry
	dirtyBytes int64

	// overlay and pending hold, sorted by key, every entry that has had a
	// staged or dirty value since the overlay was last built, for Scan.
	// Entries that gain one join pending (in order, by insertion) rather
	// than the whole list being sorted again, because an operator that
	// writes and scans in turn (a windowed join expiring state at every
	// record) would otherwise sort the whole dirty set per scan. pending
	// is merged into overlay when it grows past maxPending. The overlay
	// is built again from the dirty set when version moves past
	// overlayVersion (a flush, a rollback, a restore). ovGen tells which
	// entries are already in overlay or pending.
	overlay        []*entry
	pending        []*entry
	ovGen          uint32
	version        uint64
	overlayVersion uint64
}

// Open opens or creates the task's database, rebuilding it (empty, for
// Restore to fill) when it is damaged. The State is usable after Restore.
func Open(opts Options) (*State, error) {
	if opts.Dir == "" {
		return nil, errors.New("state: no directory")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	s := &State{
		dir:    filepath.Clean(opts.Dir),
		log:    opts.Logger,
		byName: make(map[string]int32, len(opts.Stores)),
	}
	for i, st := range opts.Stores {
		if len(st.Name) == 0 || len(st.Name) > abi.MaxStoreName {
			return nil, fmt.Errorf("state: store name %q must have 1 to %d bytes", st.Name, abi.MaxStoreName)
		}
		if _, dup := s.byName[st.Name]; dup {
			return nil, fmt.Errorf("state: store %q listed twice", st.Name)
		}
		if st.Changelog == nil {
			if st.Table {
				return nil, fmt.Errorf("state: table store %q has no table partition", st.Name)
			}
			return nil, fmt.Errorf("state: store %q has no changelog partition", st.Name)
		}
		s.byName[st.Name] = int32(i)
		metaKey, otherMetaKey := storeKey(metaTag, st.Name), storeKey(tableMetaTag, st.Name)
		if st.Table {
			metaKey, otherMetaKey = otherMetaKey, metaKey
		}
		s.stores = append(s.stores, &store{
			name:         st.Name,
			prefix:       storeKey(dataTag, st.Name),
			metaKey:      metaKey,
			otherMetaKey: otherMetaKey,
			log:          st.Changelog,
			table:        st.Table,
			entries:      make(map[string]*entry),
			next:         -1,
			applied:      -1,
		})
	}
	// A quarter of the budget for Pebble's block cache: the entry cache in
	// front of it catches the hot keys, the block cache the index and
	// filter blocks and the rest.
	blockCache := max(opts.CacheBytes/4, 1<<20)
	s.cacheBudget = max(opts.CacheBytes-blockCache, 1<<20)
	s.evictAt = s.cacheBudget
	s.cache = pebble.NewCache(blockCache)

	if err := s.openDB(); err != nil {
		s.cache.Unref()
		return nil, err
	}
	return s, nil
}

// openDB opens the database, checks it, and on damage moves it aside and
// starts a fresh one.
func (s *State) openDB() error {
	reason, err := s.tryOpen()
	if err != nil {
		return err
	}
	if reason == nil {
		return nil
	}
	aside := s.dir + ".corrupt"
	s.log.Warn("state: local store is damaged; moving it aside and rebuilding it from the changelog",
		"dir", s.dir, "moved_to", aside, "reason", reason)
	if err := s.moveAside(aside); err != nil {
		return err
	}
	reason, err = s.tryOpen()
	if err != nil {
		return err
	}
	if reason != nil {
		s.closeDB()
		return fmt.Errorf("state: a fresh database in %s is unusable: %w", s.dir, reason)
	}
	return nil
}

// tryOpen opens and checks the database. A non-nil reason means the
// database is damaged and was closed; err means the directory cannot be
// used at all (for example another State holds it).
func (s *State) tryOpen() (reason, err error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	// Taking Pebble's lock first tells "in use" apart from "damaged": only
	// with the lock held is a failed Open a reason to throw the files away.
	lock, err := pebble.LockDirectory(s.dir, vfs.Default)
	if err != nil {
		return nil, fmt.Errorf("state: %s is in use: %w", s.dir, err)
	}
	if _, err := os.Stat(filepath.Join(s.dir, corruptMarker)); err == nil {
		_ = lock.Close()
		return errors.New("pebble reported corruption while the task ran"), nil
	}
	s.opening.Store(true)
	defer s.opening.Store(false)
	db, err := pebble.Open(s.dir, s.pebbleOptions(lock))
	if err != nil {
		_ = lock.Close()
		return fmt.Errorf("open: %w", err), nil
	}
	s.db, s.lock = db, lock
	if reason := s.check(); reason != nil {
		s.closeDB()
		return reason, nil
	}
	return nil, nil
}

func (s *State) pebbleOptions(lock *pebble.Lock) *pebble.Options {
	o := &pebble.Options{
		Cache:        s.cache,
		Lock:         lock,
		MemTableSize: 4 << 20,
		// Many tasks share a node: keep file handles per database modest.
		MaxOpenFiles:       128,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{s.log},
		EventListener: &pebble.EventListener{
			// Pebble's default for both is to exit the process; a damaged
			// task database must only cost a rebuild of that task.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				s.markCorrupt(fmt.Errorf("%s", info))
			},
			BackgroundError: func(err error) {
				if errors.Is(err, pebble.ErrCorruption) {
					s.markCorrupt(err)
					return
				}
				if s.opening.Load() {
					s.log.Debug("state: pebble background error while opening", "dir", s.dir, "err", err)
					return
				}
				s.log.Error("state: pebble background error", "dir", s.dir, "err", err)
			},
		},
	}
	return o
}

// check reads the format key, every store's meta key and then every key
// and value, which verifies every block's checksum. It returns why the
// database cannot be trusted, or nil. It also drops stores that are no
// longer in the job.
func (s *State) check() error {
	v, found, err := s.pebbleGet(formatKey)
	if err != nil {
		return fmt.Errorf("format key: %w", err)
	}
	if !found {
		it, err := s.db.NewIter(nil)
		if err != nil {
			return err
		}
		empty := !it.First()
		ierr := errors.Join(it.Error(), it.Close())
		if ierr != nil {
			return fmt.Errorf("read: %w", ierr)
		}
		if !empty {
			return errors.New("data without a format key")
		}
		if err := s.db.Set(formatKey, []byte(formatVersion), pebble.Sync); err != nil {
			return fmt.Errorf("write format key: %w", err)
		}
	} else if string(v) != formatVersion {
		return fmt.Errorf("format %q, want %q", v, formatVersion)
	}

	// Verify everything, and collect the meta keys on the way.
	it, err := s.db.NewIter(nil)
	if err != nil {
		return err
	}
	var stale [][]byte
	var verr error
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			verr = err
			break
		}
		if len(k) < 2 || (k[0] != metaTag && k[0] != tableMetaTag) || k[1] == 0 {
			continue
		}
		name := k[2:]
		if int(k[1]) != len(name) {
			_ = it.Close()
			return fmt.Errorf("malformed meta key %q", k)
		}
		h, known := s.byName[string(name)]
		if !known {
			stale = append(stale, bytes.Clone(name))
			continue
		}
		if len(v) != 8 {
			_ = it.Close()
			return fmt.Errorf("store %q: meta value has %d bytes, want 8", name, len(v))
		}
		if st := s.stores[h]; (k[0] == tableMetaTag) == st.table {
			st.next = int64(binary.BigEndian.Uint64(v))
			st.applied = st.next
		}
		// Otherwise the store changed between a changelog store and a
		// table: without a meta key of its kind, Restore wipes it.
	}
	if err := errors.Join(verr, it.Error(), it.Close()); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if s.corrupt.Load() {
		return errors.New("pebble reported corruption while reading")
	}
	for _, name := range stale {
		s.log.Info("state: dropping a store that is no longer in the job", "dir", s.dir, "store", string(name))
		b := s.db.NewBatch()
		prefix := storeKey(dataTag, string(name))
		_ = b.DeleteRange(prefix, prefixEnd(prefix), nil)
		_ = b.Delete(storeKey(metaTag, string(name)), nil)
		_ = b.Delete(storeKey(tableMetaTag, string(name)), nil)
		if err := b.Commit(pebble.NoSync); err != nil {
			return fmt.Errorf("drop store %q: %w", name, err)
		}
		_ = b.Close()
	}
	return nil
}

func (s *State) moveAside(aside string) error {
	if err := os.RemoveAll(aside); err != nil {
		return fmt.Errorf("state: remove old %s: %w", aside, err)
	}
	if err := os.Rename(s.dir, aside); err != nil {
		s.log.Warn("state: cannot move the damaged store aside; deleting it", "dir", s.dir, "err", err)
		if err := os.RemoveAll(s.dir); err != nil {
			return fmt.Errorf("state: delete damaged %s: %w", s.dir, err)
		}
	}
	for _, st := range s.stores {
		st.next, st.applied = -1, -1
	}
	// The old database is closed: its corruption reports are history.
	s.corrupt.Store(false)
	return nil
}

// markCorrupt records damage Pebble found; it runs on Pebble's goroutines.
func (s *State) markCorrupt(err error) {
	if s.corrupt.Swap(true) || s.opening.Load() {
		return
	}
	s.log.Error("state: pebble found corruption; the store will be rebuilt from its changelog when the task restarts",
		"dir", s.dir, "err", err)
	if werr := os.WriteFile(filepath.Join(s.dir, corruptMarker), []byte(err.Error()+"\n"), 0o644); werr != nil {
		s.log.Error("state: cannot write the corruption marker", "dir", s.dir, "err", werr)
	}
}

func (s *State) closeDB() error {
	var err error
	if s.db != nil {
		err = s.db.Close()
		s.db = nil
	}
	if s.lock != nil {
		err = errors.Join(err, s.lock.Close())
		s.lock = nil
	}
	return err
}

// Close closes the database. It does not flush: unflushed writes are lost,
// as after a crash (the changelog and the last checkpoint agree without
// them).
func (s *State) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.ready = false
	s.notReady = ErrClosed
	err := s.closeDB()
	s.cache.Unref()
	if err != nil {
		return fmt.Errorf("state: close %s: %w", s.dir, err)
	}
	return nil
}

// Handle returns the handle of the named store, or -1.
func (s *State) Handle(name []byte) int32 {
	if h, ok := s.byName[string(name)]; ok {
		return h
	}
	return -1
}

// Stores returns the store names in handle order.
func (s *State) Stores() []string {
	names := make([]string, len(s.stores))
	for i, st := range s.stores {
		names[i] = st.name
	}
	return names
}

// ChangelogOffsets returns, per changelog store (table stores are not
// included), the next changelog offset that the local state reflects as of
// the last Flush or Restore.
func (s *State) ChangelogOffsets() map[string]int64 {
	m := make(map[string]int64, len(s.stores))
	for _, st := range s.stores {
		if !st.table {
			m[st.name] = st.next
		}
	}
	return m
}

// TableOffsets returns, per table store, the next table offset that the
// local state reflects as of the last Flush or Restore (what Pebble
// holds; TableOffset also counts unflushed applies).
func (s *State) TableOffsets() map[string]int64 {
	m := make(map[string]int64)
	for _, st := range s.stores {
		if st.table {
			m[st.name] = st.next
		}
	}
	return m
}

// IsTable reports whether handle h is a table store.
func (s *State) IsTable(h int32) bool {
	return h >= 0 && int(h) < len(s.stores) && s.stores[h].table
}

// store returns the store for handle h if the State is usable.
func (s *State) store(h int32) (*store, error) {
	if !s.ready {
		return nil, s.notReadyErr()
	}
	if h < 0 || int(h) >= len(s.stores) {
		return nil, fmt.Errorf("%w %d", ErrBadStore, h)
	}
	return s.stores[h], nil
}

func (s *State) notReadyErr() error {
	if s.notReady != nil {
		return s.notReady
	}
	return ErrNotRestored
}

// pebbleGet reads key from Pebble into s.readBuf.
func (s *State) pebbleGet(key []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	s.readBuf = append(s.readBuf[:0], v...)
	_ = closer.Close()
	return s.readBuf, true, nil
}

// storeKey is tag, the name's length and the name.
func storeKey(tag byte, name string) []byte {
	k := make([]byte, 0, 2+len(name))
	k = append(k, tag, byte(len(name)))
	return append(k, name...)
}

// prefixEnd is the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// pebbleLogger sends Pebble's messages to slog. Pebble logs a lot at info
// level (every WAL it replays), so that goes to debug.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Warn("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf must not return. Pebble calls it for broken invariants and failed
// MANIFEST writes, after which the database cannot go on.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("pebble: fatal: " + msg)
	panic("pebble: " + msg)
}
