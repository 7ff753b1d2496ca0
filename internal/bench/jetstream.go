package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sluice-io/sluice/internal/jsretry"
	"github.com/sluice-io/sluice/internal/loopback"
)

// JetStream is one embedded NATS server with JetStream enabled, or a
// cluster of them, holding one stream that stands in for the benchmark
// topic, replicated on every server.
type JetStream struct {
	srvs []*server.Server
}

// SyncPolicy is when JetStream fsyncs its stream files.
type SyncPolicy int

const (
	// SyncDefault is JetStream's default: an fsync every two minutes.
	SyncDefault SyncPolicy = iota
	// SyncAlways fsyncs every write before acknowledging it, as sluice's
	// default flush policy does.
	SyncAlways
)

const (
	jsStream  = "BENCH"
	jsSubject = "bench"
)

// StartJetStream starts one NATS server on a random loopback port with
// file storage in dir; the stream has one replica.
func StartJetStream(dir string, policy SyncPolicy) (*JetStream, error) {
	srv, err := startJetStreamServer(jetStreamOptions(dir, policy))
	if err != nil {
		return nil, err
	}
	return &JetStream{srvs: []*server.Server{srv}}, nil
}

func jetStreamOptions(dir string, policy SyncPolicy) *server.Options {
	return &server.Options{
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: policy == SyncAlways,
		NoLog:      true,
		NoSigs:     true,
		// The default 1 MiB payload limit is plenty; the default
		// max_pending of 64 MiB per connection is what an async publisher
		// with a large window needs.
	}
}

func startJetStreamServer(opts *server.Options) (*server.Server, error) {
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats server not ready after 10s")
	}
	return srv, nil
}

// StartJetStreamCluster starts n clustered NATS servers (n >= 3 for a
// quorum that survives a loss; the stream gets n replicas) on loopback,
// each storing under dir/js-<i>, and returns once the JetStream meta group
// has a leader. A start that fails, typically because a reserved route
// port was taken meanwhile, is retried with new ports.
func StartJetStreamCluster(ctx context.Context, dir string, n int, policy SyncPolicy) (*JetStream, error) {
	if n < 2 {
		return nil, fmt.Errorf("jetstream cluster of %d servers: need at least 2", n)
	}
	return loopback.Start(ctx, dir, func(dir string) (*JetStream, error) {
		return startJetStreamCluster(ctx, dir, n, policy)
	})
}

