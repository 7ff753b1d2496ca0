package kafka

import (
	"errors"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/storage"
)

var errControlBatch = errors.New("control batches may only be written by the broker")

// appendJob is one partition of a produce request.
type appendJob struct {
	topic string
	// records aliases the request frame, which is reused once the handler
	// returns; it is cleared when appended so nothing can read it later.
	records []byte
	resp    *kmsg.ProduceResponseTopicPartition
	part    *storage.Partition // set once found
	pending storage.Pending    // durability of the append, awaited by the writer
	epoch   int32              // leader epoch the records were appended in
	end     int64              // offset after the last record, for acks=all in a cluster
	count   int64              // records appended, for metrics; 0 for a duplicate
	size    int                // bytes appended, for metrics
	err     error
}

// handleProduce appends each partition's record batches and answers with
// the base offsets. The batches are appended before the handler returns,
// so pipelined requests land in request order, but the answer waits (on
// the connection's writer, see pipeline.go) until they are durable:
// acks=1 and acks=-1 both wait for the fsync under the default flush
// policy (there are no followers to wait for on a single node). With
// acks=0 nothing is sent back.
func handleProduce(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)

	var badRequest error
	switch {
	case req.TransactionID != nil:
		badRequest = errTransactional
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		badRequest = errInvalidAcks
	}

	n := 0
	for i := range req.Topics {
		n += len(req.Topics[i].Partitions)
	}
	jobs := make([]appendJob, 0, n)
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt, st := &req.Topics[i], &resp.Topics[i]
		*st = kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for j := range rt.Partitions {
			sp := &st.Partitions[j]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rt.Partitions[j].Partition
			jobs = append(jobs, appendJob{topic: rt.Topic, records: rt.Partitions[j].Records, resp: sp, err: badRequest})
		}
	}

	if badRequest == nil {
		// In turn: an append only validates and writes, and the waits
		// that take time run in parallel later (awaitAppends).
		for i := range jobs {
			cx.appendPartition(&jobs[i], req.Acks)
		}
	}
	// The response and jobs hold no bytes of the frame (kmsg copies
	// strings; records were cleared), and storage has written the records.
	cx.frameDone = true
	if req.Acks == 0 && slices.ContainsFunc(jobs, func(j appendJob) bool { return j.err != nil }) {
		// Stop reading now rather than when the writer gets here, as
		// before pipelining (see completeProduce for why we close).
		cx.fillResults(jobs, req.Version)
		return nil, errCloseOnAcks0
	}
	version, acks := req.Version, req.Acks
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	cx.await = func() error { return cx.completeProduce(jobs, version, acks, timeout) }
	if acks == 0 {
		return nil, nil
	}
	return resp, nil
}

var errInvalidAcks = errors.New("acks must be -1, 0 or 1")

// appendPartition appends one job's batches without waiting for them to be
// durable.
func (cx *reqCtx) appendPartition(j *appendJob, acks int16) {
	records := j.records
	j.records = nil
	part, epoch, err := cx.s.leaderPartition(j.topic, j.resp.Partition)
	if err != nil {
		j.err = err
		return
	}
	if acks == -1 && cx.s.cluster != nil {
		// Kafka refuses before appending, so that a retry cannot make a
		// duplicate of records that were stored but not acknowledged.
		if err := cx.s.cluster.CheckInSync(j.topic, j.resp.Partition); err != nil {
			j.err = err
			return
		}
	}
	j.part, j.epoch = part, epoch
	count, err := scanBatches(records)
	if err != nil {
		j.err = err
		return
	}
	info, pending, err := part.AppendAsync(records, epoch)
	j.pending = pending
	j.end = info.LastOffset + 1
	if errors.Is(err, storage.ErrDuplicateSequence) {
		// A retry of a batch we already have (the producer missed our
		// answer). Kafka acknowledges it again with the original offsets
		// rather than failing, and so do we, once the original is
		// durable (pending) and, for acks=all, replicated; nothing was
		// written.
		j.resp.BaseOffset = info.BaseOffset
		j.resp.LogStartOffset = info.LogStartOffset
		return
	}
	if err != nil {
		j.err = err
		return
	}
	j.resp.BaseOffset = info.BaseOffset
	j.resp.LogStartOffset = info.LogStartOffset
	j.count, j.size = count, len(records)
}

