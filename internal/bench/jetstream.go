package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream is an embedded NATS server with JetStream enabled, holding one
// stream that stands in for the benchmark topic.
type JetStream struct {
	srv *server.Server
}

const (
	jsStream  = "BENCH"
	jsSubject = "bench"
)

// StartJetStream starts NATS on a random loopback port with file storage
// in dir, at JetStream's default sync interval.
func StartJetStream(dir string) (*JetStream, error) {
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
		// The default 1 MiB payload limit is plenty; the default
		// max_pending of 64 MiB per connection is what an async publisher
		// with a large window needs.
	})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats server not ready after 10s")
	}
	return &JetStream{srv: srv}, nil
}

// Close shuts the server down and waits for it.
func (j *JetStream) Close() {
	j.srv.Shutdown()
	j.srv.WaitForShutdown()
}

func (j *JetStream) connect(opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(j.srv.ClientURL(), nats.Name("sluice-bench"))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// ResetStream deletes and recreates the benchmark stream, so that each run
// starts from an empty log as the sluice topic does.
func (j *JetStream) ResetStream(ctx context.Context) error {
	nc, js, err := j.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := js.DeleteStream(ctx, jsStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     jsStream,
		Subjects: []string{jsSubject + ".>"},
		Storage:  jetstream.FileStorage,
		Replicas: 1,
	})
	return err
}

// subjectsFor gives producer or consumer i of n its subjects, the way
// planConns gives a connection its partitions on a single node.
func subjectsFor(i, n int, partitions int32) []string {
	var out []string
	if n <= int(partitions) {
		for p := i; p < int(partitions); p += n {
			out = append(out, jsSubject+"."+strconv.Itoa(p))
		}
	} else {
		out = []string{jsSubject + "." + strconv.Itoa(i%int(partitions))}
	}
	return out
}

// Produce publishes the workload asynchronously from cfg.Connections
// connections, each with at most window unacknowledged messages.
// Acknowledgement latency is sampled once per cfg.BatchSize messages.
func (j *JetStream) Produce(ctx context.Context, cfg ProduceConfig, partitions int32, window int) (Result, error) {
	res := Result{System: "jetstream", Client: "async", LatencyOf: fmt.Sprintf("publish (1 in %d)", max(1, cfg.BatchSize))}
	var (
		errOnce sync.Once
		failure error
		failed  atomic.Bool // read on the publish path, where errOnce would serialise
	)
	fail := func(err error) { errOnce.Do(func() { failure = err; failed.Store(true) }) }
	n := max(1, cfg.Connections)
	type producer struct {
		nc       *nats.Conn
		js       jetstream.JetStream
		subjects []string
		share    int64
		lat      []time.Duration
	}
	producers := make([]*producer, n)
	for i := range producers {
		nc, js, err := j.connect(
			jetstream.WithPublishAsyncMaxPending(window),
			jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) { fail(err) }),
		)
		if err != nil {
			return res, err
		}
		defer nc.Close()
		share := cfg.Records / int64(n)
		if int64(i) < cfg.Records%int64(n) {
			share++
		}
		producers[i] = &producer{nc: nc, js: js, subjects: subjectsFor(i, n, partitions), share: share}
	}
	value := Payload(cfg.RecordSize)
	sample := int64(max(1, cfg.BatchSize))
	var published atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for _, p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			type sampled struct {
				at  time.Time
				ack jetstream.PubAckFuture
			}
			samples := make(chan sampled, 1024)
			drained := make(chan struct{})
			go func() {
				defer close(drained)
				for s := range samples {
					select {
					case <-s.ack.Ok():
						p.lat = append(p.lat, time.Since(s.at))
					case err := <-s.ack.Err():
						fail(err)
					}
				}
			}()
			for k := int64(0); k < p.share && ctx.Err() == nil && !failed.Load(); k++ {
				at := time.Now()
				// A full window waits for acknowledgements (up to the run's
				// timeout) instead of failing after nats.go's default 200ms.
				f, err := p.js.PublishAsync(p.subjects[k%int64(len(p.subjects))], value, jetstream.WithStallWait(cfg.Timeout))
				if err != nil {
					fail(err)
					break
				}
				published.Add(1)
				if k%sample == 0 {
					samples <- sampled{at, f}
				}
			}
			close(samples)
			select {
			case <-p.js.PublishAsyncComplete():
			case <-time.After(cfg.Timeout):
				fail(fmt.Errorf("jetstream: publishes not acknowledged within %s", cfg.Timeout))
			case <-ctx.Done():
			}
			<-drained
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if failure != nil {
		return res, fmt.Errorf("jetstream publish: %w", failure)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for _, p := range producers {
		res.Latencies = append(res.Latencies, p.lat...)
	}
	res.Records = published.Load()
	res.Bytes = res.Records * int64(cfg.RecordSize)
	return res, nil
}

// Consume reads the whole stream with cfg.Connections ordered consumers,
// each filtering the subjects that stand for its partitions and pulling
// batches of about cfg.FetchBytes.
func (j *JetStream) Consume(ctx context.Context, cfg ConsumeConfig, partitions int32, recordSize int) (Result, error) {
	res := Result{System: "jetstream", Client: "ordered", LatencyOf: "fetch"}
	nc, js, err := j.connect()
	if err != nil {
		return res, err
	}
	defer nc.Close()
	stream, err := js.Stream(ctx, jsStream)
	if err != nil {
		return res, err
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(jsSubject+".>"))
	if err != nil {
		return res, err
	}
	n := min(max(1, cfg.Connections), int(partitions))
	fetchN := max(1, int(cfg.FetchBytes)/(recordSize+1))
	type consumer struct {
		want           uint64
		cons           jetstream.Consumer
		records, bytes int64
		lat            []time.Duration
		err            error
	}
	consumers := make([]*consumer, n)
	for i := range consumers {
		subjects := subjectsFor(i, n, partitions)
		c := &consumer{}
		for _, s := range subjects {
			c.want += info.State.Subjects[s]
		}
		cnc, cjs, err := j.connect()
		if err != nil {
			return res, err
		}
		defer cnc.Close()
		c.cons, err = cjs.OrderedConsumer(ctx, jsStream, jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy})
		if err != nil {
			return res, err
		}
		consumers[i] = c
	}
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for uint64(c.records) < c.want && ctx.Err() == nil {
				at := time.Now()
				// Asking for more than is left would wait out FetchMaxWait.
				b, err := c.cons.Fetch(int(min(uint64(fetchN), c.want-uint64(c.records))), jetstream.FetchMaxWait(5*time.Second))
				if err != nil {
					c.err = err
					return
				}
				for m := range b.Messages() {
					c.records++
					c.bytes += int64(len(m.Data()))
				}
				c.lat = append(c.lat, time.Since(at))
				if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
					c.err = err
					return
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	for _, c := range consumers {
		if c.err != nil {
			return res, fmt.Errorf("jetstream consume: %w", c.err)
		}
		res.Records += c.records
		res.Bytes += c.bytes
		res.Latencies = append(res.Latencies, c.lat...)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}