func startJetStreamCluster(ctx context.Context, dir string, n int, policy SyncPolicy) (*JetStream, error) {
	ports, err := loopback.FreePorts(n)
	if err != nil {
		return nil, err
	}
	// Every server gets every route, its own included (dropped as a
	// duplicate): the meta group then expects all n from the start, and
	// its quorum is a majority of all of them.
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: "127.0.0.1:" + strconv.Itoa(p)})
	}
	js := &JetStream{srvs: make([]*server.Server, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		opts := jetStreamOptions(filepath.Join(dir, "js-"+strconv.Itoa(i)), policy)
		// Clustered JetStream requires a server name and a cluster name.
		opts.ServerName = "bench-js-" + strconv.Itoa(i)
		opts.Cluster = server.ClusterOpts{Name: "bench-js", Host: "127.0.0.1", Port: ports[i]}
		opts.Routes = routes
		wg.Go(func() { js.srvs[i], errs[i] = startJetStreamServer(opts) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		js.Close()
		return nil, err
	}
	// ReadyForConnections covers the listeners, not the meta group: until
	// it has a leader the JetStream API answers 503 or not at all.
	if err := pollFor(ctx, 30*time.Second, func() bool {
		for _, srv := range js.srvs {
			info, err := srv.Jsz(nil)
			if err != nil || info.Meta == nil || info.Meta.Leader == "" || !srv.JetStreamIsCurrent() {
				return false
			}
		}
		return true
	}); err != nil {
		js.Close()
		return nil, fmt.Errorf("jetstream meta leader: %w", err)
	}
	return js, nil
}

// Replicas is the benchmark stream's replication factor: one per server.
func (j *JetStream) Replicas() int { return len(j.srvs) }

// Close shuts the servers down and waits for them.
func (j *JetStream) Close() {
	for _, srv := range j.srvs {
		if srv != nil {
			srv.Shutdown()
		}
	}
	for _, srv := range j.srvs {
		if srv != nil {
			srv.WaitForShutdown()
		}
	}
}

// connect connects to server i (mod the server count), so that clients
// spread over a cluster's servers as Kafka clients spread over partition
// leaders; the servers route publishes to the stream leader.
func (j *JetStream) connect(i int, opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(j.srvs[i%len(j.srvs)].ClientURL(), nats.Name("sluice-bench"))
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
// starts from an empty log as the sluice topic does. On a cluster it waits
// until the stream has a leader and every replica is current, and retries
// the API calls that fail while the cluster elects leaders.
func (j *JetStream) ResetStream(ctx context.Context) error {
	nc, js, err := j.connect(0)
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg := jetstream.StreamConfig{
		Name:     jsStream,
		Subjects: []string{jsSubject + ".>"},
		Storage:  jetstream.FileStorage,
		Replicas: j.Replicas(),
	}
	var stream jetstream.Stream
	err = jsretry.Do(ctx, func(ctx context.Context) error {
		if err := js.DeleteStream(ctx, jsStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		stream, err = js.CreateStream(ctx, cfg)
		return err
	})
	if err != nil || j.Replicas() == 1 {
		return err
	}
	var last error
	err = pollFor(ctx, 30*time.Second, func() bool {
		info, err := stream.Info(ctx)
		if last = err; err != nil {
			return false
		}
		if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != j.Replicas()-1 {
			last = fmt.Errorf("stream cluster %+v", info.Cluster)
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				last = fmt.Errorf("replica %s not current", r.Name)
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("stream %s not replicated: %w (last: %v)", jsStream, err, last)
	}
	return nil
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
	res := Result{System: "jetstream", Replicas: j.Replicas(), Client: "async", LatencyOf: fmt.Sprintf("publish (1 in %d)", max(1, cfg.BatchSize))}
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
		nc, js, err := j.connect(i,
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
	res := Result{System: "jetstream", Replicas: j.Replicas(), Client: "ordered", LatencyOf: "fetch"}
	nc, js, err := j.connect(0)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	// A cluster's servers answer API requests only once they know the
	// stream's leader, which can lag its creation on the other servers.
	var info *jetstream.StreamInfo
	if err := jsretry.Do(ctx, func(ctx context.Context) error {
		stream, err := js.Stream(ctx, jsStream)
		if err == nil {
			info, err = stream.Info(ctx, jetstream.WithSubjectFilter(jsSubject+".>"))
		}
		return err
	}); err != nil {
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
		cnc, cjs, err := j.connect(i)
		if err != nil {
			return res, err
		}
		defer cnc.Close()
		if err := jsretry.Do(ctx, func(ctx context.Context) (err error) {
			c.cons, err = cjs.OrderedConsumer(ctx, jsStream, jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy})
			return err
		}); err != nil {
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
			// On a cluster a new consumer's leader can take a moment to be
			// reachable from every server: its pulls meet no responders.
			unreachableSince := time.Time{}
			for uint64(c.records) < c.want && ctx.Err() == nil {
				at := time.Now()
				// Asking for more than is left would wait out FetchMaxWait.
				b, err := c.cons.Fetch(int(min(uint64(fetchN), c.want-uint64(c.records))), jetstream.FetchMaxWait(5*time.Second))
				if err == nil {
					for m := range b.Messages() {
						c.records++
						c.bytes += int64(len(m.Data()))
					}
					err = b.Error()
					c.lat = append(c.lat, time.Since(at))
				}
				switch {
				case err == nil || errors.Is(err, nats.ErrTimeout):
					unreachableSince = time.Time{}
				case errors.Is(err, nats.ErrNoResponders) && (unreachableSince.IsZero() || time.Since(unreachableSince) < 10*time.Second):
					if unreachableSince.IsZero() {
						unreachableSince = time.Now()
					}
					time.Sleep(20 * time.Millisecond)
				default:
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

// pollFor is jsretry.PollUntil bounded by timeout.
func pollFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := jsretry.PollUntil(ctx, cond); err != nil {
		return fmt.Errorf("condition not met: %w", err)
	}
	return nil
}