// completeProduce waits until the appends of a produce request are durable
// and fills in the results. It runs on the connection's writer.
func (cx *reqCtx) completeProduce(jobs []appendJob, version, acks int16, timeout time.Duration) error {
	cx.awaitAppends(jobs)
	if acks == -1 && cx.s.cluster != nil {
		cx.awaitReplicas(jobs, timeout)
	}
	if failed := cx.fillResults(jobs, version); failed && acks == 0 {
		// The client is not listening for a response. Kafka closes the
		// connection instead when something failed, so that the client
		// notices and refreshes its metadata; we do the same.
		return errCloseOnAcks0
	}
	return nil
}

// fillResults sets the error of each failed partition's answer and counts
// the appended bytes and records. It reports whether any partition failed.
func (cx *reqCtx) fillResults(jobs []appendJob, version int16) (failed bool) {
	for i := range jobs {
		j := &jobs[i]
		if j.err == nil {
			if j.size > 0 {
				// Looked up only on success, so that clients naming
				// topics that do not exist cannot create metric series.
				tm := cx.s.m.topic(j.topic)
				tm.bytesIn.Add(float64(j.size))
				tm.recordsIn.Add(float64(j.count))
			}
			continue
		}
		failed = true
		j.resp.BaseOffset = -1 // as Kafka answers a failed partition
		if j.part != nil {
			j.resp.LogStartOffset = j.part.LogStartOffset()
		}
		j.resp.ErrorCode = cx.code(j.err)
		if version >= 8 {
			j.resp.ErrorMessage = errMessage(j.err)
		}
		if j.resp.ErrorCode == kerr.KafkaStorageError.Code {
			cx.c.log.Error("append failed", "topic", j.topic, "partition", j.resp.Partition, "err", j.err)
		}
	}
	return failed
}

// awaitAppends waits for every job's append to be durable. Partitions are
// independent logs, each with its own fsync, which only starts when someone
// waits for it; waiting in parallel makes a request that spans several
// cost one fsync of latency instead of one per partition.
func (cx *reqCtx) awaitAppends(jobs []appendJob) {
	var wg sync.WaitGroup
	first := -1
	for i := range jobs {
		if jobs[i].pending == (storage.Pending{}) {
			continue // failed, or nothing to wait for under this flush policy
		}
		if first < 0 {
			first = i
			continue
		}
		wg.Go(func() {
			// The writer's recover does not cover this goroutine.
			defer func() {
				if r := recover(); r != nil {
					cx.c.log.Error("panic awaiting append", "topic", jobs[i].topic, "panic", r, "stack", string(debug.Stack()))
					jobs[i].err = errInternal
				}
			}()
			jobs[i].await()
		})
	}
	if first >= 0 {
		jobs[first].await()
	}
	wg.Wait()
}

// awaitReplicas waits, for acks=all in a cluster, until every in-sync
// replica has each job's records. The partitions replicate concurrently, so
// waiting for them in turn costs the slowest one, not the sum.
func (cx *reqCtx) awaitReplicas(jobs []appendJob, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for i := range jobs {
		j := &jobs[i]
		if j.err != nil || j.part == nil {
			continue
		}
		j.err = cx.s.cluster.AwaitReplicated(j.topic, j.resp.Partition, j.epoch, j.end, time.Until(deadline))
	}
}

// await waits for the job's append to be durable; a failed fsync fails the
// partition's answer (KAFKA_STORAGE_ERROR, see errorCode).
func (j *appendJob) await() {
	if err := j.pending.Wait(); err != nil {
		j.err = err
	}
}

// scanBatches walks the batch headers of a produce payload (not the
// records, and without CRC checks, which storage does) to count records and
// refuse what sluice does not store: transactional and control batches. A
// malformed payload is left for storage to reject with its precise error.
func scanBatches(b []byte) (records int64, err error) {
	if len(b) == 0 {
		return 0, errNoRecords
	}
	for len(b) > 0 {
		h, err := batch.ParseHeader(b)
		if err != nil || h.Size() > len(b) {
			return records, nil
		}
		switch {
		case h.IsControl():
			return 0, errControlBatch
		case h.IsTransactional():
			return 0, errTransactional
		}
		records += int64(h.RecordCount)
		b = b[h.Size():]
	}
	return records, nil
}
