// Package replication makes a node's partitions replicas of a cluster-wide
// log, as Kafka's replica manager does: for every partition the cluster
// metadata (broker/cluster) assigns to this node, the local partition is
// either the leader, which serves producers and consumers, or a follower,
// which copies the leader's log.
//
// # Protocol
//
// A follower fetches from its leader over NATS request/reply on the subject
// sluice.<cluster>.repl.fetch.<leader id>, with a Kafka FetchRequest (v15,
// ReplicaState naming the follower) as the body and a FetchResponse as the
// answer: the Kafka encoding is already in the binary (franz-go's kmsg),
// and Kafka's fields say everything replication needs. One fetcher per
// leader node carries all the partitions this node follows on that leader,
// so the message count does not grow with the partition count.
//
// A fetch's FetchOffset is the follower's log end, and the follower only
// fetches again once what it got is durable, so the offset a follower
// reports is one it cannot lose. The leader keeps each follower's offset;
// the high watermark is the smallest of them over the in-sync replicas (the
// ISR) and the leader's own durable end. Consumers read below it only
// (storage's ExternalHW mode), and an acks=all produce is answered once it
// passes the records.
//
// # In-sync replicas
//
// A follower stays in the ISR while it keeps catching up: it has fetched
// up to the leader's log end within replica.lag.time.max (ReplicaLagMax).
// The leader drops a follower that has not, and adds one back once it has
// reached the high watermark, both by a compare-and-set on the partition's
// metadata that names the leader's epoch, so a deposed leader cannot change
// the ISR. The controller removes dead nodes from the ISR and elects a new
// leader from it with the epoch bumped.
//
// # Divergence
//
// After a failover the old leader may hold records the new one never had
// (written with acks=0/1, never acknowledged to an acks=all producer).
// Every fetch names the epoch of the follower's last record
// (LastFetchedEpoch); the leader answers with a DivergingEpoch when its own
// log ends that epoch earlier, and the follower truncates to that offset
// before fetching on (KIP-101 as refined by KIP-595). Epochs come from the
// storage's leader-epoch cache.
package replication
