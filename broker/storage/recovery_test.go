package storage

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-io/sluice/broker/batch"
)

// crashFixture is a closed partition whose active segment has several
// batches, with the layout of that segment recorded.
type crashFixture struct {
	dir     string
	cfg     Config
	active  string         // path of the active segment's log
	orig    []byte         // its bytes
	batches []batch.Header // its batches, in order
	pos     []int64        // their positions
	want    map[int64][]byte
}

func newCrashFixture(t *testing.T) *crashFixture {
	t.Helper()
	f := &crashFixture{dir: t.TempDir(), cfg: smallConfig()}
	f.cfg.SegmentBytes = 3000
	f.cfg.IndexIntervalBytes = 200
	p := open(t, f.dir, f.cfg)
	f.want = appendMany(t, p, 40, func(i int) int64 { return int64(100 + i) })
	active := p.active
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if active.base == 0 {
		t.Fatal("fixture needs closed segments before the active one")
	}
	f.active = active.path(logSuffix)
	var err error
	if f.orig, err = os.ReadFile(f.active); err != nil {
		t.Fatal(err)
	}
	for pos := 0; pos < len(f.orig); {
		h, err := batch.Validate(f.orig[pos:])
		if err != nil {
			t.Fatal(err)
		}
		f.batches = append(f.batches, h)
		f.pos = append(f.pos, int64(pos))
		pos += h.Size()
	}
	if len(f.batches) < 4 {
		t.Fatalf("active segment has only %d batches", len(f.batches))
	}
	return f
}

// damaged copies the partition, lets damage change the active segment's
// bytes, and opens the copy.
func (f *crashFixture) damaged(t *testing.T, damage func([]byte) []byte) (*Partition, *logCapture) {
	t.Helper()
	dir := copyDir(t, f.dir)
	path := filepath.Join(dir, filepath.Base(f.active))
	if err := os.WriteFile(path, damage(bytes.Clone(f.orig)), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs logCapture
	p, err := OpenPartition(dir, f.cfg, slog.New(&logs))
	if err != nil {
		t.Fatalf("open damaged copy: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, &logs
}

// checkSurvivors checks that exactly the first keep batches of the active
// segment (and everything before it) are intact and readable, and that
// appending continues right after them.
func (f *crashFixture) checkSurvivors(t *testing.T, p *Partition, keep int, damagedLen int, logs *logCapture) {
	t.Helper()
	end := f.batches[0].BaseOffset
	goodLen := int64(0)
	if keep > 0 {
		end = f.batches[keep-1].NextOffset()
		goodLen = f.pos[keep-1] + int64(f.batches[keep-1].Size())
	}
	if p.LogEndOffset() != end || p.HighWatermark() != end {
		t.Fatalf("leo %d hw %d, want %d", p.LogEndOffset(), p.HighWatermark(), end)
	}
	got := readAll(t, p, 0)
	if int64(len(got)) != end {
		t.Fatalf("read %d records, want %d", len(got), end)
	}
	for _, r := range got {
		if !bytes.Equal(r.value, f.want[r.offset]) {
			t.Fatalf("offset %d damaged: %q", r.offset, r.value)
		}
	}
	if cut := int64(damagedLen) - goodLen; cut > 0 {
		e, ok := logs.find(slog.LevelWarn, "bytes_cut")
		if !ok || e.attrs["bytes_cut"] != cut {
			t.Fatalf("want a warning that %d bytes were cut, got %+v", cut, logs.entries)
		}
	}
	info, err := p.Append(valueBatch("after", 2, 10, 9999), 3)
	if err != nil || info.BaseOffset != end {
		t.Fatalf("append after recovery: %+v %v, want base %d", info, err, end)
	}
	if got := readAll(t, p, end); len(got) != 2 || got[0].offset != end {
		t.Fatalf("appended records read back as %+v", got)
	}
}

// TestCorruptTailTruncated cuts the active segment at every byte of its
// last batches (and a sample of the rest) as a crash mid-write would.
func TestCorruptTailTruncated(t *testing.T) {
	f := newCrashFixture(t)
	n := len(f.batches)
	for cut := 0; cut <= len(f.orig); cut++ {
		if (cut < int(f.pos[n-2]) && cut%29 != 0) || (testing.Short() && cut%7 != 0) {
			continue
		}
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			t.Parallel()
			p, logs := f.damaged(t, func(b []byte) []byte { return b[:cut] })
			keep := 0
			for keep < n && f.pos[keep]+int64(f.batches[keep].Size()) <= int64(cut) {
				keep++
			}
			f.checkSurvivors(t, p, keep, cut, logs)
		})
	}
}

// TestCorruptTailBitFlip flips one bit at a time in the active segment.
// Recovery must keep every batch before the damaged one. The leader epoch
// is covered neither by the CRC nor by offset continuity, so a flip there
// goes unnoticed, which is harmless.
func TestCorruptTailBitFlip(t *testing.T) {
	f := newCrashFixture(t)
	n := len(f.batches)
	for i := 0; i < len(f.orig); i++ {
		inLast := i >= int(f.pos[n-1])
		inHeader := i >= int(f.pos[n-2]) && i < int(f.pos[n-2])+batch.HeaderSize
		if (!inLast && !inHeader && i%41 != 0) || (testing.Short() && i%7 != 0) {
			continue
		}
		bit := byte(1) << (i % 8)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			p, logs := f.damaged(t, func(b []byte) []byte { b[i] ^= bit; return b })
			k := 0
			for k+1 < n && f.pos[k+1] <= int64(i) {
				k++
			}
			if rel := int64(i) - f.pos[k]; rel >= 12 && rel < 16 {
				f.checkSurvivors(t, p, n, len(f.orig), logs)
				return
			}
			f.checkSurvivors(t, p, k, len(f.orig), logs)
		})
	}
}

