package storage

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestGroupCommitConcurrentAppends has many goroutines append under
// FlushSync: every acknowledged batch must be readable at the offsets it
// was given, and the offsets must tile the log without gaps or overlaps.
func TestGroupCommitConcurrentAppends(t *testing.T) {
	cfg := smallConfig()
	cfg.FlushMode = FlushSync
	cfg.SegmentBytes = 32 << 10
	p := open(t, t.TempDir(), cfg)
	const writers, perWriter = 8, 40
	type acked struct {
		info AppendInfo
		tag  string
	}
	var mu sync.Mutex
	var all []acked
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				tag := fmt.Sprintf("w%d-%d", w, i)
				info, err := p.Append(valueBatch(tag, 1+i%4, 30, 1), 0)
				if err != nil {
					t.Errorf("append %s: %v", tag, err)
					return
				}
				// Acknowledged means fsynced means visible.
				if hw := p.HighWatermark(); hw <= info.LastOffset {
					t.Errorf("acked %s up to %d but high watermark is %d", tag, info.LastOffset, hw)
				}
				mu.Lock()
				all = append(all, acked{info, tag})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.SortFunc(all, func(a, b acked) int { return int(a.info.BaseOffset - b.info.BaseOffset) })
	next := int64(0)
	for _, a := range all {
		if a.info.BaseOffset != next {
			t.Fatalf("batch %s at %d, want %d (gap or overlap)", a.tag, a.info.BaseOffset, next)
		}
		next = a.info.LastOffset + 1
	}
	if p.LogEndOffset() != next || p.HighWatermark() != next {
		t.Fatalf("leo %d hw %d, want %d", p.LogEndOffset(), p.HighWatermark(), next)
	}
	got := readAll(t, p, 0)
	if int64(len(got)) != next {
		t.Fatalf("read %d records, want %d", len(got), next)
	}
	for _, a := range all {
		for off := a.info.BaseOffset; off <= a.info.LastOffset; off++ {
			want := fmt.Sprintf("%s/%d/", a.tag, off-a.info.BaseOffset)
			if !bytes.HasPrefix(got[off].value, []byte(want)) {
				t.Fatalf("offset %d holds %q, want %s…", off, got[off].value, want)
			}
		}
	}
	t.Logf("%d appends, %d group fsyncs", len(all), p.syncs.Load())
}

// TestGroupCommitSharesOneFsync holds the first fsync until seven more
// appends are waiting, then checks that one more fsync acknowledges all of
// them, and that nothing was visible to readers before its fsync.
func TestGroupCommitSharesOneFsync(t *testing.T) {
	cfg := smallConfig()
	cfg.FlushMode = FlushSync
	p := open(t, t.TempDir(), cfg)
	entered := make(chan struct{}, 100)
	release := make(chan struct{})
	var releaseOnce sync.Once
	// On failure, let the held fsync finish so Close can complete.
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	p.testSyncHook = func() {
		entered <- struct{}{}
		<-release
	}
	var wg sync.WaitGroup
	appendOne := func(tag string) {
		defer wg.Done()
		if _, err := p.Append(valueBatch(tag, 10, 20, 1), 0); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go appendOne("leader")
	<-entered // the first append is now inside its fsync
	if p.LogEndOffset() != 10 || p.HighWatermark() != 0 {
		t.Fatalf("before the fsync: leo %d hw %d, want 10 and 0", p.LogEndOffset(), p.HighWatermark())
	}
	if b, err := p.Read(0, 1<<20); err != nil || len(b) != 0 {
		t.Fatalf("unsynced data readable: %d bytes, %v", len(b), err)
	}
	for i := range 7 {
		wg.Add(1)
		go appendOne(fmt.Sprint(i))
	}
	eventually(t, "seven more appends written", func() bool { return p.LogEndOffset() == 80 })
	if p.HighWatermark() != 0 {
		t.Fatalf("high watermark moved without an fsync: %d", p.HighWatermark())
	}
	releaseOnce.Do(func() { close(release) })
	wg.Wait()
	if got := p.syncs.Load(); got != 2 {
		t.Fatalf("%d fsyncs for 8 appends, want 2 (the held one and one for the group)", got)
	}
	if p.HighWatermark() != 80 {
		t.Fatalf("high watermark %d, want 80", p.HighWatermark())
	}
}

func TestFlushModes(t *testing.T) {
	for _, mode := range []FlushMode{FlushSync, FlushInterval, FlushOS} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := smallConfig()
			cfg.FlushMode = mode
			cfg.FlushInterval = 5 * time.Millisecond
			p := open(t, t.TempDir(), cfg)
			info := mustAppend(t, p, valueBatch("a", 3, 10, 1))
			if p.HighWatermark() != info.LastOffset+1 {
				t.Fatalf("high watermark %d after append, want %d", p.HighWatermark(), info.LastOffset+1)
			}
			switch mode {
			case FlushSync:
				if p.syncs.Load() != 1 {
					t.Fatalf("%d fsyncs, want 1", p.syncs.Load())
				}
			case FlushInterval:
				eventually(t, "periodic fsync", func() bool { return p.syncs.Load() > 0 })
			case FlushOS:
				if p.syncs.Load() != 0 {
					t.Fatalf("%d fsyncs on the write path", p.syncs.Load())
				}
				if err := p.Flush(); err != nil || p.syncs.Load() != 1 {
					t.Fatalf("explicit flush: %v, %d fsyncs", err, p.syncs.Load())
				}
			}
		})
	}
}

func TestUpdateConfigSwitchesFlushMode(t *testing.T) {
	cfg := smallConfig()
	cfg.FlushMode = FlushSync
	p := open(t, t.TempDir(), cfg)
	mustAppend(t, p, valueBatch("a", 1, 10, 1))
	cfg.FlushMode = FlushInterval
	cfg.FlushInterval = time.Millisecond
	p.UpdateConfig(cfg)
	before := p.syncs.Load()
	mustAppend(t, p, valueBatch("b", 1, 10, 1))
	eventually(t, "interval flusher running", func() bool { return p.syncs.Load() > before })
	cfg.FlushMode = FlushOS
	p.UpdateConfig(cfg)
	mustAppend(t, p, valueBatch("c", 1, 10, 1))
	if p.HighWatermark() != 3 {
		t.Fatalf("high watermark %d, want 3", p.HighWatermark())
	}
	p.mu.Lock()
	running := p.flusher != nil
	p.mu.Unlock()
	if running {
		t.Fatal("interval flusher still running under FlushOS")
	}
}

func TestNotify(t *testing.T) {
	for _, mode := range []FlushMode{FlushSync, FlushOS} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := smallConfig()
			cfg.FlushMode = mode
			p := open(t, t.TempDir(), cfg)
			ch := p.Notify()
			select {
			case <-ch:
				t.Fatal("closed before anything happened")
			default:
			}
			mustAppend(t, p, valueBatch("a", 1, 10, 1))
			select {
			case <-ch:
			default:
				t.Fatal("not closed after the high watermark advanced")
			}
			ch = p.Notify()
			_ = p.Close()
			select {
			case <-ch:
			default:
				t.Fatal("not closed by Close")
			}
			select {
			case <-p.Notify():
			default:
				t.Fatal("Notify after Close must return a closed channel")
			}
		})
	}
}
