// Package sdktest runs an operator written with the sluice Go SDK inside an
// ordinary `go test` binary, against an in-memory host that follows ABI v1:
// the handler registered with sluice.Handle receives encoded batches, its
// outputs arrive in one emit per batch, state writes are staged per batch
// and discarded when a record fails, and state reads and scans use the
// ABI's buffer protocol. It tests an operator's logic without Wasm; build
// the operator with `sluice build` and run it in sluice to test the rest.
//
// The operator is the one registered in the test binary (the package under
// test's init functions), and its state is global, so a test binary runs
// one Host at a time: do not use t.Parallel with it.
//
// sdktest runs only in native builds; under GOOS=wasip1 Start fails.
package sdktest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/sluice-io/sluice/abi"
	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/internal/hostbridge"
)

// Config describes the job around the operator.
type Config struct {
	// Params are the job's parameters: marshalled to JSON, except a
	// []byte or json.RawMessage, which is passed as is. Nil: none.
	Params any
	// Stores are the job's state store names.
	Stores []string
	// Tables are the names of the job's tables (tables: in the job
	// file): stores the operator opens with sluice.NewTableStore and may
	// only read (state_put and state_delete return ErrNotAllowed). Fill
	// them with SetTableRow between calls, as the host does from the
	// table's topic.
	Tables []string
	// Outputs is the number of output topics (default 1).
	Outputs int
	// OutputPartitions is the partition count of every output; an
	// explicit partition at or above it is refused. 0: not checked.
	OutputPartitions int
	// Partition is the task's input partition.
	Partition int
}

// Output is an emitted record, copied out of the operator's buffer.
type Output struct {
	Output int
	// Partition is the explicit partition, or -1 for "by key".
	Partition int
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []sluice.Header
}

// RecordError is a record the operator failed (an error or panic in its
// handler, or an output the host refused).
type RecordError struct {
	Index   int
	Message string
}

func (e *RecordError) Error() string { return fmt.Sprintf("record %d failed: %s", e.Index, e.Message) }

// InitError is an init the operator failed (missing handler, bad
// parameters, an error from its OnInit function).
type InitError struct {
	Status  int32
	Message string
}

func (e *InitError) Error() string {
	return fmt.Sprintf("operator init failed (status %d): %s", e.Status, e.Message)
}

// LogEntry is one sluice.Log call.
type LogEntry struct {
	Level   sluice.Level
	Message string
}

// Host is the in-memory host of one operator instance.
type Host struct {
	cfg Config
	g   guest
	// committed state per store (index = handle), and the writes of the
	// call in progress: a nil value is a delete.
	committed []map[string][]byte
	staged    []map[string][]byte
	emitted   []Output
	lastTS    int64
	errIndex  int32
	errMsg    string
	logs      []LogEntry
	inCall    bool
	emitCalls int
	// names are the stores then the tables (index = handle).
	names []string
	// streamTime is stream_time's answer: -1 at Start, then advanced by
	// every record passed to Process, or set by SetStreamTime.
	streamTime int64
}

// guest is where the operator runs: in this process (native) or in a
// Wasm runtime (StartWasm).
type guest interface {
	// input returns n writable bytes for the next batch.
	input(n int) ([]byte, error)
	// process runs the batch written into the first n bytes of input.
	process(n int) error
	close() error
}

var errNative = errors.New("sdktest: the sluice SDK registered no exports (Start runs only in native builds)")

func newHost(cfg Config) *Host {
	if cfg.Outputs == 0 {
		cfg.Outputs = 1
	}
	h := &Host{cfg: cfg, streamTime: -1}
	h.names = append(slices.Clone(cfg.Stores), cfg.Tables...)
	for range h.names {
		h.committed = append(h.committed, map[string][]byte{})
		h.staged = append(h.staged, map[string][]byte{})
	}
	return h
}

func (cfg Config) params() ([]byte, error) {
	switch p := cfg.Params.(type) {
	case nil:
		return nil, nil
	case []byte:
		return p, nil
	case json.RawMessage:
		return p, nil
	}
	b, err := json.Marshal(cfg.Params)
	if err != nil {
		return nil, fmt.Errorf("sdktest: marshalling Params: %w", err)
	}
	return b, nil
}

// Start installs a new host, replacing any previous one, and runs the
// init of the operator registered in this process with cfg.Params.
func Start(cfg Config) (*Host, error) {
	g := hostbridge.Guest
	if g == nil {
		return nil, errNative
	}
	params, err := cfg.params()
	if err != nil {
		return nil, err
	}
	h := newHost(cfg)
	ng := &nativeGuest{h: h}
	h.g = ng
	hostbridge.Current = h
	g.Reset()

	in, err := ng.input(len(params))
	if err != nil {
		return nil, err
	}
	copy(in, params)
	status := g.Init(in)
	h.discard()
	if status != abi.StatusOK {
		return nil, &InitError{Status: status, Message: h.errMsg}
	}
	return h, nil
}

// nativeGuest is the operator registered in this process.
type nativeGuest struct {
	h      *Host
	region []byte
}

