package storage

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-io/sluice/broker/batch"
)

// storedBatch is what the test expects one batch of the log to be.
type storedBatch struct {
	base, last int64
	epoch      int32
	raw        []byte // as stored (offset and epoch assigned)
	produced   []byte // as the producer sent it, for retries; nil if not idempotent
}

// expectedEpochs is the leader-epoch cache that batches imply: an entry
// wherever a batch's epoch exceeds every earlier one.
func expectedEpochs(bs []storedBatch) []EpochEntry {
	var out []EpochEntry
	for _, b := range bs {
		if len(out) == 0 || b.epoch > out[len(out)-1].Epoch {
			out = append(out, EpochEntry{b.epoch, b.base})
		}
	}
	return out
}

func concatRaw(bs []storedBatch) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b.raw...)
	}
	return out
}

// buildLog appends n batches of 1..4 records through Append, every fifth
// one from idempotent producer 9, with the leader epoch going up every
// 25 batches.
func buildLog(t *testing.T, p *Partition, n int) []storedBatch {
	t.Helper()
	var out []storedBatch
	seq := int32(0)
	for i := range n {
		epoch := int32(i / 25)
		var b, produced []byte
		if i%5 == 0 {
			b = makeProducerBatch(9, 0, seq, 1+i%4, 1000)
			seq += int32(1 + i%4)
			produced = slices.Clone(b)
		} else {
			b = valueBatch(fmt.Sprintf("b%d", i), 1+i%4, 40, 1000+int64(i))
		}
		info, err := p.Append(b, epoch)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, storedBatch{info.BaseOffset, info.LastOffset, epoch, b, produced})
	}
	return out
}

// keptBefore returns the batches that survive TruncateTo(offset).
func keptBefore(bs []storedBatch, offset int64) []storedBatch {
	i := 0
	for i < len(bs) && bs[i].last < offset {
		i++
	}
	return bs[:i]
}

