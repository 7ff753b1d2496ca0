package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-io/sluice/broker/cluster"
	"github.com/sluice-io/sluice/broker/cluster/clustertest"
)

func startCluster(t *testing.T, n int) []*cluster.Node {
	t.Helper()
	began := time.Now()
	nodes, err := clustertest.StartLocalCluster(t, n, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d-node cluster started in %v", n, time.Since(began))
	return nodes
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// createTopic creates an RF rf topic placed by AssignReplicas over the
// live nodes.
func createTopic(t *testing.T, n *cluster.Node, name string, partitions, rf int32) cluster.TopicAssignment {
	t.Helper()
	replicas, err := cluster.AssignReplicas(n.LiveNodes(), partitions, rf, 0)
	if err != nil {
		t.Fatal(err)
	}
	topic := cluster.TopicAssignment{Name: name, Replicas: replicas}
	copy(topic.ID[:], name)
	if err := n.Meta().CreateTopic(testContext(t), topic); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return topic
}

// agreedController is the controller every node agrees on, or -1.
func agreedController(nodes []*cluster.Node) int32 {
	holders := 0
	var id int32 = -1
	for i, n := range nodes {
		if n.IsController() {
			holders++
		}
		if i == 0 {
			id = n.ControllerID()
		} else if n.ControllerID() != id {
			return -1
		}
	}
	if holders != 1 {
		return -1
	}
	return id
}

// TestCluster runs the non-destructive checks on one shared 4-node cluster
// (4 so that a partition with 3 replicas can move to a different set).
func TestCluster(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 4)

	t.Run("MetaBucketIsReplicated", func(t *testing.T) {
		js, err := jetstream.New(nodes[0].Conn())
		if err != nil {
			t.Fatal(err)
		}
		var info *jetstream.StreamInfo
		clustertest.WaitFor(t, 10*time.Second, "KV_sluice_meta to have a leader and 2 current followers", func() bool {
			s, err := js.Stream(testContext(t), "KV_sluice_meta")
			if err != nil {
				return false
			}
			info, err = s.Info(testContext(t))
			if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
				return false
			}
			for _, r := range info.Cluster.Replicas {
				if !r.Current {
					return false
				}
			}
			return true
		})
		if info.Config.Replicas != 3 {
			t.Errorf("sluice_meta replicas = %d, want 3", info.Config.Replicas)
		}
	})

	t.Run("AllNodesLiveAndOneController", func(t *testing.T) {
		clustertest.WaitFor(t, 10*time.Second, "every node to see 4 live nodes and one agreed controller", func() bool {
			for _, n := range nodes {
				if len(n.LiveNodes()) != 4 {
					return false
				}
			}
			return agreedController(nodes) >= 0
		})
		if id := nodes[0].Meta().ClusterID(); id == "" || id != nodes[3].Meta().ClusterID() {
			t.Errorf("cluster ids differ or are empty: %q vs %q", id, nodes[3].Meta().ClusterID())
		}
	})

	t.Run("TopicCreatedOnOneNodeSeenOnAnother", func(t *testing.T) {
		began := time.Now()
		topic := createTopic(t, nodes[1], "seen-everywhere", 8, 3)
		created := time.Since(began)
		clustertest.WaitFor(t, 5*time.Second, "node 3 to see all partitions", func() bool {
			return len(nodes[3].Meta().Partitions(topic.Name)) == 8
		})
		t.Logf("CreateTopic (8 partitions, RF3) took %v, visible on another node after %v", created, time.Since(began))
		leaders := map[int32]int{}
		for _, s := range nodes[3].Meta().Partitions(topic.Name) {
			if s.Leader != topic.Replicas[s.Partition][0] || len(s.ISR) != 3 || s.LeaderEpoch != 0 {
				t.Errorf("partition %d = %+v; want preferred leader %d, full ISR, epoch 0", s.Partition, s, topic.Replicas[s.Partition][0])
			}
			leaders[s.Leader]++
		}
		if len(leaders) != 4 {
			t.Errorf("leaders per node = %v, want all 4 nodes leading", leaders)
		}
	})

	t.Run("ConcurrentUpdatePartitionLosesNothing", func(t *testing.T) {
		topic := createTopic(t, nodes[0], "cas-counter", 1, 3)
		before, _ := nodes[0].Meta().Partition(topic.Name, 0)
		const perNode = 15
		var wg sync.WaitGroup
		errs := make(chan error, len(nodes)*perNode)
		for i, n := range nodes {
			wg.Go(func() {
				for k := range perNode {
					// Adding is a field the controller leaves alone when no
					// reassignment is pending, so it can serve as a counter.
					_, err := n.Meta().UpdatePartition(testContext(t), topic.Name, 0, func(cur cluster.PartitionState) (cluster.PartitionState, error) {
						cur.Adding = append(cur.Adding, int32(1000*i+k))
						return cur, nil
					})
					if err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		total := len(nodes) * perNode
		clustertest.WaitFor(t, 5*time.Second, "every node to see all updates", func() bool {
			for _, n := range nodes {
				if s, _ := n.Meta().Partition(topic.Name, 0); len(s.Adding) != total {
					return false
				}
			}
			return true
		})
		after, _ := nodes[2].Meta().Partition(topic.Name, 0)
		seen := map[int32]bool{}
		for _, v := range after.Adding {
			seen[v] = true
		}
		if len(seen) != total {
			t.Errorf("%d distinct updates of %d", len(seen), total)
		}
		if got := after.PartitionEpoch - before.PartitionEpoch; got != int32(total) {
			t.Errorf("partition epoch grew by %d, want %d", got, total)
		}
	})

	t.Run("ProducerIDBlocksAreDisjoint", func(t *testing.T) {
		const perNode, size = 8, 1000
		var mu sync.Mutex
		var starts []int64
		var wg sync.WaitGroup
		for _, n := range nodes[:3] {
			for range perNode {
				wg.Go(func() {
					start, err := n.Meta().NextProducerIDBlock(testContext(t), size)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					starts = append(starts, start)
					mu.Unlock()
				})
			}
		}
		wg.Wait()
		slices.Sort(starts)
		for i := 1; i < len(starts); i++ {
			if starts[i]-starts[i-1] < size {
				t.Errorf("blocks at %d and %d overlap", starts[i-1], starts[i])
			}
		}
		if len(starts) != 3*perNode {
			t.Errorf("%d blocks, want %d", len(starts), 3*perNode)
		}
	})

	t.Run("Reassignment", func(t *testing.T) {
		topic := cluster.TopicAssignment{Name: "moving", Replicas: [][]int32{{0, 1, 2}}}
		copy(topic.ID[:], topic.Name)
		if err := nodes[0].Meta().CreateTopic(testContext(t), topic); err != nil {
			t.Fatal(err)
		}
		before, _ := nodes[0].Meta().Partition(topic.Name, 0)
		target := []int32{3, 1, 2}

		// A stand-in for the partition leader: it brings added replicas
		// into the ISR, as real followers catching up would make it do.
		ctx, stopLeader := context.WithCancel(testContext(t))
		defer stopLeader()
		leaderDone := make(chan struct{})
		changed, unsubscribe := nodes[0].Meta().Subscribe()
		go func() {
			defer close(leaderDone)
			defer unsubscribe()
			for {
				s, _ := nodes[0].Meta().Partition(topic.Name, 0)
				if missing := slices.DeleteFunc(slices.Clone(s.Adding), func(r int32) bool { return slices.Contains(s.ISR, r) }); len(missing) > 0 {
					_, _ = nodes[0].Meta().UpdatePartition(ctx, topic.Name, 0, func(cur cluster.PartitionState) (cluster.PartitionState, error) {
						for _, r := range cur.Adding {
							if !slices.Contains(cur.ISR, r) {
								cur.ISR = append(cur.ISR, r)
							}
						}
						return cur, nil
					})
				}
				select {
				case <-ctx.Done():
					return
				case <-changed:
				}
			}
		}()

		if err := nodes[2].Meta().RequestReassignment(testContext(t), topic.Name, 0, target); err != nil {
			t.Fatal(err)
		}
		clustertest.WaitFor(t, 15*time.Second, "the reassignment to finish on every node", func() bool {
			for _, n := range nodes {
				s, _ := n.Meta().Partition(topic.Name, 0)
				ta, _ := n.Meta().Topic(topic.Name)
				_, pending := n.Meta().Reassignment(topic.Name, 0)
				if pending || !slices.Equal(s.Replicas, target) || len(s.Adding)+len(s.Removing) != 0 || !slices.Equal(ta.Replicas[0], target) {
					return false
				}
			}
			return true
		})
		stopLeader()
		<-leaderDone
		after, _ := nodes[1].Meta().Partition(topic.Name, 0)
		if !slices.Contains(target, after.Leader) || after.LeaderEpoch != before.LeaderEpoch+1 {
			t.Errorf("after the move: %+v; want a leader among %v at epoch %d", after, target, before.LeaderEpoch+1)
		}
		slices.Sort(after.ISR)
		if !slices.Equal(after.ISR, []int32{1, 2, 3}) {
			t.Errorf("ISR after the move = %v, want [1 2 3]", after.ISR)
		}
	})

	t.Run("DeleteTopic", func(t *testing.T) {
		topic := createTopic(t, nodes[2], "short-lived", 3, 2)
		if err := nodes[0].Meta().DeleteTopic(testContext(t), topic.Name); err != nil {
			t.Fatal(err)
		}
		clustertest.WaitFor(t, 10*time.Second, "every node to forget the topic", func() bool {
			for _, n := range nodes {
				if _, ok := n.Meta().Topic(topic.Name); ok || len(n.Meta().Partitions(topic.Name)) > 0 {
					return false
				}
			}
			return true
		})
		again := topic
		again.ID[15] = 0xff
		if err := nodes[1].Meta().CreateTopic(testContext(t), again); err != nil {
			t.Fatalf("re-creating after delete: %v", err)
		}
		for p := range again.Partitions() {
			if s, ok := nodes[1].Meta().Partition(again.Name, p); !ok || s.LeaderEpoch != 0 {
				t.Errorf("partition %d of the new topic = %+v, %v; want fresh state", p, s, ok)
			}
		}
	})
}

// partitionsLedBy lists the partitions of topic that node id leads, as
// node n sees them.
func partitionsLedBy(n *cluster.Node, topic string, id int32) []cluster.PartitionState {
	var out []cluster.PartitionState
	for _, s := range n.Meta().Partitions(topic) {
		if s.Leader == id {
			out = append(out, s)
		}
	}
	return out
}

// waitLeadersMoved waits until every node in survivors sees a new leader
// (epoch+1, from the ISR, gone node out of the ISR) for each partition
// in moved, and returns how long that took from since.
func waitLeadersMoved(t *testing.T, survivors []*cluster.Node, topic string, gone int32, moved []cluster.PartitionState, since time.Time) time.Duration {
	t.Helper()
	clustertest.WaitFor(t, clustertest.SessionTimeout+12*time.Second, fmt.Sprintf("partitions of node %d to get new leaders", gone), func() bool {
		for _, n := range survivors {
			for _, old := range moved {
				s, ok := n.Meta().Partition(topic, old.Partition)
				if !ok || s.Leader < 0 || s.Leader == gone || slices.Contains(s.ISR, gone) {
					return false
				}
			}
		}
		return true
	})
	took := time.Since(since)
	for _, old := range moved {
		s, _ := survivors[0].Meta().Partition(topic, old.Partition)
		if s.LeaderEpoch != old.LeaderEpoch+1 || !slices.Contains(old.ISR, s.Leader) {
			t.Errorf("partition %d: %+v after %+v; want epoch+1 and a leader from the old ISR", old.Partition, s, old)
		}
	}
	return took
}

func others(nodes []*cluster.Node, id int32) []*cluster.Node {
	var out []*cluster.Node
	for _, n := range nodes {
		if n.ID() != id {
			out = append(out, n)
		}
	}
	return out
}

// TestFailover stops nodes of its own 3-node cluster: gracefully (the
// controller) and abruptly (a partition leader).
func TestFailover(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	topic := createTopic(t, nodes[0], "failover", 6, 3)
	t.Cleanup(func() {
		if t.Failed() {
			dump(t, nodes, topic.Name)
		}
	})
	clustertest.WaitFor(t, 10*time.Second, "an agreed controller", func() bool { return agreedController(nodes) >= 0 })

	// Close the controller: a peer takes the lease, and the partitions it led
	// move at once (its liveness key is deleted on the way out).
	ctrl := clustertest.Controller(nodes)
	survivors := others(nodes, ctrl.ID())
	led := partitionsLedBy(survivors[0], topic.Name, ctrl.ID())
	if len(led) == 0 {
		t.Fatalf("controller %d leads no partition of %+v", ctrl.ID(), survivors[0].Meta().Partitions(topic.Name))
	}
	began := time.Now()
	if err := ctrl.Close(); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 10*time.Second, "a new controller", func() bool {
		id := agreedController(survivors)
		return id >= 0 && id != ctrl.ID()
	})
	t.Logf("controller failover after Close took %v", time.Since(began))
	t.Logf("leader failover after Close of node %d took %v", ctrl.ID(), waitLeadersMoved(t, survivors, topic.Name, ctrl.ID(), led, began))

	began = time.Now()
	restarted, err := clustertest.Restart(t, ctrl)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restart of node %d took %v", ctrl.ID(), time.Since(began))
	nodes = append(survivors, restarted)
	clustertest.WaitFor(t, 10*time.Second, "the restarted node to be live everywhere", func() bool {
		for _, n := range nodes {
			if !n.IsLive(restarted.ID()) {
				return false
			}
		}
		return len(restarted.Meta().Partitions(topic.Name)) == int(topic.Partitions())
	})

	// Kill a partition leader that is not the controller, so that the time
	// measured is the leader failover alone.
	var victim *cluster.Node
	for _, n := range nodes {
		if !n.IsController() && len(partitionsLedBy(nodes[0], topic.Name, n.ID())) > 0 {
			victim = n
			break
		}
	}
	if victim == nil {
		t.Fatalf("no non-controller leader among %+v", nodes[0].Meta().Partitions(topic.Name))
	}
	survivors = others(nodes, victim.ID())
	led = partitionsLedBy(survivors[0], topic.Name, victim.ID())
	metaLeader := streamLeader(t, survivors[0], "KV_sluice_meta")
	began = time.Now()
	victim.Kill()
	t.Logf("leader failover after Kill of node %d (session timeout %v, it led the sluice_meta stream: %v) took %v",
		victim.ID(), clustertest.SessionTimeout, metaLeader == fmt.Sprintf("sluice-%d", victim.ID()),
		waitLeadersMoved(t, survivors, topic.Name, victim.ID(), led, began))
	for _, n := range survivors {
		if n.IsLive(victim.ID()) {
			t.Errorf("node %d still sees killed node %d as live", n.ID(), victim.ID())
		}
	}

	began = time.Now()
	back, err := clustertest.Restart(t, victim)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restart of node %d took %v", victim.ID(), time.Since(began))
	clustertest.WaitFor(t, 10*time.Second, "the killed node to be live again", func() bool {
		for _, n := range survivors {
			if !n.IsLive(back.ID()) {
				return false
			}
		}
		return back.IsLive(back.ID())
	})
	for _, s := range back.Meta().Partitions(topic.Name) {
		if slices.Contains(s.ISR, back.ID()) {
			t.Errorf("partition %d: restarted node %d back in the ISR %v without catching up", s.Partition, back.ID(), s.ISR)
		}
	}
}

// streamLeader names the server leading a stream, "" when unknown.
func streamLeader(t *testing.T, n *cluster.Node, stream string) string {
	js, err := jetstream.New(n.Conn())
	if err != nil {
		return ""
	}
	s, err := js.Stream(testContext(t), stream)
	if err != nil {
		return ""
	}
	info, err := s.Info(testContext(t))
	if err != nil || info.Cluster == nil {
		return ""
	}
	return info.Cluster.Leader
}

// dump logs what every node believes, for failed tests.
func dump(t *testing.T, nodes []*cluster.Node, topic string) {
	for _, n := range nodes {
		var live []int32
		for _, l := range n.LiveNodes() {
			live = append(live, l.ID)
		}
		t.Logf("node %d: controller %d (self: %v) live %v meta rev %d", n.ID(), n.ControllerID(), n.IsController(), live, n.Meta().Revision())
		for _, s := range n.Meta().Partitions(topic) {
			t.Logf("  %+v", s)
		}
	}
}
