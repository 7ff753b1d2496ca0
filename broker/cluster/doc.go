// Package cluster turns a set of sluice processes into one Kafka-compatible
// cluster: every node embeds a NATS server, the nodes agree on metadata
// through a replicated JetStream key-value bucket, see each other through
// heartbeats with a time-to-live, and elect one controller that assigns
// partition leaders.
//
// # Why NATS and not our own Raft
//
// JetStream already replicates a key-value store with compare-and-set
// (a key's revision), per-key expiry and ordered watches. That is all a
// KRaft-like control plane needs: topics, partition states and the producer
// id counter live in the bucket sluice_meta; liveness and the controller
// lease live in sluice_live, whose keys expire when a node stops
// heartbeating. Every decision is a CAS on the key's revision, so a deposed
// controller or a deposed partition leader cannot overwrite a newer state:
// its write fails and it learns it was deposed.
//
// # Pieces
//
//   - Node (natsnode.go) starts the embedded server, waits until JetStream
//     can serve requests and owns the other pieces.
//   - MetaStore (meta.go) is a typed cache of sluice_meta fed by one watch;
//     readers never go to the network, writers use CAS and can wait for
//     their own write to reach the cache (WaitRevision).
//   - liveness.go heartbeats node.<id> and tracks which nodes are live.
//   - controller.go holds the controller lease and runs the reconcile loop;
//     the decisions themselves are pure functions in decide.go.
//   - assign.go computes Kafka-style replica assignments.
//   - watch.go follows a bucket and reopens a watch that stalled because the
//     server hosting its consumer went away (nats.go alone takes 10 s).
//
// # Limits worth knowing
//
// A node started standalone (no ClusterListen) runs JetStream without a meta
// group and cannot later join a cluster with the same data directory.
// The Raft election timeouts of nats-server are compile-time constants
// (4–9 s), so when the node that leads the sluice_meta stream dies abruptly,
// metadata writes stall for that long; a graceful Close steps the leaders
// down first and does not stall. Liveness relies on key expiry alone
// (SessionTimeout, plus a local last-seen check); route loss (Routez) is
// not used to detect a dead peer sooner.
package cluster
