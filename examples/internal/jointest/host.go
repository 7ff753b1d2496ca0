//go:build !wasip1

package jointest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/wazero"
)

// Host is an in-memory plugins.Host for one operator instance: stores
// and read-only tables, emits collected per call, and the stream time the
// driver sets before each call. Writes are not staged: a call that fails
// fails the test.
type Host struct {
	// Data is the content of each store and table, in the order
	// StartOperator names them (stores, then tables).
	Data []map[string][]byte
	// EmitCalls counts the operator's emit calls.
	EmitCalls int

	names      []string
	readOnly   []bool
	lastTS     int64 // of the call's last record, for inherited timestamps
	streamTime int64
	emitted    []Output
	logs       []string
}

// Output is an emitted record.
type Output struct {
	Output    int
	Partition int32
	Timestamp int64
	Key       []byte
	Value     []byte
}

func (o Output) String() string {
	return fmt.Sprintf("out=%d part=%d ts=%d key=%s value=%s", o.Output, o.Partition, o.Timestamp, nullable(o.Key), nullable(o.Value))
}

// Format is outs one per line, as String shows them: to compare the
// bytes two operators emit.
func Format(outs []Output) string {
	var b strings.Builder
	for _, o := range outs {
		b.WriteString(o.String())
		b.WriteByte('\n')
	}
	return b.String()
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

func (h *Host) Emit(batch []byte) int32 {
	h.EmitCalls++
	var r abi.OutputReader
	var o abi.Output
	r.Reset(batch)
	for r.Next(&o) {
		ts := o.Timestamp
		if ts == abi.TimestampInherit {
			ts = h.lastTS
		}
		h.emitted = append(h.emitted, Output{Output: int(o.Output), Partition: o.Partition, Timestamp: ts, Key: clone(o.Key), Value: clone(o.Value)})
	}
	if r.Err() != nil {
		panic(fmt.Sprintf("malformed emit batch: %v", r.Err()))
	}
	return 0
}

func (h *Host) StoreOpen(name []byte) int32 {
	if i := slices.Index(h.names, string(name)); i >= 0 {
		return int32(i)
	}
	return int32(abi.ErrBadStore)
}

func (h *Host) ok(store int32) bool { return store >= 0 && int(store) < len(h.names) }

func (h *Host) StateGet(store int32, key []byte) ([]byte, bool, int32) {
	if !h.ok(store) {
		return nil, false, int32(abi.ErrBadStore)
	}
	v, found := h.Data[store][string(key)]
	return v, found, 0
}

func (h *Host) StatePut(store int32, key, value []byte) int32 {
	if !h.ok(store) {
		return int32(abi.ErrBadStore)
	}
	if h.readOnly[store] {
		return int32(abi.ErrNotAllowed)
	}
	h.Data[store][string(key)] = clone(value)
	return 0
}

func (h *Host) StateDelete(store int32, key []byte) int32 {
	if !h.ok(store) {
		return int32(abi.ErrBadStore)
	}
	if h.readOnly[store] {
		return int32(abi.ErrNotAllowed)
	}
	delete(h.Data[store], string(key))
	return 0
}

func (h *Host) StateScan(store int32, start, end, dst []byte, max int) ([]byte, int, int32) {
	if !h.ok(store) {
		return dst, 0, int32(abi.ErrBadStore)
	}
	var keys []string
	for k := range h.Data[store] {
		if k >= string(start) && (end == nil || k < string(end)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for i, k := range keys {
		n := len(dst)
		dst = abi.AppendScanEntry(dst, []byte(k), h.Data[store][k])
		if len(dst) > max {
			if i == 0 {
				return dst[:n], len(dst) - n, 0
			}
			return dst[:n], 0, 0
		}
	}
	return dst, 0, 0
}

func (h *Host) Log(level int32, msg []byte) { h.logs = append(h.logs, string(msg)) }

func (h *Host) StreamTime() int64 { return h.streamTime }

// newHost is a Host with empty stores and read-only tables of the names
// given, and no stream time yet.
func newHost(stores, tables []string) *Host {
	h := &Host{streamTime: abi.NoStreamTime}
	for _, s := range stores {
		h.names, h.readOnly, h.Data = append(h.names, s), append(h.readOnly, false), append(h.Data, map[string][]byte{})
	}
	for _, s := range tables {
		h.names, h.readOnly, h.Data = append(h.names, s), append(h.readOnly, true), append(h.Data, map[string][]byte{})
	}
	return h
}

// The runtime is shared by the test binary: compiling a module costs
// seconds.
var (
	rtOnce sync.Once
	rt     plugins.Runtime
	rtErr  error
)

func sharedRuntime() (plugins.Runtime, error) {
	rtOnce.Do(func() { rt, rtErr = wazero.New(context.Background(), wazero.Options{}) })
	return rt, rtErr
}

// Operator is one instance of a module on a Host.
type Operator struct {
	Host *Host

	t     testing.TB
	inst  plugins.Instance
	stdio bytes.Buffer
}

// StartOperator instantiates wasm with params (JSON) and the stores and
// read-only tables named. The instance is closed at the test's cleanup.
func StartOperator(t testing.TB, wasm, params []byte, stores, tables []string) *Operator {
	t.Helper()
	ctx := context.Background()
	rt, err := sharedRuntime()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	o := &Operator{t: t, Host: newHost(stores, tables)}
	o.inst, err = mod.Instantiate(ctx, plugins.InstanceConfig{Name: "test", Params: params, Host: o.Host, Stdout: &o.stdio, Stderr: &o.stdio})
	if err != nil {
		t.Fatalf("instantiate: %v (output %q)", err, o.stdio.String())
	}
	t.Cleanup(func() { o.inst.Close(ctx) })
	return o
}

// Table sets (value non-nil) or deletes a key of a table, as the host
// does between calls.
func (o *Operator) Table(name string, key, value []byte) {
	i := slices.Index(o.Host.names, name)
	if value == nil {
		delete(o.Host.Data[i], string(key))
	} else {
		o.Host.Data[i][string(key)] = clone(value)
	}
}

// Process passes recs as one batch of partition part and returns the
// outputs; then advances the stream time past the batch, as the host does.
func (o *Operator) Process(part int, recs []abi.Record) []Output {
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
		o.Host.lastTS = recs[i].Timestamp
	}
	o.Host.emitted = nil
	err = o.inst.Process(ctx, n)
	var re *plugins.RecordError
	if errors.As(err, &re) {
		o.t.Fatalf("record %d of the batch failed: %s", re.Index, re.Message)
	}
	if err != nil {
		o.t.Fatalf("process: %v (output %q, logs %q)", err, o.stdio.String(), o.Host.logs)
	}
	for i := range recs {
		o.Host.streamTime = max(o.Host.streamTime, recs[i].Timestamp)
	}
	return o.Host.emitted
}

// Restart replaces the instance with a new one of wasm (with params) over
// the same stores and stream time, as a task restarted from a checkpoint
// gets.
func (o *Operator) Restart(wasm, params []byte) {
	o.t.Helper()
	ctx := context.Background()
	o.inst.Close(ctx)
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		o.t.Fatal(err)
	}
	o.inst, err = mod.Instantiate(ctx, plugins.InstanceConfig{Name: "test", Params: params, Host: o.Host, Stdout: &o.stdio, Stderr: &o.stdio})
	if err != nil {
		o.t.Fatalf("instantiate: %v (output %q)", err, o.stdio.String())
	}
}

// InitError instantiates wasm with params and empty stores of the names
// given and returns the init's error.
func InitError(wasm, params []byte, stores []string) error {
	ctx := context.Background()
	rt, err := sharedRuntime()
	if err != nil {
		return err
	}
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		return err
	}
	inst, err := mod.Instantiate(ctx, plugins.InstanceConfig{Name: "test", Params: params, Host: newHost(stores, nil)})
	if err == nil {
		inst.Close(ctx)
	}
	return err
}
