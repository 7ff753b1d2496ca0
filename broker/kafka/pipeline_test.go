package kafka

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/storage"
)

// holdFirstAnswer makes the server's first produce answer wait, before it
// waits for its fsync, until release is called. Nothing else waits for an
// fsync under flush.policy=sync, so while it is held nothing is durable.
func holdFirstAnswer(t *testing.T, e *testEnv) (entered <-chan struct{}, release func()) {
	in := make(chan struct{}, 1)
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	// Registered after newEnv's cleanup, so it runs first: Close waits for
	// the held writer.
	t.Cleanup(release)
	var calls atomic.Int64
	hook := func() {
		if calls.Add(1) == 1 {
			in <- struct{}{}
			<-gate
		}
	}
	e.s.testAwaitHook.Store(&hook)
	return in, release
}

func waitFor(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func partitionOf(t *testing.T, e *testEnv, topic string, p int32) *storage.Partition {
	t.Helper()
	part, err := e.b.Partition(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	return part
}

// TestPipelinedProduceSharesFsync holds the first answer of a pipeline of
// produce requests on one connection: the later requests must be appended
// meanwhile, and the one fsync the first answer then waits for must cover
// them all. Responses come back in request order with their own offsets,
// and the stored records are intact although each request's frame went
// back to the pool, to be reused, before its records were fsynced.
func TestPipelinedProduceSharesFsync(t *testing.T) {
	e := newEnv(t)
	info := e.createTopic("pipe", 1, map[string]string{"flush.policy": "sync"})
	part := partitionOf(t, e, "pipe", 0)
	entered, release := holdFirstAnswer(t, e)
	rc := e.raw()
	const n, per = 12, 10
	corrs := make([]int32, n)
	for i := range corrs {
		corrs[i] = rc.send(produceReq(9, "pipe", 0, testBatch(fmt.Sprint("r", i), per, -1, -1, -1)))
	}
	waitFor(t, "the first answer to be held", entered)
	eventually(t, "every request appended behind the held answer", func() bool { return part.LogEndOffset() == n*per })
	if hw := part.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d before any answer waited for an fsync, want 0", hw)
	}
	release()
	for i, corr := range corrs {
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		rc.recv(corr, resp)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset != int64(i*per) {
			t.Fatalf("response %d: code %s base %d, want base %d", i, errorName(p.ErrorCode), p.BaseOffset, i*per)
		}
		if i == 0 {
			// The high watermark moves only by fsync, and only the first
			// answer has waited so far: one fsync covered every request.
			if hw := part.HighWatermark(); hw != n*per {
				t.Fatalf("high watermark %d after the first answer, want %d (one fsync for all)", hw, n*per)
			}
		}
	}
	fr := kmsg.NewPtrFetchResponse()
	fr.Version = 12
	rc.recv(rc.send(fetchReq(12, "pipe", info.ID, 0, 0, 0, 0)), fr)
	offsets, values := decodeValues(t, fr.Topics[0].Partitions[0].RecordBatches)
	if len(offsets) != n*per {
		t.Fatalf("fetched %d records, want %d", len(offsets), n*per)
	}
	for i, v := range values {
		if want := fmt.Sprintf("r%d-%d", i/per, i%per); offsets[i] != int64(i) || v != want {
			t.Fatalf("offset %d holds %q, want %q at %d", offsets[i], v, want, i)
		}
	}
}

// TestPipelinedProduceInFlightBound checks that a connection stops reading
// once maxInFlight requests wait for their answers.
func TestPipelinedProduceInFlightBound(t *testing.T) {
	e := newEnv(t)
	e.createTopic("bound", 1, map[string]string{"flush.policy": "sync"})
	part := partitionOf(t, e, "bound", 0)
	entered, release := holdFirstAnswer(t, e)
	rc := e.raw()
	const n = maxInFlight + 4
	corrs := make([]int32, n)
	for i := range corrs {
		corrs[i] = rc.send(produceReq(9, "bound", 0, testBatch("b", 1, -1, -1, -1)))
	}
	waitFor(t, "the first answer to be held", entered)
	eventually(t, "the in-flight limit to fill", func() bool { return part.LogEndOffset() >= maxInFlight })
	if leo := part.LogEndOffset(); leo != maxInFlight {
		t.Fatalf("%d requests appended while the first is unanswered, want %d", leo, maxInFlight)
	}
	release()
	for i, corr := range corrs {
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		rc.recv(corr, resp)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != int64(i) {
			t.Fatalf("response %d: code %s base %d", i, errorName(p.ErrorCode), p.BaseOffset)
		}
	}
}

// TestFetchAfterPipelinedProduce sends a fetch behind produce requests whose
// answers are held: it must be answered after them, and see their records,
// as if the requests had been handled one at a time.
func TestFetchAfterPipelinedProduce(t *testing.T) {
	e := newEnv(t)
	info := e.createTopic("rw", 1, map[string]string{"flush.policy": "sync"})
	part := partitionOf(t, e, "rw", 0)
	entered, release := holdFirstAnswer(t, e)
	rc := e.raw()
	var corrs []int32
	for range 3 {
		corrs = append(corrs, rc.send(produceReq(9, "rw", 0, testBatch("rw", 10, -1, -1, -1))))
	}
	fetchCorr := rc.send(fetchReq(12, "rw", info.ID, 0, 0, 0, 0)) // no long poll
	waitFor(t, "the first answer to be held", entered)
	eventually(t, "the produce requests appended", func() bool { return part.LogEndOffset() == 30 })
	release()
	for i, corr := range corrs {
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		rc.recv(corr, resp)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != int64(10*i) {
			t.Fatalf("produce %d: code %s base %d", i, errorName(p.ErrorCode), p.BaseOffset)
		}
	}
	fr := kmsg.NewPtrFetchResponse()
	fr.Version = 12
	rc.recv(fetchCorr, fr)
	p := fr.Topics[0].Partitions[0]
	offsets, _ := decodeValues(t, p.RecordBatches)
	if p.ErrorCode != 0 || p.HighWatermark != 30 || len(offsets) != 30 {
		t.Fatalf("fetch: code %s, high watermark %d, %d records; want the 30 produced before it",
			errorName(p.ErrorCode), p.HighWatermark, len(offsets))
	}
}

// TestProduceBehindLongPoll checks the other direction: a produce request
// behind a long-polling fetch on the same connection is not handled, let
// alone answered, before the fetch, even though it would end the wait.
func TestProduceBehindLongPoll(t *testing.T) {
	e := newEnv(t)
	info := e.createTopic("lp", 1, map[string]string{"flush.policy": "sync"})
	rc := e.raw()
	fetchCorr := rc.send(fetchReq(12, "lp", info.ID, 0, 0, 300, 1))
	prodCorr := rc.send(produceReq(9, "lp", 0, testBatch("lp", 2, -1, -1, -1)))
	fr := kmsg.NewPtrFetchResponse()
	fr.Version = 12
	rc.recv(fetchCorr, fr)
	if p := fr.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) != 0 {
		t.Fatalf("fetch: code %s, %d bytes; want an empty timeout", errorName(p.ErrorCode), len(p.RecordBatches))
	}
	pr := kmsg.NewPtrProduceResponse()
	pr.Version = 9
	rc.recv(prodCorr, pr)
	if p := pr.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("produce: code %s base %d", errorName(p.ErrorCode), p.BaseOffset)
	}
}

