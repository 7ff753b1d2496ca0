package meter

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sluice-io/sluice/internal/gowasm"
)

const (
	yieldModule = "sluice_v1"
	yieldName   = "check_abi_version_1"
	fuelExport  = "sluice_fuel"
)

// wat compiles WebAssembly text with wabt's wat2wasm.
func wat(tb testing.TB, src string, flags ...string) []byte {
	tb.Helper()
	bin, err := exec.LookPath("wat2wasm")
	if err != nil {
		tb.Skip("wat2wasm (wabt) not installed")
	}
	dir := tb.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, append(flags, "-o", out, in)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// envWAT provides the non-yield imports of mainWAT, including a global,
// which host modules built in Go cannot export.
const envWAT = `(module
  (func (export "log") (param i32))
  (func (export "other") (result i32) (i32.const 7))
  (global (export "g") i32 (i32.const 5)))`

// mainWAT has imports before and after the yield import so that the yield
// function and fuel global indices are not trivially zero: yield is
// function 1, and the fuel global will be global 2 (one import, one
// definition).
const mainWAT = `(module
  (type $v (func))
  (type $ii (func (param i32) (result i32)))
  (import "env" "log" (func $log (param i32)))
  (import "env" "g" (global $g i32))
  (import "sluice_v1" "check_abi_version_1" (func $yield (type $v)))
  (import "env" "other" (func $other (result i32)))
  (memory 1)
  (global $counter (mut i32) (i32.const 0))
  (table 2 funcref)
  (elem (i32.const 0) $double $inc)

  (func $double (type $ii) (i32.mul (local.get 0) (i32.const 2)))
  (func $inc (type $ii) (i32.add (local.get 0) (i32.const 1)))

  ;; count runs its loop header exactly n times (n >= 1).
  (func (export "count") (param $n i32) (result i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $i))

  ;; sumto loops with block parameters: n + (n-1) + ... + 1.
  (func (export "sumto") (param $n i32) (result i32) (local $k i32) (local $a i32)
    (i32.const 0) (local.get $n)
    (loop $l (param i32 i32) (result i32)
      (local.set $k) (local.set $a)
      (i32.add (local.get $a) (local.get $k))
      (local.tee $k (i32.sub (local.get $k) (i32.const 1)))
      (local.get $k)
      (br_if $l)
      (drop)))

  ;; nested: sum of i*j for i, j < n; 1 + n + n*n ticks.
  (func (export "nested") (param $n i32) (result i32) (local $i i32) (local $j i32) (local $c i32)
    (loop $outer
      (local.set $j (i32.const 0))
      (loop $inner
        (local.set $c (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $j))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $inner (i32.lt_u (local.get $j) (local.get $n))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $i) (local.get $n))))
    (global.set $counter (local.get $c))
    (local.get $c))

  ;; mix: br_table, call_indirect, an imported global and imported calls.
  (func (export "mix") (param $n i32) (result i32) (local $i i32) (local $acc i32)
    (local.set $acc (global.get $g))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (block $b2
          (block $b1
            (block $b0
              (br_table $b0 $b1 $b2 (i32.rem_u (local.get $i) (i32.const 3))))
            (local.set $acc (call_indirect (type $ii) (local.get $acc) (i32.const 0)))
            (br $b2))
          (local.set $acc (call_indirect (type $ii) (local.get $acc) (i32.const 1))))
        (local.set $acc (i32.xor (local.get $acc) (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (call $log (local.get $acc))
    (i32.add (local.get $acc) (call $other))))`

// harness instantiates a module with the env module and a sluice_v1 host
// module whose yield counts calls and refills the fuel with refill.
type harness struct {
	rt     wazero.Runtime
	mod    api.Module
	yields int
	refill uint64
}

func newHarness(t *testing.T, wasm []byte, refill uint64) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{rt: wazero.NewRuntime(ctx), refill: refill}
	t.Cleanup(func() { h.rt.Close(ctx) })
	if _, err := h.rt.InstantiateWithConfig(ctx, wat(t, envWAT), wazero.NewModuleConfig().WithName("env")); err != nil {
		t.Fatal(err)
	}
	_, err := h.rt.NewHostModuleBuilder(yieldModule).NewFunctionBuilder().
		WithFunc(func(ctx context.Context, m api.Module) {
			h.yields++
			if g, ok := m.ExportedGlobal(fuelExport).(api.MutableGlobal); ok {
				g.Set(h.refill)
			}
		}).Export(yieldName).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.mod, err = h.rt.Instantiate(ctx, wasm); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) call(t *testing.T, name string, n uint64) uint64 {
	t.Helper()
	res, err := h.mod.ExportedFunction(name).Call(context.Background(), n)
	if err != nil {
		t.Fatalf("%s(%d): %v", name, n, err)
	}
	return res[0]
}

