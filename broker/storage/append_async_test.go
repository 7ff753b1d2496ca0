package storage

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// holdFirstSync makes the first group-commit fsync of p wait until the
// returned release is called; later fsyncs pass. entered receives once the
// held fsync has taken its snapshot of the log end. calls counts every fsync
// attempt.
func holdFirstSync(t *testing.T, p *Partition) (entered <-chan struct{}, release func(), calls *atomic.Int64) {
	in := make(chan struct{}, 1)
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	// On failure, let the held fsync finish so Close can complete.
	t.Cleanup(release)
	calls = new(atomic.Int64)
	p.testSyncHook = func() {
		if calls.Add(1) == 1 {
			in <- struct{}{}
			<-gate
		}
	}
	return in, release, calls
}

// TestAppendAsyncSharesOneFsync appends several batches before waiting for
// any: the first Wait's fsync must cover them all, and nothing may be
// visible or fsynced before a Wait.
func TestAppendAsyncSharesOneFsync(t *testing.T) {
	cfg := smallConfig()
	cfg.FlushMode = FlushSync
	cfg.SegmentBytes = 1 << 30
	p := open(t, t.TempDir(), cfg)
	const n = 8
	pend := make([]Pending, n)
	for i := range n {
		info, w, err := p.AppendAsync(valueBatch(fmt.Sprint(i), 5, 20, 1), 0)
		if err != nil {
			t.Fatal(err)
		}
		if info.BaseOffset != int64(5*i) || info.LastOffset != int64(5*i+4) {
			t.Fatalf("append %d at %d..%d, want %d..%d", i, info.BaseOffset, info.LastOffset, 5*i, 5*i+4)
		}
		pend[i] = w
	}
	if p.syncs.Load() != 0 || p.HighWatermark() != 0 {
		t.Fatalf("before any Wait: %d fsyncs, high watermark %d; want 0 and 0", p.syncs.Load(), p.HighWatermark())
	}
	for i, w := range pend {
		if err := w.Wait(); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
		if hw := p.HighWatermark(); hw < int64(5*i+5) {
			t.Fatalf("wait %d returned at high watermark %d", i, hw)
		}
	}
	if got := p.syncs.Load(); got != 1 {
		t.Fatalf("%d fsyncs for %d appends waited for after the fact, want 1", got, n)
	}
	if err := pend[0].Wait(); err != nil || p.syncs.Load() != 1 {
		t.Fatalf("second Wait: %v, %d fsyncs", err, p.syncs.Load())
	}
}