func TestTruncateTo(t *testing.T) {
	for _, tc := range []struct {
		name string
		// offset picks the truncation point from the log as built.
		offset func(bs []storedBatch, segBases []int64) int64
	}{
		{"active segment at a batch boundary", func(bs []storedBatch, _ []int64) int64 { return bs[len(bs)-3].base }},
		{"active segment mid-batch", func(bs []storedBatch, _ []int64) int64 { return bs[len(bs)-2].base + 1 }},
		{"earlier segment at a batch boundary", func(bs []storedBatch, segs []int64) int64 {
			return keptBefore(bs, segs[2])[len(keptBefore(bs, segs[2]))-2].base
		}},
		{"earlier segment mid-batch", func(bs []storedBatch, segs []int64) int64 {
			for _, b := range bs {
				if b.base > segs[1] && b.last > b.base {
					return b.base + 1
				}
			}
			panic("no multi-record batch")
		}},
		{"at a segment base", func(_ []storedBatch, segs []int64) int64 { return segs[3] }},
		{"log start", func([]storedBatch, []int64) int64 { return 0 }},
		{"log end", func(bs []storedBatch, _ []int64) int64 { return bs[len(bs)-1].last + 1 }},
		{"past the log end", func(bs []storedBatch, _ []int64) int64 { return bs[len(bs)-1].last + 10 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := smallConfig()
			cfg.ExternalHW = true
			p := open(t, dir, cfg)
			bs := buildLog(t, p, 150)
			leo := p.LogEndOffset()
			p.SetHighWatermark(leo)
			segBases := logFiles(t, dir)
			if len(segBases) < 5 {
				t.Fatalf("fixture: %d segments", len(segBases))
			}
			offset := tc.offset(bs, segBases)
			kept := keptBefore(bs, offset)
			wantEnd := leo
			if len(kept) < len(bs) {
				wantEnd = bs[len(kept)].base
			}

			end, err := p.TruncateTo(offset)
			if err != nil {
				t.Fatal(err)
			}
			if end != wantEnd || p.LogEndOffset() != wantEnd || p.HighWatermark() != wantEnd || p.DurableEnd() != wantEnd {
				t.Fatalf("truncate to %d: end %d leo %d hw %d durable %d, want %d",
					offset, end, p.LogEndOffset(), p.HighWatermark(), p.DurableEnd(), wantEnd)
			}
			check := func(when string) {
				t.Helper()
				if got := readRaw(t, p); !bytes.Equal(got, concatRaw(kept)) {
					t.Fatalf("%s: contents differ (%d bytes, want %d)", when, len(got), len(concatRaw(kept)))
				}
				if got, want := p.EpochEntries(), expectedEpochs(kept); !slices.Equal(got, want) {
					t.Fatalf("%s: epoch cache %v, want %v", when, got, want)
				}
				files := logFiles(t, dir)
				if files[len(files)-1] > p.LogEndOffset() {
					t.Fatalf("%s: segment files %v past the log end %d", when, files, p.LogEndOffset())
				}
				for _, f := range files {
					if !slices.Contains(segBases, f) {
						t.Fatalf("%s: unexpected segment %d", when, f)
					}
				}
			}
			check("after truncate")

			// Producer state rolled back with the log: a retry of a kept
			// batch is a duplicate, a retry of a removed one is new.
			var lastKept, firstGone *storedBatch
			for i := range kept {
				if kept[i].produced != nil {
					lastKept = &kept[i]
				}
			}
			for i := len(kept); i < len(bs); i++ {
				if bs[i].produced != nil {
					firstGone = &bs[i]
					break
				}
			}
			latest := bs[len(bs)-1].epoch
			if lastKept != nil {
				if info, err := p.Append(slices.Clone(lastKept.produced), latest); !isErr(err, ErrDuplicateSequence) || info.BaseOffset != lastKept.base {
					t.Fatalf("retry of a kept batch: %+v %v", info, err)
				}
			}
			if firstGone != nil {
				raw := slices.Clone(firstGone.produced)
				info, err := p.Append(raw, latest)
				if err != nil || info.BaseOffset != end {
					t.Fatalf("retry of a removed batch: %+v %v, want it appended at %d", info, err, end)
				}
				kept = append(slices.Clone(kept), storedBatch{info.BaseOffset, info.LastOffset, latest, raw, firstGone.produced})
				segBases = append(segBases, logFiles(t, dir)...) // a retry may roll
			}
			check("after a retry")

			// Recovery agrees, and appends go on at the new end.
			wantLEO := p.LogEndOffset()
			_ = p.Close()
			p = open(t, dir, cfg)
			if p.LogEndOffset() != wantLEO {
				t.Fatalf("after reopen log end %d, want %d", p.LogEndOffset(), wantLEO)
			}
			check("after reopen")
			if lastKept != nil {
				if _, err := p.Append(slices.Clone(lastKept.produced), latest); !isErr(err, ErrDuplicateSequence) {
					t.Fatalf("retry of a kept batch after reopen: %v", err)
				}
			}
			if info := mustAppend(t, p, valueBatch("next", 2, 10, 1)); info.BaseOffset != wantLEO {
				t.Fatalf("append after reopen at %d, want %d", info.BaseOffset, wantLEO)
			}
		})
	}
}

func TestTruncateFullyAndStartAt(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	p := open(t, dir, cfg)
	buildLog(t, p, 60)
	if err := p.TruncateFullyAndStartAt(1000); err != nil {
		t.Fatal(err)
	}
	if p.LogStartOffset() != 1000 || p.LogEndOffset() != 1000 || p.HighWatermark() != 1000 || p.DurableEnd() != 1000 {
		t.Fatalf("lso %d leo %d hw %d durable %d, want 1000", p.LogStartOffset(), p.LogEndOffset(), p.HighWatermark(), p.DurableEnd())
	}
	if files := logFiles(t, dir); !slices.Equal(files, []int64{1000}) {
		t.Fatalf("segment files %v", files)
	}
	if len(p.EpochEntries()) != 0 {
		t.Fatalf("epoch cache %v, want empty", p.EpochEntries())
	}
	// The producer is forgotten with its batches.
	if _, err := p.Append(makeProducerBatch(9, 0, 0, 1, 1000), 5); err != nil {
		t.Fatalf("producer restarting at sequence 0: %v", err)
	}
	if info := mustAppend(t, p, valueBatch("x", 2, 10, 1)); info.BaseOffset != 1001 {
		t.Fatalf("append at %d, want 1001", info.BaseOffset)
	}
	want := readRaw(t, p)
	_ = p.Close()
	p = open(t, dir, cfg)
	if p.LogStartOffset() != 1000 || p.LogEndOffset() != 1003 || !bytes.Equal(readRaw(t, p), want) {
		t.Fatalf("after reopen lso %d leo %d", p.LogStartOffset(), p.LogEndOffset())
	}
	if e := p.EpochEntries(); !slices.Equal(e, []EpochEntry{{5, 1000}}) {
		t.Fatalf("epoch cache %v", e)
	}

	// TruncateTo below the log start is a full truncation.
	if end, err := p.TruncateTo(10); err != nil || end != 10 || p.LogStartOffset() != 10 || p.LogEndOffset() != 10 {
		t.Fatalf("truncate below the log start: %d %v, lso %d", end, err, p.LogStartOffset())
	}
	if files := logFiles(t, dir); !slices.Equal(files, []int64{10}) {
		t.Fatalf("segment files %v", files)
	}
}

