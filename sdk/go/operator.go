package sluice

import (
	"fmt"
	"runtime/debug"
	"time"

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
	handler  HandlerFunc
	initHook InitFunc
)

// Handle registers the operator's record handler. Call it from an init
// function of package main: operators are WASI reactors whose main function
// never runs. Calling it again replaces the handler.
func Handle(h HandlerFunc) { handler = h }

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
	reader  abi.RecordReader
	decoded abi.Record
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
func process(batch []byte) int32 {
	if handler == nil {
		hostLog(abi.LevelError, "sluice: sluice_process called but the operator registered no handler")
		return statusBroken
	}
	if err := reader.Reset(batch); err != nil {
		hostLog(abi.LevelError, "sluice: cannot decode the input batch: "+err.Error())
		return statusBroken
	}
	partition := int(reader.Header().Partition)
	emitter.reset()
	for i := int32(0); reader.Next(&decoded); i++ {
		emitter.begin(decoded.Timestamp)
		current = Record{
			Input:     int(decoded.Input),
			Partition: partition,
			Offset:    decoded.Offset,
			Timestamp: time.UnixMilli(decoded.Timestamp).UTC(),
			Key:       decoded.Key,
			Value:     decoded.Value,
			Headers:   decoded.Headers,
		}
		if err := callHandler(&current, &emitter); err != nil {
			emitter.reset()
			hostSetError(i, err.Error())
			return abi.StatusRecordFailed
		}
	}
	if err := reader.Err(); err != nil {
		emitter.reset()
		hostLog(abi.LevelError, "sluice: cannot decode the input batch: "+err.Error())
		return statusBroken
	}
	return emitter.flush()
}

func callHandler(r *Record, out *Emitter) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicError(v)
		}
	}()
	return handler(r, out)
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