func mustInstrument(t testing.TB, wasm []byte) []byte {
	t.Helper()
	out, err := Instrument(wasm, yieldModule, yieldName, fuelExport)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHandWritten(t *testing.T) {
	orig := wat(t, mainWAT)
	inst := mustInstrument(t, orig)

	// The indices we expect (see mainWAT).
	if g := inspect(t, inst); g.fuelExportIndex != 2 || g.definedGlobals != 2 {
		t.Fatalf("fuel export index %d, defined globals %d; want 2, 2", g.fuelExportIndex, g.definedGlobals)
	}

	mixTicks := func(n int) int {
		ticks := 1 + n + 1 // entry and n+1 loop headers
		for i := 0; i < n; i++ {
			if i%3 != 2 {
				ticks++ // entry of $double or $inc
			}
		}
		return ticks
	}
	cases := []struct {
		fn    string
		n     uint64
		ticks int // function entries plus loop headers executed
	}{
		{"count", 1, 2},
		{"count", 100, 101},
		{"sumto", 50, 51},
		{"nested", 7, 1 + 7 + 49},
		{"mix", 0, mixTicks(0)},
		{"mix", 31, mixTicks(31)},
	}
	plain := newHarness(t, orig, 0)
	for _, c := range cases {
		want := plain.call(t, c.fn, c.n)
		for _, k := range []uint64{1, 2, 10, 1000} {
			// A fresh instance, so that fuel starts at zero.
			h := newHarness(t, inst, k)
			if got := h.call(t, c.fn, c.n); got != want {
				t.Errorf("%s(%d) with fuel %d = %d, uninstrumented %d", c.fn, c.n, k, got, want)
			}
			// Fuel starts at 0, so the first tick yields and then every
			// k-th tick after it does.
			if wantYields := (c.ticks-1)/int(k) + 1; h.yields != wantYields {
				t.Errorf("%s(%d) with fuel %d: %d yields, want %d (%d ticks)", c.fn, c.n, k, h.yields, wantYields, c.ticks)
			}
		}
	}
	if plain.yields != 0 {
		t.Errorf("uninstrumented module yielded %d times", plain.yields)
	}

	// The example from the brief: fuel 10, 100 iterations, 11 yields.
	h := newHarness(t, inst, 10)
	h.call(t, "count", 100)
	if h.yields != 11 {
		t.Errorf("count(100) with fuel 10: %d yields, want 11", h.yields)
	}
	// Fuel carries over between calls: 101 more ticks from fuel 9.
	h.call(t, "count", 100)
	if h.yields != 11+10 {
		t.Errorf("second count(100): %d yields in total, want 21", h.yields)
	}
}

// moduleInfo is what inspect learns about an instrumented module.
type moduleInfo struct {
	importedGlobals uint32
	definedGlobals  uint32
	fuelExportIndex int64 // -1 if not exported as a global
	customSections  []string
	sectionIDs      []byte
}

// inspect decodes the parts of a module the tests check, independently
// of the instrumenter's own bookkeeping.
func inspect(t testing.TB, wasm []byte) moduleInfo {
	t.Helper()
	info := moduleInfo{fuelExportIndex: -1}
	r := &reader{b: wasm, pos: 8, end: len(wasm)}
	for r.pos < len(wasm) && r.err == nil {
		id := r.byte()
		size := r.u32("size")
		s := &reader{b: wasm, pos: r.pos, end: r.pos + int(size)}
		r.pos = s.end
		info.sectionIDs = append(info.sectionIDs, id)
		switch id {
		case secCustom:
			info.customSections = append(info.customSections, string(s.name("name")))
		case secImport:
			in := &instrumenter{}
			if err := in.readImports(s); err != nil {
				t.Fatal(err)
			}
			info.importedGlobals = in.importedGlobals
		case secGlobal:
			info.definedGlobals = s.u32("count")
		case secExport:
			n := s.u32("count")
			for i := uint32(0); i < n && s.err == nil; i++ {
				name := s.name("name")
				kind := s.byte()
				idx := s.u32("idx")
				if string(name) == fuelExport && kind == externGlobal {
					info.fuelExportIndex = int64(idx)
				}
			}
		}
		if s.err != nil {
			t.Fatal(s.err)
		}
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	return info
}

func TestGoGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go guest")
	}
	orig, err := gowasm.BuildBytes("../../../examples/wordcount/go/split")
	if err != nil {
		t.Fatal(err)
	}
	inst := mustInstrument(t, orig)
	before, after := inspect(t, orig), inspect(t, inst)
	if after.importedGlobals != before.importedGlobals || after.definedGlobals != before.definedGlobals+1 {
		t.Fatalf("globals: %d imported + %d defined before, %d + %d after; want one more defined",
			before.importedGlobals, before.definedGlobals, after.importedGlobals, after.definedGlobals)
	}
	if want := int64(after.importedGlobals + after.definedGlobals - 1); after.fuelExportIndex != want {
		t.Fatalf("fuel exported as global %d, want %d", after.fuelExportIndex, want)
	}

	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	compiled, err := rt.CompileModule(ctx, inst)
	if err != nil {
		t.Fatalf("compiling the instrumented Go guest: %v", err)
	}

	// Run the Go runtime's initialisation with a host module that stubs
	// every sluice_v1 import, to see the instrumented code actually run and
	// yield.
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	yields := 0
	b := rt.NewHostModuleBuilder(yieldModule)
	for _, f := range compiled.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod != yieldModule {
			continue
		}
		if name == yieldName {
			b.NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module) {
				yields++
				m.ExportedGlobal(fuelExport).(api.MutableGlobal).Set(1000)
			}).Export(name)
			continue
		}
		results := f.ResultTypes()
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			for i := range results {
				stack[i] = 0
			}
		}), f.ParamTypes(), results).Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatalf("instantiating the instrumented Go guest: %v", err)
	}
	defer mod.Close(ctx)
	if yields == 0 {
		t.Fatal("Go runtime initialisation never yielded")
	}
	t.Logf("%d bytes -> %d bytes; _initialize yielded %d times with fuel 1000", len(orig), len(inst), yields)
}