// TestTruncateCompactedSegment: a closed segment with offset gaps cannot
// become the active one (recovery would cut it at the first gap), so it
// stays closed and an empty active segment follows it.
func TestTruncateCompactedSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	cfg.Compact, cfg.Delete = true, false
	p := open(t, dir, cfg)
	for i := range 120 {
		// Every other record overwrites the same key, so compaction
		// leaves a gap between every two batches.
		key := fmt.Sprint(i)
		if i%2 == 0 {
			key = "hot"
		}
		mustAppend(t, p, makeBatch(rec{key: []byte(key), value: bytes.Repeat([]byte{'v'}, 60), ts: 1000}))
	}
	if err := p.Clean(time.Now()); err != nil {
		t.Fatal(err)
	}
	seg := p.segs[1]
	hs := headers(t, mustRead(t, p, seg.base))
	if len(hs) < 3 || hs[1].BaseOffset == hs[0].NextOffset() {
		t.Fatalf("fixture: segment %d has no gap after compaction: %v", seg.base, hs)
	}
	// Keep two batches with a gap between them.
	end, err := p.TruncateTo(hs[2].LastOffset())
	if err != nil || end != hs[1].NextOffset() {
		t.Fatalf("truncate: %d %v, want %d", end, err, hs[1].NextOffset())
	}
	want := readRaw(t, p)
	_ = p.Close()
	p = open(t, dir, cfg)
	if p.LogEndOffset() != end || !bytes.Equal(readRaw(t, p), want) {
		t.Fatalf("after reopen log end %d, want %d", p.LogEndOffset(), end)
	}
	if info := mustAppend(t, p, valueBatch("x", 1, 10, 1)); info.BaseOffset != end {
		t.Fatalf("append at %d, want %d", info.BaseOffset, end)
	}
}

