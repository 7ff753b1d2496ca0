package storage

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-io/sluice/broker/batch"
)

// model is what a test appended, record by record, to predict what
// compaction must leave.
type model struct{ recs []storedRecord }

func (m *model) appendBatch(t *testing.T, p *Partition, recs ...rec) AppendInfo {
	t.Helper()
	info := mustAppend(t, p, makeBatch(recs...))
	for i, r := range recs {
		m.recs = append(m.recs, storedRecord{info.BaseOffset + int64(i), r.ts, r.key, r.value})
	}
	return info
}

// clean applies compaction's rules to the model: below closedEnd keep the
// last record per key, drop tombstones older than now - drm, keep null
// keys; leave everything from closedEnd on alone.
func (m *model) clean(closedEnd, now, drm int64) {
	latest := map[string]int64{}
	for _, r := range m.recs {
		if r.offset < closedEnd && r.key != nil {
			latest[string(r.key)] = r.offset
		}
	}
	m.recs = slices.DeleteFunc(m.recs, func(r storedRecord) bool {
		if r.offset >= closedEnd || r.key == nil {
			return false
		}
		return latest[string(r.key)] > r.offset || (r.value == nil && r.ts <= now-drm)
	})
}

func (m *model) check(t *testing.T, p *Partition) {
	t.Helper()
	got := readAll(t, p, p.LogStartOffset())
	if len(got) != len(m.recs) {
		t.Fatalf("read %d records, model has %d", len(got), len(m.recs))
	}
	for i, r := range got {
		w := m.recs[i]
		if r.offset != w.offset || r.ts != w.ts || !bytes.Equal(r.key, w.key) || !bytes.Equal(r.value, w.value) || (r.value == nil) != (w.value == nil) {
			t.Fatalf("record %d: got %d %s=%q, want %d %s=%q", i, r.offset, r.key, r.value, w.offset, w.key, w.value)
		}
	}
}

func compactConfig() Config {
	cfg := smallConfig()
	cfg.SegmentBytes = 2048
	cfg.Compact = true
	cfg.Delete = false
	cfg.DeleteRetentionMs = 1000
	return cfg
}

func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	cfg := compactConfig()
	p := open(t, dir, cfg)
	var m model
	appendKeyed := func(from, to int) {
		for i := from; i < to; i++ {
			n := 1 + i%3
			recs := make([]rec, n)
			for j := range recs {
				k := i*3 + j
				r := rec{key: []byte(fmt.Sprintf("k%d", k%17)), value: []byte(fmt.Sprintf("v%d", k)), ts: int64(10_000 + k)}
				switch {
				case k%11 == 0:
					r.value = nil // tombstone
				case k%29 == 0:
					r.key = nil
				}
				recs[j] = r
			}
			m.appendBatch(t, p, recs...)
		}
	}
	appendKeyed(0, 200)
	leo := p.LogEndOffset()
	filesBefore := len(logFiles(t, dir))

	// Tombstones are all younger than delete.retention.ms: they stay.
	now := int64(10_000)
	if err := p.Clean(time.UnixMilli(now)); err != nil {
		t.Fatal(err)
	}
	m.clean(p.active.base, now, cfg.DeleteRetentionMs)
	m.check(t, p)
	if p.LogEndOffset() != leo || p.LogStartOffset() != 0 {
		t.Fatalf("compaction moved the log: start %d end %d", p.LogStartOffset(), p.LogEndOffset())
	}
	if p.Size() == 0 || len(logFiles(t, dir)) > filesBefore {
		t.Fatal("unexpected segment files after compaction")
	}
	tombstones := 0
	for _, r := range m.recs {
		if r.value == nil && r.key != nil && r.offset < p.active.base {
			tombstones++
		}
	}
	if tombstones == 0 {
		t.Fatal("fixture: no tombstone survived the first pass")
	}

	// Nothing new: a second pass changes nothing and rewrites nothing.
	before := slices.Clone(p.segs)
	if err := p.Clean(time.UnixMilli(now)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, p.segs) {
		t.Fatal("a pass without new data rewrote segments")
	}

	// Later the tombstones expire.
	now = 10_000 + 1_000_000
	if err := p.Clean(time.UnixMilli(now)); err != nil {
		t.Fatal(err)
	}
	m.clean(p.active.base, now, cfg.DeleteRetentionMs)
	m.check(t, p)
	for _, r := range m.recs {
		if r.value == nil && r.key != nil && r.offset < p.active.base {
			t.Fatalf("expired tombstone at %d survived", r.offset)
		}
	}

	// New data supersedes keys that live in already-clean segments.
	appendKeyed(200, 300)
	if err := p.Clean(time.UnixMilli(now)); err != nil {
		t.Fatal(err)
	}
	m.clean(p.active.base, now, cfg.DeleteRetentionMs)
	m.check(t, p)

	// The cleaned files are consistent on their own: a reopen trusts
	// their indexes and serves the same records.
	_ = p.Close()
	var logs logCapture
	p = openWithLog(t, dir, cfg, slogNew(&logs))
	if _, ok := logs.find(0, "reason"); ok {
		t.Fatalf("reopen after compaction rebuilt an index: %+v", logs.entries)
	}
	m.check(t, p)
	for target := int64(9_990); target < 11_000; target += 7 {
		wantOff, wantTS := int64(-1), int64(-1)
		for _, r := range m.recs {
			if r.ts >= target {
				wantOff, wantTS = r.offset, r.ts
				break
			}
		}
		off, ts, err := p.OffsetForTimestamp(target)
		if err != nil || off != wantOff || ts != wantTS {
			t.Fatalf("OffsetForTimestamp(%d) = %d %d %v, want %d %d", target, off, ts, err, wantOff, wantTS)
		}
	}
}

