package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/sluice-io/sluice/broker/batch"
)

// replicaBatch is a batch of n records as a leader stored it: at base,
// written in leader epoch epoch.
func replicaBatch(tag string, n int, base int64, epoch int32) []byte {
	b := valueBatch(tag, n, 30, 1000)
	batch.SetBaseOffset(b, base)
	batch.SetLeaderEpoch(b, epoch)
	return b
}

// readRaw returns the stored bytes of every batch from the log start to the
// log end, via ReadReplica.
func readRaw(t testing.TB, p *Partition) []byte {
	t.Helper()
	var out []byte
	for next := p.LogStartOffset(); next < p.LogEndOffset(); {
		b, err := p.ReadReplica(nil, next, 1<<20)
		if err != nil {
			t.Fatalf("read replica at %d: %v", next, err)
		}
		if len(b) == 0 {
			t.Fatalf("read replica at %d (log end %d) returned nothing", next, p.LogEndOffset())
		}
		hs := headers(t, b)
		next = hs[len(hs)-1].NextOffset()
		out = append(out, b...)
	}
	return out
}

func TestAppendReplicaKeepsOffsetsAndEpochs(t *testing.T) {
	p := open(t, t.TempDir(), smallConfig())
	one := replicaBatch("a", 3, 0, 4)
	two := append(replicaBatch("b", 2, 3, 4), replicaBatch("c", 1, 5, 7)...)
	info, pending, err := p.AppendReplica(one)
	if err != nil || pending.Wait() != nil {
		t.Fatalf("append replica: %v", err)
	}
	if info.BaseOffset != 0 || info.LastOffset != 2 {
		t.Fatalf("info %+v", info)
	}
	if info, _, err = p.AppendReplica(two); err != nil || info.BaseOffset != 3 || info.LastOffset != 5 {
		t.Fatalf("second append replica: %+v %v", info, err)
	}
	if p.LogEndOffset() != 6 {
		t.Fatalf("log end %d, want 6", p.LogEndOffset())
	}
	want := append(slices.Clone(one), two...)
	if got := readRaw(t, p); !bytes.Equal(got, want) {
		t.Fatal("stored bytes differ from the leader's")
	}
	var got [][2]int64
	for _, h := range headers(t, readRaw(t, p)) {
		got = append(got, [2]int64{h.BaseOffset, int64(h.LeaderEpoch)})
	}
	if wantH := [][2]int64{{0, 4}, {3, 4}, {5, 7}}; !slices.Equal(got, wantH) {
		t.Fatalf("(base, epoch) %v, want %v", got, wantH)
	}
	if e := p.EpochEntries(); !slices.Equal(e, []EpochEntry{{4, 0}, {7, 5}}) {
		t.Fatalf("epoch cache %v", e)
	}
}

func TestAppendReplicaRejects(t *testing.T) {
	corrupt := replicaBatch("x", 2, 4, 1)
	corrupt[len(corrupt)-1] ^= 0xff
	for _, tc := range []struct {
		name    string
		records []byte
		want    error
	}{
		{"gap", replicaBatch("x", 2, 5, 1), ErrOffsetMismatch},
		{"overlap", replicaBatch("x", 2, 3, 1), ErrOffsetMismatch},
		{"from zero", replicaBatch("x", 2, 0, 1), ErrOffsetMismatch},
		{"second batch not contiguous", append(replicaBatch("x", 2, 4, 1), replicaBatch("y", 1, 7, 1)...), ErrOffsetMismatch},
		{"second batch overlaps", append(replicaBatch("x", 2, 4, 1), replicaBatch("y", 1, 5, 1)...), ErrOffsetMismatch},
		{"corrupt crc", corrupt, ErrCorruptBatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := open(t, dir, smallConfig())
			if _, _, err := p.AppendReplica(replicaBatch("a", 4, 0, 1)); err != nil {
				t.Fatal(err)
			}
			before, size := readRaw(t, p), p.Size()
			if _, _, err := p.AppendReplica(tc.records); !isErr(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if p.LogEndOffset() != 4 || p.Size() != size || !bytes.Equal(readRaw(t, p), before) {
				t.Fatalf("something was written: log end %d size %d", p.LogEndOffset(), p.Size())
			}
			st, err := os.Stat(filepath.Join(dir, fileName(0, logSuffix)))
			if err != nil || st.Size() != size {
				t.Fatalf("log file size %v %v, want %d", st.Size(), err, size)
			}
			if e := p.EpochEntries(); !slices.Equal(e, []EpochEntry{{1, 0}}) {
				t.Fatalf("epoch cache %v", e)
			}
		})
	}
}

