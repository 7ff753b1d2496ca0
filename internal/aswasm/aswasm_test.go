package aswasm

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

// The module builds twice to the same bytes, holds no absolute paths,
// imports nothing but sluice_v1 and passes the runtime's ABI validation.
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
	for _, p := range []string{tmp, wd, "sluice-aswasm", "/root", "wasi_snapshot_preview1", "seed"} {
		if bytes.Contains(mods[0], []byte(p)) {
			t.Errorf("the module contains %q", p)
		}
	}
	ctx := context.Background()
	rt, err := wazero.New(ctx, wazero.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	if _, err := rt.Compile(ctx, mods[0]); err != nil {
		t.Fatalf("the AssemblyScript module fails ABI validation: %v", err)
	}
}

func TestMissingToolchain(t *testing.T) {
	t.Setenv("SLUICE_ASC", "/nonexistent/asc")
	err := CheckToolchain(context.Background())
	if !IsToolchainError(err) || !strings.Contains(err.Error(), InstallHint) {
		t.Fatalf("CheckToolchain: %v", err)
	}
	err = Build(context.Background(), "testdata/sdkop", filepath.Join(t.TempDir(), "x.wasm"))
	if !IsToolchainError(err) || !strings.Contains(err.Error(), InstallHint) {
		t.Fatalf("Build: %v", err)
	}
}

func TestNoEntry(t *testing.T) {
	err := Build(context.Background(), t.TempDir(), filepath.Join(t.TempDir(), "x.wasm"))
	if err == nil || !strings.Contains(err.Error(), "no assembly/index.ts") {
		t.Fatalf("Build: %v", err)
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
	h := start(t, sdktest.Config{})
	in := []sluice.Record{
		{Key: []byte("fwd"), Value: []byte("v"), Timestamp: 7, Headers: []sluice.Header{{Key: []byte("h"), Value: []byte("1")}, {Key: []byte("n")}}},
		{Key: []byte("batches")},
	}
	o, err := h.Process(in...)
	if err != nil {
		t.Fatal(err)
	}
	if len(o) != 2 || string(o[0].Key) != "fwd" || o[0].Timestamp.UnixMilli() != 7 || len(o[0].Headers) != 2 ||
		string(o[0].Headers[0].Key) != "h" || string(o[0].Headers[0].Value) != "1" || o[0].Headers[1].Value != nil ||
		string(o[1].Value) != "1" {
		t.Errorf("outputs %+v", o)
	}
	if h.EmitCalls() != 1 {
		t.Errorf("%d emit calls, want 1", h.EmitCalls())
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

// abort traps the instance after logging its message.
func TestSDKAbortTraps(t *testing.T) {
	h := start(t, sdktest.Config{})
	_, err := h.Process(rec("echo", "a"), rec("panic", "oops"))
	var re *sdktest.RecordError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("abort: %v, want a fault", err)
	}
	if !strings.Contains(fmt.Sprint(h.Logs()), "panicked: oops") {
		t.Errorf("logs %v do not hold the abort message", h.Logs())
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
	if len(got) != 2004 || got[2003] != "0/-1/0 scanned=0 2003" || got[0] != "0/-1/0 a=1" || got[2] != "0/-1/0 c="+big {
		t.Errorf("scan: %d outputs, last %.100q", len(got), got[len(got)-1])
	}
	for i, g := range got[3:2003] {
		if want := fmt.Sprintf("0/-1/0 k%04d=%s", i, strings.Repeat("x", i%50)); g != want {
			t.Fatalf("scan entry %d: %q, want %q", i, g, want)
		}
	}
	if st := h.State("s"); len(st) != 2003 {
		t.Errorf("%d entries", len(st))
	}
}

func TestSDKStreamTimeAndTimeKeys(t *testing.T) {
	sdkcheck.StreamTimeAndTimeKeys(t, start(t, sdktest.Config{}), func(ts string) string { return ts })
}
