package runtimetest

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/internal/wasmasm"
	"github.com/sluice-io/sluice/plugins"
)

// CompiledModuleCounter is implemented by runtimes that can say how many
// compiled modules they hold (one per distinct module that some Compile
// holds: see plugins.Module.Close). The suite checks the count when the
// runtime has it.
type CompiledModuleCounter interface {
	CompiledModules() int
}

// uniqueCopies counts the modules made distinct by WithCustomSection, so
// that each case's bytes are compiled by it alone.
var uniqueCopies atomic.Int64

// WithCustomSection is wasmasm.WithCustomSection: wasm with a custom
// section appended, so that it has another sha256.
func WithCustomSection(wasm []byte, name string, payload []byte) []byte {
	return wasmasm.WithCustomSection(wasm, name, payload)
}

// uniqueEcho is the echo guest made distinct from every other module the
// suite compiles.
func uniqueEcho() []byte {
	return WithCustomSection(testguests.Build("echo"), "sluice-runtimetest", fmt.Appendf(nil, "%d", uniqueCopies.Add(1)))
}

// checkEchoes fails t unless m instantiates and echoes a record.
func checkEchoes(t *testing.T, m plugins.Module, name string) {
	t.Helper()
	ctx := context.Background()
	h := NewMemHost()
	inst, err := m.Instantiate(ctx, plugins.InstanceConfig{Name: name, Host: h})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer inst.Close(ctx)
	checkInstanceEchoes(t, inst, h, name)
}

func checkInstanceEchoes(t *testing.T, inst plugins.Instance, h *MemHost, name string) {
	t.Helper()
	ctx := context.Background()
	before := len(h.Outputs(t))
	if err := Process(ctx, inst, Values(name)...); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	outs := h.Outputs(t)
	if len(outs) != before+1 || string(outs[len(outs)-1].Value) != name {
		t.Fatalf("%s: outputs %+v", name, outs)
	}
}

// compiledModules is the runtime's count, or -1 if it has none.
func (s *suite) compiledModules() int {
	if c, ok := s.rt.(CompiledModuleCounter); ok {
		return c.CompiledModules()
	}
	return -1
}

// moduleCloseCountsHolders: Compile of the same bytes twice gives two
// holders of one compiled module; closing one (twice, even) leaves the
// other working; once both are closed the runtime no longer holds the
// module, and compiling the bytes again gives a working module.
func (s *suite) moduleCloseCountsHolders(t *testing.T) {
	ctx := context.Background()
	wasm := uniqueEcho()
	before := s.compiledModules()
	m1, err := s.rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := s.rt.Compile(ctx, bytes.Clone(wasm))
	if err != nil {
		t.Fatal(err)
	}
	if m1.SHA256() != m2.SHA256() {
		t.Fatalf("SHA256 %s and %s of the same bytes", m1.SHA256(), m2.SHA256())
	}
	if before >= 0 {
		if n := s.compiledModules(); n != before+1 {
			t.Fatalf("two Compiles of new bytes: the runtime holds %d compiled modules, want %d", n, before+1)
		}
	}
	if err := m1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// A second Close of the same holder must not release m2's hold.
	if err := m1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m1.Instantiate(ctx, plugins.InstanceConfig{Name: "closed/0", Host: NewMemHost()}); err == nil {
		t.Fatal("Instantiate of a closed Module succeeded")
	}
	if before >= 0 {
		if n := s.compiledModules(); n != before+1 {
			t.Fatalf("one of two holders closed (twice): the runtime holds %d compiled modules, want %d", n, before+1)
		}
	}
	checkEchoes(t, m2, "second-holder")
	if err := m2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if before >= 0 {
		if n := s.compiledModules(); n != before {
			t.Fatalf("every holder closed: the runtime holds %d compiled modules, want %d", n, before)
		}
	}
	m3, err := s.rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatalf("Compile after every holder closed: %v", err)
	}
	defer m3.Close(ctx)
	if m3.SHA256() != m1.SHA256() {
		t.Fatalf("SHA256 %s, then %s", m1.SHA256(), m3.SHA256())
	}
	checkEchoes(t, m3, "recompiled")
}

// moduleCloseKeepsInstances: instances made before the last holder's
// Close go on processing after it, and can be closed afterwards.
func (s *suite) moduleCloseKeepsInstances(t *testing.T) {
	ctx := context.Background()
	wasm := uniqueEcho()
	before := s.compiledModules()
	m1, err := s.rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := s.rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	type live struct {
		inst plugins.Instance
		h    *MemHost
	}
	var insts []live
	for i, m := range []plugins.Module{m1, m2, m2} {
		h := NewMemHost()
		inst, err := m.Instantiate(ctx, plugins.InstanceConfig{Name: fmt.Sprintf("live/%d", i), Host: h})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { inst.Close(ctx) })
		insts = append(insts, live{inst, h})
	}
	if err := m1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if before >= 0 {
		if n := s.compiledModules(); n != before {
			t.Fatalf("every holder closed: the runtime holds %d compiled modules, want %d", n, before)
		}
	}
	for round := 0; round < 3; round++ {
		for i, l := range insts {
			checkInstanceEchoes(t, l.inst, l.h, fmt.Sprintf("after-close-%d-%d", i, round))
		}
	}
	for _, l := range insts {
		if err := l.inst.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
