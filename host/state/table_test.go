package state

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/broker/storage"
)

// newTableFixture is newFixture with the named stores made table stores.
func newTableFixture(t *testing.T, tables []string, stores ...string) *fixture {
	t.Helper()
	f := newFixture(t, stores...)
	f.tables = map[string]bool{}
	for _, name := range tables {
		f.tables[name] = true
	}
	return f
}

func mustApply(t testing.TB, s *State, h int32, off int64, key string, value *string) {
	t.Helper()
	var v []byte
	if value != nil {
		v = []byte(*value)
	}
	if err := s.ApplyTable(h, off, []byte(key), v); err != nil {
		t.Fatalf("apply %q at %d: %v", key, off, err)
	}
}

func str(s string) *string { return &s }

// fillTable appends kvs to the table partition p and applies the records to
// table store h at their offsets; it returns the offset after them.
func fillTable(t *testing.T, s *State, h int32, p *storage.Partition, kvs ...string) int64 {
	t.Helper()
	base := p.HighWatermark()
	appendRecords(t, p, kvs...)
	for i := 0; i < len(kvs); i += 2 {
		mustApply(t, s, h, base+int64(i/2), kvs[i], str(kvs[i+1]))
	}
	return p.HighWatermark()
}

func TestTableApplyGetScanDelete(t *testing.T) {
	f := newTableFixture(t, []string{"t"}, "t")
	s := f.open()
	if got := s.TableOffset(0); got != 0 {
		t.Fatalf("TableOffset of a new table: %d, want 0", got)
	}
	if !s.IsTable(0) || s.IsTable(1) {
		t.Fatal("IsTable")
	}
	mustApply(t, s, 0, 0, "a", str("1"))
	mustApply(t, s, 0, 1, "b", str("2"))
	mustApply(t, s, 0, 2, "c", str(""))
	mustApply(t, s, 0, 5, "a", str("3")) // a gap: compacted records
	if got := s.TableOffset(0); got != 6 {
		t.Fatalf("TableOffset: %d, want 6", got)
	}
	if v, ok := mustGet(t, s, 0, "a"); !ok || v != "3" {
		t.Fatalf("get a: %q %v", v, ok)
	}
	if v, ok := mustGet(t, s, 0, "c"); !ok || v != "" {
		t.Fatalf("get c (empty value): %q %v", v, ok)
	}
	if got, want := contents(t, s, 0), map[string]string{"a": "3", "b": "2", "c": ""}; !sameMap(got, want) {
		t.Fatalf("scan: %s", diffMaps(got, want))
	}
	mustApply(t, s, 0, 6, "b", nil) // tombstone
	if _, ok := mustGet(t, s, 0, "b"); ok {
		t.Fatal("b visible after its tombstone")
	}
	if err := s.ApplyTable(0, 7, nil, []byte("x")); err != nil { // no key: offset only
		t.Fatal(err)
	}
	if got, want := contents(t, s, 0), map[string]string{"a": "3", "c": ""}; !sameMap(got, want) {
		t.Fatalf("scan after tombstone: %s", diffMaps(got, want))
	}
	out, _, err := s.ScanAppend(0, nil, nil, nil, 1<<10)
	if err != nil || len(out) == 0 {
		t.Fatalf("ScanAppend: %d bytes, %v", len(out), err)
	}
	if got := s.TableOffset(0); got != 8 {
		t.Fatalf("TableOffset: %d, want 8", got)
	}
	// A tombstone, then a value again; and a call's commit or abort does
	// not touch applies.
	mustApply(t, s, 0, 8, "c", nil)
	s.EndCall(false)
	mustApply(t, s, 0, 9, "c", str("back"))
	s.EndCall(true)
	if v, ok := mustGet(t, s, 0, "c"); !ok || v != "back" {
		t.Fatalf("get c: %q %v", v, ok)
	}
}

