package cwasm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/sdkcheck"
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

	RequireToolchain(t)
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
}

func TestSDKFailures(t *testing.T) {
	h := start(t, sdktest.Config{})
	for _, tc := range []struct {
		in    []sluice.Record
		index int
		msg   string
	}{
		{[]sluice.Record{rec("echo", "a"), rec("fail", "x")}, 1, "boom: x"},
		{[]sluice.Record{rec("failnomsg", "")}, 0, "sluice_handle returned 42"},
		{[]sluice.Record{rec("echo", "a"), rec("badout", ""), rec("echo", "b")}, 1, "emit to output 5, partition by key: unknown output or partition"},
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
	if got := outs(t, h, rec("scan", "5")); len(got) != 6 || got[5] != "0/-1/0 scanned=7 5" {
		t.Errorf("stopped scan: %q", got)
	}
	if got := outs(t, h, rec("range", "")); fmt.Sprint(got) != fmt.Sprint([]string{"0/-1/0 b=22", "0/-1/0 c=" + big}) {
		t.Errorf("range scan: %.200q", got)
	}
	if st := h.State("s"); len(st) != 2003 {
		t.Errorf("%d entries", len(st))
	}
	_ = abi.OK
}

func TestSDKStreamTimeTimeKeysAndTables(t *testing.T) {
	h := start(t, sdktest.Config{Tables: []string{"t"}})
	sdkcheck.StreamTimeAndTimeKeys(t, h, func(ts string) string { return ts })
	got := outs(t, h, rec("tk", "1700000000000"))
	if want := "[0/-1/0 tk=8000018bcfe56800 1700000000000]"; fmt.Sprint(got) != want {
		t.Errorf("time key of 1700000000000: %q, want %q", got, want)
	}
	h.SetTableRow("t", []byte("u1"), []byte("alice"))
	got = outs(t, h, rec("tget", "u1"), rec("tget", "u2"), rec("tput", "u1"))
	want := []string{"0/-1/0 tget=alice", "0/-1/0 tget=<null>", fmt.Sprintf("0/-1/0 tput=%d", abi.ErrNotAllowed)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("table\n%q\nwant\n%q", got, want)
	}
}
