package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-io/sluice/broker/batch"
)

// rec is one record to put in a test batch. A nil value is a tombstone.
type rec struct {
	key, value []byte
	ts         int64
}

// makeBatch encodes recs as one batch with offset deltas 0..n-1.
func makeBatch(recs ...rec) []byte {
	var b batch.Builder
	b.Reset(recs[0].ts)
	for i, r := range recs {
		b.Add(int32(i), r.ts, r.key, r.value, nil)
	}
	return bytes.Clone(b.Finish())
}

// makeProducerBatch is makeBatch for an idempotent producer.
func makeProducerBatch(pid int64, epoch int16, seq int32, n int, ts int64) []byte {
	var b batch.Builder
	b.Reset(ts)
	b.SetProducer(pid, epoch, seq)
	for i := range n {
		b.Add(int32(i), ts, []byte(fmt.Sprintf("p%d-%d", seq, i)), []byte("v"), nil)
	}
	return bytes.Clone(b.Finish())
}

// valueBatch makes a batch of n records with distinct values tagged by tag.
func valueBatch(tag string, n, size int, ts int64) []byte {
	recs := make([]rec, n)
	for i := range recs {
		v := bytes.Repeat([]byte{'x'}, size)
		copy(v, fmt.Sprintf("%s/%d/", tag, i))
		recs[i] = rec{key: []byte(fmt.Sprintf("%s-%d", tag, i)), value: v, ts: ts}
	}
	return makeBatch(recs...)
}

// smallConfig rolls segments every few KiB and indexes densely, so that
// tests exercise many segments and index entries with little data.
func smallConfig() Config {
	c := DefaultConfig()
	c.SegmentBytes = 4 << 10
	c.IndexIntervalBytes = 512
	c.RetentionMs = -1
	c.FlushMode = FlushOS
	return c
}

func open(t testing.TB, dir string, cfg Config) *Partition {
	t.Helper()
	return openWithLog(t, dir, cfg, quietLogger())
}

func openWithLog(t testing.TB, dir string, cfg Config, log *slog.Logger) *Partition {
	t.Helper()
	p, err := OpenPartition(dir, cfg, log)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func mustAppend(t testing.TB, p *Partition, b []byte) AppendInfo {
	t.Helper()
	info, err := p.Append(b, 1)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return info
}

// storedRecord is a decoded record with copied bytes.
type storedRecord struct {
	offset, ts int64
	key, value []byte
}

// readAll reads every record from offset from to the high watermark with
// small reads, checking that offsets only go up.
func readAll(t testing.TB, p *Partition, from int64) []storedRecord {
	t.Helper()
	var out []storedRecord
	next := from
	for next < p.HighWatermark() {
		b, err := p.Read(next, 700)
		if err != nil {
			t.Fatalf("read at %d: %v", next, err)
		}
		if len(b) == 0 {
			break
		}
		for rest := b; len(rest) > 0; {
			bb, h, r, err := batch.Next(rest)
			if err != nil {
				t.Fatalf("read at %d returned a bad batch: %v", next, err)
			}
			rest = r
			err = batch.Records(bb, func(r *batch.Record) bool {
				if r.Offset < next {
					return true // before from, or returned by an earlier read
				}
				if n := len(out); n > 0 && r.Offset <= out[n-1].offset {
					t.Fatalf("offset %d after %d", r.Offset, out[n-1].offset)
				}
				out = append(out, storedRecord{r.Offset, r.Timestamp, bytes.Clone(r.Key), bytes.Clone(r.Value)})
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			next = max(next, h.NextOffset())
		}
	}
	return out
}

// headers lists the batch headers in a buffer of batches.
func headers(t testing.TB, b []byte) []batch.Header {
	t.Helper()
	var hs []batch.Header
	for len(b) > 0 {
		_, h, rest, err := batch.Next(b)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		b = rest
	}
	return hs
}

// logFiles lists the segment logs in dir by base offset.
func logFiles(t testing.TB, dir string) []int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var bases []int64
	for _, e := range entries {
		if b, ok := parseBase(e.Name(), logSuffix); ok {
			bases = append(bases, b)
		}
	}
	slices.Sort(bases)
	return bases
}

// copyDir copies the regular files of src into a new temp dir.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// logCapture records log entries so tests can check what recovery said.
type logCapture struct {
	mu      sync.Mutex
	entries []capturedLog
}

type capturedLog struct {
	level slog.Level
	msg   string
	attrs map[string]any
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCapture) WithGroup(string) slog.Handler            { return c }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	e := capturedLog{level: r.Level, msg: r.Message, attrs: map[string]any{}}
	r.Attrs(func(a slog.Attr) bool { e.attrs[a.Key] = a.Value.Any(); return true })
	c.mu.Lock()
	c.entries = append(c.entries, e)
	c.mu.Unlock()
	return nil
}

// find returns the first entry at level or above whose attrs include key.
func (c *logCapture) find(level slog.Level, key string) (capturedLog, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if _, ok := e.attrs[key]; ok && e.level >= level {
			return e, true
		}
	}
	return capturedLog{}, false
}

func isErr(err, target error) bool { return errors.Is(err, target) }

func slogNew(h slog.Handler) *slog.Logger { return slog.New(h) }

func maxProcs() int { return runtime.GOMAXPROCS(0) }
