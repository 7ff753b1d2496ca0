package replication

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/broker"
)

func ptr(s string) *string { return &s }

// TestReplicatedLogs: records produced with acks=all to a replication
// factor 3 topic end up byte for byte identical on all three nodes, can be
// read back from any seed, and every node's metadata agrees on leaders.
func TestReplicatedLogs(t *testing.T) {
	nodes := startCluster(t, 3)
	cl := client(t, nodes, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, cl, "orders", 3, 3, map[string]*string{"min.insync.replicas": ptr("2")})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for p := range int32(3) {
		for i, err := range produceValues(ctx, cl, "orders", p, values("v", 300)) {
			if err != nil {
				t.Fatalf("partition %d value %d: %v", p, i, err)
			}
		}
	}

	leaders := map[int32]int{}
	for p := range int32(3) {
		ps := partitionState(t, nodes[0], "orders", p)
		leaders[ps.Leader]++
		if len(ps.ISR) != 3 {
			t.Errorf("partition %d: ISR %v, want all three replicas", p, ps.ISR)
		}
		for _, n := range nodes[1:] {
			other := partitionState(t, n, "orders", p)
			if other.Leader != ps.Leader || other.LeaderEpoch != ps.LeaderEpoch {
				t.Errorf("partition %d: node %d sees leader %d epoch %d, node %d sees %d epoch %d",
					p, nodes[0].id, ps.Leader, ps.LeaderEpoch, n.id, other.Leader, other.LeaderEpoch)
			}
		}
		data := waitIdentical(t, nodes, "orders", p)
		if len(data) == 0 {
			t.Fatalf("partition %d: empty log", p)
		}
		got := consumeAll(t, nodes, "orders", p)
		if !slices.Equal(got, values("v", 300)) {
			t.Fatalf("partition %d: consumed %d values, first %q; want v-0..v-299 in order", p, len(got), got[:min(3, len(got))])
		}
	}
	if len(leaders) != 3 {
		t.Errorf("leaders %v: want the three partitions led by three different nodes", leaders)
	}

	// Followers answer produce with NOT_LEADER_OR_FOLLOWER.
	ps := partitionState(t, nodes[0], "orders", 0)
	follower := nodeByID(nodes, without(ps.Replicas, ps.Leader)[0])
	if _, _, err := follower.repl.Leader("orders", 0); !errors.Is(err, broker.ErrNotLeader) {
		t.Errorf("Leader() on follower %d: %v, want broker.ErrNotLeader", follower.id, err)
	}
}

