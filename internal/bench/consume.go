package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/batch"
)

// ConsumeConfig describes a consume workload: read the topic from its log
// start to the end offsets it has when the run starts.
type ConsumeConfig struct {
	Topic       string
	Connections int   // consumers, each with its own connection and its own partitions
	FetchBytes  int32 // per partition per fetch (Kafka's max.partition.fetch.bytes)
	Timeout     time.Duration
}

// Fetch API versions the raw consumer can speak: v4 introduced
// RecordBatch v2, v13 names topics by id instead of by name.
const (
	fetchKey     = 1
	fetchFloor   = 4
	fetchCeiling = 12
	fetchMaxWait = 500
)

// span is the part of a partition a consumer reads.
type span struct{ from, to int64 }

func (t Target) spans(ctx context.Context, topic string) (map[int32]span, error) {
	starts, err := t.offsets(ctx, topic, true)
	if err != nil {
		return nil, err
	}
	ends, err := t.endOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]span, len(ends))
	for p, e := range ends {
		out[p] = span{starts[p], e}
	}
	return out, nil
}

// consumePlans is planConns without shared partitions: two consumers of one
// partition would read its records twice.
func (t Target) consumePlans(ctx context.Context, topic string, n int) ([]connPlan, error) {
	plans, err := t.planConns(ctx, topic, n)
	if err != nil {
		return nil, err
	}
	seen := make(map[int32]bool)
	out := plans[:0]
	for _, p := range plans {
		if len(p.partitions) == 1 && seen[p.partitions[0]] {
			continue
		}
		for _, part := range p.partitions {
			seen[part] = true
		}
		out = append(out, p)
	}
	return out, nil
}

// ConsumeRaw reads the topic with hand-driven fetch requests, one in flight
// per connection, checking every batch's CRC and decoding every record.
func (t Target) ConsumeRaw(ctx context.Context, cfg ConsumeConfig) (Result, error) {
	res := Result{System: "sluice", Client: "raw", LatencyOf: "fetch"}
	spans, err := t.spans(ctx, cfg.Topic)
	if err != nil {
		return res, err
	}
	plans, err := t.consumePlans(ctx, cfg.Topic, cfg.Connections)
	if err != nil {
		return res, err
	}
	workers := make([]*rawConsumer, len(plans))
	for i, plan := range plans {
		c, err := dialConn(ctx, plan.addr)
		if err != nil {
			closeConsumers(workers)
			return res, err
		}
		v, err := c.version(fetchKey, fetchFloor, fetchCeiling)
		if err != nil {
			c.close()
			closeConsumers(workers)
			return res, err
		}
		w := &rawConsumer{c: c, version: v, topic: cfg.Topic, fetchBytes: cfg.FetchBytes, next: map[int32]int64{}, end: map[int32]int64{}}
		for _, p := range plan.partitions {
			w.next[p], w.end[p] = spans[p].from, spans[p].to
		}
		workers[i] = w
	}
	defer closeConsumers(workers)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	start := time.Now()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.run(ctx); err != nil {
				cancel(err)
				closeConsumers(workers)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return res, err
	}
	for _, w := range workers {
		res.Records += w.records
		res.Bytes += w.bytes
		res.Latencies = append(res.Latencies, w.lat...)
	}
	return res, nil
}

func closeConsumers(ws []*rawConsumer) {
	for _, w := range ws {
		if w != nil {
			w.c.close()
		}
	}
}

type rawConsumer struct {
	c          *conn
	version    int16
	topic      string
	fetchBytes int32
	next, end  map[int32]int64 // next offset to read and where to stop, by partition

	records, bytes int64
	lat            []time.Duration
}

