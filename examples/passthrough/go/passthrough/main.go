// Command passthrough is the operator of the pass-through benchmark job: it
// writes every input record to output 0 unchanged, with its key, value,
// headers and timestamp, partitioned by key (so with as many output as
// input partitions and keyed records, a record lands in the partition
// Kafka's default partitioner would pick). It does no work of its own, so
// the job measures the host: reading, the boundary crossing, appending.
//
// Build with `sluice build examples/passthrough/go/passthrough`.
package main

import sluice "github.com/sluice-io/sluice/sdk/go"

func init() { sluice.Handle(passThrough) }

func passThrough(r *sluice.Record, out *sluice.Emitter) error {
	out.Forward(r)
	return nil
}

func main() {}
