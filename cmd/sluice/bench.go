package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/storage"
	"github.com/sluice-io/sluice/internal/bench"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure produce, consume and processing throughput, optionally against NATS JetStream",
		Long: `Measure a sluice node end to end over the Kafka protocol and print records/s,
MB/s (payload, 10^6 bytes) and p50/p99 latency.

Target: with --brokers (or SLUICE_BROKERS) the benchmark runs against that
node or cluster. Without either, or with --embedded, it starts a node in
this process with its data in a temporary directory under --data-dir, so it
is self-contained; --flush sets that node's flush policy (default sync:
every acknowledged write is fsynced). --cluster N starts a replicated
cluster of N nodes in this process instead (each with its embedded NATS,
on loopback ports), and the topic gets --replication-factor replicas
(default 3 with --cluster, else 1) and, when replicated,
min.insync.replicas=2.

Clients: --client raw (default) drives the Kafka protocol directly with
produce requests encoded once and sent repeatedly over --producers pipelined
connections, measuring what the broker can take; --client kgo uses the
franz-go client as an application would.

--compare-jetstream runs the same workload, in the same run, against an
embedded NATS JetStream (file storage, one replica, default sync interval,
asynchronous publish with a bounded window; ordered consumers to read) and
prints the sluice/JetStream throughput ratio. Partition p becomes subject
bench.<p>. With --cluster N, JetStream runs as N clustered servers with a
stream of N replicas, and the clients spread over the servers.
--jetstream-sync always makes JetStream fsync every write, as sluice's
default flush policy does.

'sluice bench pipeline' measures Wasm jobs instead: see its help.`,
	}
	addBrokersFlag(cmd)
	cmd.AddCommand(newBenchProduceCmd(), newBenchConsumeCmd(), newBenchFailoverCmd(), newBenchPipelineCmd(), newBenchSwapCmd(), newBenchJoinCmd())
	return cmd
}

// benchOptions are the settings both bench commands share.
type benchOptions struct {
	records    int64
	recordSize int
	partitions int32
	batchSize  int
	acks       string
	producers  int
	inflight   int
	topic      string
	keep       bool
	client     string
	compareJS  bool
	jsWindow   int
	embedded   bool
	dataDir    string
	flush      string
	timeout    time.Duration
	acksValue  int16
	flushMode  storage.FlushMode

	cluster        int   // in-process cluster nodes; 0: none
	replication    int16 // 0: 3 with --cluster, else 1
	sessionTimeout time.Duration
	jsSync         string
	jsSyncPolicy   bench.SyncPolicy
}

func (o *benchOptions) addFlags(f *pflag.FlagSet) {
	f.Int64Var(&o.records, "records", 2_000_000, "records to write")
	f.IntVar(&o.recordSize, "record-size", 100, "bytes of value per record")
	f.Int32Var(&o.partitions, "partitions", 4, "partitions of the benchmark topic (and subjects of the JetStream stream)")
	f.IntVar(&o.batchSize, "batch-size", 1000, "records per batch")
	f.StringVar(&o.acks, "acks", "all", "all, 1 or 0")
	f.IntVar(&o.producers, "producers", 4, "concurrent producer connections")
	f.IntVar(&o.inflight, "inflight", 4, "produce requests in flight per connection")
	f.StringVar(&o.topic, "topic", "sluice-bench", "benchmark topic; created if missing")
	f.BoolVar(&o.keep, "keep", false, "keep a topic the benchmark created instead of deleting it afterwards")
	f.StringVar(&o.client, "client", "raw", "raw (pre-encoded pipelined requests: the broker's capacity) or kgo (the franz-go client)")
	f.BoolVar(&o.compareJS, "compare-jetstream", false, "run the same workload against an embedded NATS JetStream and print the ratio")
	f.IntVar(&o.jsWindow, "jetstream-window", 1000, "JetStream: unacknowledged async publishes allowed per producer (1000 was fastest measured on 2 cores; nats.go defaults to 4000)")
	f.BoolVar(&o.embedded, "embedded", false, "start an in-process node for the benchmark (the default when no brokers are given)")
	f.StringVar(&o.dataDir, "data-dir", os.TempDir(), "parent directory of the temporary data directories of the embedded node and JetStream")
	f.StringVar(&o.flush, "flush", "sync", "embedded node's flush policy: sync, interval or os")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on a run after this long")
	o.addClusterFlags(f)
	f.Int16Var(&o.replication, "replication-factor", 0, "replicas of a topic the benchmark creates (default 3 with --cluster, else 1)")
	f.StringVar(&o.jsSync, "jetstream-sync", "default", "JetStream's fsync policy: default (every two minutes) or always (every write, like sluice's --flush sync)")
}

