package host

import (
	"context"
	"log/slog"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/plugins"
)

// callHost is a task's side of its instance's host calls (plugins.Host).
// Emitted outputs are staged here for the duration of one Process call
// and appended only if the call succeeds; state calls go to the task's
// store, which stages writes per call the same way.
type callHost struct {
	t      *task
	staged []byte     // the call's emit batches, concatenated
	out    abi.Output // decoding scratch
	lastTS int64      // timestamp of the call's last input record
	// streamTime is the task's stream time at the start of the call
	// (plugins.Host.StreamTime), set by begin.
	streamTime int64
	err        error // the host's own failure during the call

	notify []<-chan struct{} // scratch for task.notifyChannels
}

var _ plugins.Host = (*callHost)(nil)

func (h *callHost) begin(lastTS, streamTime int64) {
	h.staged = h.staged[:0]
	h.lastTS = lastTS
	h.streamTime = streamTime
	h.err = nil
}

// StreamTime is the task's stream time at the start of the call.
func (h *callHost) StreamTime() int64 { return h.streamTime }

func (h *callHost) reset() {
	h.staged = h.staged[:0]
	h.err = nil
}

// Emit checks every output's index and explicit partition before staging
// any of them, so that a rejected batch leaves nothing behind.
func (h *callHost) Emit(b []byte) int32 {
	outs := h.t.outputs
	var rd abi.OutputReader
	rd.Reset(b)
	for rd.Next(&h.out) {
		if int(h.out.Output) >= len(outs) {
			return int32(abi.ErrBadOutput)
		}
		if p := h.out.Partition; p != abi.PartitionByKey && (p < 0 || int(p) >= len(outs[h.out.Output].parts)) {
			return int32(abi.ErrBadOutput)
		}
	}
	if rd.Err() != nil {
		return int32(abi.ErrMalformed)
	}
	h.staged = append(h.staged, b...)
	return int32(abi.OK)
}

// internal records a failure of the host's own (storage, Pebble) and
// answers the guest with ErrInternal; the task then fails.
func (h *callHost) internal(err error) int32 {
	if h.err == nil {
		h.err = err
	}
	return int32(abi.ErrInternal)
}

func (h *callHost) StoreOpen(name []byte) int32 {
	if h.t.state == nil {
		return int32(abi.ErrBadStore)
	}
	if hd := h.t.state.Handle(name); hd >= 0 {
		return hd
	}
	return int32(abi.ErrBadStore)
}

// code answers the guest for a state call's error; a failure of the
// host's own also fails the task.
func (h *callHost) code(err error) int32 {
	code, internal := stateCode(err)
	if internal != nil {
		return h.internal(internal)
	}
	return code
}

func (h *callHost) StateGet(store int32, key []byte) ([]byte, bool, int32) {
	if h.t.state == nil {
		return nil, false, int32(abi.ErrBadStore)
	}
	v, found, err := h.t.state.Get(store, key)
	if err != nil {
		return nil, false, h.code(err)
	}
	return v, found, int32(abi.OK)
}

func (h *callHost) StatePut(store int32, key, value []byte) int32 {
	if h.t.state == nil {
		return int32(abi.ErrBadStore)
	}
	return h.code(h.t.state.Put(store, key, value))
}

func (h *callHost) StateDelete(store int32, key []byte) int32 {
	if h.t.state == nil {
		return int32(abi.ErrBadStore)
	}
	return h.code(h.t.state.Delete(store, key))
}

func (h *callHost) StateScan(store int32, start, end []byte, dst []byte, max int) ([]byte, int, int32) {
	if h.t.state == nil {
		return dst, 0, int32(abi.ErrBadStore)
	}
	out, needed, err := h.t.state.ScanAppend(store, start, end, dst, max)
	if err != nil {
		return dst, 0, h.code(err)
	}
	return out, needed, int32(abi.OK)
}

func (h *callHost) Log(level int32, msg []byte) {
	h.t.log.Log(context.Background(), slog.Level(level), string(msg), "source", "operator")
}

// initHost serves the host calls of the scratch instance that Deploy
// creates to check that the module initializes: it knows the job's store
// names but holds no data, and nothing may be emitted or written.
type initHost struct {
	stores []StoreSpec
	tables []TableSpec
}

func (h initHost) Emit([]byte) int32 { return int32(abi.ErrNotAllowed) }
func (h initHost) StoreOpen(name []byte) int32 {
	for i, s := range h.stores {
		if s.Name == string(name) {
			return int32(i)
		}
	}
	for i, tb := range h.tables {
		if tb.Name == string(name) {
			return int32(len(h.stores) + i)
		}
	}
	return int32(abi.ErrBadStore)
}
func (h initHost) StateGet(int32, []byte) ([]byte, bool, int32) { return nil, false, int32(abi.OK) }
func (h initHost) StatePut(int32, []byte, []byte) int32         { return int32(abi.ErrNotAllowed) }
func (h initHost) StateDelete(int32, []byte) int32              { return int32(abi.ErrNotAllowed) }
func (h initHost) StateScan(_ int32, _, _ []byte, dst []byte, _ int) ([]byte, int, int32) {
	return dst, 0, int32(abi.OK)
}
func (h initHost) Log(int32, []byte) {}

// StreamTime is -1: the scratch instance of Deploy has seen no records.
func (h initHost) StreamTime() int64 { return -1 }
