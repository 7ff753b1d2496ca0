package kafka

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/batch"
)

const (
	benchRecordSize = 100
	benchBatchLen   = 1000 // records per batch in the raw benchmark
)

// BenchmarkProduce measures produce throughput through the server over
// loopback, under each flush policy:
//
//   - raw/partitions=N: pre-encoded produce requests of 1000 records, split
//     into one batch per partition over N partitions, with 8 requests
//     pipelined on one connection, to measure the server (frame read,
//     decode, append, response) without client-side batching cost;
//   - kgo: a real franz-go producer (idempotent, default linger) producing
//     100-byte records asynchronously to 4 partitions.
//
// Run: go test -run XXX -bench BenchmarkProduce -benchtime 5s ./broker/kafka
func BenchmarkProduce(b *testing.B) {
	for _, flush := range []string{"sync", "os"} {
		for _, partitions := range []int{1, 4} {
			b.Run(fmt.Sprintf("raw/partitions=%d/flush=%s", partitions, flush), func(b *testing.B) { benchProduceRaw(b, flush, partitions) })
		}
		b.Run("kgo/flush="+flush, func(b *testing.B) { benchProduceKgo(b, flush) })
	}
}

func benchProduceRaw(b *testing.B, flush string, partitions int) {
	e := newEnv(b)
	e.createTopic("bench", int32(partitions), map[string]string{"flush.policy": flush})
	rc := e.raw()

	var bb batch.Builder
	ts := time.Now().UnixMilli()
	value := bytes.Repeat([]byte("x"), benchRecordSize)
	req := produceReq(9, "bench", 0, nil)
	req.Topics[0].Partitions = nil
	size := 0
	for p := range partitions {
		bb.Reset(ts)
		for i := range benchBatchLen / partitions {
			bb.Add(int32(i), ts, nil, value, nil)
		}
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = int32(p), bytes.Clone(bb.Finish())
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, rp)
		size += len(rp.Records)
	}
	var frames [][]byte
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("bench"))
	const depth = 8
	for i := range depth {
		frames = append(frames, f.AppendRequest(nil, req, int32(i)))
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9

	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	inflight := 0
	for i := 0; i < b.N; i++ {
		// Correlation ids cycle through the pre-encoded frames; responses
		// come back in order, so the id read is i-depth's.
		rc.write(frames[i%depth])
		inflight++
		if inflight == depth {
			rc.recvProduce(int32((i+1-depth)%depth), resp)
			inflight--
		}
	}
	for j := b.N - inflight; j < b.N; j++ {
		rc.recvProduce(int32(j%depth), resp)
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)*benchBatchLen/elapsed.Seconds(), "records/s")
}

func (r *rawConn) recvProduce(corr int32, resp *kmsg.ProduceResponse) {
	r.recv(corr, resp)
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			r.t.Fatalf("produce failed: %s", errorName(p.ErrorCode))
		}
	}
}

func benchProduceKgo(b *testing.B, flush string) { benchProduceKgoWith(b, flush, nil) }

// benchProduceKgoWith runs the kgo produce benchmark after setup has run
// on the environment (to start background load).
func benchProduceKgoWith(b *testing.B, flush string, setup func(*testEnv)) {
	e := newEnv(b)
	e.createTopic("bench", 4, map[string]string{"flush.policy": flush})
	if setup != nil {
		setup(e)
	}
	cl := e.client(kgo.DefaultProduceTopic("bench"), kgo.MaxBufferedRecords(1<<16))
	ctx := context.Background()
	value := bytes.Repeat([]byte("x"), benchRecordSize)
	// Warm up: metadata, producer id, connections.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	var failed atomic.Pointer[error]
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	}
	keys := make([][]byte, 64)
	for i := range keys {
		keys[i] = []byte(fmt.Sprint(i))
	}
	b.SetBytes(benchRecordSize)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		cl.Produce(ctx, &kgo.Record{Key: keys[i%len(keys)], Value: value}, done)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
}

// BenchmarkFetch measures consume throughput: a franz-go consumer reads
// b.N pre-produced 100-byte records from 4 partitions over loopback.
//
// Run: go test -run XXX -bench BenchmarkFetch -benchtime 2000000x ./broker/kafka
func BenchmarkFetch(b *testing.B) {
	e := newEnv(b)
	const partitions = 4
	e.createTopic("bench", partitions, map[string]string{"flush.policy": "os"})
	var bb batch.Builder
	value := bytes.Repeat([]byte("x"), benchRecordSize)
	produced := 0
	for p := 0; produced < b.N; p = (p + 1) % partitions {
		part, err := e.b.Partition("bench", int32(p))
		if err != nil {
			b.Fatal(err)
		}
		ts := time.Now().UnixMilli()
		bb.Reset(ts)
		n := min(benchBatchLen, b.N-produced)
		for i := range n {
			bb.Add(int32(i), ts, nil, value, nil)
		}
		if _, err := part.Append(bytes.Clone(bb.Finish()), 0); err != nil {
			b.Fatal(err)
		}
		produced += n
	}
	cl := e.client(kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := context.Background()
	b.SetBytes(benchRecordSize)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for got := 0; got < b.N; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		got += fs.NumRecords()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}