func TestTableIsReadOnly(t *testing.T) {
	f := newTableFixture(t, []string{"t"}, "a", "t")
	s := f.open()
	if err := s.Put(1, []byte("k"), []byte("v")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("put to a table: %v, want ErrReadOnly", err)
	}
	if err := s.Delete(1, []byte("k")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("delete from a table: %v, want ErrReadOnly", err)
	}
	s.EndCall(true)
	if _, ok := mustGet(t, s, 1, "k"); ok {
		t.Fatal("refused put is visible")
	}
	if err := s.ApplyTable(0, 0, []byte("k"), []byte("v")); err == nil {
		t.Fatal("ApplyTable on a changelog store succeeded")
	}
	if err := s.ApplyTable(5, 0, []byte("k"), []byte("v")); !errors.Is(err, ErrBadStore) {
		t.Fatalf("ApplyTable on a bad handle: %v", err)
	}
	mustApply(t, s, 1, 3, "k", str("v"))
	if err := s.ApplyTable(1, 2, []byte("k"), []byte("old")); err == nil {
		t.Fatal("ApplyTable went backwards")
	}
	if s.TableOffset(0) != -1 || s.TableOffset(7) != -1 {
		t.Fatal("TableOffset of a non-table store is not -1")
	}
}

func TestTableApplyCopiesAndDoesNotAllocate(t *testing.T) {
	f := newTableFixture(t, []string{"t"}, "t")
	s := f.open()
	key, val := []byte("key"), []byte("value-1")
	mustApply(t, s, 0, 0, "key", str("value-0"))
	if err := s.ApplyTable(0, 1, key, val); err != nil {
		t.Fatal(err)
	}
	copy(key, "xxx")
	copy(val, "XXXXXXX")
	if v, ok := mustGet(t, s, 0, "key"); !ok || v != "value-1" {
		t.Fatalf("after reusing the caller's buffers: %q %v", v, ok)
	}
	off := int64(2)
	key = []byte("key")
	allocs := testing.AllocsPerRun(100, func() {
		if err := s.ApplyTable(0, off, key, val); err != nil {
			t.Fatal(err)
		}
		off++
	})
	if allocs != 0 {
		t.Fatalf("ApplyTable to a known key allocates %.1f times", allocs)
	}
}

func TestTableFlushAndReopen(t *testing.T) {
	f := newTableFixture(t, []string{"t"}, "t")
	p := f.logs[0]
	s := f.open()
	fillTable(t, s, 0, p, "a", "1", "b", "2", "c", "3")
	appendRecords(t, p, "c", "a null value") // applied as a tombstone below
	end := p.HighWatermark()
	appendRecords(t, p, "b", "x") // the host has not applied this one yet
	hw := p.HighWatermark()
	mustApply(t, s, 0, end-1, "c", nil) // tombstones move the offset too
	mustFlush(t, s)
	if p.HighWatermark() != hw || p.LogEndOffset() != hw {
		t.Fatalf("flush appended to the table partition: high watermark %d -> %d", hw, p.HighWatermark())
	}
	if got := s.TableOffsets(); len(got) != 1 || got["t"] != end {
		t.Fatalf("TableOffsets after flush: %v, want t=%d", got, end)
	}
	if got := s.ChangelogOffsets(); len(got) != 0 {
		t.Fatalf("ChangelogOffsets lists a table: %v", got)
	}
	if s.DirtyBytes() != 0 {
		t.Fatalf("dirty bytes after flush: %d", s.DirtyBytes())
	}
	// Reads now come from Pebble and the read cache.
	want := map[string]string{"a": "1", "b": "2"}
	if got := contents(t, s, 0); !sameMap(got, want) {
		t.Fatalf("after flush: %s", diffMaps(got, want))
	}
	s.Close()

	s, prog := openRestore(t, f)
	if got := s.TableOffset(0); got != end {
		t.Fatalf("TableOffset after reopen: %d, want %d", got, end)
	}
	if len(prog.calls) != 0 {
		t.Fatalf("restore reported progress for a table: %v", prog.calls)
	}
	if got := contents(t, s, 0); !sameMap(got, want) {
		t.Fatalf("after reopen: %s", diffMaps(got, want))
	}
	if v, ok := mustGet(t, s, 0, "a"); !ok || v != "1" {
		t.Fatalf("get a after reopen: %q %v", v, ok)
	}
	if p.HighWatermark() != hw {
		t.Fatal("restore appended to the table partition")
	}
	// The host goes on from TableOffset.
	mustApply(t, s, 0, end, "b", str("x"))
	mustFlush(t, s)
	s.Close()
	s = f.open()
	if got := s.TableOffset(0); got != hw {
		t.Fatalf("TableOffset after the second reopen: %d, want %d", got, hw)
	}
	if v, _ := mustGet(t, s, 0, "b"); v != "x" {
		t.Fatalf("get b: %q", v)
	}
}

