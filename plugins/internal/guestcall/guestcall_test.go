package guestcall

import (
	"errors"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
)

func TestProcessResult(t *testing.T) {
	s := State{Name: "op/0"}
	if f, err := s.ProcessResult(abi.StatusOK, 1); f != nil || err != nil {
		t.Fatalf("OK: %v, %v", f, err)
	}
	if f, _ := s.ProcessResult(abi.StatusRecordFailed, 1); f == nil ||
		f.Detail != "sluice_process returned status 1 (record failed) without calling set_error" {
		t.Fatalf("no set_error: %v", f)
	}
	s.SetError(3, []byte("bad"))
	if f, _ := s.ProcessResult(abi.StatusRecordFailed, 3); f == nil ||
		f.Detail != "sluice_process returned status 1 (record failed) with set_error index 3, outside the batch of 3 records" {
		t.Fatalf("index out of the batch: %v", f)
	}
	f, err := s.ProcessResult(abi.StatusRecordFailed, 4)
	var re *plugins.RecordError
	if f != nil || !errors.As(err, &re) || re.Index != 3 || re.Message != "bad" {
		t.Fatalf("record failed: %v, %v", f, err)
	}
	if f, _ := s.ProcessResult(7, 4); f == nil || f.Kind != plugins.FaultABI || f.Instance != "op/0" || f.Detail != "sluice_process returned status 7" {
		t.Fatalf("status 7: %v", f)
	}
}

func TestRegionSize(t *testing.T) {
	for _, c := range []struct {
		n        int
		capacity uint32
		size     uint64
		grow     bool
	}{
		{0, 0, MinRegion, true},
		{10, MinRegion, 0, false},
		{MinRegion + 1, MinRegion, 2 * MinRegion, true},
		{1 << 31, 1 << 30, 1 << 31, true},
	} {
		size, grow := RegionSize(c.n, c.capacity)
		if size != c.size || grow != c.grow {
			t.Errorf("RegionSize(%d, %d) = %d, %v; want %d, %v", c.n, c.capacity, size, grow, c.size, c.grow)
		}
	}
}

func TestEmitChecksLimitAndFormat(t *testing.T) {
	s := State{Name: "op/0", Limits: plugins.Limits{MaxOutputBytes: 4}}
	if _, f := s.Emit(make([]byte, 5), 16, 5); f == nil || s.Fault != f ||
		f.Detail != "emit: the call's output would reach 5 bytes, over the limit of 4 bytes" {
		t.Fatalf("over the limit: %v", f)
	}
	s.Reset()
	s.InInit = true
	if code, f := s.Emit(nil, 0, 0); f != nil || code != int32(abi.ErrNotAllowed) {
		t.Fatalf("during init: %d, %v", code, f)
	}
}

func TestAllocationFree(t *testing.T) {
	s := State{Host: nopHost{}}
	key, buf := []byte("k"), make([]byte, 8)
	if n := testing.AllocsPerRun(100, func() {
		s.StateGet(0, key, buf)
		s.StateScan(0, key, key, buf)
		s.SetError(0, key)
		s.Log(0, key)
		s.StreamTime(buf)
	}); n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}

type nopHost struct{ plugins.Host }

var value = []byte("value")

func (nopHost) StateGet(int32, []byte) ([]byte, bool, int32) { return value, true, 0 }
func (nopHost) StateScan(_ int32, _, _, dst []byte, _ int) ([]byte, int, int32) {
	return dst, 0, 0
}
func (nopHost) Log(int32, []byte) {}
func (nopHost) StreamTime() int64 { return -2 }

func TestStreamTimeWritesLittleEndian(t *testing.T) {
	s := &State{Host: nopHost{}}
	buf := make([]byte, 10)
	if c := s.StreamTime(buf[1:9]); c != 0 {
		t.Fatalf("code %d", c)
	}
	if want := []byte{0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0}; string(buf) != string(want) {
		t.Fatalf("wrote %x, want %x", buf, want)
	}
}
