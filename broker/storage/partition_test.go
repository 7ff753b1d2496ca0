package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"testing"

	"github.com/sluice-io/sluice/broker/batch"
)

// appendMany appends n batches of 1..5 records and returns what each
// offset should hold.
func appendMany(t testing.TB, p *Partition, n int, tsOf func(i int) int64) map[int64][]byte {
	t.Helper()
	want := map[int64][]byte{}
	for i := range n {
		b := valueBatch(fmt.Sprintf("b%d", i), 1+i%5, 40, tsOf(i))
		info := mustAppend(t, p, b)
		j := 0
		_ = batch.Records(b, func(r *batch.Record) bool {
			want[info.BaseOffset+int64(j)] = bytes.Clone(r.Value)
			j++
			return true
		})
	}
	return want
}

func checkContents(t *testing.T, p *Partition, want map[int64][]byte) {
	t.Helper()
	got := readAll(t, p, p.LogStartOffset())
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		if r.offset != int64(i)+p.LogStartOffset() {
			t.Fatalf("record %d has offset %d", i, r.offset)
		}
		if !bytes.Equal(r.value, want[r.offset]) {
			t.Fatalf("offset %d: value %q, want %q", r.offset, r.value, want[r.offset])
		}
	}
}

func TestAppendReadAcrossRolls(t *testing.T) {
	dir := t.TempDir()
	p := open(t, dir, smallConfig())
	want := appendMany(t, p, 300, func(i int) int64 { return 1000 + int64(i) })
	if n := len(logFiles(t, dir)); n < 10 {
		t.Fatalf("expected many segments, got %d", n)
	}
	if p.LogEndOffset() != int64(len(want)) || p.HighWatermark() != p.LogEndOffset() {
		t.Fatalf("leo %d hw %d, want %d", p.LogEndOffset(), p.HighWatermark(), len(want))
	}
	checkContents(t, p, want)

	// Every offset can be read directly and the answer starts with the
	// batch holding it.
	for off := range p.LogEndOffset() {
		b, err := p.Read(off, 1)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		hs := headers(t, b)
		if len(hs) != 1 || hs[0].BaseOffset > off || hs[0].LastOffset() < off {
			t.Fatalf("read %d returned %+v", off, hs)
		}
		if hs[0].LeaderEpoch != 1 {
			t.Fatalf("leader epoch %d, want 1", hs[0].LeaderEpoch)
		}
	}
}

func TestReadEdges(t *testing.T) {
	p := open(t, t.TempDir(), smallConfig())
	for i := range 5 {
		mustAppend(t, p, valueBatch(fmt.Sprint(i), 3, 20, 1))
	}
	hw := p.HighWatermark()
	tests := []struct {
		name     string
		offset   int64
		maxBytes int
		batches  int   // expected number of batches, -1 for an error
		err      error // expected error
	}{
		{"at high watermark", hw, 1 << 20, 0, nil},
		{"above high watermark", hw + 1, 1 << 20, -1, ErrOffsetOutOfRange},
		{"negative", -1, 1 << 20, -1, ErrOffsetOutOfRange},
		{"tiny maxBytes still one batch", 0, 1, 1, nil},
		{"zero maxBytes still one batch", 4, 0, 1, nil},
		{"everything", 0, 1 << 20, 5, nil},
		{"from the middle of a batch", 7, 1 << 20, 3, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := p.Read(tt.offset, tt.maxBytes)
			if tt.err != nil {
				if !isErr(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(headers(t, b)); got != tt.batches {
				t.Fatalf("%d batches, want %d", got, tt.batches)
			}
		})
	}
}

func TestAppendRejectsBadInput(t *testing.T) {
	p := open(t, t.TempDir(), smallConfig())
	good := valueBatch("g", 2, 10, 1)
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 0x40
	zero := func() []byte {
		var b batch.Builder
		b.Reset(1)
		return bytes.Clone(b.Finish())
	}()
	for name, in := range map[string][]byte{
		"empty":            nil,
		"crc mismatch":     flipped,
		"trailing garbage": append(bytes.Clone(good), 1, 2, 3),
		"second batch bad": append(bytes.Clone(good), flipped...),
		"no records":       zero,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := p.Append(in, 0); !isErr(err, ErrCorruptBatch) {
				t.Fatalf("err %v, want ErrCorruptBatch", err)
			}
			if p.LogEndOffset() != 0 || p.Size() != 0 {
				t.Fatalf("rejected append wrote: leo %d size %d", p.LogEndOffset(), p.Size())
			}
		})
	}
}

func TestAppendSeveralBatchesInOneRequest(t *testing.T) {
	p := open(t, t.TempDir(), smallConfig())
	mustAppend(t, p, valueBatch("a", 2, 10, 1))
	req := append(valueBatch("b", 3, 10, 1), valueBatch("c", 4, 10, 1)...)
	info, err := p.Append(req, 7)
	if err != nil {
		t.Fatal(err)
	}
	if info.BaseOffset != 2 || info.LastOffset != 8 {
		t.Fatalf("info %+v", info)
	}
	// Offsets and epoch were rewritten in place and are what was stored.
	hs := headers(t, req)
	if hs[0].BaseOffset != 2 || hs[1].BaseOffset != 5 || hs[1].LeaderEpoch != 7 {
		t.Fatalf("request headers after append: %+v", hs)
	}
	b, err := p.Read(2, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, req) {
		t.Fatal("stored bytes differ from the appended request")
	}
}

