package runtimetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
)

// The cases of guests that break things: faults, limits, ABI violations.

// hostileGuests runs each hostile guest next to a healthy echo instance
// that keeps processing batches concurrently: the hostile one must fail
// with the right kind and a clear detail, the healthy one must not notice.
func (s *suite) hostileGuests(t *testing.T) {
	tests := []struct {
		guest  string
		limits plugins.Limits
		kind   plugins.FaultKind
		trap   string   // for FaultTrap: the kind of trap (RunOptions.TrapText)
		detail []string // substrings of Fault.Detail
	}{
		{guest: "trap", kind: plugins.FaultTrap, trap: TrapOutOfBounds},
		// A Go guest prints its panic, then traps (unreachable).
		{guest: "panic", kind: plugins.FaultTrap, trap: TrapUnreachable, detail: []string{"(guest: panic: boom on record x)"}},
		{guest: "exit", kind: plugins.FaultExit, detail: []string{"sluice_process: the guest exited with code 3"}},
		{guest: "loop", limits: plugins.Limits{CallTimeout: 200 * time.Millisecond}, kind: plugins.FaultTimeout,
			detail: []string{"sluice_process ran longer than the call timeout of 200ms"}},
		{guest: "membomb", limits: plugins.Limits{MemoryBytes: 32 << 20}, kind: plugins.FaultMemory,
			detail: []string{"over the limit of 33554432 bytes", "(guest: fatal error: out of memory)"}},
	}
	for _, tc := range tests {
		t.Run(tc.guest, func(t *testing.T) {
			healthyHost := NewMemHost()
			healthy := Instantiate(t, s.rt, "echo", plugins.InstanceConfig{Name: "healthy", Host: healthyHost})
			hostile := Instantiate(t, s.rt, tc.guest, plugins.InstanceConfig{Limits: tc.limits})

			// The healthy instance runs batches before, during and after
			// the hostile one's fault.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var healthyErr error
			var batches atomic.Int64
			ended := make(chan struct{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(ended)
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := Process(context.Background(), healthy, Values("a", "b")...); err != nil {
						healthyErr = err
						return
					}
					batches.Add(1)
				}
			}()
			waitFor(t, func() bool {
				select {
				case <-ended:
					return true
				default:
					return batches.Load() > 0
				}
			})
			f := FaultOf(t, hostile, Values("x")...)
			after := batches.Load()
			waitFor(t, func() bool {
				select {
				case <-ended:
					return true
				default:
					return batches.Load() > after
				}
			})
			close(stop)
			wg.Wait()

			t.Logf("%s: %v", tc.guest, f)
			if f.Kind != tc.kind {
				t.Errorf("kind %v, want %v (%v)", f.Kind, tc.kind, f)
			}
			if tc.trap != "" {
				s.checkTrapDetail(t, f, abi.ExportProcess, tc.trap)
			}
			for _, d := range tc.detail {
				if !strings.Contains(f.Detail, d) {
					t.Errorf("detail %q lacks %q", f.Detail, d)
				}
			}
			if f.Instance != tc.guest+"/0" {
				t.Errorf("fault names instance %q", f.Instance)
			}
			if healthyErr != nil {
				t.Fatalf("healthy instance failed: %v", healthyErr)
			}
			if got := len(healthyHost.Outputs(t)); got != 2*int(batches.Load()) {
				t.Fatalf("healthy instance emitted %d records in %d batches", got, batches.Load())
			}
			// The faulted instance is closed for good.
			if err := Process(context.Background(), hostile, Values("y")...); !plugins.IsFault(err) {
				t.Fatalf("faulted instance still processes: %v", err)
			}
		})
	}
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *suite) triggerParamsEchoOtherRecords(t *testing.T) {
	h := NewMemHost()
	inst := Instantiate(t, s.rt, "panic", plugins.InstanceConfig{Host: h, Params: []byte(`{"on": "poison"}`)})
	if err := Process(context.Background(), inst, Values("a", "b")...); err != nil {
		t.Fatal(err)
	}
	if got := len(h.Outputs(t)); got != 2 {
		t.Fatalf("got %d outputs, want 2", got)
	}
	f := FaultOf(t, inst, Values("a", "poison")...)
	if f.Kind != plugins.FaultTrap || !strings.Contains(f.Detail, "boom on record poison") {
		t.Fatalf("got %v, want a trap after the panic", f)
	}
	s.checkTrapDetail(t, f, abi.ExportProcess, TrapUnreachable)
}

