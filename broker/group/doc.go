// Package group is sluice's Kafka consumer-group coordinator: it decides
// which members are in a group, runs the classic rebalance protocol
// (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and stores the offsets
// that groups commit, durably, in the log itself.
//
// # Layout
//
// state.go is a pure state machine (Machine), in the manner of etcd raft:
// it does no I/O and reads no clock. Every input carries the current time;
// requests that must wait (JoinGroup until the rebalance completes,
// SyncGroup until the leader assigns) carry a Token, and the machine
// returns Replies addressed to tokens whenever an answer becomes known.
// Tick(now) applies timeouts and NextDeadline says when to call it, so
// tests drive every timeout with a fake clock and no sleeps.
//
// coordinator.go is the thin shell (Coordinator): one mutex around the
// machine, never held while waiting; a channel per waiting request; one
// timer goroutine. A blocked JoinGroup holds nothing but its own
// connection.
//
// # Group states
//
// Empty → PreparingRebalance (a member joins) → CompletingRebalance (every
// member has rejoined, or the rebalance timeout kicked the rest; a new
// generation, a protocol every member supports, a leader) → Stable (the
// leader's SyncGroup delivered the assignment). A join with new
// subscription metadata, a leave or an expired session goes back to
// PreparingRebalance. The first rebalance of an empty group waits
// Config.InitialRebalanceDelay (Kafka's group.initial.rebalance.delay.ms),
// extended by each new member, so members that start together share one
// generation. Dead is reported for groups that do not exist.
//
// # Offsets
//
// Committed offsets live in the compacted internal topic __consumer_offsets
// (OffsetsTopic; one partition by default, groups hashed over partitions
// if there are more). The record format is in codec.go. At start the topic
// is replayed into memory; fetches are served from memory. A commit is one
// storage append that returns after fsync (the node's flush policy), so an
// acknowledged commit survives kill -9. Commits do not hold a lock while
// waiting for the disk, so concurrent commits share fsyncs.
//
// Group membership is not stored: after a restart, members find that their
// ids are unknown and rejoin, which costs one rebalance. Kafka stores it,
// but clients handle both the same way.
//
// # Atomic commits for tasks
//
// OffsetStore.Commit writes a Commit — a group's offsets and any number of
// Facts (small named values such as a state store's changelog end offset)
// — as ONE RecordBatch in one append. The batch is written and fsynced as
// a unit and replayed as a unit, so a stream-processing task that commits
// "input offsets of task k of job J" together with its changelog offsets
// never recovers one without the other. Facts are read back with
// OffsetStore.Fact; a nil value deletes one.
package group
