// Package sdkcheck holds checks that every SDK must pass, run against a
// test operator built with that SDK (internal/rustwasm and internal/aswasm
// use it; their testdata/sdkop operators implement the commands below):
// the golden batches of conformance/abi decode and encode byte for byte,
// and malformed batches fail cleanly. The operator echoes every record to
// output 0 by key, except that the key "golden" makes it emit, with its
// SDK's most general emit call, the output of conformance/abi's
// output_batch.hex.
package sdkcheck

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/wazero"
)

// readVector reads a golden vector of conformance/abi/testdata: hex, with
// '#' comments and whitespace ignored.
func readVector(t *testing.T, name string) []byte {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	text, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "conformance", "abi", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var digits strings.Builder
	for _, line := range strings.Split(string(text), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// captureHost keeps the bytes of every emit call.
type captureHost struct {
	emits [][]byte
	logs  []string
}

func (h *captureHost) Emit(b []byte) int32 {
	h.emits = append(h.emits, bytes.Clone(b))
	return 0
}
func (h *captureHost) StoreOpen([]byte) int32                       { return 0 }
func (h *captureHost) StateGet(int32, []byte) ([]byte, bool, int32) { return nil, false, 0 }
func (h *captureHost) StatePut(int32, []byte, []byte) int32         { return 0 }
func (h *captureHost) StateDelete(int32, []byte) int32              { return 0 }
func (h *captureHost) Log(_ int32, msg []byte)                      { h.logs = append(h.logs, string(msg)) }
func (h *captureHost) StreamTime() int64                            { return -1 }
func (h *captureHost) StateScan(_ int32, _, _, dst []byte, _ int) ([]byte, int, int32) {
	return dst, 0, 0
}

// process writes batch into the instance's region and processes it.
func process(t *testing.T, inst plugins.Instance, batch []byte) {
	t.Helper()
	ctx := context.Background()
	buf, err := inst.Input(ctx, len(batch))
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, batch)
	if err := inst.Process(ctx, len(batch)); err != nil {
		t.Fatalf("process: %v", err)
	}
}

// GoldenVectors checks that the SDK decodes the golden input batch (null
// and empty keys, values and header values) and encodes the golden output
// batch byte for byte, in one emit call.
func GoldenVectors(t *testing.T, wasm []byte) {
	t.Helper()
	ctx := context.Background()
	rt, err := wazero.New(ctx, wazero.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	h := &captureHost{}
	inst, err := mod.Instantiate(ctx, plugins.InstanceConfig{Name: "golden/0", Params: []byte("{}"), Host: h})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)

	// The sdkop echoes records whose key is not a command: the golden
	// input's keys are null, empty and "k".
	process(t, inst, readVector(t, "input_batch.hex"))
	var want []byte
	for _, o := range []abi.Output{
		{Partition: -1, Timestamp: 1700000000000, Key: nil, Value: []byte("hello")},
		{Partition: -1, Timestamp: 1700000000001, Key: []byte{}, Value: []byte{}},
		{Partition: -1, Timestamp: -1, Key: []byte("k"), Value: nil},
	} {
		want = abi.AppendOutput(want, &o)
	}
	if len(h.emits) != 1 || !bytes.Equal(h.emits[0], want) {
		t.Errorf("echo of input_batch.hex: emits %x\nwant %x", h.emits, want)
	}

	h.emits = nil
	process(t, inst, readVector(t, "empty_batch.hex"))
	if len(h.emits) != 0 {
		t.Errorf("empty batch: %d emit calls", len(h.emits))
	}

	var batch []byte
	batch = append(batch, make([]byte, abi.BatchHeaderSize)...)
	abi.PutBatchHeader(batch, abi.BatchHeader{Count: 1})
	batch = abi.AppendRecord(batch, &abi.Record{Key: []byte("golden"), Value: []byte{}})
	process(t, inst, batch)
	if want := readVector(t, "output_batch.hex"); len(h.emits) != 1 || !bytes.Equal(h.emits[0], want) {
		t.Errorf("outputs: emits %x\nwant %x", h.emits, want)
	}
}

// MalformedBatch checks that a malformed batch is never read out of
// bounds: the SDK logs what is wrong and fails the call (status 2, a fault
// of the instance).
func MalformedBatch(t *testing.T, wasm []byte) {
	t.Helper()
	ctx := context.Background()
	rt, err := wazero.New(ctx, wazero.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	good := readVector(t, "input_batch.hex")
	header := func(count uint32) []byte {
		b := make([]byte, abi.BatchHeaderSize)
		abi.PutBatchHeader(b, abi.BatchHeader{Count: count})
		return b
	}
	for _, tc := range []struct {
		name, log string
		batch     []byte
	}{
		{"count too big", "the count is more than the batch can hold", header(1000)},
		{"truncated value", "key or value runs past the batch", good[:len(good)-1]},
		{"trailing bytes", "bytes after the last of 3 records", append(bytes.Clone(good), 0)},
		{"bad header", "malformed headers", func() []byte {
			b := header(1)
			b = append(b, make([]byte, 20)...)
			b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0)                // key 0, value 0, 1 header
			return append(b, 0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2, 3, 4) // key_len -2
		}()},
	} {
		h := &captureHost{}
		inst, err := mod.Instantiate(ctx, plugins.InstanceConfig{Name: "bad/0", Params: []byte("{}"), Host: h})
		if err != nil {
			t.Fatal(err)
		}
		buf, err := inst.Input(ctx, len(tc.batch))
		if err != nil {
			t.Fatal(err)
		}
		copy(buf, tc.batch)
		err = inst.Process(ctx, len(tc.batch))
		if err == nil || len(h.emits) != 0 || len(h.logs) == 0 || !strings.Contains(h.logs[len(h.logs)-1], tc.log) {
			t.Errorf("%s: %v, %d emits, logs %q; want a failure logging %q", tc.name, err, len(h.emits), h.logs, tc.log)
		}
		inst.Close(ctx)
	}
}
