package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/abi"
)

func TestHandle(t *testing.T) {
	f := newFixture(t, "counts", "totals")
	s := f.open()
	if h := s.Handle([]byte("counts")); h != 0 {
		t.Errorf("counts: handle %d, want 0", h)
	}
	if h := s.Handle([]byte("totals")); h != 1 {
		t.Errorf("totals: handle %d, want 1", h)
	}
	if h := s.Handle([]byte("nope")); h != -1 {
		t.Errorf("unknown store: handle %d, want -1", h)
	}
	if _, _, err := s.Get(2, []byte("k")); !errors.Is(err, ErrBadStore) {
		t.Errorf("get with handle 2: %v, want ErrBadStore", err)
	}
	if err := s.Put(-1, []byte("k"), nil); !errors.Is(err, ErrBadStore) {
		t.Errorf("put with handle -1: %v, want ErrBadStore", err)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	f := newFixture(t, "a")
	for name, mutate := range map[string]func(*Options){
		"no dir":       func(o *Options) { o.Dir = "" },
		"empty name":   func(o *Options) { o.Stores[0].Name = "" },
		"long name":    func(o *Options) { o.Stores[0].Name = strings.Repeat("x", 256) },
		"duplicate":    func(o *Options) { o.Stores = append(o.Stores, o.Stores[0]) },
		"no changelog": func(o *Options) { o.Stores[0].Changelog = nil },
	} {
		o := f.options()
		mutate(&o)
		if s, err := Open(o); err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

func TestNotUsableBeforeRestore(t *testing.T) {
	f := newFixture(t, "a")
	s, err := Open(f.options())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Get(0, []byte("k")); !errors.Is(err, ErrNotRestored) {
		t.Errorf("get before restore: %v, want ErrNotRestored", err)
	}
	if err := s.Flush(); !errors.Is(err, ErrNotRestored) {
		t.Errorf("flush before restore: %v, want ErrNotRestored", err)
	}
}

func TestOpenTwiceFails(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	mustPut(t, s, 0, "k", "v")
	s.EndCall(true)
	mustFlush(t, s)
	if s2, err := Open(f.options()); err == nil {
		s2.Close()
		t.Fatal("second Open of the same directory succeeded")
	}
	// The refused Open must not have moved the live database aside.
	if v, ok := mustGet(t, s, 0, "k"); !ok || v != "v" {
		t.Fatalf("after refused open: %q %v", v, ok)
	}
	if _, err := os.Stat(f.dir + ".corrupt"); err == nil {
		t.Fatal("refused open moved the database aside")
	}
}

func TestCallStaging(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()

	// A committed call.
	mustPut(t, s, 0, "k1", "v1")
	if v, ok := mustGet(t, s, 0, "k1"); !ok || v != "v1" {
		t.Fatalf("staged put not visible to its own call: %q %v", v, ok)
	}
	s.EndCall(true)
	if v, ok := mustGet(t, s, 0, "k1"); !ok || v != "v1" {
		t.Fatalf("committed put: %q %v", v, ok)
	}

	// A discarded call: put over, delete, and a new key.
	mustPut(t, s, 0, "k1", "v2")
	mustPut(t, s, 0, "k2", "x")
	if v, _ := mustGet(t, s, 0, "k1"); v != "v2" {
		t.Fatalf("staged overwrite: %q", v)
	}
	mustDelete(t, s, 0, "k1")
	if _, ok := mustGet(t, s, 0, "k1"); ok {
		t.Fatal("staged delete not visible to its own call")
	}
	s.EndCall(false)
	if v, ok := mustGet(t, s, 0, "k1"); !ok || v != "v1" {
		t.Fatalf("after discarded call k1 = %q %v, want v1", v, ok)
	}
	if _, ok := mustGet(t, s, 0, "k2"); ok {
		t.Fatal("discarded put of k2 is visible")
	}

	// A committed delete, then a committed put of an empty value (which is
	// a value, not a delete).
	mustDelete(t, s, 0, "k1")
	s.EndCall(true)
	if _, ok := mustGet(t, s, 0, "k1"); ok {
		t.Fatal("committed delete: key still there")
	}
	mustPut(t, s, 0, "empty", "")
	s.EndCall(true)
	if v, ok := mustGet(t, s, 0, "empty"); !ok || v != "" {
		t.Fatalf("empty value: %q %v", v, ok)
	}

	// All of it survives a flush and a reopen.
	mustFlush(t, s)
	s.Close()
	s = f.open()
	if got, want := contents(t, s, 0), map[string]string{"empty": ""}; !sameMap(got, want) {
		t.Fatalf("after reopen: %s", diffMaps(got, want))
	}
}

func TestPutCopiesInput(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	key, val := []byte("key"), []byte("value")
	if err := s.Put(0, key, val); err != nil {
		t.Fatal(err)
	}
	copy(key, "XXX")
	copy(val, "XXXXX")
	s.EndCall(true)
	if v, ok := mustGet(t, s, 0, "key"); !ok || v != "value" {
		t.Fatalf("Put kept the caller's buffers: %q %v", v, ok)
	}
	// A value read with Get and written back (the guest's usual pattern).
	v, _, _ := s.Get(0, []byte("key"))
	if err := s.Put(0, []byte("key"), v); err != nil {
		t.Fatal(err)
	}
	s.EndCall(true)
	if v, _ := mustGet(t, s, 0, "key"); v != "value" {
		t.Fatalf("get then put of the same slice: %q", v)
	}
}

func TestLimits(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	if err := s.Put(0, make([]byte, abi.MaxKeySize+1), nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized key: %v", err)
	}
	if err := s.Put(0, []byte("k"), make([]byte, abi.MaxValueSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized value: %v", err)
	}
	if err := s.Delete(0, make([]byte, abi.MaxKeySize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized key delete: %v", err)
	}
	if _, ok, err := s.Get(0, make([]byte, abi.MaxKeySize+1)); ok || err != nil {
		t.Errorf("oversized key get: %v %v", ok, err)
	}
}

func TestFlushWritesDirtyKeysOnce(t *testing.T) {
	f := newFixture(t, "a", "b")
	s := f.open()

	mustPut(t, s, 0, "x", "1")
	mustPut(t, s, 0, "y", "1")
	s.EndCall(true)
	mustPut(t, s, 0, "x", "2") // last value wins
	mustDelete(t, s, 0, "y")   // put then delete: a tombstone
	mustPut(t, s, 1, "z", "b-only")
	s.EndCall(true)
	mustPut(t, s, 0, "discarded", "no")
	s.EndCall(false)
	mustFlush(t, s)

	got := map[string]kv{}
	recs := f.changelog(0)
	for _, r := range recs {
		if _, dup := got[r.key]; dup {
			t.Errorf("key %q appended twice in one flush", r.key)
		}
		got[r.key] = r
	}
	if len(recs) != 2 || string(got["x"].value) != "2" || got["x"].tombstone || !got["y"].tombstone {
		t.Fatalf("changelog a: %+v, want x=2 and a tombstone for y", recs)
	}
	if recs := f.changelog(1); len(recs) != 1 || recs[0].key != "z" || string(recs[0].value) != "b-only" {
		t.Fatalf("changelog b: %+v", recs)
	}
	offs := s.ChangelogOffsets()
	if offs["a"] != 2 || offs["b"] != 1 {
		t.Fatalf("changelog offsets %v, want a=2 b=1", offs)
	}

	// A flush with nothing dirty appends nothing.
	mustFlush(t, s)
	if n := f.logs[0].LogEndOffset(); n != 2 {
		t.Fatalf("empty flush appended: log end %d", n)
	}

	// Flushed values are in Pebble: a new State finds them without
	// replaying anything.
	s.Close()
	s2, err := Open(f.options())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var totals []int64
	if err := s2.Restore(context.Background(), func(_ string, _, total int64) { totals = append(totals, total) }); err != nil {
		t.Fatal(err)
	}
	for _, n := range totals {
		if n != 0 {
			t.Fatalf("restore after a clean flush replayed %d offsets", n)
		}
	}
	if v, ok := mustGet(t, s2, 0, "x"); !ok || v != "2" {
		t.Fatalf("x after reopen: %q %v", v, ok)
	}
	if _, ok := mustGet(t, s2, 0, "y"); ok {
		t.Fatal("y after reopen: still there")
	}
	if v, ok := mustGet(t, s2, 1, "z"); !ok || v != "b-only" {
		t.Fatalf("z after reopen: %q %v", v, ok)
	}
	if _, ok := mustGet(t, s2, 1, "x"); ok {
		t.Fatal("stores share keys")
	}
}

func TestUnflushedWritesLostOnReopen(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	mustPut(t, s, 0, "kept", "1")
	s.EndCall(true)
	mustFlush(t, s)
	mustPut(t, s, 0, "lost", "1")
	s.EndCall(true)
	s.Close()
	s = f.open()
	if got, want := contents(t, s, 0), map[string]string{"kept": "1"}; !sameMap(got, want) {
		t.Fatalf("after reopen without flush: %s", diffMaps(got, want))
	}
}

func TestRollback(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	mustPut(t, s, 0, "a", "1")
	mustPut(t, s, 0, "b", "1")
	s.EndCall(true)
	mustFlush(t, s)

	mustPut(t, s, 0, "a", "2")
	mustDelete(t, s, 0, "b")
	mustPut(t, s, 0, "c", "2")
	s.EndCall(true)
	mustPut(t, s, 0, "d", "staged")
	s.Rollback()

	want := map[string]string{"a": "1", "b": "1"}
	if got := contents(t, s, 0); !sameMap(got, want) {
		t.Fatalf("after rollback: %s", diffMaps(got, want))
	}
	for k, w := range want {
		if v, ok := mustGet(t, s, 0, k); !ok || v != w {
			t.Fatalf("get %q after rollback: %q %v", k, v, ok)
		}
	}
	if s.DirtyBytes() != 0 {
		t.Fatalf("dirty bytes after rollback: %d", s.DirtyBytes())
	}
	// A flush after the rollback writes nothing.
	end := f.logs[0].LogEndOffset()
	mustFlush(t, s)
	if f.logs[0].LogEndOffset() != end {
		t.Fatal("flush after rollback appended to the changelog")
	}
}

func TestDirtyBytes(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	mustPut(t, s, 0, "key", "12345")
	if n := s.DirtyBytes(); n != 0 {
		t.Fatalf("staged counted as dirty: %d", n)
	}
	s.EndCall(true)
	if n := s.DirtyBytes(); n != 8 {
		t.Fatalf("dirty bytes %d, want 8", n)
	}
	mustPut(t, s, 0, "key", "1")
	s.EndCall(true)
	if n := s.DirtyBytes(); n != 4 {
		t.Fatalf("dirty bytes after overwrite %d, want 4", n)
	}
	mustDelete(t, s, 0, "key")
	s.EndCall(true)
	if n := s.DirtyBytes(); n != 3 {
		t.Fatalf("dirty bytes after delete %d, want 3", n)
	}
	mustFlush(t, s)
	if n := s.DirtyBytes(); n != 0 {
		t.Fatalf("dirty bytes after flush %d", n)
	}
}

func TestScanMergesLayers(t *testing.T) {
	f := newFixture(t, "a", "other")
	s := f.open()
	// Pebble: a c e g i, and a key in another store that must not show.
	for _, k := range []string{"a", "c", "e", "g", "i"} {
		mustPut(t, s, 0, k, "pebble")
	}
	mustPut(t, s, 1, "b", "other store")
	s.EndCall(true)
	mustFlush(t, s)
	// Dirty: b new, c deleted, e updated.
	mustPut(t, s, 0, "b", "dirty")
	mustDelete(t, s, 0, "c")
	mustPut(t, s, 0, "e", "dirty")
	s.EndCall(true)
	// Staged: a updated, d new, g deleted, c put back.
	mustPut(t, s, 0, "a", "staged")
	mustPut(t, s, 0, "d", "staged")
	mustDelete(t, s, 0, "g")
	mustPut(t, s, 0, "c", "staged")

	type pair struct{ k, v string }
	scan := func(start, end []byte, limit int) []pair {
		var out []pair
		err := s.Scan(0, start, end, func(k, v []byte) bool {
			out = append(out, pair{string(k), string(v)})
			return len(out) < limit
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := []pair{{"a", "staged"}, {"b", "dirty"}, {"c", "staged"}, {"d", "staged"}, {"e", "dirty"}, {"i", "pebble"}}
	for _, tc := range []struct {
		name       string
		start, end []byte
		limit      int
		want       []pair
	}{
		{"everything", nil, nil, 100, all},
		{"from b", []byte("b"), nil, 100, all[1:]},
		{"from bb", []byte("bb"), nil, 100, all[2:]},
		{"b to e", []byte("b"), []byte("e"), 100, all[1:4]},
		{"to i excluded", nil, []byte("i"), 100, all[:5]},
		{"stop after 2", []byte("c"), nil, 2, all[2:4]},
		{"empty range", []byte("e"), []byte("e"), 100, nil},
		{"reversed range", []byte("f"), []byte("a"), 100, nil},
		{"past the end", []byte("j"), nil, 100, nil},
	} {
		got := scan(tc.start, tc.end, tc.limit)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}

	// After the call is discarded, the dirty layer shows through.
	s.EndCall(false)
	want := []pair{{"a", "pebble"}, {"b", "dirty"}, {"e", "dirty"}, {"g", "pebble"}, {"i", "pebble"}}
	if got := scan(nil, nil, 100); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after discard: got %v, want %v", got, want)
	}
	// And after a flush, the same from Pebble alone.
	mustFlush(t, s)
	if got := scan(nil, nil, 100); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after flush: got %v, want %v", got, want)
	}
}

func TestScanAppend(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	mustPut(t, s, 0, "k1", "value-1")
	mustPut(t, s, 0, "k2", "value-2")
	mustPut(t, s, 0, "k3", strings.Repeat("v", 100))
	s.EndCall(true)

	entry := abi.ScanEntryFixedSz + 2 + 7
	out, needed, err := s.ScanAppend(0, nil, nil, nil, 2*entry)
	if err != nil || needed != 0 {
		t.Fatalf("scan append: %v needed %d", err, needed)
	}
	var sr abi.ScanReader
	sr.Reset(out)
	var keys []string
	for k, _, ok := sr.Next(); ok; k, _, ok = sr.Next() {
		keys = append(keys, string(k))
	}
	if sr.Err() != nil || fmt.Sprint(keys) != "[k1 k2]" || len(out) != 2*entry {
		t.Fatalf("first page: keys %v (%v), %d bytes", keys, sr.Err(), len(out))
	}
	// The guest continues after the last key; k3 does not fit.
	out, needed, err = s.ScanAppend(0, []byte("k2\x00"), nil, out[:0], 2*entry)
	if err != nil || len(out) != 0 || needed != abi.ScanEntryFixedSz+2+100 {
		t.Fatalf("too small: %d bytes, needed %d, err %v", len(out), needed, err)
	}
	out, _, _ = s.ScanAppend(0, []byte("k2\x00"), nil, out[:0], 1000)
	sr.Reset(out)
	if k, v, ok := sr.Next(); !ok || string(k) != "k3" || len(v) != 100 {
		t.Fatalf("second page: %q %d %v", k, len(v), ok)
	}
}

func TestBigValues(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	want := map[string]string{}
	big := func(seed byte, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i%251)
		}
		return string(b)
	}
	want["max"] = big(1, abi.MaxValueSize)
	for i := range 5 {
		want[fmt.Sprintf("k%d", i)] = big(byte(i), 700<<10) // two do not fit one 1 MiB batch
	}
	for k, v := range want {
		mustPut(t, s, 0, k, v)
	}
	s.EndCall(true)
	mustFlush(t, s)
	if n := len(f.changelog(0)); n != len(want) {
		t.Fatalf("changelog has %d records, want %d", n, len(want))
	}
	s.Close()
	if err := os.RemoveAll(f.dir); err != nil {
		t.Fatal(err)
	}
	s = f.open()
	got := contents(t, s, 0)
	if !sameMap(got, want) {
		t.Fatalf("restored big values differ (%d keys, want %d)", len(got), len(want))
	}
	if v, ok := mustGet(t, s, 0, "max"); !ok || v != want["max"] {
		t.Fatal("max-size value differs after restore")
	}
}

func TestDroppedStoreIsRemoved(t *testing.T) {
	f := newFixture(t, "keep", "drop")
	s := f.open()
	mustPut(t, s, 0, "k", "keep")
	mustPut(t, s, 1, "k", "drop")
	s.EndCall(true)
	mustFlush(t, s)
	s.Close()

	// The job no longer has "drop": Open removes its data and meta key.
	g := *f
	g.names, g.logs = f.names[:1], f.logs[:1]
	s = g.open()
	if !strings.Contains(f.logBuf.String(), "no longer in the job") {
		t.Error("dropping a store was not logged")
	}
	if v, ok := mustGet(t, s, 0, "k"); !ok || v != "keep" {
		t.Fatalf("kept store: %q %v", v, ok)
	}
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		if bytes.Contains(it.Key(), []byte("drop")) {
			t.Errorf("key %q of a dropped store is still in Pebble", it.Key())
		}
	}
	it.Close()
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, _, err := s.Get(0, []byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
	if err := s.Restore(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("restore after close: %v", err)
	}
	// The directory is free for the next State.
	s2, err := Open(f.options())
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if _, err := os.Stat(filepath.Join(f.dir, corruptMarker)); err == nil {
		t.Fatal("a clean close left a corruption marker")
	}
}

func TestReadCacheStaysWithinBudget(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	for i := range 5000 {
		mustPut(t, s, 0, fmt.Sprintf("key-%05d", i), strings.Repeat("v", 100))
	}
	s.EndCall(true)
	mustFlush(t, s)
	s.Close()

	s = f.open()
	s.cacheBudget, s.evictAt = 64<<10, 64<<10
	for i := range 5000 {
		if _, ok := mustGet(t, s, 0, fmt.Sprintf("key-%05d", i)); !ok {
			t.Fatalf("key %d missing", i)
		}
		s.EndCall(true)
		if s.cacheBytes > s.cacheBudget+s.cacheBudget/8+1024 {
			t.Fatalf("after %d reads the cache holds %d bytes, budget %d", i+1, s.cacheBytes, s.cacheBudget)
		}
	}
	if n := len(s.stores[0].entries); n >= 5000 || n == 0 {
		t.Fatalf("%d entries cached after reading 5000 keys with a small budget", n)
	}
}

func TestCorruptionAtRunTime(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	mustPut(t, s, 0, "k", "v")
	s.EndCall(true)
	mustFlush(t, s)

	// What Pebble's DataCorruption event does while the task runs.
	s.markCorrupt(errors.New("checksum mismatch in block 7"))
	if _, err := os.Stat(filepath.Join(f.dir, corruptMarker)); err != nil {
		t.Fatalf("no marker: %v", err)
	}
	mustPut(t, s, 0, "k2", "v2")
	s.EndCall(true)
	if err := s.Flush(); err == nil {
		t.Fatal("flush succeeded on a corrupt database")
	}
	if err := s.Restore(context.Background(), nil); err == nil {
		t.Fatal("restore succeeded on a corrupt database without a reopen")
	}
	s.Close()

	s = f.open()
	if !strings.Contains(f.logBuf.String(), "moving it aside and rebuilding") {
		t.Fatal("reopen after run-time corruption did not rebuild")
	}
	if got, want := contents(t, s, 0), map[string]string{"k": "v"}; !sameMap(got, want) {
		t.Fatalf("after rebuild: %s", diffMaps(got, want))
	}
}