// TestGarbageAfterTail covers a crash that extended the file with zeros
// (or junk) but wrote no complete batch.
func TestGarbageAfterTail(t *testing.T) {
	f := newCrashFixture(t)
	for name, junk := range map[string][]byte{
		"zeros":    make([]byte, 4096),
		"repeat":   f.orig[:200],
		"one byte": {0},
	} {
		t.Run(name, func(t *testing.T) {
			p, logs := f.damaged(t, func(b []byte) []byte { return append(b, junk...) })
			f.checkSurvivors(t, p, len(f.batches), len(f.orig)+len(junk), logs)
		})
	}
}

// TestDamagedIndexRebuilt damages a closed segment's index files in many
// ways; reads and timestamp lookups must stay correct, and damage that can
// be detected on open must lead to a rebuilt, valid index file.
func TestDamagedIndexRebuilt(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	cfg.IndexIntervalBytes = 200
	p := open(t, dir, cfg)
	want := appendMany(t, p, 120, func(i int) int64 { return int64(1000 + i) })
	type answer struct{ off, ts int64 }
	answers := map[int64]answer{}
	for ts := int64(990); ts < 1130; ts++ {
		o, tt, err := p.OffsetForTimestamp(ts)
		if err != nil {
			t.Fatal(err)
		}
		answers[ts] = answer{o, tt}
	}
	seg := p.segs[1] // a closed segment
	if seg == p.active || seg.index.len() < 3 {
		t.Fatal("fixture needs a closed segment with several index entries")
	}
	entries := append([]indexEntry(nil), seg.index.entries...)
	size := seg.size.Load()
	_ = p.Close()
	base := seg.base
	indexPath := func(d string) string { return filepath.Join(d, fileName(base, indexSuffix)) }
	timePath := func(d string) string { return filepath.Join(d, fileName(base, timeIndexSuffix)) }
	encode := func(es []indexEntry) []byte {
		var x offsetIndex
		for _, e := range es {
			x.add(e.rel, e.pos)
		}
		return x.encode(size)
	}
	damage := []struct {
		name       string
		do         func(d string) error
		detectable bool
	}{
		{"index missing", func(d string) error { return os.Remove(indexPath(d)) }, true},
		{"time index missing", func(d string) error { return os.Remove(timePath(d)) }, true},
		{"both missing", func(d string) error { os.Remove(indexPath(d)); return os.Remove(timePath(d)) }, true},
		{"index truncated", func(d string) error { return os.Truncate(indexPath(d), 11) }, true},
		{"index empty", func(d string) error { return os.Truncate(indexPath(d), 0) }, true},
		{"time index truncated", func(d string) error { return os.Truncate(timePath(d), 20) }, true},
		{"index garbled", func(d string) error {
			b, _ := os.ReadFile(indexPath(d))
			b[5] ^= 0xff
			return os.WriteFile(indexPath(d), b, 0o644)
		}, true},
		{"time index garbled", func(d string) error {
			b, _ := os.ReadFile(timePath(d))
			b[3] ^= 0x10
			return os.WriteFile(timePath(d), b, 0o644)
		}, true},
		{"valid checksum, not monotonic", func(d string) error {
			es := append([]indexEntry(nil), entries...)
			es[0], es[1] = es[1], es[0]
			return os.WriteFile(indexPath(d), encode(es), 0o644)
		}, true},
		{"valid checksum, points past the log", func(d string) error {
			es := append([]indexEntry(nil), entries...)
			es[len(es)-1].pos = uint32(size + 10)
			return os.WriteFile(indexPath(d), encode(es), 0o644)
		}, true},
		{"valid checksum, last entry mid-batch", func(d string) error {
			es := append([]indexEntry(nil), entries...)
			es[len(es)-1].pos += 3
			return os.WriteFile(indexPath(d), encode(es), 0o644)
		}, true},
		{"valid checksum, middle entry mid-batch", func(d string) error {
			es := append([]indexEntry(nil), entries...)
			es[1].pos += 3
			return os.WriteFile(indexPath(d), encode(es), 0o644)
		}, false},
		{"index for another log size", func(d string) error {
			var x offsetIndex
			for _, e := range entries {
				x.add(e.rel, e.pos)
			}
			return os.WriteFile(indexPath(d), x.encode(size+1), 0o644)
		}, true},
	}
	for _, tt := range damage {
		t.Run(tt.name, func(t *testing.T) {
			d := copyDir(t, dir)
			if err := tt.do(d); err != nil {
				t.Fatal(err)
			}
			var logs logCapture
			p := openWithLog(t, d, cfg, slog.New(&logs))
			_, rebuilt := logs.find(slog.LevelWarn, "reason")
			if rebuilt != tt.detectable {
				t.Fatalf("rebuilt=%v, want %v (logs %+v)", rebuilt, tt.detectable, logs.entries)
			}
			checkContents(t, p, want)
			for ts, a := range answers {
				o, tt, err := p.OffsetForTimestamp(ts)
				if err != nil || o != a.off || tt != a.ts {
					t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v; want %+v", ts, o, tt, err, a)
				}
			}
			if tt.detectable {
				b, err := os.ReadFile(indexPath(d))
				if err != nil {
					t.Fatal(err)
				}
				var x offsetIndex
				if err := x.decode(b, size, 1<<32); err != nil || x.len() != len(entries) {
					t.Fatalf("rebuilt index: %v, %d entries, want %d", err, x.len(), len(entries))
				}
			}
		})
	}
}

