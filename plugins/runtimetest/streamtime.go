package runtimetest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
)

// streamTimeInstance instantiates streamTimeModule with a MemHost whose
// stream time is initial during sluice_init.
func (s *suite) streamTimeInstance(t *testing.T, initial int64) (plugins.Instance, *MemHost) {
	t.Helper()
	m, err := s.rt.Compile(context.Background(), streamTimeModule())
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	h := NewMemHost()
	h.SetStreamTime(initial)
	inst, err := m.Instantiate(context.Background(), plugins.InstanceConfig{Name: "streamtime/0", Host: h})
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst, h
}

func le64(v int64) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(v))
	return string(b[:])
}

// streamTimeWritesValue checks that stream_time writes the host's stream
// time as an i64 little-endian at out_ptr, from sluice_init and from
// sluice_process, up to the last 8 bytes of memory.
func (s *suite) streamTimeWritesValue(t *testing.T) {
	inst, h := s.streamTimeInstance(t, 1234)
	if logs := h.Logs(); len(logs) != 1 || logs[0] != le64(1234) {
		t.Fatalf("sluice_init: stream_time wrote %q, want %q", logs, le64(1234))
	}
	memEnd := int64(2 * 65536)
	for _, tc := range []struct {
		st  int64
		ptr int64
	}{
		{-1, 2048},
		{0, 2048},
		{1, 4096},
		{1700000000000, 2048},
		{math.MaxInt64, 2048},
		{math.MinInt64, 2048},
		{0x0102030405060708, memEnd - 8}, // the last 8 bytes of memory
	} {
		h.Reset()
		h.SetStreamTime(tc.st)
		if err := Process(context.Background(), inst, abi.Record{Offset: tc.ptr, Timestamp: 5}); err != nil {
			t.Fatalf("stream time %d at %#x: %v", tc.st, tc.ptr, err)
		}
		if logs := h.Logs(); len(logs) != 1 || logs[0] != le64(tc.st) {
			t.Fatalf("stream time %d at %#x: the guest read %q, want %q", tc.st, tc.ptr, logs, le64(tc.st))
		}
	}
}

// streamTimeOutOfBounds checks that an out_ptr whose 8 bytes are not all
// inside guest memory traps the guest with an ABI fault naming
// stream_time, the argument and the range.
func (s *suite) streamTimeOutOfBounds(t *testing.T) {
	for _, tc := range []struct {
		ptr    int64
		detail string
	}{
		{0xffff0000, "stream_time: out [ptr 0xffff0000, len 8] is outside guest memory (131072 bytes)"},
		{2*65536 - 7, "stream_time: out [ptr 0x1fff9, len 8] is outside guest memory (131072 bytes)"},
		{0xffffffff, "stream_time: out [ptr 0xffffffff, len 8] is outside guest memory"},
	} {
		t.Run(fmt.Sprintf("%#x", tc.ptr), func(t *testing.T) {
			inst, h := s.streamTimeInstance(t, -1)
			h.SetStreamTime(77)
			f := FaultOf(t, inst, abi.Record{Offset: tc.ptr})
			if f.Kind != plugins.FaultABI || !strings.Contains(f.Detail, tc.detail) {
				t.Fatalf("got %v (kind %v), want an ABI fault containing %q", f, f.Kind, tc.detail)
			}
			if len(h.Logs()) != 1 { // only sluice_init's log
				t.Fatalf("the guest went on after the fault: logs %q", h.Logs())
			}
		})
	}
}
