//go:build !wasip1

package attribution_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/wazero"
)

// testHost is an in-memory plugins.Host for one operator instance: stores
// and read-only tables, emits collected per call, and the stream time the
// driver sets before each call. Writes are not staged: a call that fails
// fails the test.
type testHost struct {
	names      []string
	readOnly   []bool
	data       []map[string][]byte
	lastTS     int64 // of the call's last record, for inherited timestamps
	streamTime int64
	emitted    []output
	emitCalls  int
	logs       []string
}

// output is an emitted record.
type output struct {
	Output    int
	Partition int32
	Timestamp int64
	Key       []byte
	Value     []byte
}

func (o output) String() string {
	return fmt.Sprintf("out=%d part=%d ts=%d key=%s value=%s", o.Output, o.Partition, o.Timestamp, nullable(o.Key), nullable(o.Value))
}

func nullable(b []byte) string {
	if b == nil {
		return "null"
	}
	return fmt.Sprintf("%q", b)
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func (h *testHost) Emit(batch []byte) int32 {
	h.emitCalls++
	var r abi.OutputReader
	var o abi.Output
	r.Reset(batch)
	for r.Next(&o) {
		ts := o.Timestamp
		if ts == abi.TimestampInherit {
			ts = h.lastTS
		}
		h.emitted = append(h.emitted, output{Output: int(o.Output), Partition: o.Partition, Timestamp: ts, Key: clone(o.Key), Value: clone(o.Value)})
	}
	if r.Err() != nil {
		panic(fmt.Sprintf("malformed emit batch: %v", r.Err()))
	}
	return 0
}

func (h *testHost) StoreOpen(name []byte) int32 {
	if i := slices.Index(h.names, string(name)); i >= 0 {
		return int32(i)
	}
	return int32(abi.ErrBadStore)
}

func (h *testHost) ok(store int32) bool { return store >= 0 && int(store) < len(h.names) }

func (h *testHost) StateGet(store int32, key []byte) ([]byte, bool, int32) {
	if !h.ok(store) {
		return nil, false, int32(abi.ErrBadStore)
	}
	v, found := h.data[store][string(key)]
	return v, found, 0
}

func (h *testHost) StatePut(store int32, key, value []byte) int32 {
	if !h.ok(store) {
		return int32(abi.ErrBadStore)
	}
	if h.readOnly[store] {
		return int32(abi.ErrNotAllowed)
	}
	h.data[store][string(key)] = clone(value)
	return 0
}

func (h *testHost) StateDelete(store int32, key []byte) int32 {
	if !h.ok(store) {
		return int32(abi.ErrBadStore)
	}
	if h.readOnly[store] {
		return int32(abi.ErrNotAllowed)
	}
	delete(h.data[store], string(key))
	return 0
}

func (h *testHost) StateScan(store int32, start, end, dst []byte, max int) ([]byte, int, int32) {
	if !h.ok(store) {
		return dst, 0, int32(abi.ErrBadStore)
	}
	var keys []string
	for k := range h.data[store] {
		if k >= string(start) && (end == nil || k < string(end)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for i, k := range keys {
		n := len(dst)
		dst = abi.AppendScanEntry(dst, []byte(k), h.data[store][k])
		if len(dst) > max {
			if i == 0 {
				return dst[:n], len(dst) - n, 0
			}
			return dst[:n], 0, 0
		}
	}
	return dst, 0, 0
}

func (h *testHost) Log(level int32, msg []byte) { h.logs = append(h.logs, string(msg)) }

func (h *testHost) StreamTime() int64 { return h.streamTime }

// The runtime is shared by the test binary: compiling a module costs
// seconds.
var (
	rtOnce sync.Once
	rt     plugins.Runtime
	rtErr  error
)

// operator is one instance of a module on a testHost.
type operator struct {
	t     testing.TB
	inst  plugins.Instance
	h     *testHost
	stdio bytes.Buffer
}

// startOperator instantiates wasm with params (JSON) and the stores and
// read-only tables named.
func startOperator(t testing.TB, wasm, params []byte, stores, tables []string) *operator {
	t.Helper()
	ctx := context.Background()
	rtOnce.Do(func() { rt, rtErr = wazero.New(ctx, wazero.Options{}) })
	if rtErr != nil {
		t.Fatal(rtErr)
	}
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	h := &testHost{streamTime: abi.NoStreamTime}
	for _, s := range stores {
		h.names, h.readOnly, h.data = append(h.names, s), append(h.readOnly, false), append(h.data, map[string][]byte{})
	}
	for _, s := range tables {
		h.names, h.readOnly, h.data = append(h.names, s), append(h.readOnly, true), append(h.data, map[string][]byte{})
	}
	o := &operator{t: t, h: h}
	o.inst, err = mod.Instantiate(ctx, plugins.InstanceConfig{Name: "test", Params: params, Host: h, Stdout: &o.stdio, Stderr: &o.stdio})
	if err != nil {
		t.Fatalf("instantiate: %v (output %q)", err, o.stdio.String())
	}
	t.Cleanup(func() { o.inst.Close(ctx) })
	return o
}

// table sets (value non-nil) or deletes a key of a table, as the host
// does between calls.
func (o *operator) table(name string, key, value []byte) {
	i := slices.Index(o.h.names, name)
	if value == nil {
		delete(o.h.data[i], string(key))
	} else {
		o.h.data[i][string(key)] = clone(value)
	}
}

// process passes recs as one batch of partition part and returns the
// outputs; then advances the stream time past the batch, as the host does.
func (o *operator) process(part int, recs []abi.Record) []output {
	o.t.Helper()
	size := abi.BatchHeaderSize
	for i := range recs {
		size += recs[i].EncodedSize()
	}
	ctx := context.Background()
	in, err := o.inst.Input(ctx, size)
	if err != nil {
		o.t.Fatal(err)
	}
	abi.PutBatchHeader(in, abi.BatchHeader{Count: uint32(len(recs)), Partition: int32(part)})
	n := abi.BatchHeaderSize
	for i := range recs {
		n += abi.PutRecord(in[n:], &recs[i])
		o.h.lastTS = recs[i].Timestamp
	}
	o.h.emitted = nil
	err = o.inst.Process(ctx, n)
	var re *plugins.RecordError
	if errors.As(err, &re) {
		o.t.Fatalf("record %d of the batch failed: %s", re.Index, re.Message)
	}
	if err != nil {
		o.t.Fatalf("process: %v (output %q, logs %q)", err, o.stdio.String(), o.h.logs)
	}
	for i := range recs {
		o.h.streamTime = max(o.h.streamTime, recs[i].Timestamp)
	}
	return o.h.emitted
}

// restart replaces the instance with a new one of the same module over
// the same stores and stream time, as a task restarted from a checkpoint
// gets.
func (o *operator) restart(wasm, params []byte) {
	o.t.Helper()
	ctx := context.Background()
	o.inst.Close(ctx)
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		o.t.Fatal(err)
	}
	o.inst, err = mod.Instantiate(ctx, plugins.InstanceConfig{Name: "test", Params: params, Host: o.h, Stdout: &o.stdio, Stderr: &o.stdio})
	if err != nil {
		o.t.Fatalf("instantiate: %v (output %q)", err, o.stdio.String())
	}
}

// initError instantiates wasm with params and returns the init's error.
func initError(wasm, params []byte) error {
	ctx := context.Background()
	rtOnce.Do(func() { rt, rtErr = wazero.New(ctx, wazero.Options{}) })
	if rtErr != nil {
		return rtErr
	}
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		return err
	}
	h := &testHost{streamTime: abi.NoStreamTime, names: []string{"impression-buffer", "click-buffer"}, readOnly: []bool{false, false},
		data: []map[string][]byte{{}, {}}}
	inst, err := mod.Instantiate(ctx, plugins.InstanceConfig{Name: "test", Params: params, Host: h})
	if err == nil {
		inst.Close(ctx)
	}
	return err
}
