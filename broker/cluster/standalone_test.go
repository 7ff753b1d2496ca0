package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluice-io/sluice/broker/cluster"
	"github.com/sluice-io/sluice/broker/cluster/clustertest"
)

func TestStandaloneNode(t *testing.T) {
	t.Parallel()
	began := time.Now()
	nodes, err := clustertest.StartLocalCluster(t, 1, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := nodes[0]
	t.Logf("standalone node started in %v", time.Since(began))

	if id := n.Meta().ClusterID(); len(id) != 22 {
		t.Errorf("cluster id %q: want 22 characters", id)
	}
	live := n.LiveNodes()
	if len(live) != 1 || live[0].ID != 0 || live[0].Incarnation == 0 {
		t.Errorf("live nodes = %+v, want only node 0 with an incarnation", live)
	}
	clustertest.WaitFor(t, 5*time.Second, "node 0 to become controller", func() bool {
		return n.IsController() && n.ControllerID() == 0
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topic := cluster.TopicAssignment{Name: "orders.v1", ID: [16]byte{1}, Replicas: [][]int32{{0}, {0}}}
	if err := n.Meta().CreateTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	for p := range topic.Partitions() {
		s, ok := n.Meta().Partition("orders.v1", p)
		if !ok || s.Leader != 0 || s.LeaderEpoch != 0 || len(s.ISR) != 1 {
			t.Errorf("partition %d = %+v, %v; want leader 0 epoch 0 isr [0]", p, s, ok)
		}
	}
	again := topic
	again.ID = [16]byte{2}
	if err := n.Meta().CreateTopic(ctx, again); !errors.Is(err, cluster.ErrTopicExists) {
		t.Errorf("second CreateTopic: %v, want ErrTopicExists", err)
	}
	st, err := n.Server().Jsz(nil)
	if err != nil || st.Meta != nil {
		t.Errorf("standalone node has a meta group: %+v, %v", st.Meta, err)
	}
}
