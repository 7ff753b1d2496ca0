package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/batch"
)

// ProduceConfig describes a produce workload. Both systems and both
// clients run the same one.
type ProduceConfig struct {
	Topic       string
	Records     int64 // at least this many records are written
	RecordSize  int   // bytes of value per record; records have no key
	BatchSize   int   // records per batch; a request carries one batch per partition of its connection
	Acks        int16 // -1 (all), 1 or 0
	Connections int   // producers, each with its own connection
	Inflight    int   // requests in flight per connection (raw client)
	Timeout     time.Duration
}

// Produce API versions the raw producer can speak: v3 introduced
// RecordBatch v2, v13 names topics by id instead of by name.
const (
	produceKey       = 0
	produceFloor     = 3
	produceCeiling   = 12
	produceTimeoutMs = 30000
)

// ProduceRaw writes the workload with pre-encoded produce requests; see the
// package documentation for why.
func (t Target) ProduceRaw(ctx context.Context, cfg ProduceConfig) (Result, error) {
	res := Result{System: "sluice", Client: "raw", LatencyOf: "request"}
	plans, err := t.planConns(ctx, cfg.Topic, cfg.Connections)
	if err != nil {
		return res, err
	}
	var before map[int32]int64
	if cfg.Acks == 0 {
		// Without acknowledgements the only evidence that records arrived
		// is the end offsets moving.
		if before, err = t.endOffsets(ctx, cfg.Topic); err != nil {
			return res, err
		}
	}
	value := Payload(cfg.RecordSize)
	var b batch.Builder
	b.Reset(time.Now().UnixMilli())
	for i := 0; i < cfg.BatchSize; i++ {
		b.Add(int32(i), time.Now().UnixMilli(), nil, value, nil)
	}
	records := append([]byte(nil), b.Finish()...)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	workers := make([]*rawProducer, len(plans))
	for i, plan := range plans {
		c, err := dialConn(ctx, plan.addr)
		if err != nil {
			closeProducers(workers)
			return res, err
		}
		v, err := c.version(produceKey, produceFloor, produceCeiling)
		if err != nil {
			c.close()
			closeProducers(workers)
			return res, err
		}
		req := kmsg.NewPtrProduceRequest()
		req.Version = v
		req.Acks = cfg.Acks
		req.TimeoutMillis = produceTimeoutMs
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = cfg.Topic
		for _, p := range plan.partitions {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = p
			rp.Records = records
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		workers[i] = &rawProducer{
			c:        c,
			version:  v,
			frame:    c.encode(req),
			perReq:   int64(cfg.BatchSize * len(plan.partitions)),
			acks:     cfg.Acks,
			inflight: max(1, cfg.Inflight),
		}
	}
	defer closeProducers(workers)

	var remaining atomic.Int64
	remaining.Store(cfg.Records)
	var wg sync.WaitGroup
	start := time.Now()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.run(ctx, &remaining); err != nil {
				cancel(err)
				closeProducers(workers) // unblocks the others' reads and writes
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return res, err
	}
	for _, w := range workers {
		res.Records += w.sent
		res.Latencies = append(res.Latencies, w.lat...)
	}
	if cfg.Acks == 0 {
		if err := t.waitForEnd(ctx, cfg.Topic, before, res.Records, cfg.Timeout); err != nil {
			return res, err
		}
	}
	res.Elapsed = time.Since(start)
	res.Bytes = res.Records * int64(cfg.RecordSize)
	return res, nil
}

func closeProducers(ws []*rawProducer) {
	for _, w := range ws {
		if w != nil {
			w.c.close()
		}
	}
}

// rawProducer sends one pre-encoded request over and over on one
// connection, keeping up to inflight requests unacknowledged.
type rawProducer struct {
	c        *conn
	version  int16
	frame    []byte
	perReq   int64 // records per request
	acks     int16
	inflight int

	sent int64 // records sent, and acknowledged unless acks is 0
	lat  []time.Duration
}

type sentRequest struct {
	corr int32
	at   time.Time
}

// claim takes a request's worth of records from the shared budget. The
// last request may overshoot; Result counts what was really sent.
func claim(remaining *atomic.Int64, n int64) bool {
	return remaining.Add(-n)+n > 0
}

func (w *rawProducer) run(ctx context.Context, remaining *atomic.Int64) error {
	if w.acks == 0 {
		for ctx.Err() == nil && claim(remaining, w.perReq) {
			if _, err := w.c.send(w.frame); err != nil {
				return err
			}
			w.sent += w.perReq
		}
		return nil
	}
	window := make(chan struct{}, w.inflight)
	pending := make(chan sentRequest, w.inflight)
	readErr := make(chan error, 1)
	go func() { readErr <- w.readAcks(pending, window) }()

	var err, rerr error
	readDone := false
send:
	for claim(remaining, w.perReq) {
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			break send
		case rerr = <-readErr:
			// An error response ends the reader; without it nothing
			// frees the window again.
			readDone = true
			break send
		}
		at := time.Now()
		corr, werr := w.c.send(w.frame)
		if werr != nil {
			err = werr
			break
		}
		pending <- sentRequest{corr, at}
	}
	close(pending)
	if !readDone {
		rerr = <-readErr
	}
	if rerr != nil {
		return rerr
	}
	return err
}

