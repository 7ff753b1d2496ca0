package cluster

import "testing"

// TestRaftTiming checks that sluice's Raft timing reached nats-server
// (see raft_timing.go): a renamed or retyped variable would leave the
// 4–9 s elections in place.
func TestRaftTiming(t *testing.T) {
	setRaftTiming()
	if natsMinElectionTimeout != raftMinElectionTimeout || natsMaxElectionTimeout != raftMaxElectionTimeout ||
		natsHeartbeatInterval != raftHeartbeatInterval || natsLostQuorumInterval != raftLostQuorum {
		t.Fatalf("nats-server raft timing: election %v..%v, heartbeat %v, lost quorum %v",
			natsMinElectionTimeout, natsMaxElectionTimeout, natsHeartbeatInterval, natsLostQuorumInterval)
	}
}
