//go:build cgo && !nowasmtime

package wasmtime

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	wt "github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/internal/meter"
	"github.com/sluice-io/sluice/plugins/internal/modcheck"
	"github.com/sluice-io/sluice/plugins/runtimetest"
	wz "github.com/sluice-io/sluice/plugins/wazero"
)

// The wazero runtime, to compare with. Its disk cache is the one of
// plugins/wazero's tests.
var wazeroShared = runtimetest.Share(func() (*wz.Runtime, error) {
	return wz.New(context.Background(), wz.Options{CacheDir: runtimetest.CacheDir("wazero")})
})

func wazeroRuntime(t testing.TB) *wz.Runtime { return wazeroShared.Get(t) }

// both returns the two runtimes, wasmtime first.
func both(t testing.TB) []plugins.Runtime {
	return []plugins.Runtime{testRuntime(t), wazeroRuntime(t)}
}

func TestName(t *testing.T) {
	if got := testRuntime(t).Name(); got != "wasmtime" {
		t.Fatalf("Name() = %q", got)
	}
}

// TestWASIImportsMatchWazero: the host provides exactly the preview 1
// functions wazero provides, with the same signatures, so both runtimes
// accept the same modules.
func TestWASIImportsMatchWazero(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for name, def := range rt.Module(abi.WASIModule).ExportedFunctionDefinitions() {
		var sig modcheck.Signature
		for _, p := range def.ParamTypes() {
			sig.Params = append(sig.Params, abi.ValType(p))
		}
		for _, r := range def.ResultTypes() {
			sig.Results = append(sig.Results, abi.ValType(r))
		}
		want[name] = sig.String()
	}
	got := map[string]string{}
	for name, sig := range wasiSignatures {
		got[name] = sig.String()
	}
	if !reflect.DeepEqual(got, want) {
		for name, w := range want {
			if got[name] != w {
				t.Errorf("%s: got %q, want %q", name, got[name], w)
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				t.Errorf("%s: not in wazero's preview 1", name)
			}
		}
	}
}

// TestDescribeMatchesCompiledModule: the imports and exports read without
// compiling are those of the compiled module, for every test guest.
func TestDescribeMatchesCompiledModule(t *testing.T) {
	r := testRuntime(t)
	for _, name := range []string{"echo", "noexport", "badimport", "noversion", "entropy"} {
		wasm := testguests.Build(name)
		if name != "noversion" {
			var err error
			if wasm, err = meter.InstrumentWithOptions(wasm, abi.Module, abi.FuncCheckVersion, fuelExport,
				meter.Options{GrowRefusedExport: growRefusedExport}); err != nil {
				t.Fatal(err)
			}
		}
		ims, exs, ok := describe(wasm)
		if !ok {
			t.Fatalf("%s: describe cannot read the module", name)
		}
		cm, err := newModuleForTest(r, wasm)
		if err != nil {
			t.Fatal(err)
		}
		want := validate(cm)
		cm.Close()
		got := modcheck.Check(ims, exs, wasiSignatures)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: describe gives problems\n%q\nthe compiled module\n%q", name, got, want)
		}
	}
}

// TestSameOutputsAsWazero runs guests whose output depends on the WASI
// sandbox (clocks, random bytes, stdout, stderr, files) on both runtimes:
// the outputs must be identical.
func TestSameOutputsAsWazero(t *testing.T) {
	run := func(rt plugins.Runtime, guest string, seed uint64, records ...abi.Record) (outs []string, stdout, stderr string, errs []string) {
		h := runtimetest.NewMemHost("s")
		var so, se bytes.Buffer
		inst := runtimetest.Instantiate(t, rt, guest, plugins.InstanceConfig{Host: h, Seed: seed, Stdout: &so, Stderr: &se})
		for _, rec := range records {
			if err := runtimetest.Process(context.Background(), inst, rec); err != nil {
				errs = append(errs, err.Error())
			}
		}
		for _, o := range h.Outputs(t) {
			outs = append(outs, string(o.Key)+"="+string(o.Value))
		}
		return outs, so.String(), se.String(), errs
	}
	cases := []struct {
		guest   string
		seed    uint64
		records []abi.Record
	}{
		{"entropy", 7, runtimetest.Values("a", "b", "c")},
		{"entropy", 8, runtimetest.Values("a", "b", "c")},
		{"printer", 0, runtimetest.Values("hello", "world")},
		{"openfile", 0, runtimetest.Values("", "/etc/hostname", "./go.mod", "../../go.mod", "/")},
	}
	for _, c := range cases {
		o1, so1, se1, e1 := run(testRuntime(t), c.guest, c.seed, c.records...)
		o2, so2, se2, e2 := run(wazeroRuntime(t), c.guest, c.seed, c.records...)
		if !reflect.DeepEqual(o1, o2) || so1 != so2 || se1 != se2 || !reflect.DeepEqual(e1, e2) {
			t.Errorf("%s (seed %d) differs:\nwasmtime: %q %q %q %q\nwazero:   %q %q %q %q", c.guest, c.seed, o1, so1, se1, e1, o2, so2, se2, e2)
		}
		t.Logf("%s: %q %q", c.guest, o1, e1)
	}
}

