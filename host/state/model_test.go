package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

// model is what the State should hold: flushed is as of the last Flush,
// committed adds the dirty set, staged the current call (nil: delete).
type model struct {
	flushed   []map[string]string
	committed []map[string]string
	staged    []map[string]*string
}

func newModel(stores int) *model {
	m := &model{}
	for range stores {
		m.flushed = append(m.flushed, map[string]string{})
		m.committed = append(m.committed, map[string]string{})
		m.staged = append(m.staged, map[string]*string{})
	}
	return m
}

func (m *model) get(h int, k string) (string, bool) {
	if v, ok := m.staged[h][k]; ok {
		if v == nil {
			return "", false
		}
		return *v, true
	}
	v, ok := m.committed[h][k]
	return v, ok
}

func (m *model) view(h int) map[string]string {
	out := map[string]string{}
	for k, v := range m.committed[h] {
		out[k] = v
	}
	for k, v := range m.staged[h] {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = *v
		}
	}
	return out
}

func (m *model) endCall(commit bool) {
	for h := range m.staged {
		if commit {
			for k, v := range m.staged[h] {
				if v == nil {
					delete(m.committed[h], k)
				} else {
					m.committed[h][k] = *v
				}
			}
		}
		m.staged[h] = map[string]*string{}
	}
}

func (m *model) flush() {
	for h := range m.committed {
		m.flushed[h] = cloneMap(m.committed[h])
	}
}

// rollback is also what a reopen does: everything unflushed is gone.
func (m *model) rollback() {
	for h := range m.committed {
		m.committed[h] = cloneMap(m.flushed[h])
		m.staged[h] = map[string]*string{}
	}
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestAgainstModel runs random operations against a State and a map model
// and compares every read. A tiny cache budget makes eviction constant.
func TestAgainstModel(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	ops := 3000
	if testing.Short() {
		seeds, ops = seeds[:1], 1000
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			runModel(t, seed, ops)
		})
	}
	// Entries new to a scan's overlay wait in a pending list that is
	// merged into it past maxPending; a small one merges all the time.
	t.Run("pending-merges", func(t *testing.T) {
		old := maxPending
		maxPending = 2
		defer func() { maxPending = old }()
		runModel(t, 4, ops)
	})
}

func runModel(t *testing.T, seed uint64, ops int) {
	rng := rand.New(rand.NewPCG(seed, seed))
	f := newFixture(t, "one", "two")
	open := func() *State {
		s := f.open()
		s.cacheBudget, s.evictAt = 4<<10, 4<<10
		return s
	}
	s := open()
	m := newModel(2)
	key := func() string { return fmt.Sprintf("k%02d", rng.IntN(60)) }
	value := func() string {
		n := rng.IntN(40)
		if rng.IntN(200) == 0 {
			n = 200 << 10
		}
		return strings.Repeat(string(rune('a'+rng.IntN(26))), n)
	}
	var trace []string
	fail := func(format string, args ...any) {
		t.Helper()
		if len(trace) > 30 {
			trace = trace[len(trace)-30:]
		}
		t.Fatalf("seed %d: %s\nlast operations:\n  %s", seed, fmt.Sprintf(format, args...), strings.Join(trace, "\n  "))
	}
	for i := range ops {
		h := rng.IntN(2)
		switch r := rng.IntN(100); {
		case r < 30:
			k, v := key(), value()
			trace = append(trace, fmt.Sprintf("put %d %s (%d bytes)", h, k, len(v)))
			if err := s.Put(int32(h), []byte(k), []byte(v)); err != nil {
				fail("put: %v", err)
			}
			m.staged[h][k] = &v
		case r < 40:
			k := key()
			trace = append(trace, fmt.Sprintf("delete %d %s", h, k))
			if err := s.Delete(int32(h), []byte(k)); err != nil {
				fail("delete: %v", err)
			}
			m.staged[h][k] = nil
		case r < 70:
			k := key()
			got, ok, err := s.Get(int32(h), []byte(k))
			want, wok := m.get(h, k)
			if err != nil || ok != wok || string(got) != want {
				fail("op %d: get %d %s = %d bytes %v %v, want %d bytes %v", i, h, k, len(got), ok, err, len(want), wok)
			}
		case r < 78:
			a, b := key(), key()
			var end []byte
			if rng.IntN(3) > 0 {
				end = []byte(b)
			}
			trace = append(trace, fmt.Sprintf("scan %d [%s, %q)", h, a, end))
			var gotKeys []string
			err := s.Scan(int32(h), []byte(a), end, func(k, v []byte) bool {
				want, ok := m.get(h, string(k))
				if !ok || !bytes.Equal(v, []byte(want)) {
					fail("scan %d: key %s has %d bytes, model %v %d bytes", h, k, len(v), ok, len(want))
				}
				gotKeys = append(gotKeys, string(k))
				return true
			})
			if err != nil {
				fail("scan: %v", err)
			}
			var wantKeys []string
			for k := range m.view(h) {
				if k >= a && (end == nil || k < string(end)) {
					wantKeys = append(wantKeys, k)
				}
			}
			slices.Sort(wantKeys)
			if !slices.Equal(gotKeys, wantKeys) {
				fail("scan %d [%s, %q): got %v, want %v", h, a, end, gotKeys, wantKeys)
			}
		case r < 90:
			commit := rng.IntN(4) > 0
			trace = append(trace, fmt.Sprintf("end call commit=%v", commit))
			s.EndCall(commit)
			m.endCall(commit)
		case r < 95:
			trace = append(trace, "flush")
			if err := s.Flush(); err != nil {
				fail("flush: %v", err)
			}
			m.flush()
		case r < 97:
			trace = append(trace, "rollback")
			s.Rollback()
			m.rollback()
		case r < 99:
			trace = append(trace, "reopen")
			s.Close()
			s = open()
			m.rollback()
		default:
			trace = append(trace, "delete the state dir and reopen")
			s.Close()
			if err := os.RemoveAll(f.dir); err != nil {
				t.Fatal(err)
			}
			s = open()
			m.rollback()
		}
		if s.cacheBytes < 0 {
			fail("cache accounting went negative: %d", s.cacheBytes)
		}
	}
	// Finally everything committed, flushed and rebuilt from the changelog
	// alone matches.
	s.EndCall(true)
	m.endCall(true)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.RemoveAll(f.dir); err != nil {
		t.Fatal(err)
	}
	s = open()
	for h := range 2 {
		if got, want := contents(t, s, int32(h)), m.view(h); !sameMap(got, want) {
			t.Fatalf("store %d rebuilt from the changelog: %s", h, diffMaps(got, want))
		}
	}
}
