package storage

import (
	"fmt"
	"testing"
	"time"
)

// fillSegments appends batches with timestamp 1000*i until there are at
// least n segments, and returns each segment's base offset and max
// timestamp.
func fillSegments(t *testing.T, p *Partition, n int) {
	t.Helper()
	for i := 0; len(p.segs) < n; i++ {
		mustAppend(t, p, valueBatch(fmt.Sprint(i), 3, 40, int64(1000*i)))
	}
}

func TestRetentionByTime(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	cfg.RetentionMs = 10_000
	p := open(t, dir, cfg)
	fillSegments(t, p, 6)
	segs := append([]*segment(nil), p.segs...)
	leo := p.LogEndOffset()

	// "now" such that segments 0 and 1 are past retention and 2 is not.
	now := segs[1].maxTS.Load() + cfg.RetentionMs + 1
	if segs[2].maxTS.Load() < now-cfg.RetentionMs {
		t.Fatal("fixture: segment 2 should be within retention")
	}
	if err := p.Clean(time.UnixMilli(now)); err != nil {
		t.Fatal(err)
	}
	if got := logFiles(t, dir); got[0] != segs[2].base || len(got) != len(segs)-2 {
		t.Fatalf("segments %v, want the first two gone", got)
	}
	if p.LogStartOffset() != segs[2].base || p.LogEndOffset() != leo {
		t.Fatalf("log start %d end %d", p.LogStartOffset(), p.LogEndOffset())
	}
	if _, err := p.Read(segs[2].base-1, 100); !isErr(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below log start: %v", err)
	}
	if got := readAll(t, p, p.LogStartOffset()); got[0].offset != segs[2].base || int64(len(got)) != leo-segs[2].base {
		t.Fatalf("remaining records %d from %d", len(got), got[0].offset)
	}

	// Everything expired: all closed segments go, the active one stays.
	if err := p.Clean(time.UnixMilli(1 << 50)); err != nil {
		t.Fatal(err)
	}
	if got := logFiles(t, dir); len(got) != 1 || got[0] != p.active.base {
		t.Fatalf("segments %v, want only the active one", got)
	}
	// Reopen: the log start offset is the first remaining segment.
	_ = p.Close()
	p = open(t, dir, cfg)
	if p.LogStartOffset() != segs[len(segs)-1].base || p.LogEndOffset() != leo {
		t.Fatalf("after reopen log start %d end %d", p.LogStartOffset(), p.LogEndOffset())
	}
}

func TestRetentionBySize(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	p := open(t, dir, cfg)
	fillSegments(t, p, 8)
	segSize := p.segs[0].size.Load()
	cfg.RetentionBytes = 3*segSize + segSize/2
	p.UpdateConfig(cfg)
	if err := p.Clean(time.UnixMilli(0)); err != nil {
		t.Fatal(err)
	}
	size := p.Size()
	first := p.segs[0].size.Load()
	if size < cfg.RetentionBytes || size-first >= cfg.RetentionBytes {
		t.Fatalf("size %d (first segment %d) with retention.bytes %d: deleted too much or too little", size, first, cfg.RetentionBytes)
	}
	if len(logFiles(t, dir)) != len(p.segs) {
		t.Fatal("files and segments disagree")
	}
	if _, err := p.Read(0, 100); !isErr(err, ErrOffsetOutOfRange) {
		t.Fatalf("read of a deleted offset: %v", err)
	}

	// With a limit of zero only the active segment can remain.
	cfg.RetentionBytes = 0
	p.UpdateConfig(cfg)
	if err := p.Clean(time.UnixMilli(0)); err != nil {
		t.Fatal(err)
	}
	if len(p.segs) != 1 || p.LogStartOffset() != p.active.base {
		t.Fatalf("%d segments, log start %d", len(p.segs), p.LogStartOffset())
	}
}

func TestRetentionDisabled(t *testing.T) {
	cfg := smallConfig()
	cfg.RetentionMs, cfg.RetentionBytes = -1, -1
	p := open(t, t.TempDir(), cfg)
	fillSegments(t, p, 4)
	if err := p.Clean(time.UnixMilli(1 << 50)); err != nil {
		t.Fatal(err)
	}
	cfg.Delete = false
	cfg.RetentionMs = 0
	p.UpdateConfig(cfg)
	if err := p.Clean(time.UnixMilli(1 << 50)); err != nil {
		t.Fatal(err)
	}
	if len(p.segs) != 4 || p.LogStartOffset() != 0 {
		t.Fatalf("retention deleted data: %d segments", len(p.segs))
	}
}

func TestRetentionEvictsProducers(t *testing.T) {
	cfg := smallConfig()
	cfg.RetentionMs = 0
	p := open(t, t.TempDir(), cfg)
	mustAppend(t, p, makeProducerBatch(5, 0, 0, 1, 1))
	fillSegments(t, p, 3)
	if err := p.Clean(time.UnixMilli(1 << 50)); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	_, kept := p.producers[5]
	p.mu.Unlock()
	if kept {
		t.Fatal("producer whose batches were all deleted is still tracked")
	}
}