func TestTableUnflushedAppliesLostOnReopen(t *testing.T) {
	f := newTableFixture(t, []string{"t"}, "t")
	s := f.open()
	end := fillTable(t, s, 0, f.logs[0], "a", "1")
	mustFlush(t, s)
	fillTable(t, s, 0, f.logs[0], "b", "2")
	s.Close()
	s = f.open()
	if got := s.TableOffset(0); got != end {
		t.Fatalf("TableOffset: %d, want %d", got, end)
	}
	if got, want := contents(t, s, 0), map[string]string{"a": "1"}; !sameMap(got, want) {
		t.Fatalf("contents: %s", diffMaps(got, want))
	}
}

func TestTableRollback(t *testing.T) {
	f := newTableFixture(t, []string{"t"}, "t")
	p := f.logs[0]
	s := f.open()
	end := fillTable(t, s, 0, p, "a", "1", "b", "1")
	mustFlush(t, s)

	base := p.HighWatermark()
	appendRecords(t, p, "a", "2", "c", "2")
	mustApply(t, s, 0, base, "a", str("2"))
	mustApply(t, s, 0, base+1, "c", str("2"))
	mustApply(t, s, 0, base+2, "b", nil)
	if _, ok := mustGet(t, s, 0, "b"); ok {
		t.Fatal("tombstone not visible")
	}
	s.Rollback()
	if got := s.TableOffset(0); got != end {
		t.Fatalf("TableOffset after rollback: %d, want %d", got, end)
	}
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
	// The host reads the table again from TableOffset.
	mustApply(t, s, 0, end, "a", str("2"))
	mustApply(t, s, 0, end+1, "c", str("2"))
	mustFlush(t, s)
	if got := s.TableOffsets()["t"]; got != end+2 {
		t.Fatalf("flushed table offset %d, want %d", got, end+2)
	}
	if got, want := contents(t, s, 0), map[string]string{"a": "2", "b": "1", "c": "2"}; !sameMap(got, want) {
		t.Fatalf("after re-applying: %s", diffMaps(got, want))
	}
}

