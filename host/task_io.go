package host

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/storage"
	"github.com/sluice-io/sluice/plugins"
)

type (
	batchRecord  = batch.Record
	batchBuilder = batch.Builder
	batchHeader  = batch.RecordHeader
)

// inRec is one input record of the current chunk. Key and value alias the
// read buffer (or a decompressed copy); headers are hdrs[h0:h1].
type inRec struct {
	off, ts    int64
	key, value []byte
	h0, h1     int32
	in         uint32 // index of the input (or table) it came from
}

// maxOutputBatch is where an output batch is cut and appended, so that one
// guest call emitting a lot does not build one huge batch.
const maxOutputBatch = 1 << 20

// processChunk reads the next chunk of stored batches of one input (up to
// MaxBatchBytes), hands its records to the guest and applies the results.
// It reports whether the input had anything to read.
func (t *task) processChunk(in *inputSource) (bool, error) {
	data, err := in.part.ReadInto(in.buf, in.pos, t.job.spec.Limits.MaxBatchBytes)
	if errors.Is(err, storage.ErrOffsetOutOfRange) {
		// Retention removed records before the task got to them.
		lso := in.part.LogStartOffset()
		if in.pos < lso {
			t.log.Warn("input records were deleted before they were processed; skipping ahead", "topic", in.topic, "from", in.pos, "to", lso)
			in.pos = lso
			in.posA.Store(lso)
			t.dirty = true
			return true, nil
		}
		return false, fmt.Errorf("reading %s-%d: %w", in.topic, t.partition, err)
	}
	if err != nil {
		return false, fmt.Errorf("reading %s-%d: %w", in.topic, t.partition, err)
	}
	if cap(data) > cap(in.buf) {
		in.buf = data[:0]
	}
	if len(data) == 0 {
		return false, nil
	}
	// Decode every record at or after the position once, into scratch.
	t.recs = t.recs[:0]
	t.hdrs = t.hdrs[:0]
	next, err := t.decode(in, data, &t.recs, &t.hdrs)
	if err != nil {
		return false, err
	}
	if next == in.pos {
		return false, nil
	}
	if err := t.processRecs(); err != nil {
		return false, err
	}
	in.pos = next
	in.posA.Store(next)
	t.dirty = true
	return true, nil
}

// decode appends the records of the stored batches in data at or after
// in's position to recs and their headers to hdrs, and returns the offset
// after the last whole batch (in.pos if there is none).
func (t *task) decode(in *inputSource, data []byte, recs *[]inRec, hdrs *[]batchHeader) (int64, error) {
	t.collectIn = in.index
	t.collectAt = in.pos
	t.collectRecs, t.collectHdrs = recs, hdrs
	next := in.pos
	for rest := data; len(rest) > 0; {
		b, h, r, err := batch.Next(rest)
		if err != nil {
			break // a partial batch at the end of the read
		}
		rest = r
		if h.NextOffset() <= in.pos {
			continue
		}
		next = h.NextOffset()
		if h.IsControl() {
			continue
		}
		if err := batch.Records(b, t.collectFn); err != nil {
			return in.pos, fmt.Errorf("decoding %s-%d at offset %d: %w", in.topic, t.partition, h.BaseOffset, err)
		}
	}
	return next, nil
}

// processRecs runs the guest over every record in t.recs (see
// processRange) and counts them.
func (t *task) processRecs() error {
	if len(t.recs) == 0 {
		return nil
	}
	t.progress = 0
	if err := t.processRange(0, len(t.recs)); err != nil {
		return t.keepProgress(err)
	}
	n := uint64(len(t.recs))
	t.recordsIn.Add(n)
	t.m.recordsIn.Add(float64(n))
	return nil
}

// collect is batch.Records' callback (a method value made once, so that
// decoding does not allocate a closure per batch).
func (t *task) collect(r *batchRecord) bool {
	if r.Offset < t.collectAt {
		return true
	}
	hdrs := t.collectHdrs
	h0 := int32(len(*hdrs))
	*hdrs = append(*hdrs, r.Headers...)
	*t.collectRecs = append(*t.collectRecs, inRec{off: r.Offset, ts: r.Timestamp, key: r.Key, value: r.Value, h0: h0, h1: int32(len(*hdrs)), in: t.collectIn})
	return true
}

