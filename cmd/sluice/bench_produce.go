package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/internal/bench"
)

func newBenchProduceCmd() *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Measure produce throughput and acknowledgement latency",
		Long: `Write --records records of --record-size bytes to --topic and report records/s,
MB/s and the p50/p99 latency of each produce request's acknowledgement (for
--client kgo, of one record in every --batch-size; for JetStream, of one
publish in every --batch-size).

Each produce request carries one batch of --batch-size records for every
partition its connection writes; --producers connections each keep
--inflight requests unacknowledged.`,
		Example: `  sluice bench produce --compare-jetstream
  sluice bench produce --brokers 10.0.0.5:9092 --records 10000000 --client kgo`,
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
			results := []bench.Result{res}
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
	return cmd
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
// benchmark stream, and removes its data afterwards.
func (o *benchOptions) withJetStream(ctx context.Context, env *benchEnv, fn func(*bench.JetStream) error) error {
	dir, remove, err := o.jetstreamDir(env)
	if err != nil {
		return err
	}
	defer remove()
	js, err := bench.StartJetStream(dir)
	if err != nil {
		return err
	}
	defer js.Close()
	if err := js.ResetStream(ctx); err != nil {
		return fmt.Errorf("jetstream stream: %w", err)
	}
	return fn(js)
}