func TestTableRecreatedTopicIsWiped(t *testing.T) {
	f := newTableFixture(t, []string{"t"}, "t")
	s := f.open()
	fillTable(t, s, 0, f.logs[0], "a", "1", "b", "2", "c", "3")
	mustFlush(t, s)
	s.Close()

	// A valid table is left alone.
	s = f.open()
	if got, want := contents(t, s, 0), map[string]string{"a": "1", "b": "2", "c": "3"}; !sameMap(got, want) {
		t.Fatalf("valid table after restore: %s", diffMaps(got, want))
	}
	if strings.Contains(f.logBuf.String(), "does not match") {
		t.Fatalf("warning for a valid table:\n%s", f.logBuf)
	}
	s.Close()

	// The topic was deleted and recreated with fewer records: the local
	// offset (3) is past its high watermark (1).
	fresh, err := storage.OpenPartition(filepath.Join(t.TempDir(), "recreated"), changelogConfig(), f.log)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	appendRecords(t, fresh, "new", "x")
	f.logs[0] = fresh
	s = f.open()
	if !strings.Contains(f.logBuf.String(), "local table does not match its topic") {
		t.Errorf("no warning; log:\n%s", f.logBuf)
	}
	if got := s.TableOffset(0); got != 0 {
		t.Fatalf("TableOffset after wipe: %d, want the log start 0", got)
	}
	if got := contents(t, s, 0); len(got) != 0 {
		t.Fatalf("wiped table has %v", got)
	}
	if fresh.HighWatermark() != 1 {
		t.Fatal("restore touched the table partition")
	}
	mustApply(t, s, 0, 0, "new", str("x"))
	mustFlush(t, s)
	s.Close()
	s = f.open()
	if got, want := contents(t, s, 0), map[string]string{"new": "x"}; !sameMap(got, want) {
		t.Fatalf("after re-reading: %s", diffMaps(got, want))
	}
	if got := s.TableOffset(0); got != 1 {
		t.Fatalf("TableOffset: %d, want 1", got)
	}
}

func TestTableAndChangelogStoreTogether(t *testing.T) {
	f := newTableFixture(t, []string{"t"}, "a", "t")
	s := f.open()
	tend := fillTable(t, s, 1, f.logs[1], "user1", "alice", "user2", "bob")
	mustPut(t, s, 0, "count", "1")
	s.EndCall(true)
	mustPut(t, s, 0, "staged", "x")
	appendRecords(t, f.logs[1], "user2", "a null value")
	mustApply(t, s, 1, tend, "user2", nil) // between calls in the host, but harmless here
	mustFlush(t, s)                        // the staged put stays staged
	s.EndCall(false)

	if got := f.logs[1].HighWatermark(); got != tend+1 {
		t.Fatalf("table partition high watermark %d, want %d", got, tend)
	}
	recs := f.changelog(0)
	if len(recs) != 1 || recs[0].key != "count" || string(recs[0].value) != "1" {
		t.Fatalf("changelog of a: %+v", recs)
	}
	if got := s.ChangelogOffsets(); len(got) != 1 || got["a"] != 1 {
		t.Fatalf("ChangelogOffsets: %v", got)
	}
	if got := s.TableOffsets(); len(got) != 1 || got["t"] != tend+1 {
		t.Fatalf("TableOffsets: %v", got)
	}
	s.Close()

	s, prog := openRestore(t, f)
	if _, ok := prog.last["t"]; ok {
		t.Fatalf("progress for the table: %v", prog.calls)
	}
	if got := prog.last["a"]; got != [2]int64{0, 0} {
		t.Fatalf("progress for a: %v", got)
	}
	if got, want := contents(t, s, 0), map[string]string{"count": "1"}; !sameMap(got, want) {
		t.Fatalf("a: %s", diffMaps(got, want))
	}
	if got, want := contents(t, s, 1), map[string]string{"user1": "alice"}; !sameMap(got, want) {
		t.Fatalf("t: %s", diffMaps(got, want))
	}
	// Rolling back a mixed set restores both.
	mustPut(t, s, 0, "count", "2")
	s.EndCall(true)
	mustApply(t, s, 1, tend+1, "user3", str("carol"))
	s.Rollback()
	if v, _ := mustGet(t, s, 0, "count"); v != "1" {
		t.Fatalf("count after rollback: %q", v)
	}
	if _, ok := mustGet(t, s, 1, "user3"); ok {
		t.Fatal("user3 after rollback")
	}
	if got := s.TableOffset(1); got != tend+1 {
		t.Fatalf("TableOffset after rollback: %d", got)
	}
}

