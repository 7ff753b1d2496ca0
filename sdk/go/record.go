package sluice

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/sluice-io/sluice/abi"
)

// Header is a record header. A nil Value is null; header keys are never
// null.
type Header = abi.Header

// Record is an input record.
//
// Key, Value and Headers alias the batch the host passed in, which the SDK
// reuses for the next batch: they are valid only until the handler
// returns. Copy what you keep (bytes.Clone, string(b)). A nil Key or Value
// is null; an empty non-nil slice is an empty key or value.
type Record struct {
	// Input is the index of the record's topic in the job's inputs list.
	Input int
	// Partition is the input partition, which is also the task's number.
	Partition int
	Offset    int64
	// Timestamp is in milliseconds since the Unix epoch, as Kafka's
	// record timestamps; Time converts it.
	Timestamp int64
	// StreamTime is the task's stream time at this record: the largest
	// timestamp (>= 0) among the stream input records the task has handed
	// to the operator up to and including this one, or -1 if none had
	// one. It only moves forward (within a partition), never comes from
	// the wall clock, and does not depend on how the host cuts batches:
	// the SDK computes it as the max of the host's stream time at the
	// start of the batch (the stream_time host function) and the
	// timestamps of the batch's records up to this one. A record whose
	// Timestamp is below StreamTime is out of order ("late" by
	// StreamTime-Timestamp ms).
	StreamTime int64
	Key        []byte
	Value      []byte
	Headers    []Header
}

// Time is the record's timestamp as a time.Time in UTC.
func (r *Record) Time() time.Time { return time.UnixMilli(r.Timestamp).UTC() }

// Partition chooses the partition of an output record. The zero value,
// ByKey, lets the host choose from the key with Kafka's murmur2
// partitioner (a null key goes to the task's own partition, modulo the
// output's partition count).
type Partition struct {
	n        int32
	explicit bool
}

// ByKey partitions an output record by its key.
var ByKey Partition

// ToPartition sends an output record to partition p of its output topic.
// A partition the topic does not have fails the record.
func ToPartition(p int) Partition { return Partition{n: int32(p), explicit: true} }

func (p Partition) abi() int32 {
	if p.explicit {
		return p.n
	}
	return abi.PartitionByKey
}

func (p Partition) String() string {
	if p.explicit {
		return fmt.Sprint(p.n)
	}
	return "by key"
}

// Output is an output record with every field under the caller's control.
// The zero values are the defaults: output 0, partition by key, and the
// timestamp of the record being handled.
type Output struct {
	// Output is the index of the topic in the job's outputs list.
	Output    int
	Partition Partition
	// Timestamp is truncated to milliseconds.
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []Header
}

// Emitter collects a handler's output records. Emitting copies the key,
// value and headers into a buffer, so the caller may reuse its slices at
// once. The records reach the host when the whole batch has been handled,
// in one call, and only if no record of the batch failed. The Emitter
// passed to a handler is valid only during that call.
type Emitter struct {
	buf []byte
	// marks[i] is len(buf) when record i started, so that an output the
	// host refuses can be traced to the record that emitted it.
	marks []int
	// timestamp of the record being handled, in milliseconds.
	timestamp int64
}

// Emit sends a record with key and value to output 0, partitioned by key.
func (e *Emitter) Emit(key, value []byte) {
	e.put(0, abi.PartitionByKey, e.timestamp, key, value)
}

// EmitTo sends a record with key and value to the job's output at index
// output (its place in the job's outputs list), partitioned by key.
func (e *Emitter) EmitTo(output int, key, value []byte) {
	e.put(uint32(output), abi.PartitionByKey, e.timestamp, key, value)
}

// Forward sends r unchanged (key, value, headers and timestamp) to output
// 0, partitioned by key: what a filter emits for the records it keeps.
func (e *Emitter) Forward(r *Record) {
	if len(r.Headers) == 0 {
		e.put(0, abi.PartitionByKey, r.Timestamp, r.Key, r.Value)
		return
	}
	o := abi.Output{Partition: abi.PartitionByKey, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value, Headers: r.Headers}
	e.buf = abi.AppendOutput(e.buf, &o)
}