// processRange runs the guest over recs[lo:hi] and applies the job's error
// policy to records it fails: the records before a failed one run again
// on their own, the failed one is skipped or dead-lettered, and the
// records after it run next (and may fail again).
//
// A fault (a trap, a timeout, the memory limit, an ABI violation) kills
// the instance and does not say which record caused it, so the range is
// split in halves, each run on a new instance, down to the one record at
// fault, which then gets the error policy too. Halving also gets a batch
// that was merely too slow for the call timeout through in smaller calls.
func (t *task) processRange(lo, hi int) error {
	for lo < hi {
		err := t.call(lo, hi)
		if err == nil {
			if err := t.commitCall(hi); err != nil {
				return err
			}
			t.progress = hi
			return nil
		}
		t.abortCall()
		if t.stopping() {
			// The call may have failed because the stop cancelled it;
			// whatever it was, it runs again after the next start.
			return errStopped
		}
		var msg string
		failed := -1
		// Type assertions, not errors.As: the runtime returns these as
		// they are, and a Fault's chain need not be walked.
		switch e := err.(type) {
		case *plugins.RecordError:
			if e.Index < 0 || e.Index >= hi-lo {
				return fmt.Errorf("%s: operator reported record %d as failed, but the batch has %d records", t.name, e.Index, hi-lo)
			}
			failed, msg = lo+e.Index, e.Message
		case *plugins.Fault:
			t.log.Warn("operator instance failed; running the batch in halves on a new instance to find the record at fault",
				"records", hi-lo, "err", e.Error())
			if err := t.replaceInstance(); err != nil {
				return err
			}
			if hi-lo > 1 {
				mid := lo + (hi-lo)/2
				if err := t.processRange(lo, mid); err != nil {
					return err
				}
				lo = mid
				continue
			}
			failed, msg = lo, e.Error()
		default:
			return err
		}
		if t.job.spec.OnError == PolicyFail {
			r := &t.recs[failed]
			if failed > lo {
				// Keep the records before it: they are checkpointed
				// with the failure (see keepProgress).
				if err := t.processRange(lo, failed); err != nil {
					return err
				}
			}
			return &poisonError{msg: fmt.Sprintf("record at %s-%d offset %d failed: %s (on-error: fail)", t.inputs[r.in].topic, t.partition, r.off, msg)}
		}
		if failed > lo {
			if err := t.processRange(lo, failed); err != nil {
				return err
			}
		}
		if err := t.poison(failed, msg); err != nil {
			return err
		}
		lo = failed + 1
		t.progress = lo
	}
	return nil
}

// poisonError fails a task whose job's policy is on-error: fail.
type poisonError struct{ msg string }

func (e *poisonError) Error() string { return e.msg }

// keepProgress runs when a record failed a task (on-error: fail): the
// records of the chunk before it went through, so they are checkpointed,
// and the restart begins at the failed record instead of appending their
// outputs again on every retry.
//
// A stop that interrupted a call (errStopped) keeps the records before it
// the same way, so that a stop never makes the next start repeat work.
func (t *task) keepProgress(err error) error {
	if _, poisoned := err.(*poisonError); !poisoned && err != errStopped {
		return err
	}
	if t.progress > 0 {
		n := uint64(t.progress)
		t.recordsIn.Add(n)
		t.m.recordsIn.Add(float64(n))
		// Each input moves past its last record among those handled (a
		// multi-input batch interleaves several inputs' records).
		for _, in := range t.inputs {
			for i := t.progress - 1; i >= 0; i-- {
				if r := &t.recs[i]; r.in == in.index {
					in.pos = r.off + 1
					in.posA.Store(in.pos)
					break
				}
			}
		}
		t.dirty = true
	}
	if cerr := t.checkpoint(); cerr != nil {
		return fmt.Errorf("%w (and checkpointing the records before it failed: %v)", err, cerr)
	}
	return err
}

// poison applies skip or dead-letter to recs[i].
func (t *task) poison(i int, msg string) error {
	r := &t.recs[i]
	in := t.inputs[r.in]
	t.advanceStreamTime(r.ts)
	if t.job.spec.OnError == PolicySkip {
		t.skipped.Add(1)
		t.log.Warn("skipping a record the operator failed", "topic", in.topic, "offset", r.off, "err", msg)
		return nil
	}
	hdrs := append(t.outHdrs[:0], t.hdrs[r.h0:r.h1]...)
	hdrs = append(hdrs,
		batchHeader{Key: "sluice.error", Value: []byte(msg)},
		batchHeader{Key: "sluice.topic", Value: []byte(in.topic)},
		batchHeader{Key: "sluice.partition", Value: []byte(strconv.Itoa(int(t.partition)))},
		batchHeader{Key: "sluice.offset", Value: []byte(strconv.FormatInt(r.off, 10))},
	)
	t.outHdrs = hdrs[:0]
	s := t.dlq
	p := t.partition % int32(len(s.parts))
	b := &s.builders[p]
	b.Reset(r.ts)
	b.Add(0, r.ts, r.key, r.value, hdrs)
	if err := s.append(p); err != nil {
		return fmt.Errorf("dead-letter topic %s: %w", s.topic, err)
	}
	t.deadLettered.Add(1)
	t.log.Warn("dead-lettered a record the operator failed", "topic", in.topic, "offset", r.off, "dlq", s.topic, "err", msg)
	return nil
}