// TestCompactionEmptiedSegments: an emptied first segment stays (empty, to
// keep the log start offset), an emptied later one is deleted.
func TestCompactionEmptiedSegments(t *testing.T) {
	dir := t.TempDir()
	cfg := compactConfig()
	p := open(t, dir, cfg)
	var m model
	roll := func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if err := p.roll(nowMs()); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefix := range []string{"a", "b", "a", "b"} {
		for i := range 5 {
			m.appendBatch(t, p, rec{key: []byte(fmt.Sprint(prefix, i)), value: []byte(fmt.Sprint(prefix, i, len(m.recs))), ts: 1})
		}
		roll()
	}
	second := p.segs[1].base
	if err := p.Clean(time.UnixMilli(0)); err != nil {
		t.Fatal(err)
	}
	m.clean(p.active.base, 0, cfg.DeleteRetentionMs)
	m.check(t, p)
	if p.LogStartOffset() != 0 || p.segs[0].size.Load() != 0 {
		t.Fatalf("first segment: log start %d, size %d", p.LogStartOffset(), p.segs[0].size.Load())
	}
	if slices.Contains(logFiles(t, dir), second) {
		t.Fatal("emptied second segment still on disk")
	}
	_ = p.Close()
	p = open(t, dir, cfg)
	m.check(t, p)
}

// TestCompactionKeepsProducerState: a producer's last batch survives as an
// empty batch even when all its records are superseded, so a replay from
// the log alone still knows the producer's sequence.
func TestCompactionKeepsProducerState(t *testing.T) {
	dir := t.TempDir()
	cfg := compactConfig()
	p := open(t, dir, cfg)
	var bld batch.Builder
	bld.Reset(1)
	bld.SetProducer(7, 0, 0)
	bld.Add(0, 1, []byte("x"), []byte("old"), nil)
	bld.Add(1, 1, []byte("y"), []byte("old"), nil)
	mustAppend(t, p, bytes.Clone(bld.Finish()))
	mustAppend(t, p, makeBatch(rec{key: []byte("x"), value: []byte("new"), ts: 2}, rec{key: []byte("y"), value: []byte("new"), ts: 2}))
	p.mu.Lock()
	if err := p.roll(nowMs()); err != nil {
		t.Fatal(err)
	}
	p.mu.Unlock()
	if err := p.Clean(time.UnixMilli(0)); err != nil {
		t.Fatal(err)
	}
	b, err := p.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	hs := headers(t, b)
	if len(hs) != 2 || hs[0].ProducerID != 7 || hs[0].RecordCount != 0 || hs[0].LastOffsetDelta != 1 || hs[1].BaseOffset != 2 {
		t.Fatalf("after compaction: %+v", hs)
	}
	_ = p.Close()
	snaps, _ := filepath.Glob(filepath.Join(dir, "*"+snapshotSuffix))
	for _, s := range snaps {
		os.Remove(s)
	}
	p = open(t, dir, cfg)
	runProducerSteps(t, p, []producerStep{
		{"retry of the compacted batch", 7, 0, 0, 2, ErrDuplicateSequence, 0},
		{"next", 7, 0, 2, 1, nil, 4},
	})
}

