package sdkcheck

import (
	"context"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/internal/inputbatch"
	"github.com/sluice-io/sluice/plugins"
)

// Guest is one instance of an operator module whose emit calls are kept
// byte for byte, for comparing builds of one operator in several SDKs and
// runtimes at the level of the ABI: sdktest decodes outputs and resolves
// inherited timestamps, which would hide a difference in the bytes. The
// caller opens the runtimes, so that the SDKs' tests, which import this
// package, do not link every runtime.
type Guest struct {
	inst plugins.Instance
	host *captureHost
}

// StartGuest compiles wasm on rt and instantiates it with parameters
// "{}", for the duration of the test.
func StartGuest(t testing.TB, rt plugins.Runtime, wasm []byte) *Guest {
	t.Helper()
	ctx := context.Background()
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	g := &Guest{host: &captureHost{}}
	if g.inst, err = mod.Instantiate(ctx, plugins.InstanceConfig{Name: "guest/0", Params: []byte("{}"), Host: g.host}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.inst.Close(ctx) })
	return g
}

// EncodeBatch encodes recs as one input batch of partition.
func EncodeBatch(partition int32, recs []abi.Record) []byte {
	return inputbatch.Encode(partition, recs)
}

// Process passes batch (EncodeBatch's) to the guest and returns the bytes
// of each emit call it made, in order. A failed call fails the test.
func (g *Guest) Process(t *testing.T, batch []byte) [][]byte {
	t.Helper()
	g.host.emits = nil
	process(t, g.inst, batch)
	return g.host.emits
}