// addClusterFlags declares the flags of an in-process cluster.
func (o *benchOptions) addClusterFlags(f *pflag.FlagSet) {
	f.IntVar(&o.cluster, "cluster", 0, "start a replicated cluster of this many nodes in this process (3 or more) instead of one node")
	f.DurationVar(&o.sessionTimeout, "session-timeout", 3*time.Second, "--cluster: a node without a heartbeat for this long is dead (sluice serve's --session-timeout)")
}

// context bounds a run by --timeout and ends it on SIGINT or SIGTERM, so
// that an interrupted run still removes its temporary directories.
func (o *benchOptions) context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	return ctx, func() { cancel(); stop() }
}

func (o *benchOptions) validate() error {
	switch o.acks {
	case "all", "-1":
		o.acksValue = -1
	case "1":
		o.acksValue = 1
	case "0":
		o.acksValue = 0
	default:
		return fmt.Errorf("--acks %q: want all, 1 or 0", o.acks)
	}
	switch {
	case o.records <= 0:
		return fmt.Errorf("--records %d: must be positive", o.records)
	case o.recordSize < 0:
		return fmt.Errorf("--record-size %d: must not be negative", o.recordSize)
	case o.partitions <= 0 || o.partitions > broker.MaxPartitions:
		return fmt.Errorf("--partitions %d: must be in 1..%d", o.partitions, broker.MaxPartitions)
	case o.batchSize <= 0:
		return fmt.Errorf("--batch-size %d: must be positive", o.batchSize)
	case o.producers <= 0:
		return fmt.Errorf("--producers %d: must be positive", o.producers)
	case o.inflight <= 0:
		return fmt.Errorf("--inflight %d: must be positive", o.inflight)
	case o.jsWindow <= 0:
		return fmt.Errorf("--jetstream-window %d: must be positive", o.jsWindow)
	case o.client != "raw" && o.client != "kgo":
		return fmt.Errorf("--client %q: want raw or kgo", o.client)
	}
	if err := o.validateCluster(); err != nil {
		return err
	}
	switch {
	case o.replication < 0:
		return fmt.Errorf("--replication-factor %d: must be positive", o.replication)
	case o.cluster > 0 && int(o.replication) > o.cluster:
		return fmt.Errorf("--replication-factor %d: above the --cluster size %d", o.replication, o.cluster)
	case o.replication == 0 && o.cluster > 0:
		o.replication = 3
	case o.replication == 0:
		o.replication = 1
	}
	switch o.jsSync {
	case "default":
		o.jsSyncPolicy = bench.SyncDefault
	case "always":
		o.jsSyncPolicy = bench.SyncAlways
	default:
		return fmt.Errorf("--jetstream-sync %q: want default or always", o.jsSync)
	}
	return nil
}

// validateCluster checks the flags that start an in-process node or
// cluster.
func (o *benchOptions) validateCluster() error {
	m, err := broker.ParseFlushMode(o.flush)
	if err != nil {
		return fmt.Errorf("--flush: %w", err)
	}
	o.flushMode = m
	switch {
	case o.cluster < 0 || o.cluster > 0 && o.cluster < 3:
		// Two nodes have no quorum left after losing one, so the cluster
		// metadata could not survive a failure.
		return fmt.Errorf("--cluster %d: want 3 or more nodes", o.cluster)
	case o.cluster > 0 && o.embedded:
		return errors.New("--cluster and --embedded: choose one")
	case o.sessionTimeout < time.Second:
		return fmt.Errorf("--session-timeout %v: minimum is 1s", o.sessionTimeout)
	}
	return nil
}

// topicSpec is the benchmark topic's layout: replicated topics get
// min.insync.replicas=2, so acks=all means "on at least two nodes".
func (o *benchOptions) topicSpec() bench.TopicSpec {
	spec := bench.TopicSpec{Partitions: o.partitions, ReplicationFactor: o.replication}
	if o.replication > 1 {
		two := "2"
		spec.Configs = map[string]*string{"min.insync.replicas": &two}
	}
	return spec
}

func (o *benchOptions) produceConfig() bench.ProduceConfig {
	return bench.ProduceConfig{
		Topic:       o.topic,
		Records:     o.records,
		RecordSize:  o.recordSize,
		BatchSize:   o.batchSize,
		Acks:        o.acksValue,
		Connections: o.producers,
		Inflight:    o.inflight,
		Timeout:     o.timeout,
	}
}