// input returns a region obtained from sluice_alloc, reused while it is
// large enough, as the real host does.
func (g *nativeGuest) input(n int) ([]byte, error) {
	if g.region == nil || cap(g.region) < n {
		r := hostbridge.Guest.Alloc(int32(max(n, 64)))
		if r == nil {
			return nil, fmt.Errorf("sdktest: sluice_alloc(%d) failed", n)
		}
		g.region = r
	}
	return g.region[:n], nil
}

func (g *nativeGuest) process(n int) error {
	switch status := hostbridge.Guest.Process(g.region[:n]); status {
	case abi.StatusOK:
		return nil
	case abi.StatusRecordFailed:
		return &RecordError{Index: int(g.h.errIndex), Message: g.h.errMsg}
	default:
		return fmt.Errorf("sdktest: sluice_process returned status %d, which fails the task (logs: %v)", status, g.h.logs)
	}
}

func (g *nativeGuest) close() error { return nil }

// Close releases the operator instance (a Wasm instance for StartWasm).
func (h *Host) Close() error { return h.g.close() }

// Process passes records to the operator as one batch. It returns the
// emitted outputs, or a *RecordError when the operator failed a record;
// then, as in sluice, none of the batch's outputs or state writes take
// effect. Offsets left zero are numbered from the record's index. The
// records' StreamTime fields are ignored: the operator sees the host's
// stream time (StreamTime) at the start of the batch, which afterwards
// advances to the largest timestamp of the batch's records, whether the
// batch succeeded or not (as sluice counts skipped records).
func (h *Host) Process(records ...sluice.Record) ([]Output, error) {
	size := abi.BatchHeaderSize
	recs := make([]abi.Record, len(records))
	for i, r := range records {
		off := r.Offset
		if off == 0 {
			off = int64(i)
		}
		recs[i] = abi.Record{Offset: off, Timestamp: r.Timestamp, Input: uint32(r.Input),
			Key: r.Key, Value: r.Value, Headers: r.Headers}
		size += recs[i].EncodedSize()
	}
	in, err := h.g.input(size)
	if err != nil {
		return nil, err
	}
	abi.PutBatchHeader(in, abi.BatchHeader{Count: uint32(len(recs)), Partition: int32(h.cfg.Partition)})
	n := abi.BatchHeaderSize
	for i := range recs {
		n += abi.PutRecord(in[n:], &recs[i])
		h.lastTS = recs[i].Timestamp
	}
	h.emitted = nil
	h.errIndex, h.errMsg = 0, ""
	h.inCall = true
	err = h.g.process(n)
	h.inCall = false
	for i := range recs {
		h.streamTime = max(h.streamTime, recs[i].Timestamp)
	}
	if err != nil {
		h.discard()
		return nil, err
	}
	h.commit()
	return h.emitted, nil
}

func (h *Host) commit() {
	for i, st := range h.staged {
		for k, v := range st {
			if v == nil {
				delete(h.committed[i], k)
			} else {
				h.committed[i][k] = v
			}
		}
		clear(st)
	}
}

func (h *Host) discard() {
	for _, st := range h.staged {
		clear(st)
	}
	h.emitted = nil
}

// StreamTime is the stream time the operator sees at the start of the
// next batch (the stream_time host function): -1 after Start, then the
// largest timestamp of the records processed so far, unless set with
// SetStreamTime.
func (h *Host) StreamTime() int64 { return h.streamTime }

// SetStreamTime sets the stream time the next batch starts with (records
// processed later advance it from there).
func (h *Host) SetStreamTime(ts int64) { h.streamTime = ts }

// SetTableRow sets key to value in table (one of Config.Tables), as the
// host does when the table's topic has a record for key; a nil value (a
// tombstone) deletes the key. Call it between batches.
func (h *Host) SetTableRow(table string, key, value []byte) {
	i := slices.Index(h.cfg.Tables, table)
	if i < 0 {
		panic(fmt.Sprintf("sdktest: SetTableRow: %q is not one of Config.Tables %q", table, h.cfg.Tables))
	}
	i += len(h.cfg.Stores)
	if value == nil {
		delete(h.committed[i], string(key))
	} else {
		h.committed[i][string(key)] = clone(value)
	}
}

// readOnly reports whether handle is a table's.
func (h *Host) readOnly(handle int32) bool { return int(handle) >= len(h.cfg.Stores) }

// State returns a copy of the committed entries of store (or table).
func (h *Host) State(store string) map[string]string {
	i := slices.Index(h.names, store)
	if i < 0 {
		return nil
	}
	out := make(map[string]string, len(h.committed[i]))
	for k, v := range h.committed[i] {
		out[k] = string(v)
	}
	return out
}

// SetState writes an entry into store as if an earlier batch had (or into
// a table, as the host does from the table's topic).
func (h *Host) SetState(store, key, value string) {
	if i := slices.Index(h.names, store); i >= 0 {
		h.committed[i][key] = []byte(value)
	}
}

// EmitCalls counts the operator's emit calls so far. The Go SDK makes at
// most one per batch that succeeds.
func (h *Host) EmitCalls() int { return h.emitCalls }