func (w *rawConsumer) run(ctx context.Context) error {
	req := kmsg.NewPtrFetchRequest()
	req.Version = w.version
	req.ReplicaID = -1
	req.MaxWaitMillis = fetchMaxWait
	req.MinBytes = 1
	req.MaxBytes = 64 << 20
	req.SessionEpoch = -1 // no fetch session: every request names every partition
	resp := kmsg.NewPtrFetchResponse()
	for ctx.Err() == nil {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = w.topic
		for p, next := range w.next {
			if next >= w.end[p] {
				continue
			}
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition = p
			rp.FetchOffset = next
			rp.PartitionMaxBytes = w.fetchBytes
			rt.Partitions = append(rt.Partitions, rp)
		}
		if len(rt.Partitions) == 0 {
			return nil
		}
		req.Topics = append(req.Topics[:0], rt)
		resp.Default()
		at := time.Now()
		if err := w.c.roundTrip(req, resp); err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		w.lat = append(w.lat, time.Since(at))
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return fmt.Errorf("fetch %s partition %d: %w", t.Topic, p.Partition, err)
				}
				if err := w.consume(p.Partition, p.RecordBatches); err != nil {
					return fmt.Errorf("fetch %s partition %d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	}
	return ctx.Err()
}

// consume checks and decodes the batches of one partition's fetch
// response, counting the records in the wanted range.
func (w *rawConsumer) consume(p int32, buf []byte) error {
	next, end := w.next[p], w.end[p]
	count := func(r *batch.Record) bool {
		if r.Offset >= next && r.Offset < end {
			w.records++
			w.bytes += int64(len(r.Value))
		}
		return true
	}
	for len(buf) > 0 {
		b, h, rest, err := batch.Next(buf)
		if errors.Is(err, batch.ErrTooShort) {
			break // a partial batch at the end of a size-limited fetch
		}
		if err != nil {
			return err
		}
		buf = rest
		if h.NextOffset() <= next {
			continue
		}
		if err := batch.Records(b, count); err != nil {
			return err
		}
		next = h.NextOffset()
	}
	w.next[p] = next
	return nil
}

// ConsumeKgo reads the topic through franz-go, one client per connection.
func (t Target) ConsumeKgo(ctx context.Context, cfg ConsumeConfig) (Result, error) {
	res := Result{System: "sluice", Client: "kgo", LatencyOf: "poll"}
	spans, err := t.spans(ctx, cfg.Topic)
	if err != nil {
		return res, err
	}
	plans, err := t.consumePlans(ctx, cfg.Topic, cfg.Connections)
	if err != nil {
		return res, err
	}
	type worker struct {
		cl             *kgo.Client
		end            map[int32]int64
		records, bytes int64
		lat            []time.Duration
		err            error
	}
	workers := make([]*worker, len(plans))
	for i, plan := range plans {
		offsets := make(map[int32]kgo.Offset)
		w := &worker{end: make(map[int32]int64)}
		for _, p := range plan.partitions {
			if spans[p].from < spans[p].to {
				offsets[p] = kgo.NewOffset().At(spans[p].from)
				w.end[p] = spans[p].to
			}
		}
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(t.Brokers...),
			kgo.ClientID("sluice-bench"),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: offsets}),
			kgo.FetchMaxPartitionBytes(cfg.FetchBytes),
			kgo.FetchMaxBytes(64<<20),
		)
		if err != nil {
			return res, err
		}
		defer cl.Close()
		w.cl = cl
		workers[i] = w
	}
	var wg sync.WaitGroup
	start := time.Now()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for len(w.end) > 0 {
				at := time.Now()
				fs := w.cl.PollFetches(ctx)
				w.lat = append(w.lat, time.Since(at))
				if err := ctx.Err(); err != nil {
					w.err = err
					return
				}
				if err := fs.Err(); err != nil {
					w.err = err
					return
				}
				fs.EachRecord(func(r *kgo.Record) {
					end, ok := w.end[r.Partition]
					if !ok || r.Offset >= end {
						return
					}
					w.records++
					w.bytes += int64(len(r.Value))
					if r.Offset == end-1 {
						delete(w.end, r.Partition)
					}
				})
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	for _, w := range workers {
		if w.err != nil {
			return res, w.err
		}
		res.Records += w.records
		res.Bytes += w.bytes
		res.Latencies = append(res.Latencies, w.lat...)
	}
	return res, nil
}