// featuresWAT exercises SIMD, bulk memory, reference types, sign
// extension, saturating truncation, typed select and multi-value.
const featuresWAT = `(module
  (import "sluice_v1" "check_abi_version_1" (func $yield))
  (memory 1)
  (table $t 4 funcref)
  (data $d "\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10")
  (elem $e func $f)
  (elem declare func $yield)
  (func $f (param i32) (result i32) (local.get 0))
  (func (export "simd") (param $n i32) (result i32) (local $v v128) (local $i i32)
    (memory.init $d (i32.const 0) (i32.const 0) (i32.const 16))
    (data.drop $d)
    (memory.copy (i32.const 16) (i32.const 0) (i32.const 16))
    (memory.fill (i32.const 32) (i32.const 0xff) (i32.const 16))
    (table.init $t $e (i32.const 0) (i32.const 0) (i32.const 1))
    (elem.drop $e)
    (table.copy $t $t (i32.const 1) (i32.const 0) (i32.const 1))
    (drop (table.grow $t (ref.null func) (i32.const 1)))
    (table.fill $t (i32.const 2) (ref.func $yield) (i32.const 1))
    (drop (table.size $t))
    (table.set $t (i32.const 3) (table.get $t (i32.const 0)))
    (drop (ref.is_null (ref.null extern)))
    (local.set $v (v128.const i32x4 1 2 3 4))
    (loop $l
      (local.set $v (i32x4.add (local.get $v) (v128.load offset=0 align=1 (i32.const 0))))
      (local.set $v (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v)))
      (local.set $v (v128.load8_lane 3 (i32.const 5) (local.get $v)))
      (v128.store32_lane 1 (i32.const 48) (local.get $v))
      (local.set $v (i32x4.replace_lane 2 (local.get $v) (i32.const 9)))
      (local.set $v (v128.load32_zero (i32.const 4)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (v128.store (i32.const 64) (local.get $v))
    (i32.add
      (i32x4.extract_lane 0 (local.get $v))
      (i32.add
        (i32.extend8_s (i32.const 0x80))
        (i32.add
          (i32.trunc_sat_f32_s (f32.const 1e30))
          (i32.add
            (i32.wrap_i64 (i64.extend32_s (i64.const -123456789012)))
            (i32.add
              (select (result i32) (i32.const 1) (i32.const 2) (local.get $n))
              (i32.trunc_sat_f64_u (f64.const -1.5))))))))
  (func (export "swap") (param i32 i32) (result i32 i32) (local.get 1) (local.get 0)))`