// TestDamagedClosedSegmentCut covers a closed segment whose log is damaged
// and whose index is missing, so the rebuild scans into the damage.
func TestDamagedClosedSegmentCut(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	p := open(t, dir, cfg)
	want := appendMany(t, p, 80, func(i int) int64 { return int64(i) })
	seg := p.segs[1]
	leo := p.LogEndOffset()
	_ = p.Close()
	path := seg.path(logSuffix)
	b, _ := os.ReadFile(path)
	h, _ := batch.ParseHeader(b)
	b[h.Size()+40] ^= 0xff // inside the second batch
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(seg.path(indexSuffix)); err != nil {
		t.Fatal(err)
	}
	p = open(t, dir, cfg)
	if p.LogEndOffset() != leo {
		t.Fatalf("leo %d, want %d: later segments must stay", p.LogEndOffset(), leo)
	}
	got := readAll(t, p, 0)
	lost := 0
	for off := range leo {
		if off > h.LastOffset() && off < p.segs[2].base {
			lost++
			continue
		}
		if len(got) == 0 || got[0].offset != off || !bytes.Equal(got[0].value, want[off]) {
			t.Fatalf("offset %d missing or wrong", off)
		}
		got = got[1:]
	}
	if lost == 0 || len(got) != 0 {
		t.Fatalf("lost %d, %d extra records", lost, len(got))
	}
}

