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
	"time"

	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/storage"
)

// populate writes n keys over several flushed calls, with overwrites and
// deletes, and returns the expected contents of store 0.
func populate(t *testing.T, s *State, n int) map[string]string {
	t.Helper()
	want := map[string]string{}
	for round := range 3 {
		for i := range n {
			k, v := fmt.Sprintf("key-%05d", i), fmt.Sprintf("value-%d-%d", round, i)
			if round == 2 && i%3 == 0 {
				mustDelete(t, s, 0, k)
				delete(want, k)
			} else {
				mustPut(t, s, 0, k, v)
				want[k] = v
			}
			if i%100 == 99 {
				s.EndCall(true)
			}
		}
		s.EndCall(true)
		mustFlush(t, s)
	}
	return want
}

// flushPebble moves Pebble's memtable into sstables, so that corruption
// tests have table files to damage.
func flushPebble(t *testing.T, s *State) {
	t.Helper()
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
}

type progressLog struct {
	calls []string
	last  map[string][2]int64
}

func (p *progressLog) report(store string, restored, total int64) {
	if p.last == nil {
		p.last = map[string][2]int64{}
	}
	p.calls = append(p.calls, fmt.Sprintf("%s %d/%d", store, restored, total))
	p.last[store] = [2]int64{restored, total}
}

func openRestore(t *testing.T, f *fixture) (*State, *progressLog) {
	t.Helper()
	s, err := Open(f.options())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var p progressLog
	if err := s.Restore(context.Background(), p.report); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return s, &p
}

func TestRestoreAfterStateDirDeleted(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	want := populate(t, s, 3000)
	s.Close()

	if err := os.RemoveAll(f.dir); err != nil {
		t.Fatal(err)
	}
	s, p := openRestore(t, f)
	if got := contents(t, s, 0); !sameMap(got, want) {
		t.Fatalf("rebuilt contents: %s", diffMaps(got, want))
	}
	end := f.logs[0].HighWatermark()
	if last := p.last["a"]; last != [2]int64{end, end} {
		t.Fatalf("last progress %v, want %d/%d (calls %v)", last, end, end, p.calls)
	}
	if len(p.calls) < 3 {
		t.Fatalf("progress reported only %v for %d offsets", p.calls, end)
	}
	if offs := s.ChangelogOffsets(); offs["a"] != end {
		t.Fatalf("changelog offset after restore %d, want %d", offs["a"], end)
	}
	// Restored state goes on working.
	mustPut(t, s, 0, "after", "restore")
	s.EndCall(true)
	mustFlush(t, s)
}

func TestDamagedStateIsRebuilt(t *testing.T) {
	damage := map[string]func(t *testing.T, dir string){
		"truncated MANIFEST": func(t *testing.T, dir string) {
			for _, m := range glob(t, dir, "MANIFEST-*") {
				if err := os.Truncate(m, 10); err != nil {
					t.Fatal(err)
				}
			}
		},
		"garbage in sstables": func(t *testing.T, dir string) {
			ssts := glob(t, dir, "*.sst")
			if len(ssts) == 0 {
				t.Fatal("no sstables to damage")
			}
			for _, f := range ssts {
				overwrite(t, f, 100)
			}
		},
		"garbage in every file": func(t *testing.T, dir string) {
			for _, f := range glob(t, dir, "*") {
				if !strings.HasSuffix(f, "LOCK") {
					overwrite(t, f, 0)
				}
			}
		},
		"missing sstable": func(t *testing.T, dir string) {
			for _, f := range glob(t, dir, "*.sst") {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
		},
		"foreign database": func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			// A Pebble database with data but no format key.
			s, err := Open(Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.db.Delete(formatKey, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.db.Set([]byte("foreign"), []byte("x"), nil); err != nil {
				t.Fatal(err)
			}
			s.Close()
		},
		"corruption marker": func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, corruptMarker), []byte("test\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, harm := range damage {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, "a")
			s := f.open()
			want := populate(t, s, 500)
			flushPebble(t, s)
			s.Close()

			harm(t, f.dir)
			s, p := openRestore(t, f)
			if !strings.Contains(f.logBuf.String(), "moving it aside and rebuilding it from the changelog") {
				t.Errorf("no warning about the rebuild; log:\n%s", f.logBuf)
			}
			if _, err := os.Stat(f.dir + ".corrupt"); err != nil {
				t.Errorf("damaged database not kept aside: %v", err)
			}
			if got := contents(t, s, 0); !sameMap(got, want) {
				t.Fatalf("rebuilt contents: %s", diffMaps(got, want))
			}
			if end := f.logs[0].HighWatermark(); p.last["a"] != [2]int64{end, end} {
				t.Fatalf("restore progress %v, want all of %d offsets", p.last["a"], end)
			}
			// And the rebuilt database is healthy: a reopen does not
			// rebuild again.
			s.Close()
			before := strings.Count(f.logBuf.String(), "moving it aside")
			s, _ = openRestore(t, f)
			if after := strings.Count(f.logBuf.String(), "moving it aside"); after != before {
				t.Fatal("the rebuilt database was rebuilt again")
			}
			if got := contents(t, s, 0); !sameMap(got, want) {
				t.Fatalf("after reopen: %s", diffMaps(got, want))
			}
		})
	}
}

