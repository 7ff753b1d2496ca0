package rustwasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/internal/sdkcheck"
	"github.com/sluice-io/sluice/plugins/wazero"
	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

func start(t *testing.T, cfg sdktest.Config) *sdktest.Host {
	t.Helper()
	RequireToolchain(t)
	wasm, err := BuildBytes("testdata/sdkop")
	if err != nil {
		t.Fatal(err)
	}
	return sdkcheck.Start(t, wasm, cfg)
}

var (
	rec  = sdkcheck.Rec
	outs = sdkcheck.Outputs
)

// The module builds twice to the same bytes, holds no paths and passes the
// runtime's ABI validation.
func TestBuildReproducibleAndValid(t *testing.T) {
	RequireToolchain(t)
	tmp := t.TempDir()
	var mods [][]byte
	for _, name := range []string{"a.wasm", "b/op.wasm"} {
		out := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := Build(context.Background(), "testdata/sdkop", out); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		mods = append(mods, b)
	}
	if !bytes.Equal(mods[0], mods[1]) {
		t.Errorf("two builds differ (%d and %d bytes)", len(mods[0]), len(mods[1]))
	}
	wd, _ := os.Getwd()
	for _, p := range []string{tmp, wd, os.TempDir() + "/sluice-rustwasm", "/root", "testdata"} {
		if bytes.Contains(mods[0], []byte(p)) {
			t.Errorf("the module contains the path %q", p)
		}
	}
	ctx := context.Background()
	rt, err := wazero.New(ctx, wazero.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	if _, err := rt.Compile(ctx, mods[0]); err != nil {
		t.Fatalf("the Rust module fails ABI validation: %v", err)
	}
}

func TestMissingToolchain(t *testing.T) {
	t.Setenv("SLUICE_RUSTC", "/nonexistent/rustc")
	err := CheckToolchain(context.Background())
	if !IsToolchainError(err) || !strings.Contains(err.Error(), InstallHint) {
		t.Fatalf("CheckToolchain: %v", err)
	}
	err = Build(context.Background(), "testdata/sdkop", filepath.Join(t.TempDir(), "x.wasm"))
	if !IsToolchainError(err) || !strings.Contains(err.Error(), InstallHint) {
		t.Fatalf("Build: %v", err)
	}
}

func TestCrateName(t *testing.T) {
	for in, want := range map[string]string{"split": "split", "my-op": "my_op", "/a/b/9x": "op_9x", "sluice": "op_sluice"} {
		if got := CrateName(in); got != want {
			t.Errorf("CrateName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSDKParamsAndInit(t *testing.T) {
	h := start(t, sdktest.Config{Params: map[string]any{"n": -42, "nested": map[string]any{"name": "no"}, "name": "caf\u00e9 \"q\" \U0001F600"}})
	if got := outs(t, h, rec("params", "")); len(got) != 1 || !strings.HasSuffix(got[0], "params=café \"q\" 😀|-42") {
		t.Errorf("params: %q", got)
	}
	h = start(t, sdktest.Config{})
	if got := outs(t, h, rec("params", "")); len(got) != 1 || !strings.HasSuffix(got[0], "params=def|-1") {
		t.Errorf("params: %q", got)
	}
	if l := h.Logs(); len(l) == 0 || l[0].Message != "init done" {
		t.Errorf("logs %v", l)
	}

	wasm, _ := BuildBytes("testdata/sdkop")
	_, err := sdktest.StartWasm(context.Background(), wasm, sdktest.Config{Stores: []string{"s"}, Params: map[string]any{"fail_init": 1, "why": "because"}})
	var ie *sdktest.InitError
	if !errors.As(err, &ie) || ie.Message != "init refused: because" {
		t.Errorf("init: %v", err)
	}
	_, err = sdktest.StartWasm(context.Background(), wasm, sdktest.Config{})
	if !errors.As(err, &ie) || ie.Message != "no store s" {
		t.Errorf("init without the store: %v", err)
	}
}

func TestSDKRecordsAndOutputs(t *testing.T) {
	h := start(t, sdktest.Config{Partition: 3, OutputPartitions: 4})
	in := []sluice.Record{
		{Key: []byte("meta"), Value: []byte("m"), Offset: 77, Timestamp: 1000, Input: 2},
		{Key: []byte("echo"), Timestamp: 1001},
		{Key: []byte("hdr"), Headers: []sluice.Header{{Key: []byte("h1"), Value: []byte("v1")}, {Key: []byte{}, Value: nil}}, Timestamp: 1002},
		{Key: []byte("fwd"), Value: []byte{}, Headers: []sluice.Header{{Key: []byte("a"), Value: []byte("b")}}, Timestamp: 1003},
	}
	got := outs(t, h, in...)
	want := []string{"0/-1/1000 m=77 1000 2 3 0 1", "0/-1/1001 echo=<null>", "0/3/1234 h1=v1", "0/3/1234 =<null>", "0/-1/1003 fwd="}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("outputs\n%q\nwant\n%q", got, want)
	}
	if h.EmitCalls() != 1 {
		t.Errorf("%d emit calls for one batch", h.EmitCalls())
	}
	o, _ := h.Process(in[3])
	if len(o) != 1 || len(o[0].Headers) != 1 || string(o[0].Headers[0].Key) != "a" || string(o[0].Headers[0].Value) != "b" {
		t.Errorf("forwarded %+v", o)
	}
	o, err := h.Process(sluice.Record{Key: []byte("emithdr"), Value: []byte("v"), Timestamp: 5})
	if err != nil || len(o) != 1 || o[0].Key != nil || string(o[0].Value) != "v" || len(o[0].Headers) != 2 ||
		string(o[0].Headers[0].Key) != "x" || o[0].Headers[0].Value != nil ||
		len(o[0].Headers[1].Key) != 0 || string(o[0].Headers[1].Value) != "y" {
		t.Errorf("emit with headers: %+v, %v", o, err)
	}
}

func TestSDKFailures(t *testing.T) {
	h := start(t, sdktest.Config{})
	for _, tc := range []struct {
		in    []sluice.Record
		index int
		msg   string
	}{
		{[]sluice.Record{rec("echo", "a"), rec("fail", "x")}, 1, "boom: x"},
		{[]sluice.Record{rec("failnomsg", "")}, 0, "handle returned an error"},
		{[]sluice.Record{rec("echo", "a"), rec("badout", ""), rec("echo", "b")}, 1, "emit to output 5, partition by key: unknown output or partition"},
		{[]sluice.Record{rec("echo", "a"), rec("put", "no equals sign")}, 1, "no ="},
	} {
		_, err := h.Process(tc.in...)
		var re *sdktest.RecordError
		if !errors.As(err, &re) || re.Index != tc.index || re.Message != tc.msg {
			t.Errorf("%v: %v; want record %d failed with %q", tc.in, err, tc.index, tc.msg)
		}
	}
	// The instance is still usable.
	if got := outs(t, h, rec("echo", "ok")); len(got) != 1 {
		t.Errorf("after failures: %q", got)
	}
}

// A panic traps the instance (wasm32-wasi aborts on panic), after printing
// its message to stderr.
func TestSDKPanicTraps(t *testing.T) {
	h := start(t, sdktest.Config{})
	_, err := h.Process(rec("echo", "a"), rec("panic", "oops"))
	var re *sdktest.RecordError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("panic: %v, want a fault", err)
	}
	if !strings.Contains(h.Stdio(), "panicked: oops") {
		t.Errorf("stdio %q does not hold the panic message", h.Stdio())
	}
}

func TestSDKState(t *testing.T) {
	h := start(t, sdktest.Config{})
	big := strings.Repeat("v", 20000) // more than a scan page
	outs(t, h, rec("put", "a=1"), rec("put", "b=22"), rec("put", "c="+big), rec("put", "d=4"))
	got := outs(t, h, rec("get", "a"), rec("get", "b"), rec("get", "c"), rec("get", "zz"), rec("del", "d"), rec("get", "d"))
	want := []string{"0/-1/0 get=1", "0/-1/0 get=22", "0/-1/0 get=" + big, "0/-1/0 get=<null>", "0/-1/0 get=<null>"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("gets: %.200q", got)
	}
	var many []sluice.Record
	for i := range 2000 {
		many = append(many, rec("put", fmt.Sprintf("k%04d=%s", i, strings.Repeat("x", i%50))))
	}
	outs(t, h, many...)
	got = outs(t, h, rec("scan", ""))
	if len(got) != 2004 || got[2003] != "0/-1/0 scanned=true 2003" || got[0] != "0/-1/0 a=1" || got[2] != "0/-1/0 c="+big {
		t.Errorf("scan: %d outputs, last %.100q", len(got), got[len(got)-1])
	}
	for i, g := range got[3:2003] {
		if want := fmt.Sprintf("0/-1/0 k%04d=%s", i, strings.Repeat("x", i%50)); g != want {
			t.Fatalf("scan entry %d: %q, want %q", i, g, want)
		}
	}
	if got := outs(t, h, rec("scan", "5")); len(got) != 6 || got[5] != "0/-1/0 scanned=false 5" {
		t.Errorf("stopped scan: %q", got)
	}
	if got := outs(t, h, rec("range", "")); fmt.Sprint(got) != fmt.Sprint([]string{"0/-1/0 b=22", "0/-1/0 c=" + big}) {
		t.Errorf("range scan: %.200q", got)
	}
	if st := h.State("s"); len(st) != 2003 {
		t.Errorf("%d entries", len(st))
	}
}

// A rustc whose sysroot has only wasm32-wasip1 (a current rustup toolchain
// after `rustup target add wasm32-wasip1`) is used with that target; one
// with neither target is refused with what is missing.
func TestFindToolchainTarget(t *testing.T) {
	for _, tc := range []struct {
		installed []string
		want      string
	}{{[]string{"wasm32-wasip1"}, "wasm32-wasip1"}, {[]string{"wasm32-wasi", "wasm32-wasip1"}, "wasm32-wasi"}, {nil, ""}} {
		dir := t.TempDir()
		sysroot := filepath.Join(dir, "sysroot")
		for _, target := range append(tc.installed, "x86_64-unknown-linux-gnu") {
			if err := os.MkdirAll(filepath.Join(sysroot, "lib", "rustlib", target), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		fake := filepath.Join(dir, "rustc")
		if err := os.WriteFile(fake, []byte("#!/bin/sh\necho "+sysroot+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("SLUICE_RUSTC", fake)
		got, err := FindToolchain(context.Background())
		if tc.want == "" {
			if !IsToolchainError(err) || !strings.Contains(err.Error(), "wasm32-wasi or wasm32-wasip1") {
				t.Errorf("with no WASI target: %v, want a toolchain error naming both targets", err)
			}
			continue
		}
		if err != nil || got != (Toolchain{Rustc: fake, Target: tc.want}) {
			t.Errorf("with %v installed: %+v, %v; want target %s", tc.installed, got, err, tc.want)
		}
	}
}

func TestSDKStreamTimeAndTimeKeys(t *testing.T) {
	sdkcheck.StreamTimeAndTimeKeys(t, start(t, sdktest.Config{}), func(ts string) string { return "Some(" + ts + ")" })
}
