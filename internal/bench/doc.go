// Package bench measures a sluice node end to end over the Kafka protocol,
// and NATS JetStream doing the same work, for `sluice bench`.
//
// # Why a raw client
//
// A general-purpose client spends most of its time per record: it
// allocates a record, runs the partitioner, encodes the batch, tracks a
// promise. At a million records a second on two cores that bookkeeping, not
// the broker, is what gets measured. The raw producer therefore encodes
// each produce request once, as Kafka RecordBatch v2 built with
// broker/batch, and then only rewrites the correlation id and sends the same
// bytes again, over several connections with several requests in flight on
// each. Every request is still a complete, valid produce request that the
// broker decodes, validates (CRC-32C), assigns offsets to and writes,
// exactly as for any client: what is measured is what the broker can take.
// The raw consumer likewise fetches with hand-driven kmsg requests and
// checks every batch's CRC and decodes every record in place, without
// allocating per record.
//
// The franz-go ("kgo") mode runs the same workload through the client
// applications use and gives the honest client-level figure.
//
// # What the JetStream comparison is
//
// JetStream runs embedded, in the same process, on a random loopback port,
// with file storage in a temporary directory next to sluice's, one replica
// and its default sync interval (an fsync every two minutes, not per
// write; sluice's default acknowledges only fsynced data). Producers
// publish asynchronously with a bounded window of unacknowledged messages,
// which is how JetStream is driven for throughput; consumers are ordered
// consumers pulling the stream. Partition p of the sluice topic becomes
// subject bench.<p> of the stream, so both systems see the same records,
// sizes and parallelism.
//
// Against a replicated sluice cluster (`--cluster 3`: RF3,
// min.insync.replicas=2, acks=all) JetStream runs as a cluster of as many
// servers, routed to each other on loopback, with a stream of as many
// replicas (R3); producer i connects to server i mod n, as Kafka clients
// spread over the partition leaders, and the servers forward each publish
// to the stream leader. JetStream acknowledges a publish once a majority
// of the stream's replicas has it (2 of 3); sluice's acks=all waits for
// every replica in the ISR (all 3 while healthy), min.insync.replicas=2
// only being the fewest it accepts. JetStream's sync interval stays the
// default unless --jetstream-sync always asks for an fsync per write.
package bench