// TestLeftoverFiles opens a directory littered with what interrupted
// operations leave behind.
func TestLeftoverFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	p := open(t, dir, cfg)
	want := appendMany(t, p, 60, func(i int) int64 { return int64(i) })
	bases := logFiles(t, dir)
	_ = p.Close()
	mid := (bases[1] + bases[2]) / 2
	files := map[string][]byte{
		fileName(bases[1], logSuffix+cleanedSuffix):         []byte("half-written compaction output"),
		fileName(bases[1], indexSuffix+cleanedSuffix):       {1, 2, 3},
		fileName(bases[2], snapshotSuffix+tmpSuffix):        {9},
		fileName(bases[0], logSuffix+deletedSuffix):         {7},
		fileName(99999999, indexSuffix):                     {0, 0},
		fileName(99999999, timeIndexSuffix):                 {0, 0},
		fileName(mid, logSuffix):                            nil, // empty segment in the middle
		"notes.txt":                                         []byte("not ours"),
		fileName(bases[len(bases)-1]+1<<40, snapshotSuffix): []byte("beyond the log end"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p = open(t, dir, cfg)
	checkContents(t, p, want)
	for name := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if keep := name == "notes.txt"; keep != (err == nil) {
			t.Errorf("%s: exists=%v after open", name, err == nil)
		}
	}
}

// TestEmptyFirstSegmentKept checks that an empty first segment (left by
// compaction) anchors the log start offset across a reopen.
func TestEmptyFirstSegmentKept(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	p := open(t, dir, cfg)
	appendMany(t, p, 60, func(i int) int64 { return int64(i) })
	_ = p.Close()
	first := filepath.Join(dir, fileName(0, logSuffix))
	if err := os.Truncate(first, 0); err != nil {
		t.Fatal(err)
	}
	p = open(t, dir, cfg)
	if p.LogStartOffset() != 0 {
		t.Fatalf("log start %d, want 0", p.LogStartOffset())
	}
	b, err := p.Read(0, 100)
	if err != nil || len(b) == 0 {
		t.Fatalf("read at 0: %d bytes, %v", len(b), err)
	}
	if h, _ := batch.ParseHeader(b); h.BaseOffset != p.segs[1].base {
		t.Fatalf("read at 0 starts at %d, want the next segment's first batch %d", h.BaseOffset, p.segs[1].base)
	}
}

// TestReadChecksCRC damages a batch in a closed segment, which recovery
// does not rescan: Read must serve the good batches before it, stop there,
// and report the damaged one rather than return it.
func TestReadChecksCRC(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	p := open(t, dir, cfg)
	appendMany(t, p, 60, func(i int) int64 { return int64(i) })
	seg := p.segs[1]
	_ = p.Close()
	path := seg.path(logSuffix)
	b, _ := os.ReadFile(path)
	h0, _ := batch.ParseHeader(b)
	h1, _ := batch.ParseHeader(b[h0.Size():])
	b[h0.Size()+h1.Size()-1] ^= 0x01 // last byte of the second batch
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p = open(t, dir, cfg)
	got, err := p.Read(h0.BaseOffset, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if hs := headers(t, got); len(hs) != 1 || hs[0].BaseOffset != h0.BaseOffset {
		t.Fatalf("read before the damage returned %+v", hs)
	}
	if _, err := p.Read(h1.BaseOffset, 1<<20); !isErr(err, ErrCorruptBatch) {
		t.Fatalf("read of the damaged batch: %v", err)
	}
	// Past the damage everything is served again.
	if got, err := p.Read(h1.NextOffset(), 1<<20); err != nil || len(got) == 0 {
		t.Fatalf("read after the damage: %d bytes, %v", len(got), err)
	}
}
