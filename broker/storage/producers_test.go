package storage

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// producerStep appends one batch from a producer and says what must come
// back.
type producerStep struct {
	name    string
	pid     int64
	epoch   int16
	seq     int32
	n       int
	err     error // nil, or the sentinel expected
	wantOff int64 // expected base offset (the original one for a duplicate)
}

func runProducerSteps(t *testing.T, p *Partition, steps []producerStep) {
	t.Helper()
	for _, s := range steps {
		leo := p.LogEndOffset()
		info, err := p.Append(makeProducerBatch(s.pid, s.epoch, s.seq, s.n, 1), 0)
		if !isErr(err, s.err) || (s.err == nil && err != nil) {
			t.Fatalf("%s: err %v, want %v", s.name, err, s.err)
		}
		if (s.err == nil || s.err == ErrDuplicateSequence) && info.BaseOffset != s.wantOff {
			t.Fatalf("%s: base offset %d, want %d", s.name, info.BaseOffset, s.wantOff)
		}
		if s.err == ErrDuplicateSequence && info.LastOffset != s.wantOff+int64(s.n)-1 {
			t.Fatalf("%s: duplicate's last offset %d", s.name, info.LastOffset)
		}
		if s.err != nil && p.LogEndOffset() != leo {
			t.Fatalf("%s: rejected batch was written", s.name)
		}
	}
}

func TestIdempotentProducer(t *testing.T) {
	p := open(t, t.TempDir(), smallConfig())
	runProducerSteps(t, p, []producerStep{
		{"first batch", 1, 0, 0, 3, nil, 0},
		{"next", 1, 0, 3, 2, nil, 3},
		{"retry of the last", 1, 0, 3, 2, ErrDuplicateSequence, 3},
		{"retry of the first", 1, 0, 0, 3, ErrDuplicateSequence, 0},
		{"gap", 1, 0, 6, 1, ErrOutOfOrderSequence, 0},
		{"overlap that is no retry", 1, 0, 4, 1, ErrOutOfOrderSequence, 0},
		{"other producer is independent", 2, 5, 100, 1, nil, 5},
		{"in order again", 1, 0, 5, 1, nil, 6},
		{"no producer id, no checks", -1, -1, -1, 1, nil, 7},
		{"new epoch must start at 0", 1, 1, 6, 1, ErrOutOfOrderSequence, 0},
		{"new epoch at 0", 1, 1, 0, 2, nil, 8},
		{"old epoch fenced", 1, 0, 6, 1, ErrInvalidProducerEpoch, 0},
		{"retry from the old epoch fenced too", 1, 0, 5, 1, ErrInvalidProducerEpoch, 0},
		{"seq continues in new epoch", 1, 1, 2, 1, nil, 10},
	})
}

func TestIdempotentProducerWindow(t *testing.T) {
	p := open(t, t.TempDir(), smallConfig())
	for i := range 7 {
		runProducerSteps(t, p, []producerStep{{"batch", 9, 0, int32(i * 2), 2, nil, int64(i * 2)}})
	}
	runProducerSteps(t, p, []producerStep{
		// The last five batches (seq 4..13) are remembered; older ones are
		// not, and then look like a sequence gone backwards.
		{"fifth newest is a duplicate", 9, 0, 4, 2, ErrDuplicateSequence, 4},
		{"sixth newest is out of order", 9, 0, 2, 2, ErrOutOfOrderSequence, 0},
	})
}

func TestSequenceWraps(t *testing.T) {
	p := open(t, t.TempDir(), smallConfig())
	runProducerSteps(t, p, []producerStep{
		{"near the top", 3, 0, math.MaxInt32 - 1, 2, nil, 0},
		{"wrapped", 3, 0, 0, 1, nil, 2},
	})
	if addSeq(math.MaxInt32, 1) != 0 || addSeq(math.MaxInt32-1, 3) != 1 || addSeq(5, 2) != 7 {
		t.Fatal("addSeq does not wrap like Kafka")
	}
}

func TestMultiBatchRequestSeesItsOwnBatches(t *testing.T) {
	p := open(t, t.TempDir(), smallConfig())
	req := append(makeProducerBatch(4, 0, 0, 2, 1), makeProducerBatch(4, 0, 2, 2, 1)...)
	if _, err := p.Append(req, 0); err != nil {
		t.Fatal(err)
	}
	bad := append(makeProducerBatch(4, 0, 4, 1, 1), makeProducerBatch(4, 0, 9, 1, 1)...)
	if _, err := p.Append(bad, 0); !isErr(err, ErrOutOfOrderSequence) {
		t.Fatalf("err %v", err)
	}
	// The rejected request left no trace: seq 4 is still the next one.
	runProducerSteps(t, p, []producerStep{{"next", 4, 0, 4, 1, nil, 4}})
}

// TestProducerStateSurvivesReopen checks duplicates and fencing after a
// reopen: from a snapshot, from headers alone, and with a damaged newest
// snapshot.
func TestProducerStateSurvivesReopen(t *testing.T) {
	for _, how := range []string{"snapshot", "no snapshot", "damaged snapshot", "crash after roll"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			cfg := smallConfig()
			cfg.SegmentBytes = 1500
			p := open(t, dir, cfg)
			var off int64
			for i := range 30 {
				info := mustAppend(t, p, makeProducerBatch(7, 2, int32(i*3), 3, 1))
				off = info.BaseOffset
			}
			mustAppend(t, p, makeProducerBatch(8, 0, 0, 1, 1))
			if len(logFiles(t, dir)) < 3 {
				t.Fatal("want several segments")
			}
			_ = p.Close()
			snaps, _ := filepath.Glob(filepath.Join(dir, "*"+snapshotSuffix))
			switch how {
			case "no snapshot":
				for _, s := range snaps {
					os.Remove(s)
				}
			case "damaged snapshot", "crash after roll":
				// Newest snapshot is the one Close wrote. Damage it or, for a
				// crash, drop it so only the roll snapshot remains.
				newest := snaps[len(snaps)-1]
				if how == "damaged snapshot" {
					b, _ := os.ReadFile(newest)
					b[len(b)/2] ^= 1
					os.WriteFile(newest, b, 0o644)
				} else {
					os.Remove(newest)
				}
			}
			p = open(t, dir, cfg)
			runProducerSteps(t, p, []producerStep{
				{"retry of the last batch", 7, 2, 87, 3, ErrDuplicateSequence, off},
				{"retry of an older one", 7, 2, 81, 3, ErrDuplicateSequence, off - 6},
				{"gap", 7, 2, 91, 1, ErrOutOfOrderSequence, 0},
				{"old epoch", 7, 1, 0, 1, ErrInvalidProducerEpoch, 0},
				{"continues", 7, 2, 90, 1, nil, p.LogEndOffset()},
				{"other producer continues", 8, 0, 1, 1, nil, p.LogEndOffset() + 1},
			})
		})
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	tab := producerTable{
		1: {epoch: 3, n: 2, batches: [producerWindow]producerBatch{{0, 4, 10, 14, 99}, {5, 5, 20, 20, 100}}},
		2: {epoch: 0, n: 0},
	}
	got, err := decodeSnapshot(encodeSnapshot(tab))
	if err != nil || len(got) != 2 || *got[1] != *tab[1] || *got[2] != *tab[2] {
		t.Fatalf("round trip: %v %+v", err, got)
	}
	b := encodeSnapshot(tab)
	for i := range b {
		if _, err := decodeSnapshot(flip(b, i)); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
}