func TestFeatures(t *testing.T) {
	orig := wat(t, featuresWAT)
	inst := mustInstrument(t, orig)
	ctx := context.Background()
	for _, wasm := range [][]byte{orig, inst} {
		rt := wazero.NewRuntime(ctx)
		yields := 0
		_, err := rt.NewHostModuleBuilder(yieldModule).NewFunctionBuilder().
			WithFunc(func(ctx context.Context, m api.Module) {
				yields++
				if g, ok := m.ExportedGlobal(fuelExport).(api.MutableGlobal); ok {
					g.Set(3)
				}
			}).Export(yieldName).Instantiate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mod, err := rt.Instantiate(ctx, wasm)
		if err != nil {
			t.Fatal(err)
		}
		res, err := mod.ExportedFunction("simd").Call(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("simd(10) = %d, %d yields", int32(res[0]), yields)
		if bytes.Equal(wasm, inst) && yields != (1+10-1)/3+1 {
			t.Errorf("instrumented simd(10): %d yields, want %d", yields, (1+10-1)/3+1)
		}
		rt.Close(ctx)
	}
}

// TestProposals covers threads, tail calls and legacy exception handling,
// which wazero only enables as experimental features.
func TestProposals(t *testing.T) {
	src := `(module
  (import "sluice_v1" "check_abi_version_1" (func $yield))
  (memory 1 1 shared)
  (type $ii (func (param i32) (result i32)))
  (table 1 funcref)
  (elem (i32.const 0) $down)
  (func $down (export "down") (param $n i32) (result i32)
    (atomic.fence)
    (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1)))
    (i64.atomic.store offset=8 (i32.const 0) (i64.const 1))
    (drop (memory.atomic.notify (i32.const 0) (i32.const 0)))
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.atomic.load (i32.const 0)))
      (else
        (return_call_indirect (type $ii) (i32.sub (local.get $n) (i32.const 1)) (i32.const 0))))))`
	orig := wat(t, src, "--enable-threads", "--enable-tail-call")
	inst := mustInstrument(t, orig)
	ctx := context.Background()
	cfg := wazero.NewRuntimeConfig().WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesThreads | experimental.CoreFeaturesTailCall)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	defer rt.Close(ctx)
	yields := 0
	if _, err := rt.NewHostModuleBuilder(yieldModule).NewFunctionBuilder().
		WithFunc(func(ctx context.Context, m api.Module) {
			yields++
			m.ExportedGlobal(fuelExport).(api.MutableGlobal).Set(1)
		}).Export(yieldName).Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.Instantiate(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	res, err := mod.ExportedFunction("down").Call(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	if res[0] != 21 || yields != 21 {
		t.Errorf("down(20) = %d with %d yields, want 21 and 21", res[0], yields)
	}

	// Legacy exception handling (try/catch/throw/rethrow/delegate).
	eh := `(module
  (import "sluice_v1" "check_abi_version_1" (func $yield))
  (tag $e (param i32))
  (func (export "f") (param i32) (result i32)
    (try (result i32)
      (do
        (try (result i32)
          (do (loop $l (result i32) (throw $e (local.get 0))))
          (delegate 0)))
      (catch $e)
      (catch_all (i32.const -1)))))`
	orig = wat(t, eh, "--enable-exceptions")
	inst = mustInstrument(t, orig)
	rt2 := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2|experimental.CoreFeaturesExceptionHandling))
	defer rt2.Close(ctx)
	if _, err := rt2.CompileModule(ctx, orig); err != nil {
		t.Logf("wazero does not accept the legacy exception handling module, so only decoding was checked: %v", err)
		return
	}
	if _, err := rt2.CompileModule(ctx, inst); err != nil {
		t.Fatalf("instrumented exception handling module: %v", err)
	}
}

