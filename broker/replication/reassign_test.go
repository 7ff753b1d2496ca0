package replication

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestReassignmentUnderLoad moves a partition to a different set of
// replicas, its leader included, while an acks=all producer writes to it:
// the new replica catches up and joins the ISR, leadership moves, the old
// replica is dropped, and every acknowledged record is there exactly once,
// in order, on every new replica.
func TestReassignmentUnderLoad(t *testing.T) {
	nodes := startCluster(t, 4)
	cl := client(t, nodes, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, cl, "moving", 1, 3, map[string]*string{"min.insync.replicas": ptr("2")})
	before := partitionState(t, nodes[0], "moving", 0)
	var outsider int32 = -1
	for _, n := range nodes {
		if !slices.Contains(before.Replicas, n.id) {
			outsider = n.id
		}
	}
	// The outsider leads the new set, and the old leader leaves.
	target := append([]int32{outsider}, without(before.Replicas, before.Leader)...)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var (
		mu    sync.Mutex
		acked []string
		stop  = make(chan struct{})
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := "r-" + strconv.Itoa(i)
			if err := produceValues(ctx, cl, "moving", 0, []string{v})[0]; err != nil {
				t.Errorf("produce %s: %v", v, err)
				return
			}
			mu.Lock()
			acked = append(acked, v)
			mu.Unlock()
		}
	}()
	waitFor(t, 10*time.Second, "some records before the move", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 50
	})

	resp, err := kadm.NewClient(cl).AlterPartitionAssignments(ctx, kadm.AlterPartitionAssignmentsReq{"moving": {0: target}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil {
			t.Fatalf("reassign: %v %s", r.Err, r.ErrMessage)
		}
	}
	waitFor(t, 30*time.Second, "the move to finish", func() bool {
		ps := partitionState(t, nodes[0], "moving", 0)
		return slices.Equal(ps.Replicas, target) && len(ps.ISR) == 3 && ps.Leader == outsider && len(ps.Adding) == 0 && len(ps.Removing) == 0
	})
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	waitFor(t, 10*time.Second, "more records after the move", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= n+50
	})
	close(stop)
	<-done
	after := partitionState(t, nodes[0], "moving", 0)
	if after.LeaderEpoch <= before.LeaderEpoch {
		t.Errorf("leader epoch %d after the move, was %d", after.LeaderEpoch, before.LeaderEpoch)
	}

	var newReplicas []*testNode
	for _, id := range target {
		newReplicas = append(newReplicas, nodeByID(nodes, id))
	}
	waitIdentical(t, newReplicas, "moving", 0)
	got := consumeAll(t, newReplicas, "moving", 0)
	mu.Lock()
	defer mu.Unlock()
	if len(got) < len(acked) || !slices.Equal(got[:len(acked)], acked) {
		t.Fatalf("after the move the log holds %d records; want the %d acknowledged ones first, in order, once", len(got), len(acked))
	}
	t.Logf("moved %v → %v with %d records acknowledged during the move", before.Replicas, target, len(acked))
}
