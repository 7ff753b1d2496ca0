package replication

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGroupSurvivesCoordinatorLoss: a consumer group commits offsets on a
// cluster, the node coordinating the group is killed, and the group goes
// on from its committed offsets on the new coordinator (the new leader of
// its offsets partition): nothing committed is consumed again and nothing
// is skipped.
func TestGroupSurvivesCoordinatorLoss(t *testing.T) {
	nodes := startCluster(t, 3)
	prod := client(t, nodes, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, prod, "events", 3, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var all []string
	for p := range int32(3) {
		vs := values("p"+string(rune('0'+p)), 100)
		all = append(all, vs...)
		for i, err := range produceValues(ctx, prod, "events", p, vs) {
			if err != nil {
				t.Fatalf("partition %d value %d: %v", p, i, err)
			}
		}
	}

	consume := func(seeds []*testNode, until func(n int) bool) []string {
		cl := client(t, seeds, kgo.ConsumerGroup("cg"), kgo.ConsumeTopics("events"), kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
		var got []string
		for !until(len(got)) {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %d: %v", len(got), ctx.Err())
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit after %d records: %v", len(got), err)
		}
		cl.Close() // leaves the group
		return got
	}
	first := consume(nodes, func(n int) bool { return n >= 150 })

	coord := kadm.NewClient(prod).FindGroupCoordinators(ctx, "cg")
	var coordID int32 = -1
	coord.Each(func(r kadm.FindCoordinatorResponse) {
		if r.Err == nil {
			coordID = r.NodeID
		}
	})
	victim := nodeByID(nodes, coordID)
	if victim == nil {
		t.Fatalf("no coordinator for cg: %+v", coord)
	}
	victim.kill()
	live := slices.DeleteFunc(slices.Clone(nodes), func(n *testNode) bool { return n == victim })

	rest := consume(live, func(n int) bool { return len(first)+n >= len(all) })
	got := append(slices.Clone(first), rest...)
	slices.Sort(got)
	want := slices.Clone(all)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("before the kill %d records, after %d: together they must be every record exactly once (%d)",
			len(first), len(rest), len(all))
	}
	// And the new coordinator knows the final commits. A node that has
	// not yet seen the kill may name the dead coordinator for a moment,
	// and franz-go keeps a coordinator it was told of while it cannot
	// dial it, so each try is a new client, as a restarted one would be.
	var offsets kadm.OffsetResponses
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		cl := client(t, live, kgo.RetryTimeout(2*time.Second))
		offsets, err = kadm.NewClient(cl).FetchOffsets(ctx, "cg")
		cl.Close()
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		o, ok := offsets.Lookup("events", p)
		if !ok || o.At != 100 {
			t.Errorf("committed offset of events-%d: %+v, want 100", p, o)
		}
	}
}