func TestCustomSections(t *testing.T) {
	orig := wat(t, mainWAT, "--debug-names")
	// Append a DWARF-like section and another custom section by hand.
	custom := func(name string, payload []byte) []byte {
		c := appendU32(nil, uint32(len(name)))
		c = append(c, name...)
		c = append(c, payload...)
		return append(appendSectionHeader(nil, secCustom, len(c)), c...)
	}
	withCustom := append(append(append([]byte{}, orig...), custom(".debug_info", []byte{1, 2, 3})...), custom("producers", []byte{0})...)
	inst := mustInstrument(t, withCustom)
	got := inspect(t, inst).customSections
	if strings.Join(got, ",") != "name,producers" {
		t.Errorf("custom sections %q, want name and producers (no .debug_info)", got)
	}
	if _, err := wazero.NewRuntime(context.Background()).CompileModule(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
}

func TestNoGlobalOrExportSection(t *testing.T) {
	// Only a type, an import and a function: both sections must be created.
	src := `(module
  (import "sluice_v1" "check_abi_version_1" (func $yield))
  (func (loop (nop)))
  (start 1)
  (data "x"))`
	for _, mem := range []string{"", "(memory 1)"} {
		orig := wat(t, strings.Replace(src, "(data", mem+" (data", 1))
		if mem == "" {
			orig = wat(t, strings.Replace(src, `(data "x")`, "", 1))
		}
		inst := mustInstrument(t, orig)
		info := inspect(t, inst)
		if info.definedGlobals != 1 || info.fuelExportIndex != 0 {
			t.Errorf("%s: defined globals %d, fuel export %d; want 1, 0", mem, info.definedGlobals, info.fuelExportIndex)
		}
		t.Logf("sections %v -> %v", inspect(t, orig).sectionIDs, info.sectionIDs)
		if _, err := wazero.NewRuntime(context.Background()).CompileModule(context.Background(), inst); err != nil {
			t.Errorf("%s: %v", mem, err)
		}
	}
}

func TestErrors(t *testing.T) {
	good := wat(t, mainWAT)
	cases := []struct {
		name string
		wasm []byte
		want string
	}{
		{"empty", nil, "bad magic"},
		{"garbage", []byte("this is not wasm at all"), "bad magic"},
		{"version", []byte{0, 'a', 's', 'm', 2, 0, 0, 0}, "version"},
		{"truncated header", good[:6], "bad magic"},
		{"truncated", good[:len(good)-10], "unexpected end"},
		{"missing yield", wat(t, `(module (func (loop)))`), "does not import function sluice_v1.check_abi_version_1"},
		{"wrong yield type", wat(t, `(module (import "sluice_v1" "check_abi_version_1" (func (param i32))))`), "must have type [] -> []"},
		{"wrong yield kind", wat(t, `(module (import "sluice_v1" "check_abi_version_1" (global i32)))`), "does not import function"},
		{"export clash", wat(t, `(module (import "sluice_v1" "check_abi_version_1" (func $y)) (global (export "sluice_fuel") i32 (i32.const 0)))`), "already exports"},
		{"unknown section", append(append([]byte{}, good[:8]...), 14, 0), "unknown section id 14"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := Instrument(c.wasm, yieldModule, yieldName, fuelExport)
			if err == nil {
				t.Fatalf("no error (output %d bytes)", len(out))
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
			t.Log(err)
		})
	}

	// No prefix of a valid module makes Instrument panic. Prefixes that
	// end between sections are well-formed modules (missing the rest), so
	// they may be accepted; if the runtime accepts the prefix it must
	// accept the output too.
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	accepted := 0
	for i := 0; i < len(good); i++ {
		out, err := Instrument(good[:i], yieldModule, yieldName, fuelExport)
		if err != nil {
			continue
		}
		accepted++
		if _, err := rt.CompileModule(ctx, good[:i]); err == nil {
			if _, err := rt.CompileModule(ctx, out); err != nil {
				t.Fatalf("prefix of %d bytes: output rejected: %v", i, err)
			}
		}
	}
	if accepted > 12 {
		t.Errorf("%d prefixes accepted; only those ending between sections should be", accepted)
	}

	// An unknown opcode names the function and the offset.
	bad := wat(t, `(module (import "sluice_v1" "check_abi_version_1" (func)) (func (nop) (nop)))`)
	i := bytes.LastIndex(bad, []byte{0x01, 0x01, 0x0b})
	if i < 0 {
		t.Fatal("nop nop end not found")
	}
	bad[i+1] = 0xff
	_, err := Instrument(bad, yieldModule, yieldName, fuelExport)
	if err == nil || !strings.Contains(err.Error(), "function 1") || !strings.Contains(err.Error(), "unknown opcode 0xff") {
		t.Fatalf("unknown opcode: %v", err)
	}
	t.Log(err)
	if !errors.Is(func() error { _, err := Instrument(good[:len(good)-1], yieldModule, yieldName, fuelExport); return err }(), errTruncated) {
		t.Error("truncated module error does not wrap errTruncated")
	}
}

func TestLEB(t *testing.T) {
	cases := []struct {
		in     []byte
		bits   uint
		signed bool
		want   uint64
		ok     bool
	}{
		{[]byte{0x00}, 32, false, 0, true},
		{[]byte{0xe5, 0x8e, 0x26}, 32, false, 624485, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 32, false, 0xffffffff, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x1f}, 32, false, 0, false},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 32, false, 0, false},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x00}, 32, false, 0, true}, // padded is fine
		{[]byte{0x7f}, 32, true, ^uint64(0), true},
		{[]byte{0xc0, 0xbb, 0x78}, 32, true, 0xfffffffffffe1dc0, true}, // -123456
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x77}, 32, true, 0, false},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x78}, 32, true, uint64(0xffffffff80000000), true},
		{[]byte{0x40}, 33, true, uint64(0xffffffffffffffc0), true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 33, true, 0xffffffff, true},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f}, 64, true, 1 << 63, true},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 64, false, 1 << 63, true},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02}, 64, false, 0, false},
		{[]byte{0x80}, 32, false, 0, false},
	}
	for _, c := range cases {
		r := &reader{b: c.in, end: len(c.in)}
		got := r.leb(c.bits, c.signed, "x")
		if (r.err == nil) != c.ok || (c.ok && (got != c.want || r.pos != len(c.in))) {
			t.Errorf("leb(% x, %d, %v) = %#x, %v (pos %d); want %#x ok=%v", c.in, c.bits, c.signed, got, r.err, r.pos, c.want, c.ok)
		}
	}
}

