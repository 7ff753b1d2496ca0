package state

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/storage"
	"github.com/sluice-io/sluice/internal/testnode"
)

// changelogConfig is a compacted topic's config with small segments, so
// that tests can roll and compact with little data.
func changelogConfig() storage.Config {
	c := storage.DefaultConfig()
	c.Compact = true
	c.Delete = false
	c.RetentionMs = -1
	c.SegmentBytes = 16 << 10
	return c
}

// fixture is a task's state directory and its stores' changelog
// partitions, which outlive State instances as they do in a broker.
type fixture struct {
	t          testing.TB
	dir        string // Pebble directory
	names      []string
	logs       []*storage.Partition
	logBuf     *testnode.SyncBuffer
	log        *slog.Logger
	cacheBytes int64
	// tables names the stores that are table stores (their partition is
	// then the table's topic).
	tables map[string]bool
}

func newFixture(t testing.TB, stores ...string) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{t: t, dir: filepath.Join(base, "state", "0"), names: stores, logBuf: &testnode.SyncBuffer{}}
	f.log = slog.New(slog.NewTextHandler(f.logBuf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	for _, name := range stores {
		p, err := storage.OpenPartition(filepath.Join(base, "changelog-"+name, "0"), changelogConfig(), f.log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		f.logs = append(f.logs, p)
	}
	return f
}

func (f *fixture) options() Options {
	o := Options{Dir: f.dir, Logger: f.log, CacheBytes: f.cacheBytes}
	for i, name := range f.names {
		o.Stores = append(o.Stores, Store{Name: name, Changelog: f.logs[i], Table: f.tables[name]})
	}
	return o
}

// open opens and restores a State, closed at the end of the test.
func (f *fixture) open() *State {
	f.t.Helper()
	s, err := Open(f.options())
	if err != nil {
		f.t.Fatalf("open: %v", err)
	}
	f.t.Cleanup(func() { _ = s.Close() })
	if err := s.Restore(context.Background(), nil); err != nil {
		f.t.Fatalf("restore: %v", err)
	}
	return s
}

// changelog returns every record of store i's changelog as key -> value
// (nil value: tombstone) in log order, and the number of records.
func (f *fixture) changelog(i int) (recs []kv) {
	f.t.Helper()
	p := f.logs[i]
	for off := p.LogStartOffset(); off < p.HighWatermark(); {
		buf, err := p.Read(off, 1<<20)
		if err != nil {
			f.t.Fatal(err)
		}
		if len(buf) == 0 {
			break
		}
		for len(buf) > 0 {
			h, err := batch.ParseHeader(buf)
			if err != nil {
				f.t.Fatal(err)
			}
			err = batch.Records(buf[:h.Size()], func(r *batch.Record) bool {
				recs = append(recs, kv{key: string(r.Key), value: bytes.Clone(r.Value), tombstone: r.Value == nil})
				return true
			})
			if err != nil {
				f.t.Fatal(err)
			}
			off = h.NextOffset()
			buf = buf[h.Size():]
		}
	}
	return recs
}

type kv struct {
	key       string
	value     []byte
	tombstone bool
}

// contents returns every key and value of store h through Scan.
func contents(t testing.TB, s *State, h int32) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := s.Scan(h, nil, nil, func(k, v []byte) bool {
		m[string(k)] = string(v)
		return true
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return m
}

func mustGet(t testing.TB, s *State, h int32, key string) (string, bool) {
	t.Helper()
	v, ok, err := s.Get(h, []byte(key))
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return string(v), ok
}

func mustPut(t testing.TB, s *State, h int32, key, value string) {
	t.Helper()
	if err := s.Put(h, []byte(key), []byte(value)); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func mustDelete(t testing.TB, s *State, h int32, key string) {
	t.Helper()
	if err := s.Delete(h, []byte(key)); err != nil {
		t.Fatalf("delete %q: %v", key, err)
	}
}

func mustFlush(t testing.TB, s *State) {
	t.Helper()
	if err := s.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func diffMaps(got, want map[string]string) string {
	var out []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			out = append(out, fmt.Sprintf("missing %q=%q", k, v))
		} else if g != v {
			out = append(out, fmt.Sprintf("%q: got %q want %q", k, g, v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("extra %q=%q", k, v))
		}
	}
	sort.Strings(out)
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("... %d more", len(out)-10))
	}
	return strings.Join(out, "; ")
}