// EmitRecord sends o.
func (e *Emitter) EmitRecord(o Output) {
	ts := e.timestamp
	if !o.Timestamp.IsZero() {
		ts = o.Timestamp.UnixMilli()
	}
	if len(o.Headers) == 0 {
		e.put(uint32(o.Output), o.Partition.abi(), ts, o.Key, o.Value)
		return
	}
	ao := abi.Output{Output: uint32(o.Output), Partition: o.Partition.abi(), Timestamp: ts,
		Key: o.Key, Value: o.Value, Headers: o.Headers}
	e.buf = abi.AppendOutput(e.buf, &ao)
}

// put appends one output without headers in the ABI's layout, with plain
// stores rather than through abi.AppendOutput: in a Go guest the calls
// and byte-wise stores that would make are most of an output's price.
func (e *Emitter) put(output uint32, partition int32, ts int64, key, value []byte) {
	n := abi.OutputFixedSize + len(key) + len(value)
	if cap(e.buf)-len(e.buf) < n {
		e.grow(n)
	}
	start := len(e.buf)
	e.buf = e.buf[:start+n]
	// In bounds: e.buf has n bytes from start.
	p := unsafe.Add(unsafe.Pointer(unsafe.SliceData(e.buf)), start)
	store32(p, output)
	store32(unsafe.Add(p, 4), uint32(partition))
	store64(unsafe.Add(p, 8), uint64(ts))
	store32(unsafe.Add(p, 16), nullableLen(key))
	store32(unsafe.Add(p, 20), nullableLen(value))
	store32(unsafe.Add(p, 24), 0)
	copy(e.buf[start+abi.OutputFixedSize:], key)
	copy(e.buf[start+abi.OutputFixedSize+len(key):], value)
}

func (e *Emitter) grow(n int) {
	nb := make([]byte, len(e.buf), 2*cap(e.buf)+n)
	copy(nb, e.buf)
	e.buf = nb
}

func nullableLen(b []byte) uint32 {
	if b == nil {
		return 0xFFFFFFFF
	}
	return uint32(len(b))
}

func (e *Emitter) reset() {
	e.buf = e.buf[:0]
	e.marks = e.marks[:0]
}

// flush hands the batch's outputs to the host in one emit call.
func (e *Emitter) flush() int32 {
	defer e.reset()
	if len(e.buf) == 0 {
		return abi.StatusOK
	}
	code := abi.Code(hostEmit(e.buf))
	if code == abi.OK {
		return abi.StatusOK
	}
	if code == abi.ErrBadOutput {
		if i, msg, ok := e.findBadOutput(); ok {
			hostSetError(int32(i), msg)
			return abi.StatusRecordFailed
		}
	}
	hostLog(abi.LevelError, fmt.Sprintf("sluice: emit of %d bytes of outputs failed: %s", len(e.buf), code))
	return statusBroken
}

// findBadOutput re-emits the batch's outputs one at a time to find the
// record whose output the host refused, so that the error policy applies
// to that record. The host discards the call's effects when the call fails
// the record, so the repeated outputs do no harm.
func (e *Emitter) findBadOutput() (record int, msg string, ok bool) {
	var r abi.OutputReader
	var o abi.Output
	for i, start := range e.marks {
		end := len(e.buf)
		if i+1 < len(e.marks) {
			end = e.marks[i+1]
		}
		r.Reset(e.buf[start:end])
		off := start
		for r.Next(&o) {
			n := o.EncodedSize()
			if code := abi.Code(hostEmit(e.buf[off : off+n])); code != abi.OK {
				return i, fmt.Sprintf("emit to output %d, partition %s: %s", o.Output, partitionString(o.Partition), code), true
			}
			off += n
		}
	}
	return 0, "", false
}

func partitionString(p int32) string {
	if p == abi.PartitionByKey {
		return "by key"
	}
	return fmt.Sprint(p)
}
