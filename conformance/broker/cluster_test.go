package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/conformance/durability"
	"github.com/sluice-io/sluice/internal/testnode"
)

// clusterFlags make failure detection quick enough for a test while
// staying well above a loaded machine's pauses.
var clusterFlags = []string{"--session-timeout", "1500ms", "--replica-lag-time-max", "3s"}

// TestClusterKillLeaderLosesNoAcknowledgedRecord runs three real `sluice
// serve` processes as a cluster and the durability checker against them:
// several acks=all producers write unique values to a replication factor 3
// topic (min.insync.replicas 2) while the leader of a partition is killed
// with SIGKILL and restarted, ten times. Every acknowledged value must be
// stored exactly once, in the order it was acknowledged.
func TestClusterKillLeaderLosesNoAcknowledgedRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("kills cluster nodes for about a minute")
	}
	const (
		topic      = "chaos"
		partitions = 3
		kills      = 10
	)
	nodes, brokers, adm := startTestCluster(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var failovers []time.Duration
	report, err := durability.Run(ctx, durability.Config{
		Brokers: brokers, Topic: topic, Partitions: partitions, Producers: 3,
	}, func(ctx context.Context) error {
		if err := waitAllInSync(ctx, adm, topic, 3); err != nil {
			return err
		}
		for i := range kills {
			leader, err := leaderOf(ctx, adm, topic, int32(i%partitions))
			if err != nil {
				return err
			}
			victim := nodeWithID(nodes, leader)
			if victim == nil {
				return fmt.Errorf("kill %d: leader %d is not one of ours", i, leader)
			}
			killed := time.Now()
			victim.Kill()
			err = waitLeaderNot(ctx, adm, topic, int32(i%partitions), leader)
			if err == nil {
				failovers = append(failovers, time.Since(killed))
			}
			// Back in any case, so that the records can be read back
			// from a partition that found no other leader.
			victim.Launch()
			victim.WaitReady()
			if err != nil {
				return fmt.Errorf("kill %d: no new leader for partition %d: %w", i, i%partitions, err)
			}
			// The next kill must not take a second replica of a
			// partition: wait until the restarted node is in sync.
			if err := waitAllInSync(ctx, adm, topic, 3); err != nil {
				return fmt.Errorf("kill %d: %w", i, err)
			}
		}
		return nil
	})
	t.Logf("durability report: %s; leader re-elected after each SIGKILL in %v", report, failovers)
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() {
		t.Fatalf("acknowledged writes were lost, duplicated or reordered: %s\n%v", report, report.Examples)
	}
	if report.Acked < 1000 {
		t.Fatalf("only %d records acknowledged: the run did not exercise the cluster", report.Acked)
	}
}

// startTestCluster runs three `sluice serve` processes as a cluster and
// returns them with their Kafka addresses and an admin client.
func startTestCluster(t *testing.T) ([]*testnode.Node, []string, *kadm.Client) {
	t.Helper()
	nodes := testnode.StartCluster(t, t.TempDir(), 3, clusterFlags...)
	var brokers []string
	for _, n := range nodes {
		brokers = append(brokers, n.Addr)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return nodes, brokers, kadm.NewClient(cl)
}

// nodeWithID finds the process with --node-id id (StartCluster numbers
// them 1..n in order).
func nodeWithID(nodes []*testnode.Node, id int32) *testnode.Node {
	if id < 1 || int(id) > len(nodes) {
		return nil
	}
	return nodes[id-1]
}

func leaderOf(ctx context.Context, adm *kadm.Client, topic string, p int32) (int32, error) {
	var leader int32 = -1
	err := pollUntil(ctx, 20*time.Second, func() bool {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return false
		}
		pd, ok := md.Topics[topic].Partitions[p]
		if ok && pd.Leader >= 0 {
			leader = pd.Leader
			return true
		}
		return false
	})
	return leader, err
}

