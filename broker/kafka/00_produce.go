package kafka

import (
	"errors"
	"runtime/debug"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/storage"
)

var errControlBatch = errors.New("control batches may only be written by the broker")

// appendJob is one partition of a produce request.
type appendJob struct {
	topic   string
	records []byte
	resp    *kmsg.ProduceResponseTopicPartition
	err     error
}

// handleProduce appends each partition's record batches and answers with
// the base offsets. With acks=0 nothing is sent back; acks=1 and acks=-1
// both wait for the append, which under the default flush policy includes
// the fsync (there are no followers to wait for on a single node).
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
		cx.runAppends(jobs)
	}

	failed := false
	for i := range jobs {
		j := &jobs[i]
		if j.err == nil {
			continue
		}
		failed = true
		j.resp.BaseOffset = -1 // as Kafka answers a failed partition
		j.resp.ErrorCode = cx.code(j.err)
		if req.Version >= 8 {
			j.resp.ErrorMessage = errMessage(j.err)
		}
		if j.resp.ErrorCode == kerr.KafkaStorageError.Code {
			cx.c.log.Error("append failed", "topic", j.topic, "partition", j.resp.Partition, "err", j.err)
		}
	}
	if req.Acks == 0 {
		// The client is not listening for a response. Kafka closes the
		// connection instead when something failed, so that the client
		// notices and refreshes its metadata; we do the same.
		if failed {
			return nil, errCloseOnAcks0
		}
		return nil, nil
	}
	return resp, nil
}

var errInvalidAcks = errors.New("acks must be -1, 0 or 1")

// runAppends appends every job. Partitions are independent logs, each with
// its own fsync, so a request that spans several appends them in parallel:
// the request then costs one fsync of latency instead of one per partition.
func (cx *reqCtx) runAppends(jobs []appendJob) {
	switch len(jobs) {
	case 0:
		return
	case 1:
		cx.appendPartition(&jobs[0])
		return
	}
	var wg sync.WaitGroup
	for i := 1; i < len(jobs); i++ {
		wg.Go(func() {
			// The connection's recover does not cover this goroutine.
			defer func() {
				if r := recover(); r != nil {
					cx.c.log.Error("panic appending", "topic", jobs[i].topic, "panic", r, "stack", string(debug.Stack()))
					jobs[i].err = errInternal
				}
			}()
			cx.appendPartition(&jobs[i])
		})
	}
	cx.appendPartition(&jobs[0])
	wg.Wait()
}

// appendPartition appends one job and fills in its response.
func (cx *reqCtx) appendPartition(j *appendJob) {
	part, err := cx.s.b.Partition(j.topic, j.resp.Partition)
	if err != nil {
		j.err = err
		return
	}
	records, err := scanBatches(j.records)
	if err != nil {
		j.err = err
		j.resp.LogStartOffset = part.LogStartOffset()
		return
	}
	info, err := part.Append(j.records, leaderEpoch)
	if errors.Is(err, storage.ErrDuplicateSequence) {
		// A retry of a batch we already have (the producer missed our
		// answer). Kafka acknowledges it again with the original offsets
		// rather than failing, and so do we; nothing was written.
		j.resp.BaseOffset = info.BaseOffset
		j.resp.LogStartOffset = info.LogStartOffset
		return
	}
	if err != nil {
		j.err = err
		j.resp.LogStartOffset = part.LogStartOffset()
		return
	}
	j.resp.BaseOffset = info.BaseOffset
	j.resp.LogStartOffset = info.LogStartOffset
	// Looked up only on success, so that clients naming topics that do
	// not exist cannot create metric series.
	tm := cx.s.m.topic(j.topic)
	tm.bytesIn.Add(float64(len(j.records)))
	tm.recordsIn.Add(float64(records))
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