// TestMinInsyncReplicas: with both followers stopped, the leader drops them
// from the ISR after the lag time, and acks=all produces are refused with
// NOT_ENOUGH_REPLICAS while acks=1 still works. When the followers return,
// they catch up and rejoin the ISR, and acks=all works again.
func TestMinInsyncReplicas(t *testing.T) {
	nodes := startCluster(t, 3)
	admin := client(t, nodes)
	createTopic(t, admin, "isr", 1, 3, map[string]*string{"min.insync.replicas": ptr("2")})
	ps := partitionState(t, nodes[0], "isr", 0)
	leader := nodeByID(nodes, ps.Leader)
	// This client does not retry, so the leader must have taken up its
	// role before the first produce (metadata reaches nodes by a watch).
	waitFor(t, 10*time.Second, "the leader to lead", func() bool {
		_, _, err := leader.repl.Leader("isr", 0)
		return err == nil
	})

	acksAll := client(t, nodes, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordRetries(0), kgo.RetryTimeout(2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := produceValues(ctx, acksAll, "isr", 0, []string{"before"})[0]; err != nil {
		t.Fatalf("acks=all with a full ISR: %v", err)
	}

	// Stop the followers' logs and replication; their nodes stay live in
	// the cluster.
	var followers []*testNode
	for _, id := range without(ps.Replicas, ps.Leader) {
		f := nodeByID(nodes, id)
		f.stop()
		followers = append(followers, f)
	}
	waitFor(t, 10*time.Second, "the ISR to shrink to the leader", func() bool {
		return slices.Equal(partitionState(t, leader, "isr", 0).ISR, []int32{leader.id})
	})
	err := produceValues(ctx, acksAll, "isr", 0, []string{"refused"})[0]
	if !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("acks=all with ISR of 1 and min.insync.replicas 2: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	leader.repl.metrics.update()
	if v := testutil.ToFloat64(leader.repl.metrics.underReplicated); v != 1 {
		t.Errorf("under-replicated partitions %v with the followers gone, want 1", v)
	}
	acksOne := client(t, nodes, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := produceValues(ctx, acksOne, "isr", 0, []string{"acks1"})[0]; err != nil {
		t.Fatalf("acks=1 with a shrunk ISR: %v", err)
	}

	// The followers come back: they catch up and rejoin.
	for _, f := range followers {
		f.startServing()
	}
	waitFor(t, 15*time.Second, "the followers to rejoin the ISR", func() bool {
		return len(partitionState(t, leader, "isr", 0).ISR) == 3
	})
	if err := produceValues(ctx, acksAll, "isr", 0, []string{"after"})[0]; err != nil {
		t.Fatalf("acks=all after the ISR grew back: %v", err)
	}
	waitIdentical(t, nodes, "isr", 0)
	got := consumeAll(t, nodes, "isr", 0)
	if !slices.Equal(got, []string{"before", "acks1", "after"}) {
		t.Fatalf("consumed %q, want before, acks1, after", got)
	}
	// The leader counted both shrinks (or one shrink by two) and the
	// expands, and reports nothing under-replicated any more.
	leader.repl.metrics.update()
	if v := testutil.ToFloat64(leader.repl.metrics.isrShrinks); v < 1 {
		t.Errorf("isr shrinks metric %v, want at least 1", v)
	}
	if v := testutil.ToFloat64(leader.repl.metrics.isrExpands); v < 1 {
		t.Errorf("isr expands metric %v, want at least 1", v)
	}
	if v := testutil.ToFloat64(leader.repl.metrics.underReplicated); v != 0 {
		t.Errorf("under-replicated partitions %v after the ISR grew back, want 0", v)
	}
	if v := testutil.ToFloat64(leader.repl.metrics.leaderCount); v != 1 {
		t.Errorf("leader partitions %v, want 1", v)
	}
}

// TestLeaderFailover: killing the leader of a partition moves leadership
// to an in-sync follower with a higher epoch; a producer using acks=all
// carries on, and every acknowledged value is there exactly once.
func TestLeaderFailover(t *testing.T) {
	nodes := startCluster(t, 3)
	cl := client(t, nodes, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, cl, "failover", 1, 3, map[string]*string{"min.insync.replicas": ptr("2")})
	before := partitionState(t, nodes[0], "failover", 0)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i, err := range produceValues(ctx, cl, "failover", 0, values("a", 100)) {
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
	}
	old := nodeByID(nodes, before.Leader)
	killed := time.Now()
	old.kill()

	var survivor *testNode
	for _, n := range nodes {
		if n != old {
			survivor = n
			break
		}
	}
	waitFor(t, 15*time.Second, "a new leader", func() bool {
		ps := partitionState(t, survivor, "failover", 0)
		return ps.Leader >= 0 && ps.Leader != old.id
	})
	after := partitionState(t, survivor, "failover", 0)
	if after.LeaderEpoch <= before.LeaderEpoch {
		t.Errorf("leader epoch %d after failover, was %d: want it bumped", after.LeaderEpoch, before.LeaderEpoch)
	}
	if slices.Contains(after.ISR, old.id) {
		t.Errorf("ISR %v still holds the dead node %d", after.ISR, old.id)
	}
	for i, err := range produceValues(ctx, cl, "failover", 0, values("b", 100)) {
		if err != nil {
			t.Fatalf("value b-%d after failover: %v", i, err)
		}
	}
	t.Logf("failover: first acks=all produce on the new leader %v after the kill", time.Since(killed))

	live := slices.DeleteFunc(slices.Clone(nodes), func(n *testNode) bool { return n == old })
	got := consumeAll(t, live, "failover", 0)
	want := append(values("a", 100), values("b", 100)...)
	if !slices.Equal(got, want) {
		t.Fatalf("consumed %d values, want a-0..a-99 then b-0..b-99 exactly once", len(got))
	}

	// The old leader comes back as a follower and catches up.
	old.restart()
	waitFor(t, 20*time.Second, "the old leader to rejoin the ISR", func() bool {
		return len(partitionState(t, survivor, "failover", 0).ISR) == 3
	})
	waitIdentical(t, nodes, "failover", 0)
}

// TestDivergentTailTruncated: records the leader wrote but never
// replicated (acks=1 while its followers were away) are removed from its
// log when it comes back as a follower of a new leader.
func TestDivergentTailTruncated(t *testing.T) {
	nodes := startCluster(t, 3)
	admin := client(t, nodes)
	createTopic(t, admin, "diverge", 1, 3, map[string]*string{"min.insync.replicas": ptr("2")})
	ps := partitionState(t, nodes[0], "diverge", 0)
	leader := nodeByID(nodes, ps.Leader)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	acksAll := client(t, nodes, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i, err := range produceValues(ctx, acksAll, "diverge", 0, values("kept", 50)) {
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
	}
	waitIdentical(t, nodes, "diverge", 0)

	// Pause the followers, write a tail only the leader has, then kill the
	// leader before its followers leave the ISR.
	var followers []*testNode
	for _, id := range without(ps.Replicas, ps.Leader) {
		f := nodeByID(nodes, id)
		f.stop()
		followers = append(followers, f)
	}
	part, err := leader.b.Partition("diverge", 0)
	if err != nil {
		t.Fatal(err)
	}
	acksOne := client(t, []*testNode{leader}, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i, err := range produceValues(ctx, acksOne, "diverge", 0, values("lost", 20)) {
		if err != nil {
			t.Fatalf("acks=1 value %d: %v", i, err)
		}
	}
	tailEnd := part.LogEndOffset()
	if tailEnd != 70 {
		t.Fatalf("leader log end %d, want 70 (50 kept + 20 unreplicated)", tailEnd)
	}
	leader.kill()

	for _, f := range followers {
		f.startServing()
	}
	waitFor(t, 15*time.Second, "a new leader", func() bool {
		ps := partitionState(t, followers[0], "diverge", 0)
		return ps.Leader >= 0 && ps.Leader != leader.id
	})
	acksAll2 := client(t, followers, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i, err := range produceValues(ctx, acksAll2, "diverge", 0, values("new", 30)) {
		if err != nil {
			t.Fatalf("value new-%d: %v", i, err)
		}
	}

	leader.restart()
	data := waitIdentical(t, nodes, "diverge", 0)
	if len(data) == 0 {
		t.Fatal("empty log")
	}
	got := consumeAll(t, nodes, "diverge", 0)
	want := append(values("kept", 50), values("new", 30)...)
	if !slices.Equal(got, want) {
		t.Fatalf("consumed %d values (first %q), want kept-0..49 then new-0..29: the divergent tail must be gone", len(got), got[:min(3, len(got))])
	}
}
