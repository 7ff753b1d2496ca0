package suites

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/runtimes"
)

// OpenRuntimes opens the named runtimes ("all" or nil: every runtime of
// this binary) and returns them with a function that closes them.
func OpenRuntimes(ctx context.Context, names []string, opts runtimes.Options) ([]plugins.Runtime, func(), error) {
	if len(names) == 0 || slices.Equal(names, []string{"all"}) {
		names = runtimes.Available()
	}
	var rts []plugins.Runtime
	closeAll := func() {
		for _, rt := range rts {
			_ = rt.Close(context.Background())
		}
	}
	for _, n := range names {
		rt, err := runtimes.Open(ctx, n, opts)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		rts = append(rts, rt)
	}
	return rts, closeAll, nil
}

// hostConfig is the job around an instance.
type hostConfig struct {
	// stores are the declared store names; handles are their indexes.
	stores []string
	// anyStore makes store_open accept every name (the abi suite does not
	// know which stores a module wants), giving each a new handle.
	anyStore bool
	// outputs is the number of declared outputs (default 1) and
	// partitions the partition count of each (default 4).
	outputs, partitions int
	// state is the stores' content before the first batch, per store
	// name.
	state map[string]map[string]string
	// streamTimes is what stream_time returns, per call: streamTimes[0]
	// during sluice_init, streamTimes[i+1] during batch i; -1 past the
	// end (a task that has seen no records).
	streamTimes []int64
}

// recHost is the suite's plugins.Host: an in-memory task that stages each
// call's emits and state writes, commits them when the call succeeds and
// discards them otherwise, as the real task does, and records everything
// the guest did so that cases can compare it.
type recHost struct {
	cfg       hostConfig
	stores    []string
	committed []map[string][]byte
	staged    []map[string][]byte // nil value: a delete

	// Per call.
	calls     int      // beginCall count: the current call is calls-1
	emits     [][]byte // raw emit batches, copied
	emitCodes []int32

	logs []logEntry
	// problems lists ABI misuses the host saw (unknown handle, undeclared
	// output); the abi suite fails on them.
	problems []string
}

type logEntry struct {
	level int32
	msg   string
}

func newRecHost(cfg hostConfig) *recHost {
	if cfg.outputs == 0 {
		cfg.outputs = 1
	}
	if cfg.partitions == 0 {
		cfg.partitions = 4
	}
	h := &recHost{cfg: cfg}
	for _, s := range cfg.stores {
		h.addStore(s)
	}
	for s, kv := range cfg.state {
		i := slices.Index(h.stores, s)
		if i < 0 {
			i = h.addStore(s)
		}
		for k, v := range kv {
			h.committed[i][k] = []byte(v)
		}
	}
	return h
}

func (h *recHost) addStore(name string) int {
	h.stores = append(h.stores, name)
	h.committed = append(h.committed, map[string][]byte{})
	h.staged = append(h.staged, map[string][]byte{})
	return len(h.stores) - 1
}

func (h *recHost) problem(format string, args ...any) {
	if len(h.problems) < 20 {
		h.problems = append(h.problems, fmt.Sprintf(format, args...))
	}
}

func (h *recHost) Emit(batch []byte) int32 {
	var r abi.OutputReader
	var o abi.Output
	r.Reset(batch)
	code := int32(abi.OK)
	for r.Next(&o) {
		if int(o.Output) >= h.cfg.outputs {
			h.problem("emit: an output names output %d; the job declares %d", o.Output, h.cfg.outputs)
			code = int32(abi.ErrBadOutput)
		} else if o.Partition != abi.PartitionByKey && (o.Partition < 0 || int(o.Partition) >= h.cfg.partitions) {
			h.problem("emit: an output names partition %d; the output has %d", o.Partition, h.cfg.partitions)
			code = int32(abi.ErrBadOutput)
		}
	}
	if err := r.Err(); err != nil {
		// The runtime must have trapped the guest before calling us.
		h.problem("emit: the runtime passed a malformed output batch to the host: %v", err)
		code = int32(abi.ErrInternal)
	}
	h.emitCodes = append(h.emitCodes, code)
	if code == int32(abi.OK) {
		h.emits = append(h.emits, bytes.Clone(batch))
	}
	return code
}

func (h *recHost) StoreOpen(name []byte) int32 {
	if i := slices.Index(h.stores, string(name)); i >= 0 {
		return int32(i)
	}
	if h.cfg.anyStore {
		return int32(h.addStore(string(name)))
	}
	return int32(abi.ErrBadStore)
}

func (h *recHost) handle(fn string, store int32) bool {
	if store >= 0 && int(store) < len(h.stores) {
		return true
	}
	h.problem("%s: store handle %d was never given by store_open", fn, store)
	return false
}

func (h *recHost) lookup(store int32, key []byte) ([]byte, bool) {
	if v, ok := h.staged[store][string(key)]; ok {
		return v, v != nil
	}
	v, ok := h.committed[store][string(key)]
	return v, ok
}

func (h *recHost) StateGet(store int32, key []byte) ([]byte, bool, int32) {
	if !h.handle("state_get", store) {
		return nil, false, int32(abi.ErrBadStore)
	}
	v, ok := h.lookup(store, key)
	return v, ok, int32(abi.OK)
}

func (h *recHost) StatePut(store int32, key, value []byte) int32 {
	if !h.handle("state_put", store) {
		return int32(abi.ErrBadStore)
	}
	h.staged[store][string(key)] = append([]byte{}, value...)
	return int32(abi.OK)
}

func (h *recHost) StateDelete(store int32, key []byte) int32 {
	if !h.handle("state_delete", store) {
		return int32(abi.ErrBadStore)
	}
	h.staged[store][string(key)] = nil
	return int32(abi.OK)
}