func TestRollBySegmentAge(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	cfg.SegmentBytes = 1 << 30
	cfg.SegmentMs = 60_000
	p := open(t, dir, cfg)
	mustAppend(t, p, valueBatch("a", 1, 10, 1))
	mustAppend(t, p, valueBatch("b", 1, 10, 1))
	if n := len(logFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments before the segment is old", n)
	}
	p.mu.Lock()
	p.active.rollStartMs -= 61_000
	p.mu.Unlock()
	mustAppend(t, p, valueBatch("c", 1, 10, 1))
	if got := logFiles(t, dir); len(got) != 2 || got[1] != 2 {
		t.Fatalf("segments %v, want a roll at offset 2", got)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	p := open(t, dir, cfg)
	want := appendMany(t, p, 120, func(i int) int64 { return int64(i * 10) })
	leo := p.LogEndOffset()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Read(0, 100); !isErr(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := p.Append(valueBatch("x", 1, 1, 1), 0); !isErr(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}

	var logs logCapture
	p = openWithLog(t, dir, cfg, slogNew(&logs))
	if _, ok := logs.find(0, "reason"); ok {
		t.Fatalf("clean reopen rebuilt an index: %+v", logs.entries)
	}
	if p.LogEndOffset() != leo || p.HighWatermark() != leo {
		t.Fatalf("after reopen leo %d hw %d, want %d", p.LogEndOffset(), p.HighWatermark(), leo)
	}
	checkContents(t, p, want)
	info := mustAppend(t, p, valueBatch("next", 2, 10, 5000))
	if info.BaseOffset != leo {
		t.Fatalf("append after reopen at %d, want %d", info.BaseOffset, leo)
	}
}

func TestReopenRightAfterRoll(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	p := open(t, dir, cfg)
	want := appendMany(t, p, 40, func(i int) int64 { return int64(i) })
	// Force a roll that leaves the new active segment empty.
	p.mu.Lock()
	if err := p.roll(nowMs()); err != nil {
		t.Fatal(err)
	}
	p.mu.Unlock()
	_ = p.Close()
	p = open(t, dir, cfg)
	if p.active.size.Load() != 0 || p.active.base != p.LogEndOffset() {
		t.Fatalf("active segment base %d size %d, leo %d", p.active.base, p.active.size.Load(), p.LogEndOffset())
	}
	checkContents(t, p, want)
}

func TestSizeCountsAllSegments(t *testing.T) {
	dir := t.TempDir()
	p := open(t, dir, smallConfig())
	appendMany(t, p, 50, func(int) int64 { return 1 })
	var total int64
	for _, b := range logFiles(t, dir) {
		st, err := os.Stat(fmt.Sprintf("%s/%020d.log", dir, b))
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
	}
	if p.Size() != total {
		t.Fatalf("Size %d, files hold %d", p.Size(), total)
	}
}

func TestDeleteRemovesDirectory(t *testing.T) {
	dir := t.TempDir() + "/p"
	p := open(t, dir, smallConfig())
	appendMany(t, p, 30, func(int) int64 { return 1 })
	if err := p.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory still there: %v", err)
	}
	if _, err := p.Append(valueBatch("x", 1, 1, 1), 0); !isErr(err, ErrClosed) {
		t.Fatalf("append after delete: %v", err)
	}
}

// TestAppendDoesNotAllocate guards the hot path: once producer state and
// the index are warm, an append allocates nothing (amortized index growth
// aside, which AllocsPerRun rounds away).
func TestAppendDoesNotAllocate(t *testing.T) {
	for _, mode := range []FlushMode{FlushOS, FlushSync} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := smallConfig()
			cfg.FlushMode = mode
			cfg.SegmentBytes = 1 << 30
			p := open(t, t.TempDir(), cfg)
			plain := valueBatch("plain", 10, 100, 1)
			idem := makeProducerBatch(42, 0, 0, 5, 1)
			seq := int32(0)
			nextIdem := func() {
				// Bump the sequence in place and fix the CRC, which covers it.
				seq += 5
				binary.BigEndian.PutUint32(idem[53:], uint32(seq))
				binary.BigEndian.PutUint32(idem[17:], crc32.Checksum(idem[21:], castagnoli))
			}
			mustAppend(t, p, plain)
			mustAppend(t, p, idem)
			allocs := testing.AllocsPerRun(200, func() {
				if _, err := p.Append(plain, 0); err != nil {
					t.Fatal(err)
				}
				nextIdem()
				if _, err := p.Append(idem, 0); err != nil {
					t.Fatal(err)
				}
			})
			if allocs > 0 {
				t.Fatalf("%.1f allocations per two appends", allocs)
			}
		})
	}
}