// readAcks reads one response per sent request, in order, and frees a
// slot in the window for each.
func (w *rawProducer) readAcks(pending <-chan sentRequest, window <-chan struct{}) error {
	resp := kmsg.NewPtrProduceResponse()
	for req := range pending {
		resp.Default()
		resp.Version = w.version
		resp.Topics = resp.Topics[:0]
		if err := w.c.readResponse(req.corr, resp); err != nil {
			return fmt.Errorf("produce response: %w", err)
		}
		w.lat = append(w.lat, time.Since(req.at))
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					msg := ""
					if p.ErrorMessage != nil {
						msg = ": " + *p.ErrorMessage
					}
					return fmt.Errorf("produce to %s partition %d: %w%s", t.Topic, p.Partition, err, msg)
				}
			}
		}
		w.sent += w.perReq
		<-window
	}
	return nil
}

// waitForEnd polls end offsets until n records past before are visible.
func (t Target) waitForEnd(ctx context.Context, topic string, before map[int32]int64, n int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		after, err := t.endOffsets(ctx, topic)
		if err != nil {
			return err
		}
		var got int64
		for p, o := range after {
			got += o - before[p]
		}
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("acks=0: only %d of %d records visible after %s", got, n, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// ProduceKgo writes the workload through franz-go, one client per
// connection, as an application would.
func (t Target) ProduceKgo(ctx context.Context, cfg ProduceConfig) (Result, error) {
	res := Result{System: "sluice", Client: "kgo", LatencyOf: fmt.Sprintf("record (1 in %d)", max(1, cfg.BatchSize))}
	opts := []kgo.Opt{
		kgo.SeedBrokers(t.Brokers...),
		kgo.ClientID("sluice-bench"),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ProducerBatchMaxBytes(int32(max(1<<20, 2*cfg.BatchSize*(cfg.RecordSize+16)))),
		// A deeper buffer adds no throughput, only queueing latency.
		kgo.MaxBufferedRecords(max(1<<13, 4*cfg.BatchSize*max(1, cfg.Inflight))),
		kgo.ProducerLinger(time.Millisecond),
		kgo.RecordDeliveryTimeout(cfg.Timeout),
	}
	switch cfg.Acks {
	case -1:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case 1:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case 0:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	}
	if cfg.Inflight > 0 && cfg.Acks != -1 {
		opts = append(opts, kgo.MaxProduceRequestsInflightPerBroker(cfg.Inflight))
	}
	n := max(1, cfg.Connections)
	clients := make([]*kgo.Client, n)
	for i := range clients {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return res, err
		}
		defer cl.Close()
		// Connect before the clock starts, as the raw client does.
		if err := cl.Ping(ctx); err != nil {
			return res, err
		}
		clients[i] = cl
	}
	var before map[int32]int64
	if cfg.Acks == 0 {
		var err error
		if before, err = t.endOffsets(ctx, cfg.Topic); err != nil {
			return res, err
		}
	}
	value := Payload(cfg.RecordSize)
	var (
		acked   atomic.Int64
		errOnce sync.Once
		failure error
		mu      sync.Mutex
	)
	fail := func(err error) { errOnce.Do(func() { failure = err }) }
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			fail(err)
			return
		}
		acked.Add(1)
	}
	sample := max(1, cfg.BatchSize)
	var wg sync.WaitGroup
	start := time.Now()
	for i, cl := range clients {
		share := cfg.Records / int64(n)
		if int64(i) < cfg.Records%int64(n) {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var latMu sync.Mutex
			for j := int64(0); j < share && ctx.Err() == nil; j++ {
				r := &kgo.Record{Value: value}
				if j%int64(sample) != 0 {
					cl.Produce(ctx, r, promise)
					continue
				}
				at := time.Now()
				cl.Produce(ctx, r, func(r *kgo.Record, err error) {
					latMu.Lock()
					lat = append(lat, time.Since(at))
					latMu.Unlock()
					promise(r, err)
				})
			}
			if err := cl.Flush(ctx); err != nil {
				fail(err)
			}
			latMu.Lock()
			mu.Lock()
			res.Latencies = append(res.Latencies, lat...)
			mu.Unlock()
			latMu.Unlock()
		}()
	}
	wg.Wait()
	if failure != nil {
		return res, failure
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.Records = acked.Load()
	if cfg.Acks == 0 {
		if err := t.waitForEnd(ctx, cfg.Topic, before, res.Records, cfg.Timeout); err != nil {
			return res, err
		}
	}
	res.Elapsed = time.Since(start)
	res.Bytes = res.Records * int64(cfg.RecordSize)
	return res, nil
}

// Payload returns a record value of n bytes. The bytes vary so that a
// compressing link or disk cannot make the benchmark look better than it
// is.
func Payload(n int) []byte {
	v := make([]byte, n)
	x := uint32(2463534242)
	for i := range v {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		v[i] = 'a' + byte(x%26)
	}
	return v
}