// call encodes recs[lo:hi] straight into guest memory and runs Process.
func (t *task) call(lo, hi int) error {
	size := abi.BatchHeaderSize
	maxTS := int64(-1)
	for i := lo; i < hi; i++ {
		r := &t.recs[i]
		maxTS = max(maxTS, r.ts)
		size += abi.RecordFixedSize + len(r.key) + len(r.value)
		for _, h := range t.hdrs[r.h0:r.h1] {
			size += abi.HeaderFixedSize + len(h.Key) + len(h.Value)
		}
	}
	// A stop interrupts a long call: its effects are discarded and the
	// records run again after the restart.
	ctx := t.stopCtx
	mem, err := t.inst.Input(ctx, size)
	if err != nil {
		return err
	}
	if len(mem) < size {
		return fmt.Errorf("%s: runtime gave %d bytes of guest memory for a %d-byte batch", t.name, len(mem), size)
	}
	abi.PutBatchHeader(mem, abi.BatchHeader{Count: uint32(hi - lo), Partition: t.partition})
	n := abi.BatchHeaderSize
	for i := lo; i < hi; i++ {
		r := &t.recs[i]
		hs := t.hdrs[r.h0:r.h1]
		n += abi.PutRecordFixed(mem[n:], r.off, r.ts, r.in, r.key, r.value, len(hs))
		n += copy(mem[n:], r.key)
		n += copy(mem[n:], r.value)
		for _, h := range hs {
			n += abi.PutHeader(mem[n:], unsafeBytes(h.Key), h.Value)
		}
	}
	t.host.begin(t.recs[hi-1].ts, t.streamTime)
	t.callMaxTS = maxTS
	start := time.Now()
	err = t.inst.Process(ctx, n)
	t.m.process.Observe(time.Since(start).Seconds())
	if err == nil && t.host.err != nil {
		// The guest was told ErrInternal; the host's own failure fails the
		// task whatever the guest did next.
		return t.host.err
	}
	return err
}

// commitCall applies a successful call's effects: state writes are kept
// and outputs appended to their partitions.
func (t *task) commitCall(hi int) error {
	if t.state != nil {
		t.state.EndCall(true)
	}
	t.advanceStreamTime(t.callMaxTS)
	out, err := t.appendOutputs()
	if err != nil {
		return err
	}
	t.recordsOut.Add(uint64(out))
	t.m.recordsOut.Add(float64(out))
	return nil
}

// abortCall discards a failed call's effects.
func (t *task) abortCall() {
	if t.state != nil {
		t.state.EndCall(false)
	}
	t.host.staged = t.host.staged[:0]
}

// appendOutputs turns the call's staged outputs into one RecordBatch per
// output partition and appends them.
func (t *task) appendOutputs() (int, error) {
	h := &t.host
	if len(h.staged) == 0 {
		return 0, nil
	}
	var rd abi.OutputReader
	rd.Reset(h.staged)
	count := 0
	t.touched = t.touched[:0]
	for rd.Next(&h.out) {
		o := &h.out
		s := t.outputs[o.Output]
		n := int32(len(s.parts))
		p := o.Partition
		if p == abi.PartitionByKey {
			if o.Key == nil {
				p = t.partition % n
			} else {
				p = partitionForKey(o.Key, n)
			}
		}
		ts := o.Timestamp
		if ts == abi.TimestampInherit {
			ts = h.lastTS
		}
		b := &s.builders[p]
		if b.Len() == 0 {
			b.Reset(ts)
			t.touched = append(t.touched, outRef{int32(o.Output), p})
		}
		hdrs := t.outHdrs[:0]
		for _, hd := range o.Headers {
			hdrs = append(hdrs, batchHeader{Key: unsafeString(hd.Key), Value: hd.Value})
		}
		t.outHdrs = hdrs[:0]
		b.Add(int32(b.Len()), ts, o.Key, o.Value, hdrs)
		count++
		if b.Size() >= maxOutputBatch {
			if err := s.append(p); err != nil {
				return count, fmt.Errorf("output %s: %w", s.topic, err)
			}
		}
	}
	if err := rd.Err(); err != nil {
		return count, fmt.Errorf("%s: staged output does not parse: %w", t.name, err)
	}
	for _, ref := range t.touched {
		s := t.outputs[ref.sink]
		if s.builders[ref.part].Len() == 0 {
			continue
		}
		if err := s.append(ref.part); err != nil {
			return count, fmt.Errorf("output %s: %w", s.topic, err)
		}
	}
	h.staged = h.staged[:0]
	return count, nil
}

// append appends partition p's builder as one batch and empties it.
func (s *outputSink) append(p int32) error {
	b := &s.builders[p]
	_, pending, err := s.parts[p].AppendAsync(b.Finish(), 0)
	b.Reset(0)
	if err != nil {
		return err
	}
	s.pending[p] = pending
	s.waiting[p] = true
	return nil
}

func newOutputSink(topic string, parts []*storage.Partition) *outputSink {
	return &outputSink{
		topic:    topic,
		parts:    parts,
		builders: make([]batchBuilder, len(parts)),
		pending:  make([]storage.Pending, len(parts)),
		waiting:  make([]bool, len(parts)),
	}
}

// unsafeString views b as a string without copying. The batch builder only
// copies header keys, so the view never outlives b.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// unsafeBytes views s as bytes without copying, for read-only use.
func unsafeBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