// benchEnv is what a bench run talks to, and what it must clean up.
type benchEnv struct {
	target   bench.Target
	embedded *bench.Embedded
	cluster  *localCluster
	tmp      string
	created  bool
	describe string
	closers  []func()
}

// setup resolves the target, starting an embedded node or cluster if
// needed, and makes sure the topic exists.
func (o *benchOptions) setup(ctx context.Context, cmd *cobra.Command) (*benchEnv, error) {
	env := &benchEnv{}
	brokers, explicit := brokersOf(cmd)
	switch {
	case o.cluster > 0:
		if cmd.Flags().Changed("brokers") {
			return nil, errors.New("--cluster starts its own nodes: it cannot be combined with --brokers")
		}
		if err := o.startCluster(ctx, env); err != nil {
			env.close()
			return nil, err
		}
	case o.embedded || !explicit:
		tmp, err := o.tempDir(env)
		if err != nil {
			return nil, err
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		e, err := bench.StartEmbedded(tmp, o.flushMode, log)
		if err != nil {
			env.close()
			return nil, fmt.Errorf("embedded node: %w", err)
		}
		env.embedded = e
		env.closers = append(env.closers, func() {
			if err := e.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "sluice: closing embedded node: %v\n", err)
			}
		})
		env.target = bench.Target{Brokers: []string{e.Addr()}}
		env.describe = fmt.Sprintf("embedded node (flush=%s) in %s", o.flush, tmp)
	default:
		env.target = bench.Target{Brokers: brokers}
		env.describe = fmt.Sprintf("brokers %v", brokers)
	}
	if o.replication > 1 {
		env.describe += fmt.Sprintf(", replication factor %d, min.insync.replicas 2", o.replication)
	}
	created, err := env.target.EnsureTopic(ctx, o.topic, o.topicSpec())
	if err != nil {
		env.close()
		return nil, err
	}
	// An in-process node's data goes with its temporary directory, so only
	// a topic created on a remote node needs deleting.
	if created && !o.keep && env.tmp == "" {
		topic, target := o.topic, env.target
		env.closers = append(env.closers, func() {
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := target.DeleteTopic(dctx, topic); err != nil {
				fmt.Fprintf(os.Stderr, "sluice: deleting benchmark topic %s: %v\n", topic, err)
			}
		})
	}
	return env, nil
}

// tempDir makes the run's temporary directory under --data-dir, removed
// when env closes.
func (o *benchOptions) tempDir(env *benchEnv) (string, error) {
	tmp, err := os.MkdirTemp(o.dataDir, "sluice-bench-")
	if err != nil {
		return "", err
	}
	env.tmp = tmp
	env.closers = append(env.closers, func() { os.RemoveAll(tmp) })
	return tmp, nil
}

// startCluster starts --cluster nodes in this process, wired as `sluice
// serve --cluster-listen` wires one, and points the target at them.
func (o *benchOptions) startCluster(ctx context.Context, env *benchEnv) error {
	tmp, err := o.tempDir(env)
	if err != nil {
		return err
	}
	// Warnings are part of a failover (a killed node's peers complain
	// about it), so only errors are shown.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	lc, err := startLocalCluster(ctx, localClusterConfig{
		nodes: o.cluster, dir: tmp, flush: o.flushMode, sessionTimeout: o.sessionTimeout, log: log,
	})
	if err != nil {
		return fmt.Errorf("in-process cluster: %w", err)
	}
	env.cluster = lc
	env.closers = append(env.closers, lc.close)
	env.target = bench.Target{Brokers: lc.addrs()}
	env.describe = fmt.Sprintf("%d-node in-process cluster (flush=%s, session timeout %v) in %s", o.cluster, o.flush, o.sessionTimeout, tmp)
	return nil
}

func (e *benchEnv) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// jetstreamDir is where the comparison's JetStream keeps its files: next to
// the embedded node's, so both write to the same disk.
func (o *benchOptions) jetstreamDir(env *benchEnv) (string, func(), error) {
	parent := o.dataDir
	if env.tmp != "" {
		parent = env.tmp
	}
	dir, err := os.MkdirTemp(parent, "jetstream-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

func (o *benchOptions) printHeader(w io.Writer, what string, env *benchEnv) {
	fmt.Fprintf(w, "%s: %d records of %d bytes, %d partitions, %s, acks=%s, client=%s\n",
		what, o.records, o.recordSize, o.partitions, env.describe, o.acks, o.client)
}