// TestAppendReplicaProducerState: a follower that becomes leader must
// recognise a retry of a batch it only replicated.
func TestAppendReplicaProducerState(t *testing.T) {
	p := open(t, t.TempDir(), smallConfig())
	if _, _, err := p.AppendReplica(replicaBatch("a", 2, 0, 1)); err != nil {
		t.Fatal(err)
	}
	idem := makeProducerBatch(7, 0, 0, 3, 1000)
	stored := slices.Clone(idem)
	batch.SetBaseOffset(stored, 2)
	batch.SetLeaderEpoch(stored, 1)
	if _, _, err := p.AppendReplica(stored); err != nil {
		t.Fatal(err)
	}
	info, err := p.Append(slices.Clone(idem), 2)
	if !isErr(err, ErrDuplicateSequence) || info.BaseOffset != 2 || info.LastOffset != 4 {
		t.Fatalf("retry: %+v %v, want a duplicate of 2..4", info, err)
	}
	// The sequence continues where the replicated batch ended.
	if _, err := p.Append(makeProducerBatch(7, 0, 4, 1, 1000), 2); !isErr(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap in sequence: %v", err)
	}
	if info, err := p.Append(makeProducerBatch(7, 0, 3, 1, 1000), 2); err != nil || info.BaseOffset != 5 {
		t.Fatalf("next sequence: %+v %v", info, err)
	}
}

func TestAppendReplicaRollsAndRecovers(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	p := open(t, dir, cfg)
	var want []byte
	for i := range 60 {
		b := replicaBatch("r", 1+i%4, p.LogEndOffset(), int32(i/20))
		want = append(want, b...)
		if _, _, err := p.AppendReplica(b); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(logFiles(t, dir)); n < 3 {
		t.Fatalf("%d segments, want a few rolls", n)
	}
	if !bytes.Equal(readRaw(t, p), want) {
		t.Fatal("contents differ")
	}
	leo, epochs := p.LogEndOffset(), p.EpochEntries()
	_ = p.Close()
	p = open(t, dir, cfg)
	if p.LogEndOffset() != leo || !bytes.Equal(readRaw(t, p), want) || !slices.Equal(p.EpochEntries(), epochs) {
		t.Fatalf("after reopen: log end %d (want %d), epochs %v (want %v)", p.LogEndOffset(), leo, p.EpochEntries(), epochs)
	}
}

// TestAppendReplicaDoesNotAllocate: the follower's hot path, like Append's.
func TestAppendReplicaDoesNotAllocate(t *testing.T) {
	for _, mode := range []FlushMode{FlushOS, FlushSync} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := smallConfig()
			cfg.FlushMode = mode
			cfg.SegmentBytes = 1 << 30
			p := open(t, t.TempDir(), cfg)
			plain := replicaBatch("plain", 10, 0, 3)
			idem := makeProducerBatch(42, 0, 0, 5, 1)
			batch.SetLeaderEpoch(idem, 3)
			appendBoth := func() {
				for _, b := range [][]byte{plain, idem} {
					batch.SetBaseOffset(b, p.LogEndOffset())
					_, pending, err := p.AppendReplica(b)
					if err == nil {
						err = pending.Wait()
					}
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			appendBoth()
			if allocs := testing.AllocsPerRun(200, appendBoth); allocs > 0 {
				t.Fatalf("%.1f allocations per two replica appends", allocs)
			}
		})
	}
}

func TestExternalHighWatermark(t *testing.T) {
	cfg := smallConfig()
	cfg.FlushMode = FlushSync
	cfg.ExternalHW = true
	dir := t.TempDir()
	p := open(t, dir, cfg)
	var seen atomic.Int64
	p.SetOnDurable(func(end int64) {
		for {
			cur := seen.Load()
			if end <= cur || seen.CompareAndSwap(cur, end) {
				return
			}
		}
	})

	mustAppend(t, p, valueBatch("a", 3, 10, 1))
	if p.DurableEnd() != 3 || p.HighWatermark() != 0 {
		t.Fatalf("durable end %d hw %d, want 3 and 0", p.DurableEnd(), p.HighWatermark())
	}
	if seen.Load() != 3 {
		t.Fatalf("OnDurable saw %d, want 3", seen.Load())
	}
	if b, err := p.Read(0, 1000); err != nil || len(b) != 0 {
		t.Fatalf("read before SetHighWatermark: %d bytes, %v", len(b), err)
	}

	// Not yet durable: the high watermark stops at the durable end.
	_, pending, err := p.AppendAsync(valueBatch("b", 2, 10, 1), 1)
	if err != nil {
		t.Fatal(err)
	}
	ch := p.Notify()
	p.SetHighWatermark(100)
	if p.HighWatermark() != 3 {
		t.Fatalf("hw %d, want it clamped to the durable end 3", p.HighWatermark())
	}
	select {
	case <-ch:
	default:
		t.Fatal("Notify not woken by SetHighWatermark")
	}
	if b, err := p.Read(0, 1000); err != nil || len(headers(t, b)) != 1 {
		t.Fatalf("read after SetHighWatermark: %v", err)
	}
	if err := pending.Wait(); err != nil {
		t.Fatal(err)
	}
	if p.DurableEnd() != 5 || p.HighWatermark() != 3 || seen.Load() != 5 {
		t.Fatalf("after fsync: durable end %d hw %d OnDurable %d, want 5 3 5", p.DurableEnd(), p.HighWatermark(), seen.Load())
	}
	p.SetHighWatermark(4)
	p.SetHighWatermark(2) // never lowers
	if p.HighWatermark() != 4 {
		t.Fatalf("hw %d, want 4", p.HighWatermark())
	}

	// Switching ExternalHW off publishes what the flush mode would.
	cfg.ExternalHW = false
	p.UpdateConfig(cfg)
	if p.HighWatermark() != 5 {
		t.Fatalf("hw %d after ExternalHW off, want 5", p.HighWatermark())
	}
	mustAppend(t, p, valueBatch("c", 1, 10, 1))
	if p.HighWatermark() != 6 {
		t.Fatalf("hw %d, want appends to move it again", p.HighWatermark())
	}

	// After a restart in cluster mode nothing is committed until the
	// replication layer says so; without ExternalHW everything recovered is.
	for _, external := range []bool{true, false} {
		cfg.ExternalHW = external
		_ = p.Close()
		p = open(t, dir, cfg)
		want := int64(6)
		if external {
			want = 0
		}
		if p.HighWatermark() != want || p.DurableEnd() != 6 {
			t.Fatalf("reopened with ExternalHW=%v: hw %d durable end %d, want %d and 6", external, p.HighWatermark(), p.DurableEnd(), want)
		}
	}
}

