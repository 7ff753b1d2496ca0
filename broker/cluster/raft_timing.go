package cluster

import (
	"sync"
	"time"
	_ "unsafe" // for go:linkname
)

// nats-server's Raft timing is package state it does not let embedders
// set: elections start after 4–9 s without a leader's heartbeat (sent every
// second). Every JetStream stream is a Raft group, so when the node leading
// the sluice_meta or sluice_live stream dies abruptly, every metadata write
// and liveness update waits out that election, and a partition failover
// (which needs a metadata write for the new leader epoch) cannot finish
// before it: 5–10 s measured with `kill -9`, against Kafka's and the
// issue's ≤ 2 s.
//
// So sluice sets the timing itself before starting its server. The values
// keep nats-server's ratios (election timeout spread over 2×, minimum
// election timeout four heartbeats, lost-quorum detection 10 heartbeats)
// at about a seventh of the scale, which still leaves a loaded 2-core
// machine's GC and scheduling pauses (tens of milliseconds) well below the
// election timeout. At a quarter of the scale (1–2 s), a failover whose
// victim also led sluice_meta took 2.5–2.6 s against 1.2–1.7 s otherwise
// (`sluice bench failover --processes --session-timeout 1s`); at this
// scale the two are alike (1.0–1.3 s), because the stream's election ends
// about when the dead node's heartbeats have expired anyway.
//
// The names are nats-server internals: if a release renames them, the
// link fails loudly (an undefined symbol), and TestRaftTiming checks the
// values took effect.
//
//go:linkname natsMinElectionTimeout github.com/nats-io/nats-server/v2/server.minElectionTimeout
var natsMinElectionTimeout time.Duration

//go:linkname natsMaxElectionTimeout github.com/nats-io/nats-server/v2/server.maxElectionTimeout
var natsMaxElectionTimeout time.Duration

//go:linkname natsHeartbeatInterval github.com/nats-io/nats-server/v2/server.hbInterval
var natsHeartbeatInterval time.Duration

//go:linkname natsLostQuorumInterval github.com/nats-io/nats-server/v2/server.lostQuorumInterval
var natsLostQuorumInterval time.Duration

// Raft timing sluice runs its embedded NATS servers with.
const (
	raftMinElectionTimeout = 600 * time.Millisecond
	raftMaxElectionTimeout = 1200 * time.Millisecond
	raftHeartbeatInterval  = 150 * time.Millisecond
	raftLostQuorum         = 10 * raftHeartbeatInterval
)

var raftTimingOnce sync.Once

// setRaftTiming applies sluice's Raft timing, once per process, before the
// first node's server starts (Start calls it): the servers read these
// variables without synchronization, so they must not change later. Every
// node of a process shares them, as every server of a cluster should.
func setRaftTiming() {
	raftTimingOnce.Do(func() {
		natsMinElectionTimeout = raftMinElectionTimeout
		natsMaxElectionTimeout = raftMaxElectionTimeout
		natsHeartbeatInterval = raftHeartbeatInterval
		natsLostQuorumInterval = raftLostQuorum
	})
}