func FuzzInstrument(f *testing.F) {
	if _, err := exec.LookPath("wat2wasm"); err == nil {
		f.Add(wat(f, mainWAT))
		f.Add(wat(f, featuresWAT))
		f.Add(wat(f, `(module (import "sluice_v1" "check_abi_version_1" (func)) (func (loop (block (loop)))))`))
	}
	// A hand-encoded module: one import (the yield), one function with a loop.
	f.Add([]byte{
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: [] -> []
		0x02, 0x21, 0x01, // import: 1
		0x09, 's', 'l', 'u', 'i', 'c', 'e', '_', 'v', '1',
		0x13, 'c', 'h', 'e', 'c', 'k', '_', 'a', 'b', 'i', '_', 'v', 'e', 'r', 's', 'i', 'o', 'n', '_', '1',
		0x00, 0x00,
		0x03, 0x02, 0x01, 0x00, // function: 1 of type 0
		0x0a, 0x07, 0x01, 0x05, 0x00, 0x03, 0x40, 0x0b, 0x0b, // code: (loop)
	})
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := Instrument(wasm, yieldModule, yieldName, fuelExport)
		if err != nil {
			return
		}
		// Instrument does not type-check, so only a module the runtime
		// accepts must stay acceptable.
		c, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			return
		}
		c.Close(ctx)
		c, err = rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("input compiles but instrumented output does not: %v", err)
		}
		c.Close(ctx)
	})
}