// Logs returns the operator's log entries so far.
func (h *Host) Logs() []LogEntry { return slices.Clone(h.logs) }

// The hostbridge.Host methods follow ABI v1 for the SDK's benefit; tests
// use the methods above.

func (h *Host) Emit(batch []byte) int32 {
	if !h.inCall {
		return int32(abi.ErrNotAllowed)
	}
	h.emitCalls++
	var r abi.OutputReader
	var o abi.Output
	var outs []Output
	r.Reset(batch)
	for r.Next(&o) {
		if int(o.Output) >= h.cfg.Outputs {
			return int32(abi.ErrBadOutput)
		}
		if o.Partition != abi.PartitionByKey && (o.Partition < 0 ||
			h.cfg.OutputPartitions > 0 && int(o.Partition) >= h.cfg.OutputPartitions) {
			return int32(abi.ErrBadOutput)
		}
		ts := o.Timestamp
		if ts == abi.TimestampInherit {
			ts = h.lastTS
		}
		out := Output{Output: int(o.Output), Partition: int(o.Partition), Timestamp: time.UnixMilli(ts).UTC(),
			Key: clone(o.Key), Value: clone(o.Value)}
		for _, hd := range o.Headers {
			out.Headers = append(out.Headers, sluice.Header{Key: clone(hd.Key), Value: clone(hd.Value)})
		}
		outs = append(outs, out)
	}
	if r.Err() != nil {
		// The real host faults the instance; the test fails the same way.
		panic(fmt.Sprintf("sdktest: malformed emit batch: %v", r.Err()))
	}
	h.emitted = append(h.emitted, outs...)
	return 0
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func (h *Host) StoreOpen(name string) int32 {
	if i := slices.Index(h.names, name); i >= 0 {
		return int32(i)
	}
	return int32(abi.ErrBadStore)
}

func (h *Host) store(handle int32) bool { return handle >= 0 && int(handle) < len(h.committed) }

func (h *Host) lookup(handle int32, key string) ([]byte, bool) {
	if v, ok := h.staged[handle][key]; ok {
		return v, v != nil
	}
	v, ok := h.committed[handle][key]
	return v, ok
}

func (h *Host) StateGet(store int32, key, buf []byte) int32 {
	if !h.store(store) {
		return int32(abi.ErrBadStore)
	}
	v, ok := h.lookup(store, string(key))
	if !ok {
		return int32(abi.ErrNotFound)
	}
	if len(v) <= len(buf) {
		copy(buf, v)
	}
	return int32(len(v))
}

func (h *Host) write(store int32, key, value []byte, del bool) int32 {
	switch {
	case !h.store(store):
		return int32(abi.ErrBadStore)
	case !h.inCall, h.readOnly(store):
		return int32(abi.ErrNotAllowed)
	case len(key) > abi.MaxKeySize || len(value) > abi.MaxValueSize:
		return int32(abi.ErrLimit)
	}
	if del {
		h.staged[store][string(key)] = nil
	} else {
		h.staged[store][string(key)] = append([]byte{}, value...)
	}
	return 0
}

func (h *Host) StatePut(store int32, key, value []byte) int32 {
	return h.write(store, key, value, false)
}

func (h *Host) StateDelete(store int32, key []byte) int32 {
	return h.write(store, key, nil, true)
}

func (h *Host) StateScan(store int32, start, end, buf []byte) int32 {
	if !h.store(store) {
		return int32(abi.ErrBadStore)
	}
	out, needed := h.scan(store, start, end, buf[:0], len(buf))
	if needed > 0 {
		if len(buf) >= 4 {
			binary.LittleEndian.PutUint32(buf, uint32(needed))
		}
		return int32(abi.ErrBufferTooSmall)
	}
	return int32(len(out))
}

// scan appends the entries start <= key < end (end empty: no bound), staged
// writes included, to dst while they fit in max bytes. needed is the size
// of the first entry when not even that fits.
func (h *Host) scan(store int32, start, end, dst []byte, max int) (out []byte, needed int) {
	keys := slices.Collect(maps.Keys(h.committed[store]))
	for k := range h.staged[store] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	keys = slices.Compact(keys)
	out = dst
	for _, k := range keys {
		if k < string(start) || len(end) > 0 && k >= string(end) {
			continue
		}
		v, ok := h.lookup(store, k)
		if !ok {
			continue
		}
		size := abi.ScanEntryFixedSz + len(k) + len(v)
		if len(out)-len(dst)+size > max {
			if len(out) == len(dst) {
				return out, size
			}
			break
		}
		out = abi.AppendScanEntry(out, []byte(k), v)
	}
	return out, 0
}

func (h *Host) Log(level int32, msg string) {
	h.logs = append(h.logs, LogEntry{Level: sluice.Level(level), Message: msg})
}

func (h *Host) SetError(index int32, msg string) {
	if len(msg) > abi.MaxErrorMessage {
		msg = msg[:abi.MaxErrorMessage]
	}
	h.errIndex, h.errMsg = index, msg
}
