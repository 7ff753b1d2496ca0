package sdkcheck

import (
	"context"
	"fmt"
	"testing"

	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

// Start runs an SDK's test operator in sdktest's host for one test, with a
// store "s" unless cfg names stores.
func Start(t *testing.T, wasm []byte, cfg sdktest.Config) *sdktest.Host {
	t.Helper()
	if cfg.Stores == nil {
		cfg.Stores = []string{"s"}
	}
	h, err := sdktest.StartWasm(context.Background(), wasm, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// Rec is a record with key k and value v.
func Rec(k, v string) sluice.Record { return sluice.Record{Key: []byte(k), Value: []byte(v)} }

// Outputs processes in as one batch and returns the outputs as
// "output/partition/timestamp key=value" lines (<null> for a null value);
// a failed batch fails the test with the guest's stdio and logs.
func Outputs(t *testing.T, h *sdktest.Host, in ...sluice.Record) []string {
	t.Helper()
	o, err := h.Process(in...)
	if err != nil {
		t.Fatalf("process: %v (stdio %q, logs %v)", err, h.Stdio(), h.Logs())
	}
	var s []string
	for _, x := range o {
		v := string(x.Value)
		if x.Value == nil {
			v = "<null>"
		}
		s = append(s, fmt.Sprintf("%d/%d/%d %s=%s", x.Output, x.Partition, x.Timestamp.UnixMilli(), x.Key, v))
	}
	return s
}

// StreamTimeAndTimeKeys checks an SDK's stream time and time keys with
// its test operator's "st" command (emit "st=<record's stream time>
// <stream time at the batch's start>") and "tk" command (emit "tk=<hex of
// the time key of the value> <the decoded key, as decoded formats it>").
// Record 0 has no timestamp: its output inherits the batch's last.
func StreamTimeAndTimeKeys(t *testing.T, h *sdktest.Host, decoded func(ts string) string) {
	t.Helper()
	st := func(ts int64) sluice.Record { return sluice.Record{Key: []byte("st"), Timestamp: ts} }
	got := Outputs(t, h, st(-1), st(50), st(20), st(70))
	want := []string{"0/-1/70 st=-1 -1", "0/-1/50 st=50 -1", "0/-1/20 st=50 -1", "0/-1/70 st=70 -1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stream times\n%q\nwant\n%q", got, want)
	}
	if got := Outputs(t, h, st(60)); fmt.Sprint(got) != "[0/-1/60 st=70 70]" {
		t.Errorf("second batch: %q", got)
	}
	got = Outputs(t, h, Rec("tk", "1000"), Rec("tk", "-1"), Rec("tk", "-9223372036854775808"))
	want = []string{"0/-1/0 tk=80000000000003e8 " + decoded("1000"), "0/-1/0 tk=7fffffffffffffff " + decoded("-1"),
		"0/-1/0 tk=0000000000000000 " + decoded("-9223372036854775808")}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("time keys\n%q\nwant\n%q", got, want)
	}
}
