package sluice

import (
	"fmt"
	"runtime/debug"
	"unsafe"

	"github.com/sluice-io/sluice/abi"
)

// HandlerFunc processes one input record. It may emit any number of output
// records through out. A non-nil error (or a panic) fails the record: the
// host discards everything the batch's call did, including earlier records'
// outputs and state writes, and applies the job's error policy (fail, skip
// or dead-letter), re-running the records before the failed one.
type HandlerFunc func(r *Record, out *Emitter) error

// InitFunc runs once per operator instance, before any record, with the
// job file's parameters. An error fails the deployment (or the task
// restart) with the error's text.
type InitFunc func(p Params) error

var (
	handler    HandlerFunc
	initHook   InitFunc
	batchStart func()
	batchEnd   func(out *Emitter) error
)

// Handle registers the operator's record handler. Call it from an init
// function of package main: operators are WASI reactors whose main function
// never runs. Calling it again replaces the handler.
func Handle(h HandlerFunc) { handler = h }

// OnBatchStart registers a function that runs before the first record of
// every batch, and OnBatchEnd one that runs after the last, with the
// batch's Emitter, before the outputs and state writes go to the host (as
// Apache Beam's StartBundle and FinishBundle). Together they let an
// operator aggregate a batch before touching state or emitting: word count
// adds up each word's occurrences in the batch and then updates and emits
// each word once. OnBatchEnd does not run when a record of the batch
// failed (the batch's effects are discarded); OnBatchStart runs again
// before the records are retried, so it is where per-batch scratch is
// reset. An error from OnBatchEnd fails the task, which restarts from its
// last checkpoint.
func OnBatchStart(f func()) { batchStart = f }

// OnBatchEnd: see OnBatchStart.
func OnBatchEnd(f func(out *Emitter) error) { batchEnd = f }

// OnInit registers a function that receives the job's parameters before the
// first record. It is optional. Calling it again replaces the function.
func OnInit(f InitFunc) { initHook = f }

// statusBroken fails the task: something other than one record went wrong
// (a malformed batch from the host, an output the host refused for no
// record in particular). The reason is logged first.
const statusBroken int32 = 2

// The hot path reuses these between calls so that a batch costs no
// allocation once buffers have grown to the batch sizes in use. An
// instance is single-threaded: the host never calls it concurrently.
var (
	region  []byte // the region last returned by sluice_alloc
	current Record
	emitter Emitter
)

// alloc implements sluice_alloc. The region stays referenced (so the
// garbage collector keeps it; Go's collector does not move objects) until
// the next call, as the ABI requires; the host writes batches into it.
func alloc(size int32) []byte {
	if size < 0 {
		return nil
	}
	region = make([]byte, max(size, 1))
	return region[:size]
}

// initOperator implements sluice_init.
func initOperator(raw []byte) int32 {
	checkABIVersion()
	if handler == nil {
		hostSetError(-1, "the operator registered no handler: call sluice.Handle from an init function of package main")
		return 1
	}
	p, err := parseParams(raw)
	if err == nil && initHook != nil {
		err = callInit(p)
	}
	if err == nil {
		err = p.Err()
	}
	if err != nil {
		hostSetError(-1, err.Error())
		return 1
	}
	return abi.StatusOK
}

func callInit(p Params) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicError(v)
		}
	}()
	return initHook(p)
}

// process implements sluice_process: decode each record in place, run the
// handler, and hand all outputs to the host in one emit call.
//
// Inside a Go guest every non-inlined call and every deferred function is
// dear next to the few nanoseconds a record's decoding takes, so the loop
// decodes with inlined helpers, calls nothing but the handler, and recovers
// panics once per batch rather than once per record.
func process(batch []byte) int32 {
	inProcess = true
	status := processBatch(batch)
	inProcess = false
	// The host keeps the call's state writes only when it succeeds.
	endStores(status == abi.StatusOK)
	return status
}

func processBatch(batch []byte) (status int32) {
	if handler == nil {
		hostLog(abi.LevelError, "sluice: sluice_process called but the operator registered no handler")
		return statusBroken
	}
	hdr, err := abi.ReadBatchHeader(batch)
	if err != nil {
		return brokenBatch(err.Error())
	}
	partition := int(hdr.Partition)
	b := batch[abi.BatchHeaderSize:]
	emitter.reset()
	var i int32
	defer func() {
		if v := recover(); v != nil {
			emitter.reset()
			hostSetError(i, panicError(v).Error())
			status = abi.StatusRecordFailed
		}
	}()
	if batchStart != nil {
		batchStart()
	}
	// The stream time at the start of the call; each record's is the max
	// of it and the timestamps so far (negative timestamps do not count,
	// as st >= -1).
	st := hostStreamTime()
	for ; uint32(i) < hdr.Count; i++ {
		if len(b) < abi.RecordFixedSize {
			return brokenBatch(fmt.Sprintf("record %d of %d is truncated", i, hdr.Count))
		}
		// In bounds: b holds at least the fixed part.
		p := unsafe.Pointer(unsafe.SliceData(b))
		r := &current
		r.Input = int(load32(unsafe.Add(p, 16)))
		r.Partition = partition
		r.Offset = int64(load64(p))
		r.Timestamp = int64(load64(unsafe.Add(p, 8)))
		if r.Timestamp > st {
			st = r.Timestamp
		}
		r.StreamTime = st
		kl, vl, hc := load32(unsafe.Add(p, 20)), load32(unsafe.Add(p, 24)), load32(unsafe.Add(p, 28))
		var ok bool
		if r.Key, r.Value, b, ok = abi.TakeKeyValue(b[abi.RecordFixedSize:], kl, vl); !ok {
			return brokenBatch(fmt.Sprintf("record %d: key or value runs past the batch", i))
		}
		if hc == 0 {
			r.Headers = r.Headers[:0]
		} else if r.Headers, b, ok = abi.TakeHeaders(r.Headers, b, hc); !ok {
			return brokenBatch(fmt.Sprintf("record %d: malformed headers", i))
		}
		emitter.marks = append(emitter.marks, len(emitter.buf))
		emitter.timestamp = r.Timestamp
		recordIndex = i
		if err := handler(r, &emitter); err != nil {
			emitter.reset()
			hostSetError(i, err.Error())
			return abi.StatusRecordFailed
		}
	}
	if len(b) != 0 {
		return brokenBatch(fmt.Sprintf("%d bytes after the last of %d records", len(b), hdr.Count))
	}
	if batchEnd != nil {
		// Outputs emitted here belong to no record in particular: an
		// output the host refuses is traced to the batch's last record.
		if err := batchEnd(&emitter); err != nil {
			return brokenBatch("OnBatchEnd: " + err.Error())
		}
	}
	if i, err := finishStores(); err != nil {
		emitter.reset()
		hostSetError(i, err.Error())
		return abi.StatusRecordFailed
	}
	return emitter.flush()
}

// brokenBatch logs why the host's batch cannot be decoded and fails the
// task: the host broke the ABI, not a record.
func brokenBatch(why string) int32 {
	emitter.reset()
	hostLog(abi.LevelError, "sluice: cannot decode the input batch: "+why)
	return statusBroken
}

// panicError turns a recovered panic into the record's error and logs the
// stack, which the one-line error message cannot carry.
func panicError(v any) error {
	hostLog(abi.LevelError, fmt.Sprintf("sluice: operator panicked: %v\n%s", v, debug.Stack()))
	if err, ok := v.(error); ok {
		return fmt.Errorf("panic: %w", err)
	}
	return fmt.Errorf("panic: %v", v)
}
