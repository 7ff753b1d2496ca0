// Package sluice is the Go SDK for sluice operators: programs compiled to
// WebAssembly that a sluice node runs over the records of Kafka topics. An
// operator registers a handler that sees one input record at a time, emits
// output records, and keeps state in named key-value stores; the SDK hides
// the ABI (abi/SPEC.md) behind those three things.
//
// # Writing an operator
//
// An operator is a main package whose init function registers a handler.
// It is built as a WASI reactor, so main is never called and stays empty:
//
//	package main
//
//	import (
//		"bytes"
//
//		sluice "github.com/sluice-io/sluice/sdk/go"
//	)
//
//	var suffix []byte
//
//	func init() {
//		sluice.OnInit(func(p sluice.Params) error {
//			suffix = []byte(p.String("suffix", "!"))
//			return nil
//		})
//		sluice.Handle(func(r *sluice.Record, out *sluice.Emitter) error {
//			out.Emit(r.Key, append(bytes.ToUpper(r.Value), suffix...))
//			return nil
//		})
//	}
//
//	func main() {}
//
// Build it with `sluice build DIR`, which runs
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o DIR/NAME.wasm
//
// and deploy it with a job file naming the module, its input and output
// topics, its stores and its parameters (see examples/wordcount).
//
// # Batches, errors and effects
//
// The host hands the operator a batch of records in one call. The SDK runs
// the handler once per record, buffers every output, and hands them to the
// host in one call at the end of the batch. A batch's effects (outputs and
// state writes) are applied only if every record succeeds: when the
// handler returns an error or panics, the SDK reports that record, the
// host discards the batch's effects and applies the job's error policy
// (on-error: fail, skip or dead-letter), re-running the records before
// the failed one. Delivery is at least once: after a crash, records since
// the last checkpoint are processed again.
//
// Record slices alias the batch and are valid only during the handler
// call; copy what you keep. The hot path does not allocate: the batch is
// decoded in place and the SDK's buffers are reused.
//
// # State
//
// NewStore returns a store of byte keys and values; NewTable a typed view
// with a Codec for keys and one for values (String, Bytes, Int64, JSON).
// Stores must be declared in the job file. Their writes are replicated to
// a changelog topic, from which the host restores them when needed.
//
// NewTableStore opens one of the job's tables (a compacted topic the host
// keeps in a store, read-only for the operator and updated between calls).
//
// # Stream time
//
// Record.StreamTime is the task's stream time at the record: the largest
// record timestamp handed to the operator so far, never the wall clock,
// and the same whatever the batch cuts. With time keys (AppendTimeKey,
// DecodeTimeKey), whose byte order is time order, windowed state is kept
// in a store and expired with one Scan up to the cutoff's time key.
//
// # Testing
//
// The package also compiles natively. Package sdktest runs the registered
// handler in a test binary against an in-memory host.
package sluice
