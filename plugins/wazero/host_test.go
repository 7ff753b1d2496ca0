package wazero

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins"
)

// memHost is an in-memory plugins.Host for the runtime's tests: stores
// named by the test, state applied at once (staging per call is the task's
// job, tested in host), emitted batches and logs recorded.
type memHost struct {
	mu      sync.Mutex
	stores  []string
	data    []map[string][]byte
	emitted [][]byte
	logs    []string
}

func newMemHost(stores ...string) *memHost {
	h := &memHost{stores: stores}
	for range stores {
		h.data = append(h.data, map[string][]byte{})
	}
	return h
}

func (h *memHost) Emit(batch []byte) int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.emitted = append(h.emitted, bytes.Clone(batch))
	return int32(abi.OK)
}

func (h *memHost) StoreOpen(name []byte) int32 {
	for i, s := range h.stores {
		if s == string(name) {
			return int32(i)
		}
	}
	return int32(abi.ErrBadStore)
}

func (h *memHost) store(s int32) map[string][]byte {
	if s < 0 || int(s) >= len(h.data) {
		return nil
	}
	return h.data[s]
}

func (h *memHost) StateGet(store int32, key []byte) ([]byte, bool, int32) {
	m := h.store(store)
	if m == nil {
		return nil, false, int32(abi.ErrBadStore)
	}
	v, ok := m[string(key)]
	return v, ok, 0
}

func (h *memHost) StatePut(store int32, key, value []byte) int32 {
	m := h.store(store)
	if m == nil {
		return int32(abi.ErrBadStore)
	}
	m[string(key)] = bytes.Clone(value)
	return 0
}

func (h *memHost) StateDelete(store int32, key []byte) int32 {
	m := h.store(store)
	if m == nil {
		return int32(abi.ErrBadStore)
	}
	delete(m, string(key))
	return 0
}

func (h *memHost) StateScan(store int32, start, end []byte, dst []byte, max int) ([]byte, int, int32) {
	m := h.store(store)
	if m == nil {
		return dst, 0, int32(abi.ErrBadStore)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k >= string(start) && (end == nil || k < string(end)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for i, k := range keys {
		size := abi.ScanEntryFixedSz + len(k) + len(m[k])
		if len(dst)+size > max {
			if i == 0 {
				return dst, size, 0
			}
			break
		}
		dst = abi.AppendScanEntry(dst, []byte(k), m[k])
	}
	return dst, 0, 0
}

func (h *memHost) Log(level int32, msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, string(msg))
}

// outputs decodes everything emitted so far.
func (h *memHost) outputs(t testing.TB) []abi.Output {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var outs []abi.Output
	for _, b := range h.emitted {
		var or abi.OutputReader
		or.Reset(b)
		var o abi.Output
		for or.Next(&o) {
			o.Headers = append([]abi.Header(nil), o.Headers...)
			outs = append(outs, o)
			o = abi.Output{}
		}
		if err := or.Err(); err != nil {
			t.Fatalf("emitted batch does not parse: %v", err)
		}
	}
	return outs
}

func (h *memHost) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.emitted = nil
	h.logs = nil
}

// Shared runtime for the tests of this package: compiling a Go guest takes
// a moment, and the cache makes the second compile of a guest free.
var (
	sharedOnce sync.Once
	shared     *Runtime
	sharedErr  error
)

func testRuntime(t testing.TB) *Runtime {
	t.Helper()
	// A disk cache that outlives the test process: compiling a Go guest
	// takes wazero a second, and a minute under the race detector.
	sharedOnce.Do(func() {
		shared, sharedErr = New(context.Background(), Options{CacheDir: filepath.Join(os.TempDir(), "sluice-wazero-test-cache")})
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func compileGuest(t testing.TB, name string) plugins.Module {
	t.Helper()
	m, err := testRuntime(t).Compile(context.Background(), testguests.Build(name))
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return m
}

func instantiate(t testing.TB, name string, cfg plugins.InstanceConfig) plugins.Instance {
	t.Helper()
	if cfg.Host == nil {
		cfg.Host = newMemHost("s")
	}
	if cfg.Name == "" {
		cfg.Name = name + "/0"
	}
	inst, err := compileGuest(t, name).Instantiate(context.Background(), cfg)
	if err != nil {
		t.Fatalf("instantiate %s: %v", name, err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst
}

// process encodes records as one input batch for partition 3 and runs it.
func process(ctx context.Context, inst plugins.Instance, records ...abi.Record) error {
	n := abi.BatchHeaderSize
	for i := range records {
		n += records[i].EncodedSize()
	}
	buf, err := inst.Input(ctx, n)
	if err != nil {
		return err
	}
	abi.PutBatchHeader(buf, abi.BatchHeader{Count: uint32(len(records)), Partition: 3})
	off := abi.BatchHeaderSize
	for i := range records {
		off += abi.PutRecord(buf[off:], &records[i])
	}
	return inst.Process(ctx, n)
}

// values makes one record per value, keyed "k<i>".
func values(vs ...string) []abi.Record {
	rs := make([]abi.Record, len(vs))
	for i, v := range vs {
		rs[i] = abi.Record{Offset: int64(i), Timestamp: 1000 + int64(i), Key: []byte("k" + string(rune('0'+i%10))), Value: []byte(v)}
	}
	return rs
}