func waitLeaderNot(ctx context.Context, adm *kadm.Client, topic string, p, old int32) error {
	return pollUntil(ctx, 30*time.Second, func() bool {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return false
		}
		pd, ok := md.Topics[topic].Partitions[p]
		return ok && pd.Leader >= 0 && pd.Leader != old
	})
}

// waitAllInSync waits until every partition of topic has rf in-sync
// replicas.
func waitAllInSync(ctx context.Context, adm *kadm.Client, topic string, rf int) error {
	return pollUntil(ctx, 60*time.Second, func() bool {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return false
		}
		td := md.Topics[topic]
		if td.Err != nil || len(td.Partitions) == 0 {
			return false
		}
		for _, pd := range td.Partitions {
			if pd.Leader < 0 || len(pd.ISR) < rf {
				return false
			}
		}
		return true
	})
}

// pollUntil checks cond every 50 ms until it holds, timeout passes or ctx ends.
func pollUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// TestClusterFollowerCutOffAndBack freezes a follower (SIGSTOP: its
// connections stay open but silent, like a network cut) while acks=all
// producers write: it leaves the ISR and the producers carry on with the
// other two replicas; thawed, it catches up, rejoins the ISR, and nothing
// acknowledged is lost.
func TestClusterFollowerCutOffAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("freezes a cluster node")
	}
	const topic = "cut"
	nodes, brokers, adm := startTestCluster(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var shrunk, rejoined time.Duration
	report, err := durability.Run(ctx, durability.Config{
		Brokers: brokers, Topic: topic, Partitions: 1, Producers: 2,
	}, func(ctx context.Context) error {
		if err := waitAllInSync(ctx, adm, topic, 3); err != nil {
			return err
		}
		leader, err := leaderOf(ctx, adm, topic, 0)
		if err != nil {
			return err
		}
		var follower *testnode.Node
		var followerID int32
		for i, n := range nodes {
			if int32(i+1) != leader {
				follower, followerID = n, int32(i+1)
				break
			}
		}
		cut := time.Now()
		follower.Pause()
		// The other brokers answer metadata; the frozen one would hang.
		var others []string
		for i, n := range nodes {
			if int32(i+1) != followerID {
				others = append(others, n.Addr)
			}
		}
		oc, err := kgo.NewClient(kgo.SeedBrokers(others...))
		if err != nil {
			follower.Resume()
			return err
		}
		defer oc.Close()
		oadm := kadm.NewClient(oc)
		err = pollUntil(ctx, 30*time.Second, func() bool {
			isr, ok := isrFrom(ctx, oc.SeedBrokers()[0], topic)
			return ok && len(isr) == 2 && !slicesContains(isr, followerID)
		})
		shrunk = time.Since(cut)
		// Keep producing with the ISR of two for a while.
		select {
		case <-time.After(3 * time.Second):
		case <-ctx.Done():
		}
		follower.Resume()
		if err != nil {
			return fmt.Errorf("follower %d never left the ISR: %w", followerID, err)
		}
		back := time.Now()
		if err := waitAllInSync(ctx, oadm, topic, 3); err != nil {
			return fmt.Errorf("follower %d never rejoined the ISR: %w", followerID, err)
		}
		rejoined = time.Since(back)
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
		}
		return nil
	})
	t.Logf("durability report: %s; follower left the ISR %v after the cut, rejoined %v after it came back", report, shrunk, rejoined)
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() {
		t.Fatalf("acknowledged writes were lost, duplicated or reordered: %s\n%v", report, report.Examples)
	}
	if report.Acked < 1000 {
		t.Fatalf("only %d records acknowledged", report.Acked)
	}
}

// isrFrom asks one broker (not any the client knows, which could be the
// frozen one) for partition 0's ISR, with a short timeout.
func isrFrom(ctx context.Context, b *kgo.Broker, topic string) ([]int32, bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := b.Request(ctx, req)
	if err != nil {
		return nil, false
	}
	for _, t := range resp.(*kmsg.MetadataResponse).Topics {
		for _, p := range t.Partitions {
			if p.Partition == 0 {
				return p.ISR, true
			}
		}
	}
	return nil, false
}

func slicesContains(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
