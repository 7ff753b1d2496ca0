//go:build !wasip1

package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/gowasm"
	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

const testOperatorDir = "internal/testoperator"

func valTypes(ts []api.ValueType) []abi.ValType {
	out := make([]abi.ValType, len(ts))
	for i, t := range ts {
		out[i] = abi.ValType(t)
	}
	return out
}

func sameSignature(f api.FunctionDefinition, s abi.Signature) bool {
	return slices.Equal(valTypes(f.ParamTypes()), s.Params) && slices.Equal(valTypes(f.ResultTypes()), s.Results)
}

// TestWasmModuleFollowsTheABI builds an operator with the SDK for
// GOOS=wasip1 and checks the module's imports and exports against package
// abi: the version check is imported (the linker drops unused imports, so
// this fails if the SDK stops calling it), every sluice_v1 import has the
// ABI's signature, and the exports are those of a reactor.
func TestWasmModuleFollowsTheABI(t *testing.T) {
	wasm := gowasm.MustBuild(testOperatorDir)
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}

	imported := map[string]bool{}
	for _, f := range cm.ImportedFunctions() {
		module, name, _ := f.Import()
		switch module {
		case abi.Module:
			sig, ok := abi.HostFuncs[name]
			if !ok {
				t.Errorf("imports %s.%s, which ABI v1 does not have", module, name)
			} else if !sameSignature(f, sig) {
				t.Errorf("imports %s.%s with params %v results %v, want %v", module, name, f.ParamTypes(), f.ResultTypes(), sig)
			}
			imported[name] = true
		case abi.WASIModule:
		default:
			t.Errorf("imports %s.%s from a module the host does not provide", module, name)
		}
	}
	// The test operator uses every host function through the SDK.
	for name := range abi.HostFuncs {
		if !imported[name] {
			t.Errorf("does not import %s.%s", abi.Module, name)
		}
	}

	exports := cm.ExportedFunctions()
	for name, sig := range abi.Exports {
		f, ok := exports[name]
		if !ok {
			t.Errorf("does not export %s", name)
		} else if !sameSignature(f, sig) {
			t.Errorf("exports %s with params %v results %v, want %v", name, f.ParamTypes(), f.ResultTypes(), sig)
		}
	}
	if _, ok := exports[abi.ExportInitialize]; !ok {
		t.Errorf("does not export %s: not built as a reactor", abi.ExportInitialize)
	}
	if _, ok := exports[abi.ExportStart]; ok {
		t.Errorf("exports %s: built as a command, not a reactor", abi.ExportStart)
	}
	if _, ok := cm.ExportedMemories()[abi.ExportMemory]; !ok {
		t.Errorf("does not export %s", abi.ExportMemory)
	}
}

func values(key string, vs ...string) []sluice.Record {
	var rs []sluice.Record
	for _, v := range vs {
		rs = append(rs, sluice.Record{Key: []byte(key), Value: []byte(v)})
	}
	return rs
}

// TestWasmOperatorInTheRuntime runs the test operator, compiled to Wasm,
// in sluice's wazero runtime: the SDK's imports and exports, its memory
// handling, its error reporting and its state paging all cross the real
// boundary.
func TestWasmOperatorInTheRuntime(t *testing.T) {
	wasm := gowasm.MustBuild(testOperatorDir)
	ctx := context.Background()
	cfg := sdktest.Config{Params: map[string]any{"prefix": "> "}, Stores: []string{"counts"}, Outputs: 2}
	host, err := sdktest.StartWasm(ctx, wasm, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()

	hdr := []sluice.Header{{Key: []byte("h"), Value: []byte("v")}, {Key: []byte("null")}}
	batch := append([]sluice.Record{{Key: []byte("k"), Value: []byte("hello"), Headers: hdr,
		Timestamp: 1234}}, values("a", "count", "count")...)
	batch = append(batch, values("b", "count")...)
	outs, err := host.Process(batch...)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outs {
		got = append(got, fmt.Sprintf("%d:%s=%s", o.Output, o.Key, o.Value))
	}
	want := []string{"0:k=> hello", "0:a=1", "0:a=2", "0:b=1"}
	if !slices.Equal(got, want) {
		t.Errorf("outputs = %q, want %q", got, want)
	}
	if o := outs[0]; o.Timestamp.UnixMilli() != 1234 || len(o.Headers) != 2 || string(o.Headers[0].Value) != "v" || o.Headers[1].Value != nil {
		t.Errorf("first output: timestamp %v, headers %q; want 1234 and the input's headers", o.Timestamp.UnixMilli(), o.Headers)
	}
	if host.EmitCalls() != 1 {
		t.Errorf("%d emit calls for one batch, want 1", host.EmitCalls())
	}

	// A failed record discards the whole batch, state included.
	_, err = host.Process(append(values("a", "count"), values("x", "fail")...)...)
	var re *sdktest.RecordError
	if !errors.As(err, &re) || re.Index != 1 || re.Message != "asked to fail" {
		t.Errorf("fail: err = %v, want record 1 failed", err)
	}
	_, err = host.Process(values("x", "ok", "panic")...)
	if !errors.As(err, &re) || re.Index != 1 || re.Message != "panic: asked to panic" {
		t.Errorf("panic: err = %v, want record 1 failed with the panic", err)
	}
	if st := host.State("counts"); len(st) != 2 || st["a"] != "2" || st["b"] != "1" {
		t.Errorf("counts = %v, want a=2 b=1", st)
	}

	// Scans page through more entries than one buffer holds.
	if _, err := host.Process(values("b", "fill", "reset")...); err != nil {
		t.Fatal(err)
	}
	outs, err = host.Process(values("", "dump")...)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 3001 || string(outs[0].Key) != "a" || string(outs[0].Value) != "2" ||
		string(outs[1].Key) != "f10000" || string(outs[3000].Key) != "f12999" || string(outs[3000].Value) != "2999" {
		t.Errorf("dump: %d outputs, want a=2 then f10000..f12999", len(outs))
	}
	var logged bool
	for _, l := range host.Logs() {
		logged = logged || l.Message == `resetting "b"`
	}
	if !logged {
		t.Errorf("logs = %v, want the reset message", host.Logs())
	}
}

func TestWasmOperatorInitFailures(t *testing.T) {
	wasm := gowasm.MustBuild(testOperatorDir)
	ctx := context.Background()
	for _, c := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"refuse": true}, "refusing to start, as asked"},
		{map[string]any{"prefix": 3}, `parameter "prefix": want a string, got 3`},
	} {
		host, err := sdktest.StartWasm(ctx, wasm, sdktest.Config{Params: c.params, Stores: []string{"counts"}})
		var ie *sdktest.InitError
		if !errors.As(err, &ie) || ie.Message != c.want {
			t.Errorf("params %v: err = %v, want init error %q", c.params, err, c.want)
		}
		if host != nil {
			host.Close()
		}
	}
}
