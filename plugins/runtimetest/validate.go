package runtimetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins"
)

// The cases of Compile's validation. The messages come from
// plugins/internal/modcheck, shared by every runtime, so they are checked
// word for word.

func (s *suite) validationProblems(t *testing.T, wasm []byte) []string {
	t.Helper()
	_, err := s.rt.Compile(context.Background(), wasm)
	var ve *plugins.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a *plugins.ValidationError", err)
	}
	t.Logf("%v", ve)
	return ve.Problems
}

func wantProblems(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d problems %q, want %d", len(got), got, len(want))
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("problem %d is %q, want it to contain %q", i, got[i], want[i])
		}
	}
}

func (s *suite) handAssembledValidModuleCompiles(t *testing.T) {
	// Guards the encoder: the other validation tests would pass for any
	// malformed module otherwise.
	m, err := s.rt.Compile(context.Background(), validModule().bytes())
	if err != nil {
		t.Fatal(err)
	}
	// Its alloc returns 0, which Instantiate reports as an ABI fault.
	_, err = m.Instantiate(context.Background(), plugins.InstanceConfig{Name: "zero", Host: NewMemHost()})
	var f *plugins.Fault
	if !errors.As(err, &f) || f.Kind != plugins.FaultABI || !strings.Contains(f.Detail, "sluice_alloc(65536) returned 0") {
		t.Fatalf("got %v", err)
	}
}

func (s *suite) validationOfGoGuests(t *testing.T) {
	wantProblems(t, s.validationProblems(t, testguests.Build("noexport")),
		"missing export sluice_process (i32, i32) -> (i32)")
	wantProblems(t, s.validationProblems(t, testguests.Build("badimport")),
		"imports sluice_v1.no_such_function (i32) -> (i32), which ABI v1 does not have (it has: check_abi_version_1, emit,")
	wantProblems(t, s.validationProblems(t, testguests.Build("noversion")),
		"does not import sluice_v1.check_abi_version_1 () -> ()")
}

func (s *suite) validationOfHandAssembledModules(t *testing.T) {
	t.Run("wrong signatures", func(t *testing.T) {
		m := &wasmModule{memory: true}
		m.importFunc(abi.Module, abi.FuncCheckVersion, nil, nil)
		m.importFunc(abi.Module, abi.FuncEmit, []abi.ValType{i32, i64}, []abi.ValType{i32})
		m.importFunc(abi.WASIModule, "fd_write", []abi.ValType{i32}, nil)
		m.exports = append(m.exports, wasmExport{abi.ExportMemory, 2, 0})
		m.exportFunc(abi.ExportAlloc, []abi.ValType{i64}, []abi.ValType{i32})
		m.exportFunc(abi.ExportInit, []abi.ValType{i32, i32}, []abi.ValType{i32})
		m.exportFunc(abi.ExportProcess, []abi.ValType{i32, i32}, nil)
		wantProblems(t, s.validationProblems(t, m.bytes()),
			"imports sluice_v1.emit with signature (i32, i64) -> (i32), want (i32, i32) -> (i32)",
			"imports wasi_snapshot_preview1.fd_write with signature (i32) -> (), want (i32, i32, i32, i32) -> (i32)",
			"export sluice_alloc has signature (i64) -> (i32), want (i32) -> (i32)",
			"export sluice_process has signature (i32, i32) -> (), want (i32, i32) -> (i32)")
	})
	t.Run("command module", func(t *testing.T) {
		m := validModule()
		m.exportFunc(abi.ExportStart, nil, nil)
		wantProblems(t, s.validationProblems(t, m.bytes()),
			"exports _start, so it is a WASI command module; build it as a reactor")
	})
	t.Run("foreign import and no memory", func(t *testing.T) {
		m := &wasmModule{}
		m.importFunc("env", "abort", []abi.ValType{i32}, nil)
		m.importFunc(abi.WASIModule, "no_such_wasi_call", nil, nil)
		m.exportFunc(abi.ExportAlloc, []abi.ValType{i32}, []abi.ValType{i32})
		wantProblems(t, s.validationProblems(t, m.bytes()),
			`imports env.abort (i32) -> () from module "env"; operators may import only from sluice_v1 and wasi_snapshot_preview1`,
			"imports wasi_snapshot_preview1.no_such_wasi_call () -> (), which the host's WASI preview 1 does not provide",
			"does not import sluice_v1.check_abi_version_1",
			"missing export sluice_init (i32, i32) -> (i32)",
			"missing export sluice_process (i32, i32) -> (i32)",
			"missing export memory")
	})
	t.Run("not wasm", func(t *testing.T) {
		wantProblems(t, s.validationProblems(t, []byte("#!/bin/sh\necho hi\n")), "not a valid WebAssembly module")
	})
}
