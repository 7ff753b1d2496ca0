package kafka

import (
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/storage"
)

// fetchPart is one requested partition, resolved once per request.
type fetchPart struct {
	req  *kmsg.FetchRequestTopicPartition
	resp *kmsg.FetchResponseTopicPartition
	name string             // topic name, also for v13+ requests that use ids
	part *storage.Partition // nil when err is set
	err  error
	// buf is a pooled read buffer, returned after the response is
	// written (see reqCtx.release).
	buf *[]byte
}

// handleFetch returns stored record batches, as stored, from each requested
// partition's fetch offset.
//
// Long poll: if fewer than MinBytes are available, the request waits until
// the high watermark of any requested partition advances (storage's Notify
// channels), MaxWaitMillis passes, or the server closes, then reads again.
// A partition error answers at once, as in Kafka.
//
// Fetch sessions (KIP-227) are not kept; see the package doc.
func handleFetch(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FetchRequest)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	resp.SessionID = 0
	if req.Version >= 7 {
		// We never hand out a session id, so a client naming one is
		// talking about a session we do not have; epoch 0 (open a
		// session) and -1 (no session) are both served sessionless.
		var code int16
		switch {
		case req.SessionID != 0:
			code = kerr.FetchSessionIDNotFound.Code
		case req.SessionEpoch != 0 && req.SessionEpoch != -1:
			code = kerr.InvalidFetchSessionEpoch.Code
		}
		if code != 0 {
			resp.ErrorCode = code
			cx.count(code)
			return resp, nil
		}
	}

	parts := resolveFetch(cx, req, resp)

	maxWait := time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond
	var timer *time.Timer
	var fired <-chan struct{}
	chs := make([]<-chan struct{}, 0, len(parts))
	var total int
	for {
		chs = chs[:0]
		var failed bool
		total, failed = fillFetch(req, parts, &chs)
		if total >= int(req.MinBytes) || failed || maxWait == 0 || len(chs) == 0 {
			break
		}
		if fired != nil && containsChan(chs, fired) {
			// The channel that woke us is still current, so it was
			// closed by a partition closing, not by new data: waiting
			// again would spin.
			break
		}
		if timer == nil {
			timer = time.NewTimer(maxWait)
			defer timer.Stop()
		}
		cx.s.m.fetchWaiting.Inc()
		fired = waitAny(chs, timer.C, cx.s.done)
		cx.s.m.fetchWaiting.Dec()
		if fired == nil {
			break // timed out or shutting down: answer with what we have
		}
	}

	cx.respSize = total + 64*len(parts) + 256
	for i := range parts {
		fp := &parts[i]
		if fp.buf != nil {
			cx.release = append(cx.release, fp.buf)
		}
		if fp.resp.ErrorCode != 0 {
			cx.count(fp.resp.ErrorCode)
			continue
		}
		if n := len(fp.resp.RecordBatches); n > 0 {
			tm := cx.s.m.topic(fp.name)
			tm.bytesOut.Add(float64(n))
			tm.recordsOut.Add(float64(countRecords(fp.resp.RecordBatches)))
		}
	}
	return resp, nil
}

// resolveFetch builds the response skeleton, mirroring the request's topics
// and partitions, and finds each partition. Requests v13+ name topics by id.
func resolveFetch(cx *reqCtx, req *kmsg.FetchRequest, resp *kmsg.FetchResponse) []fetchPart {
	n := 0
	for i := range req.Topics {
		n += len(req.Topics[i].Partitions)
	}
	parts := make([]fetchPart, 0, n)
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt, st := &req.Topics[i], &resp.Topics[i]
		*st = kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name := rt.Topic
		var topicErr error
		if req.Version >= 13 {
			if info, ok := cx.s.b.TopicByID(rt.TopicID); ok {
				name = info.Name
			} else {
				topicErr = errUnknownTopicID
			}
		}
		st.Partitions = make([]kmsg.FetchResponseTopicPartition, len(rt.Partitions))
		for j := range rt.Partitions {
			sp := &st.Partitions[j]
			*sp = kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rt.Partitions[j].Partition
			fp := fetchPart{req: &rt.Partitions[j], resp: sp, name: name, err: topicErr}
			if fp.err == nil {
				var epoch int32
				fp.part, epoch, fp.err = cx.s.leaderPartition(name, sp.Partition)
				if fp.err == nil && req.Version >= 9 {
					fp.err = checkLeaderEpoch(fp.req.CurrentLeaderEpoch, epoch)
				}
				if fp.err != nil {
					fp.part = nil
				}
			}
			parts = append(parts, fp)
		}
	}
	return parts
}

