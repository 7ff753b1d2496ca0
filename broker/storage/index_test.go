package storage

import (
	"fmt"
	"testing"
)

func TestOffsetIndexLookup(t *testing.T) {
	var x offsetIndex
	for _, e := range []indexEntry{{10, 100}, {20, 250}, {35, 400}} {
		x.add(e.rel, e.pos)
	}
	tests := []struct {
		rel     uint32
		wantPos uint32
		wantOK  bool
	}{
		{0, 0, false}, {9, 0, false}, {10, 100, true}, {19, 100, true},
		{20, 250, true}, {34, 250, true}, {35, 400, true}, {1 << 31, 400, true},
	}
	for _, tt := range tests {
		e, ok := x.lookup(tt.rel)
		if ok != tt.wantOK || (ok && e.pos != tt.wantPos) {
			t.Errorf("lookup(%d) = %+v %v, want pos %d %v", tt.rel, e, ok, tt.wantPos, tt.wantOK)
		}
	}
}

func TestTimeIndexLookupBefore(t *testing.T) {
	var x timeIndex
	x.maybeAdd(100, 5)
	x.maybeAdd(90, 6) // does not grow: ignored
	x.maybeAdd(200, 9)
	x.maybeAdd(300, 20)
	if x.len() != 3 {
		t.Fatalf("%d entries, want 3", x.len())
	}
	tests := []struct {
		ts      int64
		wantRel uint32
		wantOK  bool
	}{
		{50, 0, false}, {100, 0, false}, {101, 5, true}, {200, 5, true}, {201, 9, true}, {1000, 20, true},
	}
	for _, tt := range tests {
		e, ok := x.lookupBefore(tt.ts)
		if ok != tt.wantOK || (ok && e.rel != tt.wantRel) {
			t.Errorf("lookupBefore(%d) = %+v %v, want rel %d %v", tt.ts, e, ok, tt.wantRel, tt.wantOK)
		}
	}
}

func TestIndexFileRoundTripAndChecks(t *testing.T) {
	var x offsetIndex
	x.add(3, 100)
	x.add(9, 300)
	good := x.encode(1000)
	var y offsetIndex
	if err := y.decode(good, 1000, 50); err != nil || y.len() != 2 {
		t.Fatalf("decode: %v, %d entries", err, y.len())
	}
	bad := map[string]struct {
		b       []byte
		logSize int64
		maxRel  int64
	}{
		"other log size":     {good, 999, 50},
		"offset beyond next": {good, 1000, 9},
		"torn":               {good[:len(good)-3], 1000, 50},
		"flipped bit":        {flip(good, 2), 1000, 50},
		"not increasing": {func() []byte {
			var z offsetIndex
			z.add(9, 300)
			z.add(3, 400)
			return z.encode(1000)
		}(), 1000, 50},
		"position past log": {func() []byte {
			var z offsetIndex
			z.add(9, 1000)
			return z.encode(1000)
		}(), 1000, 50},
	}
	for name, tt := range bad {
		if err := y.decode(tt.b, tt.logSize, tt.maxRel); !isErr(err, errBadIndex) {
			t.Errorf("%s: err %v, want errBadIndex", name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}

// TestIndexIsSparseAndAccurate checks on real segments that entries come
// about every IndexIntervalBytes, each names a batch start, and a lookup
// leaves at most one interval (plus a batch) to scan.
func TestIndexIsSparseAndAccurate(t *testing.T) {
	cfg := smallConfig()
	cfg.SegmentBytes = 64 << 10
	cfg.IndexIntervalBytes = 1000
	p := open(t, t.TempDir(), cfg)
	var maxBatch int64
	for i := range 400 {
		b := valueBatch(fmt.Sprint(i), 1+i%4, 30, int64(i))
		maxBatch = max(maxBatch, int64(len(b)))
		mustAppend(t, p, b)
	}
	hr := getHeaderReader()
	defer putHeaderReader(hr)
	for _, seg := range p.segs {
		size := seg.size.Load()
		n := seg.index.len()
		if lo, hi := size/(int64(cfg.IndexIntervalBytes)+maxBatch)-1, size/int64(cfg.IndexIntervalBytes)+1; int64(n) < lo || int64(n) > hi {
			t.Fatalf("segment %d: %d entries for %d bytes, want %d..%d", seg.base, n, size, lo, hi)
		}
		// Walk all batches; for each offset the index must point at or
		// before its batch and within one interval plus a batch of it.
		for pos := int64(0); pos < size; {
			h, err := hr.at(seg.log, pos, size)
			if err != nil {
				t.Fatal(err)
			}
			for off := h.BaseOffset; off <= h.LastOffset(); off++ {
				e, ok := seg.index.lookup(seg.rel(off))
				start := int64(0)
				if ok {
					start = int64(e.pos)
					eh, err := hr.at(seg.log, start, size)
					if err != nil || eh.BaseOffset != seg.base+int64(e.rel) {
						t.Fatalf("entry %+v does not name a batch start (%v)", e, err)
					}
				}
				if start > pos || pos-start > int64(cfg.IndexIntervalBytes)+maxBatch {
					t.Fatalf("offset %d at %d: index gives %d", off, pos, start)
				}
			}
			pos += int64(h.Size())
		}
	}
}

// TestOffsetForTimestamp compares lookups by timestamp with a brute-force
// scan, with timestamps that mostly grow but sometimes go back, before and
// after a reopen (which loads closed segments' time indexes from disk).
func TestOffsetForTimestamp(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	cfg.IndexIntervalBytes = 300
	p := open(t, dir, cfg)
	type stamped struct{ off, ts int64 }
	var all []stamped
	for i := range 200 {
		ts := int64(1000 + i*10)
		if i%7 == 3 {
			ts -= 95 // an out-of-order producer clock
		}
		n := 1 + i%3
		recs := make([]rec, n)
		for j := range recs {
			recs[j] = rec{key: []byte("k"), value: []byte(fmt.Sprint(i)), ts: ts + int64(j)}
		}
		info := mustAppend(t, p, makeBatch(recs...))
		for j := range n {
			all = append(all, stamped{info.BaseOffset + int64(j), ts + int64(j)})
		}
	}
	expect := func(target int64) (int64, int64) {
		for _, s := range all {
			if s.ts >= target {
				return s.off, s.ts
			}
		}
		return -1, -1
	}
	check := func(p *Partition) {
		for target := int64(800); target < 3100; target += 3 {
			off, ts, err := p.OffsetForTimestamp(target)
			wo, wts := expect(target)
			if err != nil || off != wo || ts != wts {
				t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v; want %d, %d", target, off, ts, err, wo, wts)
			}
		}
	}
	check(p)
	_ = p.Close()
	check(open(t, dir, cfg))
}
