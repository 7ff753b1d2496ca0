package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/internal/bench"
)

func newBenchProduceCmd() *cobra.Command {
	o := &benchOptions{}
	var withGroup bool
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Measure produce throughput and acknowledgement latency",
		Long: `Write --records records of --record-size bytes to --topic and report records/s,
MB/s and the p50/p99 latency of each produce request's acknowledgement (for
--client kgo, of one record in every --batch-size; for JetStream, of one
publish in every --batch-size).

Each produce request carries one batch of --batch-size records for every
partition its connection writes; --producers connections each keep
--inflight requests unacknowledged.

--with-group-consumer runs the workload three times in the same run: alone;
with a franz-go consumer reading the topic as it is written, outside any
group; and with the same consumer as the only member of a consumer group
(sluice-bench-<pid>, deleted afterwards) that commits its offsets after
every poll. The second shows what reading costs the producers (on a machine
with few cores, mostly CPU); the third against the second shows what the
group and its offset commits add.`,
		Example: `  sluice bench produce --compare-jetstream
  sluice bench produce --brokers 10.0.0.5:9092 --records 10000000 --client kgo
  sluice bench produce --with-group-consumer`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return usageError{err}
			}
			ctx, cancel := o.context(cmd.Context())
			defer cancel()
			env, err := o.setup(ctx, cmd)
			if err != nil {
				return err
			}
			defer env.close()
			out := cmd.OutOrStdout()
			o.printHeader(out, "bench produce", env)
			fmt.Fprintf(out, "%d records/batch, %d producers x %d in flight\n", o.batchSize, o.producers, o.inflight)

			cfg := o.produceConfig()
			run := env.target.ProduceRaw
			if o.client == "kgo" {
				run = env.target.ProduceKgo
			}
			res, err := run(ctx, cfg)
			if err != nil {
				return fmt.Errorf("sluice produce: %w", err)
			}
			res.Replicas = int(o.replication)
			results := []bench.Result{res}
			if withGroup {
				for _, group := range []string{"", fmt.Sprintf("sluice-bench-%d", os.Getpid())} {
					r, err := produceWithConsumer(ctx, out, env, run, cfg, group)
					if err != nil {
						return err
					}
					r.Replicas = int(o.replication)
					results = append(results, r)
				}
			}
			if o.compareJS {
				js, err := o.jetstreamProduce(ctx, env, cfg)
				if err != nil {
					return err
				}
				results = append(results, js)
			}
			fmt.Fprintln(out)
			bench.WriteTable(out, "produce", results)
			return nil
		},
	}
	o.addFlags(cmd.Flags())
	cmd.Flags().BoolVar(&withGroup, "with-group-consumer", false, "also run beside a plain reader and beside a group member that reads and commits, and print all three")
	return cmd
}

// produceWithConsumer repeats the produce run while a consumer reads the
// topic: as a member of group committing after every poll, or, with no
// group, committing nothing.
func produceWithConsumer(ctx context.Context, w io.Writer, env *benchEnv, run func(context.Context, bench.ProduceConfig) (bench.Result, error), cfg bench.ProduceConfig, group string) (bench.Result, error) {
	g, err := env.target.StartGroupConsumer(ctx, cfg.Topic, group)
	if err != nil {
		return bench.Result{}, err
	}
	res, err := run(ctx, cfg)
	if err == nil {
		g.WaitConsumed(ctx, res.Records)
	}
	stats, gerr := g.Stop()
	if group != "" {
		// The group is the benchmark's own; leaving it would only
		// clutter 'sluice group list' on a remote node.
		if derr := env.target.DeleteGroup(ctx, group); derr != nil && gerr == nil {
			gerr = fmt.Errorf("deleting group %s: %w", group, derr)
		}
	}
	if err != nil {
		return res, fmt.Errorf("sluice produce with a consumer: %w", err)
	}
	if gerr != nil {
		return res, fmt.Errorf("consumer: %w", gerr)
	}
	if group == "" {
		res.Client += "+reader"
		fmt.Fprintf(w, "reader (no group): consumed %d records\n", stats.Records)
	} else {
		res.Client += "+group"
		fmt.Fprintf(w, "group member (%s): consumed %d records with %d offset commits\n", group, stats.Records, stats.Commits)
	}
	return res, nil
}

func (o *benchOptions) jetstreamProduce(ctx context.Context, env *benchEnv, cfg bench.ProduceConfig) (bench.Result, error) {
	var res bench.Result
	err := o.withJetStream(ctx, env, func(js *bench.JetStream) (err error) {
		res, err = js.Produce(ctx, cfg, o.partitions, o.jsWindow)
		return err
	})
	return res, err
}

// withJetStream runs fn against a fresh embedded JetStream with an empty
// benchmark stream, and removes its data afterwards. Against an in-process
// cluster of N nodes, JetStream is N clustered servers with a stream of N
// replicas.
func (o *benchOptions) withJetStream(ctx context.Context, env *benchEnv, fn func(*bench.JetStream) error) error {
	dir, remove, err := o.jetstreamDir(env)
	if err != nil {
		return err
	}
	defer remove()
	var js *bench.JetStream
	if o.cluster > 0 {
		js, err = bench.StartJetStreamCluster(ctx, dir, o.cluster, o.jsSyncPolicy)
	} else {
		js, err = bench.StartJetStream(dir, o.jsSyncPolicy)
	}
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	defer js.Close()
	if err := js.ResetStream(ctx); err != nil {
		return fmt.Errorf("jetstream stream: %w", err)
	}
	return fn(js)
}