// TestFaultsMatchWazero: every hostile guest ends with the same fault on
// both runtimes, detail included.
func TestFaultsMatchWazero(t *testing.T) {
	type result struct {
		kind   plugins.FaultKind
		detail string
		code   uint32
	}
	cases := []struct {
		name    string
		guest   string
		cfg     plugins.InstanceConfig
		records []abi.Record
		ctx     func() (context.Context, context.CancelFunc)
	}{
		{name: "trap", guest: "trap", records: runtimetest.Values("x")},
		{name: "panic", guest: "panic", records: runtimetest.Values("x")},
		{name: "exit", guest: "exit", records: runtimetest.Values("x")},
		{name: "loop", guest: "loop", cfg: plugins.InstanceConfig{Limits: plugins.Limits{CallTimeout: 200 * time.Millisecond}}, records: runtimetest.Values("x")},
		{name: "membomb", guest: "membomb", cfg: plugins.InstanceConfig{Limits: plugins.Limits{MemoryBytes: 32 << 20}}, records: runtimetest.Values("x")},
		{name: "output limit", guest: "echo", cfg: plugins.InstanceConfig{Limits: plugins.Limits{MaxOutputBytes: 1000}}, records: []abi.Record{{Value: make([]byte, 1000)}}},
		{name: "caller cancel", guest: "loop", records: runtimetest.Values("x"), ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}},
	}
	for _, v := range []string{"emit", "emit_huge", "emit_malformed", "store_open", "state_get", "state_get_value", "state_put",
		"state_put_value", "state_delete", "state_scan", "state_scan_end", "state_scan_buf", "log", "set_error"} {
		cases = append(cases, struct {
			name    string
			guest   string
			cfg     plugins.InstanceConfig
			records []abi.Record
			ctx     func() (context.Context, context.CancelFunc)
		}{name: "oob " + v, guest: "oob", records: []abi.Record{{Value: []byte(v)}}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []result
			for _, rt := range both(t) {
				cfg := c.cfg
				cfg.Name = c.guest + "/0"
				inst := runtimetest.Instantiate(t, rt, c.guest, cfg)
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if c.ctx != nil {
					ctx, cancel = c.ctx()
				}
				err := runtimetest.Process(ctx, inst, c.records...)
				cancel()
				var f *plugins.Fault
				if !errors.As(err, &f) {
					t.Fatalf("%s: got %v, want a fault", rt.Name(), err)
				}
				got = append(got, result{f.Kind, f.Detail, f.ExitCode})
			}
			if got[0] != got[1] {
				t.Errorf("wasmtime: %+v\nwazero:   %+v", got[0], got[1])
			}
		})
	}
}

func TestMemoryLimitBelowModuleMinimumMatchesWazero(t *testing.T) {
	var details []string
	for _, rt := range both(t) {
		_, err := runtimetest.Compile(t, rt, "echo").Instantiate(context.Background(), plugins.InstanceConfig{Name: "tiny",
			Host: runtimetest.NewMemHost(), Limits: plugins.Limits{MemoryBytes: 1 << 20}})
		var f *plugins.Fault
		if !errors.As(err, &f) || f.Kind != plugins.FaultMemory {
			t.Fatalf("%s: got %v, want a memory fault", rt.Name(), err)
		}
		details = append(details, f.Error())
	}
	if details[0] != details[1] {
		t.Fatalf("wasmtime: %s\nwazero:   %s", details[0], details[1])
	}
}

func TestInitResultsMatchWazero(t *testing.T) {
	var errs []string
	for _, rt := range both(t) {
		_, err := runtimetest.Compile(t, rt, "initfail").Instantiate(context.Background(), plugins.InstanceConfig{Name: "initfail/0", Host: runtimetest.NewMemHost()})
		var ie *plugins.InitError
		if !errors.As(err, &ie) {
			t.Fatalf("%s: got %v, want an InitError", rt.Name(), err)
		}
		errs = append(errs, err.Error())
	}
	if errs[0] != errs[1] {
		t.Fatalf("wasmtime: %s\nwazero:   %s", errs[0], errs[1])
	}
}

