package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/internal/wasmasm"
)

type swapOptions struct {
	pipelineOptions
	swaps    int
	interval time.Duration
	baseline time.Duration
}

func newBenchSwapCmd() *cobra.Command {
	o := &swapOptions{}
	cmd := &cobra.Command{
		Use:   "swap",
		Short: "Measure the pause of each task while a running job changes versions in place",
		Long: `Start an embedded node, deploy the pass-through job (examples/passthrough)
on --partitions partitions, keep writing records into its input, and deploy a
new version of it --swaps times. Each new version is a different module (the
operator with a custom section naming the version), so every swap compiles it
from scratch, as a real new build would, while the tasks keep processing.

Prints the distribution of the pause per task (from the old instance's last
batch to the new instance being ready, as the tasks measure it) and the
job's throughput during a baseline without swaps and during the swaps.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.swaps <= 0 {
				return fmt.Errorf("--swaps %d: must be positive", o.swaps)
			}
			if o.partitions <= 0 || o.partitions > broker.MaxPartitions {
				return fmt.Errorf("--partitions %d: must be in 1..%d", o.partitions, broker.MaxPartitions)
			}
			m, err := broker.ParseFlushMode(o.flush)
			if err != nil {
				return fmt.Errorf("--flush: %w", err)
			}
			o.flushMode = m
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			return runSwapBench(ctx, cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.swaps, "swaps", 10, "new versions to deploy")
	f.DurationVar(&o.interval, "interval", 500*time.Millisecond, "time between the end of one swap and the start of the next")
	f.DurationVar(&o.baseline, "baseline", 3*time.Second, "how long to measure throughput before the first swap")
	f.Int32Var(&o.partitions, "partitions", 4, "partitions of the input topic (so tasks)")
	f.StringVar(&o.flush, "flush", "sync", "the node's flush policy: sync, interval or os")
	f.StringVar(&o.dataDir, "data-dir", os.TempDir(), "parent directory of the node's temporary data directory")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	return cmd
}

// withVersionSection returns module with a custom section that names the
// version appended: a valid module with a different sha256, so the
// runtime compiles it anew.
func withVersionSection(module []byte, version int) []byte {
	return wasmasm.WithCustomSection(module, "sluice-bench-version", fmt.Appendf(nil, "%d", version))
}

func runSwapBench(ctx context.Context, w io.Writer, o *swapOptions) error {
	dir, err := findExample("passthrough")
	if err != nil {
		return err
	}
	n, done, err := o.benchNode(ctx)
	if err != nil {
		return err
	}
	defer done()
	tmp, err := os.MkdirTemp("", "sluice-bench-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	job, err := loadExampleJob(ctx, w, dir, "passthrough.yaml", tmp)
	if err != nil {
		return err
	}
	spec := job.spec
	if err := n.createTopic(spec.Inputs[0], o.partitions); err != nil {
		return err
	}
	if _, err := n.jobs.DeployBy(ctx, spec, job.module.Bytes, "bench"); err != nil {
		return fmt.Errorf("deploy %s: %w", spec.Name, err)
	}

	// A writer keeps the input busy; the job's own figures say how fast it
	// processes.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr atomic.Value
	value := make([]byte, 100)
	wg.Add(1)
	go func() {
		defer wg.Done()
		per := make([]int64, o.partitions)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for p := range per {
				per[p] = 2000
			}
			if err := n.appendRecords(spec.Inputs[0], per, 500, func(int32, int64) ([]byte, []byte) { return nil, value }); err != nil {
				writeErr.Store(err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()

	processed := func() uint64 {
		st, err := n.jobs.Status(spec.Name)
		if err != nil {
			return 0
		}
		return totals(st).in
	}
	rate := func(d time.Duration) float64 {
		start, t0 := processed(), time.Now()
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		return float64(processed()-start) / time.Since(t0).Seconds()
	}
	time.Sleep(500 * time.Millisecond) // tasks started, instances warm
	baseline := rate(o.baseline)
	fmt.Fprintf(w, "baseline: %s records/s through %d tasks\n", commas(baseline), o.partitions)

	var pauses []time.Duration
	var compileAndSwap []time.Duration
	swapStart, swapIn := time.Now(), processed()
	for i := 1; i <= o.swaps; i++ {
		module := withVersionSection(job.module.Bytes, i)
		t0 := time.Now()
		st, err := n.jobs.DeployBy(ctx, spec, module, "bench")
		if err != nil {
			return fmt.Errorf("swap %d: %w", i, err)
		}
		compileAndSwap = append(compileAndSwap, time.Since(t0))
		for _, ts := range st.Tasks {
			if ts.Restarts != 0 {
				return fmt.Errorf("swap %d: task %d restarted: %s", i, ts.Partition, ts.LastError)
			}
			pauses = append(pauses, ts.LastSwapPause)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.interval):
		}
	}
	during := float64(processed()-swapIn) / time.Since(swapStart).Seconds()
	if err, _ := writeErr.Load().(error); err != nil {
		return fmt.Errorf("writing input: %w", err)
	}

	slices.Sort(pauses)
	q := func(p float64) time.Duration { return pauses[min(len(pauses)-1, int(p*float64(len(pauses))))] }
	fmt.Fprintf(w, "\n%d swaps x %d tasks: pause per task (old instance's last batch -> new instance ready)\n", o.swaps, o.partitions)
	fmt.Fprintf(w, "  min %s  p50 %s  p90 %s  p99 %s  max %s\n",
		roundMs(pauses[0]), roundMs(q(0.50)), roundMs(q(0.90)), roundMs(q(0.99)), roundMs(pauses[len(pauses)-1]))
	slices.Sort(compileAndSwap)
	fmt.Fprintf(w, "deploy of a new version (compile, validate, init, swap every task): p50 %s, max %s\n",
		roundMs(compileAndSwap[len(compileAndSwap)/2]), roundMs(compileAndSwap[len(compileAndSwap)-1]))
	fmt.Fprintf(w, "throughput: %s records/s during the swaps, %s records/s before (%.0f%%)\n",
		commas(during), commas(baseline), 100*during/baseline)
	return nil
}

func roundMs(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
