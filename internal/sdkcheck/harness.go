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