// TestEpochStopsLoopWithoutYieldCheck: with the yield's own time check
// off, the epoch deadline alone stops a looping guest, reported the same.
func TestEpochStopsLoopWithoutYieldCheck(t *testing.T) {
	yieldChecksTimeout = false
	defer func() { yieldChecksTimeout = true }()
	inst := runtimetest.Instantiate(t, testRuntime(t), "loop", plugins.InstanceConfig{Limits: plugins.Limits{CallTimeout: 100 * time.Millisecond}})
	start := time.Now()
	f := runtimetest.FaultOf(t, inst, runtimetest.Values("x")...)
	if f.Kind != plugins.FaultTimeout || f.Detail != "sluice_process ran longer than the call timeout of 100ms" {
		t.Fatalf("got %v", f)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("stopping took %v", d)
	}
}

func TestInvalidModuleIsRefusedWithoutCompiling(t *testing.T) {
	r := testRuntime(t)
	start := time.Now()
	_, err := r.Compile(context.Background(), testguests.Build("noexport"))
	var ve *plugins.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v", err)
	}
	t.Logf("refused in %v: %v", time.Since(start), err)
	_, err = r.Compile(context.Background(), []byte("\x00asm\x01\x00\x00\x00\x01"))
	if !errors.As(err, &ve) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "not a valid WebAssembly module: ") {
		t.Fatalf("got %q", err)
	}
}

// TestCompileCache checks the cache of runtimetest.CompileCache, then
// that a closed runtime refuses work, that the disk cache holds one file
// named by the module's sha256, and that a corrupt one is replaced.
func TestCompileCache(t *testing.T) {
	ctx := context.Background()
	dir, wasm, r, m := runtimetest.CompileCache(t, func(dir string) (plugins.Runtime, error) {
		return New(ctx, Options{CacheDir: dir})
	})
	if _, err := r.Compile(ctx, wasm); err == nil {
		t.Fatal("Compile after Close succeeded")
	}
	if _, err := m.Instantiate(ctx, plugins.InstanceConfig{Host: runtimetest.NewMemHost()}); err == nil {
		t.Fatal("Instantiate after Close succeeded")
	}
	files := runtimetest.Files(dir)
	if len(files) != 1 || !strings.HasPrefix(files[0], m.SHA256()+".") {
		t.Fatalf("cache directory holds %q, want one file named by the sha256", files)
	}

	// A corrupt cache file is ignored and replaced.
	path := filepath.Join(dir, files[0])
	if err := os.WriteFile(path, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	r3, err := New(ctx, Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close(ctx)
	if _, err := r3.Compile(ctx, wasm); err != nil {
		t.Fatalf("compile with a corrupt cache file: %v", err)
	}
	if b, _ := os.ReadFile(path); bytes.Equal(b, []byte("garbage")) {
		t.Fatal("corrupt cache file not replaced")
	}
}

// TestConcurrentInstances runs many instances of several guests at once
// (for the race detector): each has its own store and host.
func TestConcurrentInstances(t *testing.T) {
	r := testRuntime(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := runtimetest.NewMemHost("s")
			inst := runtimetest.Instantiate(t, r, "state", plugins.InstanceConfig{Host: h})
			for range 20 {
				if err := runtimetest.Process(context.Background(), inst, abi.Record{Key: []byte{byte(i)}}); err != nil {
					t.Error(err)
					return
				}
			}
			outs := h.Outputs(t)
			if got := string(outs[len(outs)-1].Value); got != "20" {
				t.Errorf("instance %d counted %s, want 20", i, got)
			}
		}()
	}
	wg.Wait()
}

func newModuleForTest(r *Runtime, wasm []byte) (*wt.Module, error) {
	return wt.NewModule(r.engine, wasm)
}

// TestInstanceOutlivesRuntime: an instance still open when its runtime
// closes keeps working until its owner closes it.
func TestInstanceOutlivesRuntime(t *testing.T) {
	ctx := context.Background()
	r, err := New(ctx, Options{CacheDir: filepath.Join(os.TempDir(), "sluice-wasmtime-test-cache")})
	if err != nil {
		t.Fatal(err)
	}
	h := runtimetest.NewMemHost()
	inst := runtimetest.Instantiate(t, r, "echo", plugins.InstanceConfig{Host: h})
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := runtimetest.Process(ctx, inst, runtimetest.Values("a")...); err != nil {
		t.Fatal(err)
	}
	if err := inst.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(h.Outputs(t)) != 1 {
		t.Fatal("no output")
	}
}