func (s *suite) outOfBoundsEveryHostFunction(t *testing.T) {
	// The oob guest passes [0xffff0000, 16) for the argument its record's
	// value names.
	const bad = "[ptr 0xffff0000, len 16] is outside guest memory"
	tests := []struct{ value, detail string }{
		{"emit", "emit: batch " + bad},
		{"emit_huge", "emit: batch [ptr 0x"},
		{"emit_malformed", "emit: malformed output batch"},
		{"store_open", "store_open: name " + bad},
		{"state_get", "state_get: key " + bad},
		{"state_get_value", "state_get: value buffer " + bad},
		{"state_put", "state_put: key " + bad},
		{"state_put_value", "state_put: value " + bad},
		{"state_delete", "state_delete: key " + bad},
		{"state_scan", "state_scan: start key " + bad},
		{"state_scan_end", "state_scan: end key " + bad},
		{"state_scan_buf", "state_scan: result buffer " + bad},
		{"log", "log: message " + bad},
		{"set_error", "set_error: message " + bad},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			h := NewMemHost("s")
			inst := Instantiate(t, s.rt, "oob", plugins.InstanceConfig{Host: h})
			f := FaultOf(t, inst, abi.Record{Value: []byte(tc.value)})
			if f.Kind != plugins.FaultABI || !strings.Contains(f.Detail, tc.detail) {
				t.Fatalf("got %v (kind %v), want an ABI fault containing %q", f, f.Kind, tc.detail)
			}
			if tc.value == "emit_huge" && !strings.Contains(f.Detail, "len 2147483647") {
				t.Fatalf("detail %q does not give the bad length", f.Detail)
			}
		})
	}
}

func (s *suite) outputLimit(t *testing.T) {
	inst := Instantiate(t, s.rt, "echo", plugins.InstanceConfig{Limits: plugins.Limits{MaxOutputBytes: 1000}})
	if err := Process(context.Background(), inst, abi.Record{Value: make([]byte, 900)}); err != nil {
		t.Fatalf("900 bytes under a 1000-byte limit: %v", err)
	}
	f := FaultOf(t, inst, abi.Record{Value: make([]byte, 1000)})
	if f.Kind != plugins.FaultABI || !strings.Contains(f.Detail, "over the limit of 1000 bytes") {
		t.Fatalf("got %v", f)
	}
}

func (s *suite) callerContextStopsCall(t *testing.T) {
	inst := Instantiate(t, s.rt, "loop", plugins.InstanceConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := Process(ctx, inst, Values("x")...)
	var f *plugins.Fault
	if !errors.As(err, &f) || f.Kind != plugins.FaultTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a timeout fault wrapping context.DeadlineExceeded", err)
	}
}

func (s *suite) memoryLimitBelowModuleMinimum(t *testing.T) {
	m := Compile(t, s.rt, "echo")
	_, err := m.Instantiate(context.Background(), plugins.InstanceConfig{Name: "tiny", Host: NewMemHost(),
		Limits: plugins.Limits{MemoryBytes: 1 << 20}})
	var f *plugins.Fault
	if !errors.As(err, &f) || f.Kind != plugins.FaultMemory || !strings.Contains(f.Detail, "over the instance's limit of 1048576 bytes") {
		t.Fatalf("got %v, want a memory fault", err)
	}
}

func (s *suite) memoryLimitAllowsUpToLimit(t *testing.T) {
	// membomb with a trigger that never fires allocates nothing; a batch
	// bigger than the limit cannot even be given to it.
	inst := Instantiate(t, s.rt, "membomb", plugins.InstanceConfig{Params: []byte(`{"on": "never"}`),
		Limits: plugins.Limits{MemoryBytes: 16 << 20}})
	if err := Process(context.Background(), inst, Values("a")...); err != nil {
		t.Fatal(err)
	}
	_, err := inst.Input(context.Background(), 32<<20)
	var f *plugins.Fault
	if !errors.As(err, &f) || f.Kind != plugins.FaultMemory {
		t.Fatalf("a 32 MiB input region under a 16 MiB limit: got %v, want a memory fault", err)
	}
	t.Log(f)
}

func (s *suite) badStatusIsAnABIFault(t *testing.T) {
	// echo returns status 2 when emit fails.
	inst := Instantiate(t, s.rt, "echo", plugins.InstanceConfig{Host: rejectingHost{NewMemHost()}})
	f := FaultOf(t, inst, Values("a")...)
	if f.Kind != plugins.FaultABI || f.Detail != "sluice_process returned status 2" {
		t.Fatalf("got %v", f)
	}
}