// TestCompactionConcurrentWithAppendsAndReads cleans in a loop while
// writers append and readers scan the whole log.
func TestCompactionConcurrentWithAppendsAndReads(t *testing.T) {
	cfg := compactConfig()
	cfg.FlushMode = FlushSync
	p := open(t, t.TempDir(), cfg)
	var stop atomic.Bool
	var wg sync.WaitGroup
	type acked struct {
		off int64
		key string
	}
	var mu sync.Mutex
	var uniques []acked
	for w := range 2 {
		wg.Go(func() {
			for i := 0; i < 150; i++ {
				u := fmt.Sprintf("u%d-%d", w, i)
				info, err := p.Append(makeBatch(
					rec{key: []byte(fmt.Sprint("r", i%5)), value: []byte("repeat"), ts: int64(i)},
					rec{key: []byte(u), value: []byte(u), ts: int64(i)},
				), 0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				uniques = append(uniques, acked{info.BaseOffset + 1, u})
				mu.Unlock()
			}
		})
	}
	var cleans atomic.Int64
	cleaner := make(chan struct{})
	go func() {
		defer close(cleaner)
		for !stop.Load() {
			if err := p.Clean(time.Now()); err != nil {
				t.Error(err)
				return
			}
			cleans.Add(1)
		}
	}()
	var reads atomic.Int64
	reader := make(chan struct{})
	go func() {
		defer close(reader)
		for !stop.Load() {
			last := int64(-1)
			for off := p.LogStartOffset(); off < p.HighWatermark(); {
				b, err := p.Read(off, 500)
				if err != nil {
					t.Errorf("read at %d during compaction: %v", off, err)
					return
				}
				if len(b) == 0 {
					break
				}
				for _, h := range headers(t, b) {
					if h.BaseOffset <= last {
						t.Errorf("offsets went back: %d after %d", h.BaseOffset, last)
						return
					}
					last = h.LastOffset()
					off = h.NextOffset()
				}
			}
			reads.Add(1)
		}
	}()
	wg.Wait()
	stop.Store(true)
	<-cleaner
	<-reader
	if err := p.Clean(time.Now()); err != nil {
		t.Fatal(err)
	}
	got := map[int64]string{}
	for _, r := range readAll(t, p, p.LogStartOffset()) {
		got[r.offset] = string(r.value)
	}
	for _, a := range uniques {
		if got[a.off] != a.key {
			t.Fatalf("record %s at %d lost (found %q)", a.key, a.off, got[a.off])
		}
	}
	repeats := 0
	for _, v := range got {
		if v == "repeat" {
			repeats++
		}
	}
	if len(p.segs) < 3 || repeats > 5+int(p.LogEndOffset()-p.active.base) {
		t.Fatalf("compaction did not run on the closed segments: %d segments, %d repeats", len(p.segs), repeats)
	}
	t.Logf("%d cleans and %d full scans ran during the appends", cleans.Load(), reads.Load())
}

// TestInterruptedSwap simulates crashes during a compaction swap: output
// that was not committed is discarded, committed output is completed.
func TestInterruptedSwap(t *testing.T) {
	orig := t.TempDir()
	cfg := compactConfig()
	p := open(t, orig, cfg)
	var m model
	for i := range 120 {
		m.appendBatch(t, p, rec{key: []byte(fmt.Sprint("k", i%7)), value: []byte(fmt.Sprint(i)), ts: 1})
	}
	_ = p.Close()
	uncompacted := m
	uncompacted.recs = slices.Clone(m.recs)

	compacted := copyDir(t, orig)
	p = open(t, compacted, cfg)
	if err := p.Clean(time.UnixMilli(0)); err != nil {
		t.Fatal(err)
	}
	m.clean(p.active.base, 0, cfg.DeleteRetentionMs)
	m.check(t, p)
	base := p.segs[1].base // rewritten, not emptied
	_ = p.Close()
	newLog, err := os.ReadFile(filepath.Join(compacted, fileName(base, logSuffix)))
	if err != nil {
		t.Fatal(err)
	}
	if oldLog, _ := os.ReadFile(filepath.Join(orig, fileName(base, logSuffix))); bytes.Equal(oldLog, newLog) {
		t.Fatal("fixture: segment was not rewritten")
	}

	t.Run("uncommitted output discarded", func(t *testing.T) {
		d := copyDir(t, orig)
		os.WriteFile(filepath.Join(d, fileName(base, logSuffix+cleanedSuffix)), newLog, 0o644)
		os.WriteFile(filepath.Join(d, fileName(base, indexSuffix+cleanedSuffix)), []byte("junk"), 0o644)
		p := open(t, d, cfg)
		uncompacted.check(t, p)
	})
	t.Run("committed swap completed", func(t *testing.T) {
		d := copyDir(t, orig)
		// The log reached .swap; the old log and indexes are still in place
		// and one index was already replaced by junk.
		os.WriteFile(filepath.Join(d, fileName(base, logSuffix+swapSuffix)), newLog, 0o644)
		os.WriteFile(filepath.Join(d, fileName(base, timeIndexSuffix)), []byte("junk"), 0o644)
		p := open(t, d, cfg)
		got := readAll(t, p, 0)
		end := p.segs[slices.IndexFunc(p.segs, func(s *segment) bool { return s.base > base })].base
		var want []storedRecord
		for _, r := range uncompacted.recs {
			if r.offset < base || r.offset >= end {
				want = append(want, r)
			}
		}
		for _, r := range m.recs {
			if r.offset >= base && r.offset < end {
				want = append(want, r)
			}
		}
		slices.SortFunc(want, func(a, b storedRecord) int { return int(a.offset - b.offset) })
		if len(got) != len(want) {
			t.Fatalf("%d records, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i].offset != want[i].offset || !bytes.Equal(got[i].value, want[i].value) {
				t.Fatalf("record %d: %d=%q, want %d=%q", i, got[i].offset, got[i].value, want[i].offset, want[i].value)
			}
		}
		if _, err := os.Stat(filepath.Join(d, fileName(base, logSuffix+swapSuffix))); err == nil {
			t.Fatal(".swap file left behind")
		}
	})
}