var noRecords = []byte{}

// fillFetch reads every partition once, appending each partition's Notify
// channel to chs before reading it, so that data arriving after the read
// closes a channel we hold. It returns the bytes gathered and whether any
// partition failed.
func fillFetch(req *kmsg.FetchRequest, parts []fetchPart, chs *[]<-chan struct{}) (total int, failed bool) {
	remaining := int(req.MaxBytes)
	if req.Version < 3 || remaining <= 0 {
		remaining = int(^uint32(0) >> 1)
	}
	for i := range parts {
		fp := &parts[i]
		sp := fp.resp
		// Empty, not nil: kmsg encodes nil as a null record set (size -1),
		// which librdkafka rejects ("invalid MessageSetSize -1"); Kafka
		// always sends an empty one.
		sp.RecordBatches = noRecords
		if fp.err != nil {
			sp.ErrorCode = errorCode(fp.err)
			failed = true
			continue
		}
		*chs = append(*chs, fp.part.Notify())

		limit := min(int(fp.req.PartitionMaxBytes), remaining)
		if total == 0 && fp.req.PartitionMaxBytes > 0 {
			// Storage returns the first batch even past the limit, so
			// a batch larger than the limits still gets through once
			// it is first in line.
			limit = max(limit, 1)
		}
		var data []byte
		var err error
		if limit > 0 {
			// Read into a pooled buffer, but only once there is data to
			// read: an idle long poll must not hold a megabyte per
			// partition while it waits.
			if fp.buf == nil && fp.part.HighWatermark() > fp.req.FetchOffset && bufClass(limit) >= 0 {
				fp.buf = getBuf(limit)
			}
			var dst []byte
			if fp.buf != nil {
				dst = (*fp.buf)[:0]
			}
			data, err = fp.part.ReadInto(dst, fp.req.FetchOffset, limit)
		}
		// Read after the data, so the high watermark covers it.
		sp.HighWatermark = fp.part.HighWatermark()
		sp.LastStableOffset = sp.HighWatermark // no transactions
		sp.LogStartOffset = fp.part.LogStartOffset()
		if err != nil {
			sp.ErrorCode = errorCode(err)
			failed = true
			continue
		}
		sp.ErrorCode = 0
		if total > 0 && len(data) > limit || len(data) == 0 {
			continue // nothing, or does not fit behind what we have
		}
		sp.RecordBatches = data
		total += len(data)
		remaining -= len(data)
	}
	return total, failed
}

// waitAny blocks until one of chs is closed (returning it), timeout fires or
// done is closed (returning nil).
func waitAny(chs []<-chan struct{}, timeout <-chan time.Time, done <-chan struct{}) <-chan struct{} {
	if len(chs) == 1 {
		select {
		case <-chs[0]:
			return chs[0]
		case <-timeout:
		case <-done:
		}
		return nil
	}
	cases := make([]reflect.SelectCase, 0, len(chs)+2)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timeout)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(done)})
	for _, ch := range chs {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	chosen, _, _ := reflect.Select(cases)
	if chosen < 2 {
		return nil
	}
	return chs[chosen-2]
}

func containsChan(chs []<-chan struct{}, ch <-chan struct{}) bool {
	for _, c := range chs {
		if c == ch {
			return true
		}
	}
	return false
}

// countRecords sums the record counts of the batch headers in b.
func countRecords(b []byte) int64 {
	var n int64
	for len(b) >= batch.HeaderSize {
		h, err := batch.ParseHeader(b)
		if err != nil || h.Size() > len(b) {
			break
		}
		n += int64(h.RecordCount)
		b = b[h.Size():]
	}
	return n
}