func (h *recHost) StateScan(store int32, start, end []byte, dst []byte, max int) ([]byte, int, int32) {
	if !h.handle("state_scan", store) {
		return dst, 0, int32(abi.ErrBadStore)
	}
	view := maps.Clone(h.committed[store])
	for k, v := range h.staged[store] {
		if v == nil {
			delete(view, k)
		} else {
			view[k] = v
		}
	}
	keys := slices.Sorted(maps.Keys(view))
	first := true
	for _, k := range keys {
		if k < string(start) || (end != nil && k >= string(end)) {
			continue
		}
		size := abi.ScanEntryFixedSz + len(k) + len(view[k])
		if len(dst)+size > max {
			if first {
				return dst, size, int32(abi.OK)
			}
			break
		}
		dst = abi.AppendScanEntry(dst, []byte(k), view[k])
		first = false
	}
	return dst, 0, int32(abi.OK)
}

func (h *recHost) Log(level int32, msg []byte) {
	h.logs = append(h.logs, logEntry{level, string(msg)})
}

// StreamTime is the current call's entry of cfg.streamTimes, or -1.
func (h *recHost) StreamTime() int64 {
	if i := h.calls - 1; i >= 0 && i < len(h.cfg.streamTimes) {
		return h.cfg.streamTimes[i]
	}
	return -1
}

// beginCall forgets the previous call's emits.
func (h *recHost) beginCall() {
	h.calls++
	h.emits, h.emitCodes = nil, nil
	for _, st := range h.staged {
		clear(st)
	}
}

// endCall commits the call's state writes if it succeeded, else discards
// them (and its emits).
func (h *recHost) endCall(ok bool) {
	for i, st := range h.staged {
		if ok {
			for k, v := range st {
				if v == nil {
					delete(h.committed[i], k)
				} else {
					h.committed[i][k] = v
				}
			}
		}
		clear(st)
	}
	if !ok {
		h.emits = nil
	}
}

// state returns the committed content of every store that has entries.
func (h *recHost) state() map[string]map[string]string {
	out := map[string]map[string]string{}
	for i, s := range h.stores {
		if len(h.committed[i]) == 0 {
			continue
		}
		m := map[string]string{}
		for k, v := range h.committed[i] {
			m[k] = string(v)
		}
		out[s] = m
	}
	return out
}

// session is one instance of a module driven by a recHost.
type session struct {
	host *recHost
	inst plugins.Instance
}

// compileError is the error of a module the runtime refuses; the cases
// after abi/validate skip on it rather than fail again.
type compileError struct{ err error }

func (e compileError) Error() string { return "the runtime refuses the module: " + e.err.Error() }
func (e compileError) Unwrap() error { return e.err }

// start instantiates the user's module on rt (compiled once per Run).
func start(ctx context.Context, e *env, rt plugins.Runtime, hc hostConfig, ic plugins.InstanceConfig) (*session, error) {
	mod, err := e.module(ctx, rt)
	if err != nil {
		return nil, err
	}
	h := newRecHost(hc)
	if ic.Name == "" {
		ic.Name = "conformance/0"
	}
	ic.Host = h
	h.beginCall()
	inst, err := mod.Instantiate(ctx, ic)
	h.endCall(false)
	if err != nil {
		return nil, err
	}
	return &session{host: h, inst: inst}, nil
}

func (s *session) close() { _ = s.inst.Close(context.Background()) }

// callResult is what one sluice_process call did.
type callResult struct {
	// emits are the raw batches the host accepted (nil when the call
	// failed: the task discards them).
	emits [][]byte
	// emitCalls counts emit calls, accepted or not.
	emitCalls int
	err       error
}

// process runs one batch.
func (s *session) process(ctx context.Context, batch []byte) callResult {
	buf, err := s.inst.Input(ctx, len(batch))
	if err != nil {
		return callResult{err: err}
	}
	copy(buf, batch)
	s.host.beginCall()
	err = s.inst.Process(ctx, len(batch))
	s.host.endCall(err == nil)
	return callResult{emits: s.host.emits, emitCalls: len(s.host.emitCodes), err: err}
}

// notWasm starts the validation problem of bytes that do not parse as a
// module.
const notWasm = "not a valid WebAssembly module"

// describeErr renders an error result the way the equivalence suite
// compares them: what a task would act on, not a runtime's wording of a
// trap.
func describeErr(err error) string {
	var (
		f  *plugins.Fault
		re *plugins.RecordError
		ie *plugins.InitError
		ve *plugins.ValidationError
	)
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &re):
		return fmt.Sprintf("record error: index %d, message %q", re.Index, re.Message)
	case errors.As(err, &ie):
		return fmt.Sprintf("init error: status %d, message %q", ie.Status, ie.Message)
	case errors.As(err, &f):
		switch f.Kind {
		case plugins.FaultABI:
			// The host writes these details itself: they must agree.
			return fmt.Sprintf("fault: %s: %s", f.Kind, f.Detail)
		case plugins.FaultExit:
			return fmt.Sprintf("fault: %s, code %d", f.Kind, f.ExitCode)
		}
		return fmt.Sprintf("fault: %s", f.Kind)
	case errors.As(err, &ve):
		var ps []string
		for _, p := range ve.Problems {
			// How a module fails to parse is the engine's wording; the
			// ABI problems after parsing are the host's and must agree.
			if strings.HasPrefix(p, notWasm) {
				p = notWasm
			}
			ps = append(ps, p)
		}
		slices.Sort(ps)
		return "validation error: " + strings.Join(ps, "; ")
	}
	return "error: " + err.Error()
}