func TestTableRebuiltAfterDamage(t *testing.T) {
	f := newTableFixture(t, []string{"t"}, "a", "t")
	s := f.open()
	fillTable(t, s, 1, f.logs[1], "k", "v")
	mustPut(t, s, 0, "x", "1")
	s.EndCall(true)
	mustFlush(t, s)
	s.Close()
	if err := os.WriteFile(filepath.Join(f.dir, corruptMarker), []byte("test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = f.open()
	if !strings.Contains(f.logBuf.String(), "damaged") {
		t.Fatalf("no damage warning:\n%s", f.logBuf)
	}
	if got := s.TableOffset(1); got != f.logs[1].LogStartOffset() {
		t.Fatalf("TableOffset of a rebuilt table: %d, want the log start", got)
	}
	if got := contents(t, s, 1); len(got) != 0 {
		t.Fatalf("rebuilt table holds %v", got)
	}
	if got, want := contents(t, s, 0), map[string]string{"x": "1"}; !sameMap(got, want) {
		t.Fatalf("changelog store after rebuild: %s", diffMaps(got, want))
	}
}

// A store that turns from a changelog store into a table (or back) keeps
// no data of its old kind.
func TestStoreChangingKindIsWiped(t *testing.T) {
	f := newFixture(t, "x")
	s := f.open()
	mustPut(t, s, 0, "old", "1")
	s.EndCall(true)
	mustFlush(t, s) // meta offset 1, within the partition below
	s.Close()

	f.tables = map[string]bool{"x": true}
	s = f.open()
	if got := contents(t, s, 0); len(got) != 0 {
		t.Fatalf("table kept the changelog store's data: %v", got)
	}
	if got := s.TableOffset(0); got != 0 {
		t.Fatalf("TableOffset: %d, want 0", got)
	}
	mustApply(t, s, 0, 0, "old", str("table"))
	mustFlush(t, s)
	s.Close()

	f.tables = nil
	s = f.open()
	// Back to a changelog store: rebuilt from the partition's records.
	if got, want := contents(t, s, 0), map[string]string{"old": "1"}; !sameMap(got, want) {
		t.Fatalf("changelog store after being a table: %s", diffMaps(got, want))
	}
	if err := s.Restore(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// TestTableAgainstModel applies, reads, flushes, rolls back and reopens a
// table store with a small read cache and compares it with a map.
func TestTableAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	f := newTableFixture(t, []string{"t"}, "t")
	p := f.logs[0]
	open := func() *State {
		s := f.open()
		s.cacheBudget, s.evictAt = 4<<10, 4<<10
		return s
	}
	s := open()
	cur, flushed := map[string]string{}, map[string]string{}
	var next, flushedNext int64
	ops := 3000
	if testing.Short() {
		ops = 1000
	}
	for i := range ops {
		k := fmt.Sprintf("k%02d", rng.IntN(60))
		switch r := rng.IntN(100); {
		case r < 40:
			v := strings.Repeat(string(rune('a'+rng.IntN(26))), rng.IntN(80))
			appendRecords(t, p, k, v)
			off := p.HighWatermark() - 1
			if rng.IntN(5) == 0 {
				mustApply(t, s, 0, off, k, nil)
				delete(cur, k)
			} else {
				mustApply(t, s, 0, off, k, &v)
				cur[k] = v
			}
			next = off + 1
		case r < 75:
			v, ok := mustGet(t, s, 0, k)
			if w, wok := cur[k]; ok != wok || v != w {
				t.Fatalf("op %d: get %s = %q %v, want %q %v", i, k, v, ok, w, wok)
			}
		case r < 82:
			if got := contents(t, s, 0); !sameMap(got, cur) {
				t.Fatalf("op %d: scan: %s", i, diffMaps(got, cur))
			}
		case r < 90:
			mustFlush(t, s)
			flushed, flushedNext = maps.Clone(cur), next
		case r < 95:
			s.Rollback()
			cur, next = maps.Clone(flushed), flushedNext
		default:
			s.Close()
			s = open()
			cur, next = maps.Clone(flushed), flushedNext
		}
		if got := s.TableOffset(0); got != next {
			t.Fatalf("op %d: TableOffset %d, want %d", i, got, next)
		}
	}
}