// TestAppendAsyncWaitMeansDurable holds an fsync that covers only the first
// append and checks that a later append's Wait does not return until an
// fsync covering it has run, and that appends made meanwhile share it.
func TestAppendAsyncWaitMeansDurable(t *testing.T) {
	cfg := smallConfig()
	cfg.FlushMode = FlushSync
	cfg.SegmentBytes = 1 << 30
	p := open(t, t.TempDir(), cfg)
	entered, release, calls := holdFirstSync(t, p)

	_, w1, err := p.AppendAsync(valueBatch("a", 10, 20, 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	go func() { errs <- w1.Wait() }()
	<-entered // the fsync for offsets below 10 is held

	// Appends proceed while an fsync runs; they are not covered by it.
	i2, w2, err := p.AppendAsync(valueBatch("b", 10, 20, 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	i3, w3, err := p.AppendAsync(valueBatch("c", 10, 20, 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if i2.BaseOffset != 10 || i3.BaseOffset != 20 {
		t.Fatalf("offsets %d and %d, want 10 and 20", i2.BaseOffset, i3.BaseOffset)
	}
	for _, w := range []Pending{w2, w3} {
		go func() {
			err := w.Wait()
			// A Wait that returned early would see only the held fsync,
			// which has not even run (or covers only offset 0..9).
			if err == nil && (p.syncs.Load() < 2 || p.HighWatermark() < w.end) {
				err = fmt.Errorf("Wait for offsets below %d returned after %d fsyncs at high watermark %d",
					w.end, p.syncs.Load(), p.HighWatermark())
			}
			errs <- err
		}()
	}
	release()
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if p.syncs.Load() != 2 || calls.Load() != 2 {
		t.Fatalf("%d fsyncs (%d attempts), want 2: the held one and one shared by the two appends behind it",
			p.syncs.Load(), calls.Load())
	}
	if p.HighWatermark() != 30 {
		t.Fatalf("high watermark %d, want 30", p.HighWatermark())
	}
}

// TestAppendAsyncDuplicateWaitsForOriginal retries an idempotent batch
// whose original has not been fsynced yet: the retry is answered with the
// original offsets, and its Wait must fsync the original, since the client
// takes the answer as an acknowledgement.
func TestAppendAsyncDuplicateWaitsForOriginal(t *testing.T) {
	cfg := smallConfig()
	cfg.FlushMode = FlushSync
	p := open(t, t.TempDir(), cfg)
	b := makeProducerBatch(7, 0, 0, 4, 1)
	orig, _, err := p.AppendAsync(bytes.Clone(b), 0)
	if err != nil {
		t.Fatal(err)
	}
	dup, w, err := p.AppendAsync(bytes.Clone(b), 0)
	if !errors.Is(err, ErrDuplicateSequence) || dup.BaseOffset != orig.BaseOffset || dup.LastOffset != orig.LastOffset {
		t.Fatalf("retry: %+v, %v; want the original %+v with ErrDuplicateSequence", dup, err, orig)
	}
	if err := w.Wait(); err != nil {
		t.Fatal(err)
	}
	if p.syncs.Load() != 1 || p.HighWatermark() != 4 {
		t.Fatalf("after the retry's Wait: %d fsyncs, high watermark %d; want 1 and 4", p.syncs.Load(), p.HighWatermark())
	}
	if p.LogEndOffset() != 4 {
		t.Fatalf("log end %d after a duplicate, want 4", p.LogEndOffset())
	}

	// Append, too, answers a duplicate only once the original is durable.
	b2 := makeProducerBatch(7, 0, 4, 2, 1)
	if _, _, err := p.AppendAsync(bytes.Clone(b2), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(bytes.Clone(b2), 0); !errors.Is(err, ErrDuplicateSequence) {
		t.Fatalf("Append of a duplicate: %v", err)
	}
	if p.syncs.Load() != 2 || p.HighWatermark() != 6 {
		t.Fatalf("after Append of a duplicate: %d fsyncs, high watermark %d; want 2 and 6", p.syncs.Load(), p.HighWatermark())
	}
}

// TestAppendAsyncConcurrent has writers each make a few AppendAsync calls
// before waiting for them. Each writer's appends must land in call order,
// all offsets must tile the log, and every Wait must leave its records
// visible.
func TestAppendAsyncConcurrent(t *testing.T) {
	cfg := smallConfig()
	cfg.FlushMode = FlushSync
	cfg.SegmentBytes = 32 << 10 // rolls happen between appends and waits
	p := open(t, t.TempDir(), cfg)
	const writers, rounds, depth = 6, 8, 4
	type acked struct {
		info AppendInfo
		tag  string
	}
	var mu sync.Mutex
	var all []acked
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			last := int64(-1)
			for r := range rounds {
				var infos [depth]AppendInfo
				var pend [depth]Pending
				var tags [depth]string
				for d := range depth {
					tags[d] = fmt.Sprintf("w%d-%d-%d", w, r, d)
					info, pw, err := p.AppendAsync(valueBatch(tags[d], 1+d%3, 30, 1), 0)
					if err != nil {
						t.Errorf("append %s: %v", tags[d], err)
						return
					}
					if info.BaseOffset <= last {
						t.Errorf("append %s at %d, not after this writer's previous append ending at %d", tags[d], info.BaseOffset, last)
					}
					last = info.LastOffset
					infos[d], pend[d] = info, pw
				}
				for d := range depth {
					if err := pend[d].Wait(); err != nil {
						t.Errorf("wait %s: %v", tags[d], err)
						return
					}
					if hw := p.HighWatermark(); hw <= infos[d].LastOffset {
						t.Errorf("waited for %s up to %d but high watermark is %d", tags[d], infos[d].LastOffset, hw)
					}
				}
				mu.Lock()
				for d := range depth {
					all = append(all, acked{infos[d], tags[d]})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	slices.SortFunc(all, func(a, b acked) int { return int(a.info.BaseOffset - b.info.BaseOffset) })
	next := int64(0)
	for _, a := range all {
		if a.info.BaseOffset != next {
			t.Fatalf("batch %s at %d, want %d (gap or overlap)", a.tag, a.info.BaseOffset, next)
		}
		next = a.info.LastOffset + 1
	}
	got := readAll(t, p, 0)
	if int64(len(got)) != next || p.HighWatermark() != next {
		t.Fatalf("read %d records, high watermark %d, want %d", len(got), p.HighWatermark(), next)
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

// TestAppendAsyncOtherModesDoNotWait checks that outside FlushSync the
// Pending is complete at once and the records are already visible.
func TestAppendAsyncOtherModesDoNotWait(t *testing.T) {
	for _, mode := range []FlushMode{FlushInterval, FlushOS} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := smallConfig()
			cfg.FlushMode = mode
			cfg.FlushInterval = 1 << 40 // never, within the test
			p := open(t, t.TempDir(), cfg)
			info, w, err := p.AppendAsync(valueBatch("a", 3, 10, 1), 0)
			if err != nil {
				t.Fatal(err)
			}
			if w != (Pending{}) {
				t.Fatalf("Pending %+v, want the zero (complete) one", w)
			}
			if err := w.Wait(); err != nil || p.syncs.Load() != 0 {
				t.Fatalf("Wait: %v, %d fsyncs; want nil and 0", err, p.syncs.Load())
			}
			if p.HighWatermark() != info.LastOffset+1 {
				t.Fatalf("high watermark %d, want %d", p.HighWatermark(), info.LastOffset+1)
			}
		})
	}
}

// TestAppendAsyncDoesNotKeepRecords overwrites the caller's buffer right
// after AppendAsync returns, before the Wait, as the Kafka front door does
// when it returns a request frame to its pool.
func TestAppendAsyncDoesNotKeepRecords(t *testing.T) {
	cfg := smallConfig()
	cfg.FlushMode = FlushSync
	p := open(t, t.TempDir(), cfg)
	buf := valueBatch("keep", 5, 50, 1)
	_, w, err := p.AppendAsync(buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 0xee
	}
	if err := w.Wait(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, p, 0)
	if len(got) != 5 || !bytes.HasPrefix(got[4].value, []byte("keep/4/")) {
		t.Fatalf("read back %d records; last %q", len(got), got[len(got)-1].value)
	}
}