func BenchmarkInstrument(b *testing.B) {
	wasm, err := gowasm.BuildBytes("../../../examples/wordcount/go/split")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Instrument(wasm, yieldModule, yieldName, fuelExport); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTryTable covers the exnref exception handling instructions, which
// wat2wasm 1.0.32 cannot write, with a hand-encoded module.
func TestTryTable(t *testing.T) {
	section := func(id byte, content ...byte) []byte {
		return append(appendSectionHeader(nil, id, len(content)), content...)
	}
	var m []byte
	m = append(m, magicVersion...)
	// Types: 0 [] -> [], 1 [i32] -> [], 2 [i32] -> [i32].
	m = append(m, section(secType, 3, 0x60, 0, 0, 0x60, 1, 0x7f, 0, 0x60, 1, 0x7f, 1, 0x7f)...)
	imp := []byte{1}
	imp = append(appendU32(imp, uint32(len(yieldModule))), yieldModule...)
	imp = append(appendU32(imp, uint32(len(yieldName))), yieldName...)
	imp = append(imp, externFunc, 0)
	m = append(m, section(secImport, imp...)...)
	m = append(m, section(secFunction, 1, 2)...)
	m = append(m, section(secTag, 1, 0, 1)...)
	m = append(m, section(secExport, 1, 1, 'f', externFunc, 1)...)
	body := []byte{
		0x00,       // no locals
		0x02, 0x7f, // block (result i32)
		0x1f, 0x7f, 0x01, 0x00, 0x00, 0x00, // try_table (result i32) (catch tag 0, label 0)
		0x03, 0x7f, // loop (result i32)
		0x20, 0x00, // local.get 0
		0x08, 0x00, // throw 0
		0x0b, 0x0b, 0x0b, 0x0b, // end end end end
	}
	m = append(m, section(secCode, append([]byte{1, byte(len(body))}, body...)...)...)

	inst := mustInstrument(t, m)
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2|experimental.CoreFeaturesExceptionHandling))
	defer rt.Close(ctx)
	yields := 0
	if _, err := rt.NewHostModuleBuilder(yieldModule).NewFunctionBuilder().
		WithFunc(func(ctx context.Context, m api.Module) { yields++ }).
		Export(yieldName).Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, wasm := range [][]byte{m, inst} {
		if _, err := rt.CompileModule(ctx, wasm); err != nil {
			t.Fatalf("wazero rejects the try_table module (instrumented: %v): %v", len(wasm) != len(m), err)
		}
	}
	mod, err := rt.Instantiate(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	res, err := mod.ExportedFunction("f").Call(ctx, 42)
	if err != nil {
		t.Fatal(err)
	}
	// This yield never refills the fuel: the entry tick sees zero and
	// yields, its decrement wraps the fuel to -1, so the loop tick does not
	// yield.
	if res[0] != 42 || yields != 1 {
		t.Errorf("f(42) = %d with %d yields, want 42 and 1", res[0], yields)
	}
}

const growRefusedExport = "sluice_grow_refused"

// growWAT grows a memory that has a maximum of 3 pages, with memory.grow
// in different positions: alone, under other operands, in a loop, and with
// a non-minimal encoding of the memory index.
const growWAT = `(module
  (import "sluice_v1" "check_abi_version_1" (func $yield))
  (memory (export "memory") 1 3)
  (global $g (mut i32) (i32.const 9))
  (func (export "grow") (param $n i32) (result i32)
    (memory.grow (local.get $n)))
  ;; 1000 + grow(n): operands below the grow stay untouched.
  (func (export "under") (param $n i32) (result i32)
    (i32.add (i32.const 1000) (memory.grow (local.get $n))))
  ;; grows by 1 page n times in a loop, returns the sum of the results.
  (func (export "loop") (param $n i32) (result i32) (local $acc i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (memory.grow (i32.const 1))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
    (local.get $acc))
  (func (export "size") (param i32) (result i32) (memory.size))
  (func (export "g") (param i32) (result i32) (global.get $g)))`

