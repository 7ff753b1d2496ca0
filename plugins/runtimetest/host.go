package runtimetest

import (
	"bytes"
	"slices"
	"sync"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
)

// MemHost is an in-memory plugins.Host for runtime tests: stores named at
// creation, state applied at once (staging per call is the task's job,
// tested in package host), emitted batches and log messages recorded. It
// is safe for concurrent use.
type MemHost struct {
	mu      sync.Mutex
	stores  []string
	data    []map[string][]byte
	emitted [][]byte
	logs    []string
	// streamTime is what StreamTime returns (SetStreamTime).
	streamTime int64
}

var _ plugins.Host = (*MemHost)(nil)

// NewMemHost returns a MemHost whose stores are stores: StoreOpen of
// stores[i] returns handle i, any other name abi.ErrBadStore.
func NewMemHost(stores ...string) *MemHost {
	h := &MemHost{stores: stores, streamTime: -1}
	for range stores {
		h.data = append(h.data, map[string][]byte{})
	}
	return h
}

// Emit implements plugins.Host: it keeps a copy of batch.
func (h *MemHost) Emit(batch []byte) int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.emitted = append(h.emitted, bytes.Clone(batch))
	return int32(abi.OK)
}

// StoreOpen implements plugins.Host.
func (h *MemHost) StoreOpen(name []byte) int32 {
	for i, s := range h.stores {
		if s == string(name) {
			return int32(i)
		}
	}
	return int32(abi.ErrBadStore)
}

// store returns store s's map, or nil for a bad handle. h.mu is held.
func (h *MemHost) store(s int32) map[string][]byte {
	if s < 0 || int(s) >= len(h.data) {
		return nil
	}
	return h.data[s]
}

// StateGet implements plugins.Host.
func (h *MemHost) StateGet(store int32, key []byte) ([]byte, bool, int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.store(store)
	if m == nil {
		return nil, false, int32(abi.ErrBadStore)
	}
	v, ok := m[string(key)]
	return v, ok, 0
}

// StatePut implements plugins.Host.
func (h *MemHost) StatePut(store int32, key, value []byte) int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.store(store)
	if m == nil {
		return int32(abi.ErrBadStore)
	}
	m[string(key)] = bytes.Clone(value)
	return 0
}

// StateDelete implements plugins.Host.
func (h *MemHost) StateDelete(store int32, key []byte) int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.store(store)
	if m == nil {
		return int32(abi.ErrBadStore)
	}
	delete(m, string(key))
	return 0
}

// StateScan implements plugins.Host.
func (h *MemHost) StateScan(store int32, start, end []byte, dst []byte, max int) ([]byte, int, int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
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
	slices.Sort(keys)
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

// Log implements plugins.Host: it keeps the message (not the level).
func (h *MemHost) Log(level int32, msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, string(msg))
}

// StreamTime implements plugins.Host: -1 unless set by SetStreamTime.
func (h *MemHost) StreamTime() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streamTime
}

// SetStreamTime sets what StreamTime returns from now on.
func (h *MemHost) SetStreamTime(ts int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.streamTime = ts
}

// Emitted returns the batches emitted since creation or the last Reset,
// one per emit call.
func (h *MemHost) Emitted() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.emitted)
}

// Logs returns the log messages received since creation or the last Reset.
func (h *MemHost) Logs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.logs)
}

// Outputs decodes every batch emitted since creation or the last Reset,
// failing t if one does not parse.
func (h *MemHost) Outputs(t testing.TB) []abi.Output {
	t.Helper()
	var outs []abi.Output
	for _, b := range h.Emitted() {
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

// Reset forgets the emitted batches and log messages (not the state).
func (h *MemHost) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.emitted = nil
	h.logs = nil
}

// DiscardHost is a plugins.Host that keeps nothing, so that benchmarks
// measure the runtime and not the test host. Every call succeeds;
// StateGet finds every key with value Value, StateScan finds nothing.
type DiscardHost struct {
	Value []byte
}

var _ plugins.Host = (*DiscardHost)(nil)

func (h *DiscardHost) Emit([]byte) int32                    { return 0 }
func (h *DiscardHost) StoreOpen([]byte) int32               { return 0 }
func (h *DiscardHost) StatePut(int32, []byte, []byte) int32 { return 0 }
func (h *DiscardHost) StateDelete(int32, []byte) int32      { return 0 }
func (h *DiscardHost) Log(int32, []byte)                    {}
func (h *DiscardHost) StreamTime() int64                    { return -1 }
func (h *DiscardHost) StateGet(int32, []byte) ([]byte, bool, int32) {
	return h.Value, true, 0
}
func (h *DiscardHost) StateScan(_ int32, _, _ []byte, dst []byte, _ int) ([]byte, int, int32) {
	return dst, 0, 0
}

// rejectingHost refuses every emit, as a host does for an unknown output.
type rejectingHost struct{ *MemHost }

func (rejectingHost) Emit([]byte) int32 { return int32(abi.ErrBadOutput) }