func mustRead(t *testing.T, p *Partition, off int64) []byte {
	t.Helper()
	b, err := p.ReadReplica(nil, off, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTruncateConcurrent runs truncations against readers and group-commit
// appenders: run under -race, it checks that readers only ever see whole
// batches and that no appender hangs on offsets a truncation removed.
func TestTruncateConcurrent(t *testing.T) {
	cfg := smallConfig()
	cfg.FlushMode = FlushSync
	p := open(t, t.TempDir(), cfg)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				off := int64(i*7+r) % (p.LogEndOffset() + 1)
				b, err := p.ReadReplica(nil, off, 2000)
				if err != nil && !isErr(err, ErrOffsetOutOfRange) {
					t.Errorf("read at %d: %v", off, err)
					return
				}
				for rest := b; len(rest) > 0; {
					_, _, rest, err = batch.Next(rest)
					if err != nil {
						t.Errorf("read at %d returned a bad batch: %v", off, err)
						return
					}
				}
			}
		}()
	}
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := p.Append(valueBatch(fmt.Sprint(w, i), 1+i%3, 30, 1), 1)
				if err != nil && !isErr(err, errTruncated) {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	truncations := 0
	for range 100 {
		// Let the appenders get ahead; a spin, not a sleep, bounded in
		// case they stopped on an error.
		for j := 0; j < 1e6 && p.LogEndOffset() < 4; j++ {
			runtime.Gosched()
		}
		if p.LogEndOffset() >= 4 {
			truncations++
		}
		if _, err := p.TruncateTo(p.LogEndOffset() / 2); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if truncations < 50 {
		t.Fatalf("only %d truncations cut something", truncations)
	}
}

func TestEpochCache(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	p := open(t, dir, cfg)
	if p.LatestEpoch() != -1 {
		t.Fatalf("latest epoch of an empty log %d", p.LatestEpoch())
	}
	if e, o := p.EndOffsetForEpoch(0); e != -1 || o != -1 {
		t.Fatalf("empty cache: (%d, %d)", e, o)
	}
	for _, epoch := range []int32{0, 0, 1, 3} {
		mustAppendEpoch(t, p, valueBatch("e", 2, 10, 1), epoch)
	}
	want := []EpochEntry{{0, 0}, {1, 4}, {3, 6}}
	checkEpochs := func(when string) {
		t.Helper()
		if got := p.EpochEntries(); !slices.Equal(got, want) {
			t.Fatalf("%s: entries %v, want %v", when, got, want)
		}
		if p.LatestEpoch() != 3 {
			t.Fatalf("%s: latest epoch %d", when, p.LatestEpoch())
		}
		for _, tc := range []struct {
			epoch, wantEpoch int32
			wantEnd          int64
		}{
			{-1, -1, -1},
			{0, 0, 4},
			{1, 1, 6},
			{2, 1, 6},
			{3, 3, 8},
			{5, 3, 8},
		} {
			if e, o := p.EndOffsetForEpoch(tc.epoch); e != tc.wantEpoch || o != tc.wantEnd {
				t.Fatalf("%s: EndOffsetForEpoch(%d) = (%d, %d), want (%d, %d)", when, tc.epoch, e, o, tc.wantEpoch, tc.wantEnd)
			}
		}
	}
	checkEpochs("after appends")

	// Appends in the current epoch do not rewrite the checkpoint.
	path := filepath.Join(dir, epochCheckpointName)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	mustAppendEpoch(t, p, valueBatch("e", 2, 10, 1), 3)
	mustAppendEpoch(t, p, valueBatch("e", 2, 10, 1), 2) // a stale epoch adds nothing
	if after, err := os.Stat(path); err != nil || !os.SameFile(before, after) {
		t.Fatalf("checkpoint rewritten by appends in the same epoch (%v)", err)
	}
	if _, err := p.TruncateTo(8); err != nil {
		t.Fatal(err)
	}

	reopen := func(damage func()) {
		t.Helper()
		_ = p.Close()
		damage()
		p = open(t, dir, cfg)
	}
	reopen(func() {})
	checkEpochs("after reopen")
	reopen(func() { _ = os.Remove(path) })
	checkEpochs("after the checkpoint was deleted")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("rebuilt checkpoint not written: %v", err)
	}
	reopen(func() {
		b, _ := os.ReadFile(path)
		b[12] ^= 0x40
		_ = os.WriteFile(path, b, 0o644)
	})
	checkEpochs("after the checkpoint was corrupted")
	reopen(func() { _ = os.WriteFile(path, []byte("junk"), 0o644) })
	checkEpochs("after the checkpoint was replaced by junk")

	// An entry past the recovered log end (its data was lost) is dropped.
	reopen(func() {
		_ = os.WriteFile(path, encodeEpochs([]EpochEntry{{0, 0}, {1, 4}, {3, 6}, {4, 8}}), 0o644)
	})
	checkEpochs("after a checkpoint with an entry at the log end")

	// Below the first entry there is no answer.
	p2 := open(t, t.TempDir(), cfg)
	mustAppendEpoch(t, p2, valueBatch("e", 2, 10, 1), 2)
	if e, o := p2.EndOffsetForEpoch(1); e != -1 || o != -1 {
		t.Fatalf("epoch below the first entry: (%d, %d)", e, o)
	}
}

func mustAppendEpoch(t *testing.T, p *Partition, b []byte, epoch int32) AppendInfo {
	t.Helper()
	info, err := p.Append(b, epoch)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestEpochCacheRetention: retention moving the log start trims the cache
// from the start, keeping the epoch that owns the new log start.
func TestEpochCacheRetention(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	cfg.RetentionBytes = 10 << 10
	p := open(t, dir, cfg)
	bs := buildLog(t, p, 150)
	if err := p.Clean(time.Now()); err != nil {
		t.Fatal(err)
	}
	lso := p.LogStartOffset()
	if lso == 0 {
		t.Fatal("fixture: retention deleted nothing")
	}
	var want []EpochEntry
	for _, e := range expectedEpochs(bs) {
		switch {
		case e.StartOffset <= lso:
			want = []EpochEntry{{e.Epoch, lso}}
		default:
			want = append(want, e)
		}
	}
	if got := p.EpochEntries(); !slices.Equal(got, want) {
		t.Fatalf("entries %v, want %v (log start %d)", got, want, lso)
	}
	_ = p.Close()
	p = open(t, dir, cfg)
	if got := p.EpochEntries(); !slices.Equal(got, want) {
		t.Fatalf("after reopen entries %v, want %v", got, want)
	}
	_ = p.Close()
	_ = os.Remove(filepath.Join(dir, epochCheckpointName))
	p = open(t, dir, cfg)
	if got := p.EpochEntries(); !slices.Equal(got, want) {
		t.Fatalf("rebuilt entries %v, want %v", got, want)
	}
}