func TestExternalHighWatermarkOtherModes(t *testing.T) {
	cfg := smallConfig() // FlushOS
	cfg.ExternalHW = true
	p := open(t, t.TempDir(), cfg)
	var seen atomic.Int64
	p.SetOnDurable(func(end int64) { seen.Store(max(seen.Load(), end)) })
	if _, _, err := p.AppendAsync(valueBatch("a", 3, 10, 1), 1); err != nil {
		t.Fatal(err)
	}
	// Without write-path fsync the data counts as durable at once.
	if p.DurableEnd() != 3 || seen.Load() != 3 || p.HighWatermark() != 0 {
		t.Fatalf("durable end %d OnDurable %d hw %d, want 3 3 0", p.DurableEnd(), seen.Load(), p.HighWatermark())
	}
	p.SetHighWatermark(3)
	if p.HighWatermark() != 3 {
		t.Fatalf("hw %d", p.HighWatermark())
	}
}

func TestReadReplica(t *testing.T) {
	cfg := smallConfig()
	cfg.ExternalHW = true
	p := open(t, t.TempDir(), cfg)
	for _, tag := range []string{"a", "b", "c"} {
		mustAppend(t, p, valueBatch(tag, 2, 10, 1))
	}
	p.SetHighWatermark(2)
	if _, err := p.Read(4, 1000); !isErr(err, ErrOffsetOutOfRange) {
		t.Fatalf("consumer read above the hw: %v", err)
	}
	b, err := p.ReadReplica(nil, 2, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if hs := headers(t, b); len(hs) != 2 || hs[0].BaseOffset != 2 || hs[1].BaseOffset != 4 {
		t.Fatalf("replica read returned %v", hs)
	}
	// Mid-batch starts at the batch holding the offset.
	if b, err := p.ReadReplica(nil, 5, 1); err != nil || headers(t, b)[0].BaseOffset != 4 {
		t.Fatalf("replica read at 5: %v", err)
	}
	if b, err := p.ReadReplica(make([]byte, 10), 6, 1000); err != nil || len(b) != 0 {
		t.Fatalf("replica read at the log end: %d bytes, %v", len(b), err)
	}
	for _, off := range []int64{7, -1} {
		if _, err := p.ReadReplica(nil, off, 1000); !isErr(err, ErrOffsetOutOfRange) {
			t.Fatalf("replica read at %d: %v", off, err)
		}
	}
}

func TestNotifyAppend(t *testing.T) {
	cfg := smallConfig()
	cfg.FlushMode = FlushSync
	cfg.ExternalHW = true
	p := open(t, t.TempDir(), cfg)
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ch := p.NotifyAppend()
	if closed(ch) {
		t.Fatal("closed before anything happened")
	}
	_, pending, err := p.AppendAsync(valueBatch("a", 2, 10, 1), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !closed(ch) {
		t.Fatal("not closed when the log end advanced")
	}
	ch = p.NotifyAppend()
	if err := pending.Wait(); err != nil {
		t.Fatal(err)
	}
	if !closed(ch) {
		t.Fatal("not closed when the durable end advanced")
	}
	ch = p.NotifyAppend()
	if _, err := p.TruncateTo(1); err != nil {
		t.Fatal(err)
	}
	if !closed(ch) {
		t.Fatal("not closed by a truncation")
	}
	ch = p.NotifyAppend()
	_ = p.Close()
	if !closed(ch) || !closed(p.NotifyAppend()) {
		t.Fatal("not closed by Close")
	}
}
