package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

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
	nodes := testnode.StartCluster(t, t.TempDir(), 3, clusterFlags...)
	var brokers []string
	for _, n := range nodes {
		brokers = append(brokers, n.Addr)
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

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
			if err := waitLeaderNot(ctx, adm, topic, int32(i%partitions), leader); err != nil {
				return fmt.Errorf("kill %d: %w", i, err)
			}
			failovers = append(failovers, time.Since(killed))
			victim.Launch()
			victim.WaitReady()
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