// TestPipelinedProduceManyPartitions pipelines requests that each span
// several partitions, whose fsyncs are awaited in parallel.
func TestPipelinedProduceManyPartitions(t *testing.T) {
	e := newEnv(t)
	const parts, n = 3, 10
	e.createTopic("multi", parts, map[string]string{"flush.policy": "sync"})
	rc := e.raw()
	corrs := make([]int32, n)
	for i := range corrs {
		req := produceReq(9, "multi", 0, nil)
		req.Topics[0].Partitions = nil
		for p := range parts {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = int32(p)
			rp.Records = testBatch("m", 1+p, -1, -1, -1)
			req.Topics[0].Partitions = append(req.Topics[0].Partitions, rp)
		}
		corrs[i] = rc.send(req)
	}
	for i, corr := range corrs {
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		rc.recv(corr, resp)
		for _, p := range resp.Topics[0].Partitions {
			if want := int64(i * int(1+p.Partition)); p.ErrorCode != 0 || p.BaseOffset != want {
				t.Fatalf("request %d partition %d: code %s base %d, want %d", i, p.Partition, errorName(p.ErrorCode), p.BaseOffset, want)
			}
		}
	}
	for p := range int32(parts) {
		if hw := partitionOf(t, e, "multi", p).HighWatermark(); hw != int64(n*(1+p)) {
			t.Fatalf("partition %d: high watermark %d, want %d", p, hw, n*(1+p))
		}
	}
}

// TestPipelinedAcksZero mixes acks=0 requests into a pipeline: they are
// appended in order but answered with nothing, and the acknowledged request
// behind them is durable, and so are they, when its answer arrives.
func TestPipelinedAcksZero(t *testing.T) {
	e := newEnv(t)
	e.createTopic("mix", 1, map[string]string{"flush.policy": "sync"})
	part := partitionOf(t, e, "mix", 0)
	rc := e.raw()
	for range 3 {
		req := produceReq(9, "mix", 0, testBatch("z", 5, -1, -1, -1))
		req.Acks = 0
		rc.send(req)
	}
	corr := rc.send(produceReq(9, "mix", 0, testBatch("a", 5, -1, -1, -1)))
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	rc.recv(corr, resp) // fails on any other correlation id
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 15 {
		t.Fatalf("code %s base %d, want base 15", errorName(p.ErrorCode), p.BaseOffset)
	}
	if hw := part.HighWatermark(); hw != 20 {
		t.Fatalf("high watermark %d when the answer arrived, want 20", hw)
	}
}
