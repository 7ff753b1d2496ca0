package storage

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-io/sluice/broker/batch"
)

// TestReplicationModel drives a partition with a random mix of leader
// appends (with rising epochs), replica appends, truncations, full
// truncations and reopens, on segments small enough to roll every few
// batches, and after every step compares it with an in-memory model: the
// batches (offsets, epochs, bytes) and the leader-epoch cache they imply.
//
// The seed is logged; set STORAGE_MODEL_SEED to replay a failure.
func TestReplicationModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STORAGE_MODEL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("seed %d (STORAGE_MODEL_SEED=%d to replay)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	dir := t.TempDir()
	cfg := smallConfig()
	cfg.SegmentBytes = 2 << 10
	p := open(t, dir, cfg)

	var (
		model []storedBatch // what the log holds, in order
		lso   int64
		epoch int32
		tag   int
	)
	leo := func() int64 {
		if len(model) == 0 {
			return lso
		}
		return model[len(model)-1].last + 1
	}
	newBatch := func() []byte {
		tag++
		return valueBatch(fmt.Sprint("m", tag), 1+rng.IntN(4), 10+rng.IntN(150), 1000+int64(tag))
	}
	bumpEpoch := func() {
		if rng.IntN(8) == 0 {
			epoch += 1 + int32(rng.IntN(2))
		}
	}

	for step := range 200 {
		var what string
		switch op := rng.IntN(20); {
		case op < 8:
			bumpEpoch()
			b := newBatch()
			what = fmt.Sprintf("append in epoch %d", epoch)
			info, err := p.Append(b, epoch)
			if err != nil {
				t.Fatalf("seed %d step %d: %s: %v", seed, step, what, err)
			}
			model = append(model, storedBatch{info.BaseOffset, info.LastOffset, epoch, b, nil})
		case op < 14:
			var records []byte
			next := leo()
			var added []storedBatch
			for range 1 + rng.IntN(3) {
				bumpEpoch()
				b := newBatch()
				batch.SetBaseOffset(b, next)
				batch.SetLeaderEpoch(b, epoch)
				h, _ := batch.ParseHeader(b)
				added = append(added, storedBatch{next, h.LastOffset(), epoch, b, nil})
				records = append(records, b...)
				next = h.NextOffset()
			}
			what = fmt.Sprintf("replica append of %d batches up to epoch %d", len(added), epoch)
			if _, pending, err := p.AppendReplica(records); err != nil || pending.Wait() != nil {
				t.Fatalf("seed %d step %d: %s: %v", seed, step, what, err)
			}
			model = append(model, added...)
		case op < 18:
			off := lso + rng.Int64N(leo()-lso+3)
			what = fmt.Sprintf("truncate to %d", off)
			end, err := p.TruncateTo(off)
			if err != nil {
				t.Fatalf("seed %d step %d: %s: %v", seed, step, what, err)
			}
			model = keptBefore(model, off)
			if end != leo() {
				t.Fatalf("seed %d step %d: %s returned %d, want %d", seed, step, what, end, leo())
			}
		case op < 19 && rng.IntN(3) == 0:
			off := leo() + rng.Int64N(20) - 5
			off = max(off, 0)
			what = fmt.Sprintf("truncate fully and start at %d", off)
			if err := p.TruncateFullyAndStartAt(off); err != nil {
				t.Fatalf("seed %d step %d: %s: %v", seed, step, what, err)
			}
			model, lso = nil, off
		default:
			what = "reopen"
			if err := p.Close(); err != nil {
				t.Fatalf("seed %d step %d: close: %v", seed, step, err)
			}
			p = open(t, dir, cfg)
		}

		if p.LogStartOffset() != lso || p.LogEndOffset() != leo() {
			t.Fatalf("seed %d step %d: after %s: log [%d, %d), model [%d, %d)",
				seed, step, what, p.LogStartOffset(), p.LogEndOffset(), lso, leo())
		}
		if got := readRaw(t, p); !bytes.Equal(got, concatRaw(model)) {
			t.Fatalf("seed %d step %d: after %s: contents differ from the model", seed, step, what)
		}
		wantEpochs := expectedEpochs(model)
		if got := p.EpochEntries(); !slices.Equal(got, wantEpochs) {
			t.Fatalf("seed %d step %d: after %s: epoch cache %v, model %v", seed, step, what, got, wantEpochs)
		}
		for e := int32(-1); e <= epoch+1; e++ {
			gotEpoch, gotEnd := p.EndOffsetForEpoch(e)
			wantEpoch, wantEnd := modelEndOffset(wantEpochs, e, leo())
			if gotEpoch != wantEpoch || gotEnd != wantEnd {
				t.Fatalf("seed %d step %d: after %s: EndOffsetForEpoch(%d) = (%d, %d), model (%d, %d)",
					seed, step, what, e, gotEpoch, gotEnd, wantEpoch, wantEnd)
			}
		}
	}
}

// modelEndOffset is EndOffsetForEpoch written the slow, obvious way.
func modelEndOffset(entries []EpochEntry, epoch int32, leo int64) (int32, int64) {
	found := -1
	for i, e := range entries {
		if e.Epoch <= epoch {
			found = i
		}
	}
	switch {
	case epoch < 0 || found < 0:
		return -1, -1
	case found == len(entries)-1:
		return entries[found].Epoch, leo
	}
	return entries[found].Epoch, entries[found+1].StartOffset
}
