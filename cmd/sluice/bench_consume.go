package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/internal/bench"
)

func newBenchConsumeCmd() *cobra.Command {
	o := &benchOptions{}
	var (
		consumers  int
		fetchBytes int32
	)
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Measure consume throughput and fetch latency",
		Long: `Write --records records to --topic (with the raw producer, untimed), then read
the whole topic from its log start and report records/s, MB/s and the
p50/p99 latency of each fetch (for --client kgo, of each poll).

--consumers connections each read their own share of the partitions, with
one fetch of up to --fetch-bytes per partition in flight. The raw consumer
checks every batch's CRC and decodes every record.`,
		Example: `  sluice bench consume --compare-jetstream`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return usageError{err}
			}
			if consumers <= 0 {
				return usageError{fmt.Errorf("--consumers %d: must be positive", consumers)}
			}
			if fetchBytes <= 0 {
				return usageError{fmt.Errorf("--fetch-bytes %d: must be positive", fetchBytes)}
			}
			ctx, cancel := o.context(cmd.Context())
			defer cancel()
			env, err := o.setup(ctx, cmd)
			if err != nil {
				return err
			}
			defer env.close()
			out := cmd.OutOrStdout()
			o.printHeader(out, "bench consume", env)
			fmt.Fprintf(out, "%d consumers, %d bytes per partition per fetch\n", consumers, fetchBytes)

			pcfg := o.produceConfig()
			if _, err := env.target.ProduceRaw(ctx, pcfg); err != nil {
				return fmt.Errorf("loading the topic: %w", err)
			}
			ccfg := bench.ConsumeConfig{Topic: o.topic, Connections: consumers, FetchBytes: fetchBytes, Timeout: o.timeout}
			run := env.target.ConsumeRaw
			if o.client == "kgo" {
				run = env.target.ConsumeKgo
			}
			res, err := run(ctx, ccfg)
			if err != nil {
				return fmt.Errorf("sluice consume: %w", err)
			}
			res.Replicas = int(o.replication)
			results := []bench.Result{res}
			if o.compareJS {
				// JetStream reads as many records as sluice did, which
				// includes any the topic held before this run.
				pcfg.Records = res.Records
				js, err := o.jetstreamConsume(ctx, env, pcfg, ccfg)
				if err != nil {
					return err
				}
				results = append(results, js)
			}
			fmt.Fprintln(out)
			bench.WriteTable(out, "consume", results)
			return nil
		},
	}
	o.addFlags(cmd.Flags())
	cmd.Flags().IntVar(&consumers, "consumers", 4, "concurrent consumer connections (at most one per partition)")
	cmd.Flags().Int32Var(&fetchBytes, "fetch-bytes", 1<<20, "bytes per partition per fetch (Kafka's max.partition.fetch.bytes)")
	return cmd
}

func (o *benchOptions) jetstreamConsume(ctx context.Context, env *benchEnv, pcfg bench.ProduceConfig, ccfg bench.ConsumeConfig) (bench.Result, error) {
	var res bench.Result
	err := o.withJetStream(ctx, env, func(js *bench.JetStream) (err error) {
		if _, err := js.Produce(ctx, pcfg, o.partitions, o.jsWindow); err != nil {
			return fmt.Errorf("loading jetstream: %w", err)
		}
		res, err = js.Consume(ctx, ccfg, o.partitions, o.recordSize)
		return err
	})
	return res, err
}