func glob(t *testing.T, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// overwrite fills file from byte at to the end with a pattern.
func overwrite(t *testing.T, file string, at int64) {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil || fi.IsDir() || fi.Size() <= at {
		return
	}
	garbage := bytes.Repeat([]byte{0x5a}, int(fi.Size()-at))
	fh, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteAt(garbage, at); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreCatchesUpAfterCrashBeforePebbleWrite cuts a Flush between its
// changelog append and its Pebble write, as a crash would.
func TestRestoreCatchesUpAfterCrashBeforePebbleWrite(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	want := populate(t, s, 200)
	flushed := s.ChangelogOffsets()["a"]

	mustPut(t, s, 0, "key-00001", "in changelog only")
	mustDelete(t, s, 0, "key-00002")
	mustPut(t, s, 0, "new", "in changelog only")
	s.EndCall(true)
	next, pending, err := s.appendChangelog(s.stores[0], time.Now().UnixMilli(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pending {
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	s.Close() // the "crash": Pebble never gets the batch
	want["key-00001"] = "in changelog only"
	delete(want, "key-00002")
	want["new"] = "in changelog only"

	s, p := openRestore(t, f)
	if got := p.last["a"]; got != [2]int64{next - flushed, next - flushed} {
		t.Fatalf("restore covered %v, want only the %d unapplied offsets", got, next-flushed)
	}
	if got := contents(t, s, 0); !sameMap(got, want) {
		t.Fatalf("caught-up contents: %s", diffMaps(got, want))
	}
}

// TestFlushFailureNeedsRestore: records that something else appended to a
// changelog make Flush fail, the State refuses work until Restore, and
// Restore applies both those records and the flushed ones.
func TestFlushFailureNeedsRestore(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	mustPut(t, s, 0, "mine", "1")
	s.EndCall(true)
	mustFlush(t, s)

	appendRecords(t, f.logs[0], "foreign", "x", "mine", "foreign-overwrite")
	mustPut(t, s, 0, "mine2", "2")
	s.EndCall(true)
	err := s.Flush()
	if err == nil || !strings.Contains(err.Error(), "something else writes to the changelog") {
		t.Fatalf("flush over a foreign append: %v", err)
	}
	if _, _, err := s.Get(0, []byte("mine")); !errors.Is(err, ErrNotRestored) {
		t.Fatalf("get after failed flush: %v, want ErrNotRestored", err)
	}
	if err := s.Put(0, []byte("k"), nil); !errors.Is(err, ErrNotRestored) {
		t.Fatalf("put after failed flush: %v, want ErrNotRestored", err)
	}
	if err := s.Restore(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"foreign": "x", "mine": "foreign-overwrite", "mine2": "2"}
	if got := contents(t, s, 0); !sameMap(got, want) {
		t.Fatalf("after restore: %s", diffMaps(got, want))
	}
	mustPut(t, s, 0, "later", "3")
	s.EndCall(true)
	mustFlush(t, s)
}

// appendRecords appends key/value pairs to p as one batch, as a producer
// other than the State would.
func appendRecords(t *testing.T, p *storage.Partition, kvs ...string) {
	t.Helper()
	var b batch.Builder
	b.Reset(time.Now().UnixMilli())
	for i := 0; i < len(kvs); i += 2 {
		b.Add(int32(i/2), time.Now().UnixMilli(), []byte(kvs[i]), []byte(kvs[i+1]), nil)
	}
	if _, err := p.Append(b.Finish(), 0); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreFromCompactedChangelog(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	want := populate(t, s, 2000)
	s.Close()
	before := f.logs[0].Size()
	if err := f.logs[0].Clean(time.Now()); err != nil {
		t.Fatal(err)
	}
	if after := f.logs[0].Size(); after >= before {
		t.Fatalf("compaction did not shrink the changelog (%d -> %d bytes)", before, after)
	}
	if err := os.RemoveAll(f.dir); err != nil {
		t.Fatal(err)
	}
	s, p := openRestore(t, f)
	if got := contents(t, s, 0); !sameMap(got, want) {
		t.Fatalf("restored from a compacted changelog: %s", diffMaps(got, want))
	}
	end := f.logs[0].HighWatermark()
	if p.last["a"] != [2]int64{end, end} {
		t.Fatalf("progress %v, want %d/%d", p.last["a"], end, end)
	}
}

func TestLocalStateAheadOfChangelogIsRebuilt(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	populate(t, s, 100)
	s.Close()

	// The changelog topic was deleted and recreated: empty, offsets from 0.
	fresh, err := storage.OpenPartition(filepath.Join(t.TempDir(), "recreated"), changelogConfig(), f.log)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	appendRecords(t, fresh, "only", "this")
	f.logs[0] = fresh
	s, _ = openRestore(t, f)
	if !strings.Contains(f.logBuf.String(), "does not match its changelog") {
		t.Errorf("no warning; log:\n%s", f.logBuf)
	}
	if got, want := contents(t, s, 0), map[string]string{"only": "this"}; !sameMap(got, want) {
		t.Fatalf("after rebuild from the new changelog: %s", diffMaps(got, want))
	}
}

func TestRestoreIsCancelable(t *testing.T) {
	f := newFixture(t, "a")
	s := f.open()
	populate(t, s, 300)
	s.Close()
	if err := os.RemoveAll(f.dir); err != nil {
		t.Fatal(err)
	}
	s, err := Open(f.options())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Restore(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("restore with a canceled context: %v", err)
	}
	if _, _, err := s.Get(0, []byte("k")); !errors.Is(err, ErrNotRestored) {
		t.Fatalf("get after a canceled restore: %v", err)
	}
	// A later Restore finishes the job.
	if err := s.Restore(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if n := len(contents(t, s, 0)); n != 200 {
		t.Fatalf("restored %d keys, want 200", n)
	}
}