func mustInstrumentGrow(t testing.TB, wasm []byte) []byte {
	t.Helper()
	out, err := InstrumentWithOptions(wasm, yieldModule, yieldName, fuelExport, Options{GrowRefusedExport: growRefusedExport})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func refused(t *testing.T, h *harness) int32 {
	t.Helper()
	g := h.mod.ExportedGlobal(growRefusedExport)
	if g == nil {
		t.Fatalf("no %s export", growRefusedExport)
	}
	return int32(uint32(g.Get()))
}

func TestGrowRefusal(t *testing.T) {
	orig := wat(t, growWAT)
	inst := mustInstrumentGrow(t, orig)
	h := newHarness(t, inst, 1000)
	if got := refused(t, h); got != 0 {
		t.Fatalf("refusal global starts at %d", got)
	}
	if got := int32(h.call(t, "grow", 1)); got != 1 {
		t.Fatalf("grow(1) = %d, want the old size 1", got)
	}
	if got := int32(h.call(t, "grow", 0)); got != 2 {
		t.Fatalf("grow(0) = %d, want 2", got)
	}
	if got := refused(t, h); got != 0 {
		t.Fatalf("refusal recorded after successful grows: %d", got)
	}
	if got := int32(h.call(t, "grow", 5)); got != -1 {
		t.Fatalf("grow(5) over the maximum = %d, want -1", got)
	}
	if got := refused(t, h); got != 5 {
		t.Fatalf("refusal global %d, want the refused delta 5", got)
	}
	// A later refusal does not overwrite the first.
	if got := int32(h.call(t, "under", 7)); got != 999 {
		t.Fatalf("1000 + grow(7) = %d, want 999", got)
	}
	if got := refused(t, h); got != 5 {
		t.Fatalf("refusal global %d after a second refusal, want the first (5)", got)
	}
	if got := int32(h.call(t, "under", 1)); got != 1002 {
		t.Fatalf("1000 + grow(1) = %d, want 1002", got)
	}
	if got := int32(h.call(t, "size", 0)); got != 3 {
		t.Fatalf("size %d, want 3", got)
	}
	if got := int32(h.call(t, "g", 0)); got != 9 {
		t.Fatalf("the module's own global is %d, want 9: global indices moved", got)
	}

	// The same module without the option keeps memory.grow and gains no
	// export; with it, results are identical to the original's.
	plain := mustInstrument(t, orig)
	if bytes.Contains(plain, []byte(growRefusedExport)) {
		t.Fatal("Instrument without options added the refusal export")
	}
	for _, wasm := range [][]byte{orig, plain, inst} {
		h := newHarness(t, wasm, 1000)
		if got := int32(h.call(t, "loop", 4)); got != 1+2-1-1 {
			t.Fatalf("loop(4) = %d, want 1", got)
		}
	}
	h = newHarness(t, inst, 1000)
	h.call(t, "loop", 4)
	if got := refused(t, h); got != 1 {
		t.Fatalf("refusal global %d after loop, want 1", got)
	}
}

func TestGrowRefusalEncodingsAndErrors(t *testing.T) {
	// memory.grow with a non-minimal LEB128 memory index (0x80 0x00) is
	// still memory 0.
	orig := wat(t, `(module
  (import "sluice_v1" "check_abi_version_1" (func $yield))
  (memory 1 1)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))`)
	i := bytes.Index(orig, []byte{0x20, 0x00, 0x40, 0x00, 0x0b})
	if i < 0 {
		t.Fatal("memory.grow not found in the module")
	}
	// Body: size, locals (0), local.get 0, memory.grow 0, end. Lengthen
	// the memory index and fix the body and section sizes.
	mod := append(append(append([]byte{}, orig[:i+3]...), 0x80, 0x00), orig[i+4:]...)
	mod[i-2]++ // body size
	// The code section header precedes the body: id 10, size, count 1.
	if mod[i-5] != 10 {
		t.Fatalf("unexpected layout % x", mod[i-6:i+6])
	}
	mod[i-4]++
	inst := mustInstrumentGrow(t, mod)
	h := newHarness(t, inst, 1000)
	if got := int32(h.call(t, "grow", 1)); got != -1 || refused(t, h) != 1 {
		t.Fatalf("grow(1) = %d, refused %d; want -1 and 1", got, refused(t, h))
	}

	good := wat(t, `(module (import "sluice_v1" "check_abi_version_1" (func)) (global (export "sluice_grow_refused") i32 (i32.const 0)))`)
	if _, err := InstrumentWithOptions(good, yieldModule, yieldName, fuelExport, Options{GrowRefusedExport: growRefusedExport}); err == nil || !strings.Contains(err.Error(), "already exports") {
		t.Fatalf("export clash: got %v", err)
	}
	if _, err := InstrumentWithOptions(good, yieldModule, yieldName, fuelExport, Options{GrowRefusedExport: fuelExport}); err == nil {
		t.Fatal("same name for both exports accepted")
	}
}
