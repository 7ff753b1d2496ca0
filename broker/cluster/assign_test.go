package cluster

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func nodesWithRacks(racks ...string) []NodeInfo {
	nodes := make([]NodeInfo, len(racks))
	for i, r := range racks {
		// Ids out of order and with gaps: assignment must not depend on either.
		nodes[i] = NodeInfo{ID: int32(10 * (len(racks) - i)), Rack: r}
	}
	return nodes
}

func spread(counts map[int32]int, nodes []NodeInfo) (lo, hi int) {
	lo = int(^uint(0) >> 1)
	for _, n := range nodes {
		lo, hi = min(lo, counts[n.ID]), max(hi, counts[n.ID])
	}
	return lo, hi
}

func checkWellFormed(t *testing.T, got [][]int32, nodes []NodeInfo, partitions, rf int32) {
	t.Helper()
	if int32(len(got)) != partitions {
		t.Fatalf("%d partitions, want %d", len(got), partitions)
	}
	for p, r := range got {
		if int32(len(r)) != rf {
			t.Fatalf("partition %d: %v has %d replicas, want %d", p, r, len(r), rf)
		}
		for i, id := range r {
			if slices.Contains(r[:i], id) || !slices.ContainsFunc(nodes, func(n NodeInfo) bool { return n.ID == id }) {
				t.Fatalf("partition %d: bad replica list %v", p, r)
			}
		}
	}
}

func TestAssignReplicasBalance(t *testing.T) {
	for n := 1; n <= 6; n++ {
		for rf := int32(1); rf <= int32(min(n, 3)); rf++ {
			for _, partitions := range []int32{1, int32(n), int32(2 * n), int32(3*n + 1), 50} {
				t.Run(fmt.Sprintf("nodes=%d/rf=%d/partitions=%d", n, rf, partitions), func(t *testing.T) {
					nodes := nodesWithRacks(make([]string, n)...)
					for start := range n {
						got, err := AssignReplicas(nodes, partitions, rf, start)
						if err != nil {
							t.Fatal(err)
						}
						checkWellFormed(t, got, nodes, partitions, rf)
						leaders, replicas := map[int32]int{}, map[int32]int{}
						for _, r := range got {
							leaders[r[0]]++
							for _, id := range r {
								replicas[id]++
							}
						}
						if lo, hi := spread(leaders, nodes); hi-lo > 1 {
							t.Errorf("start %d: leaders per node %v differ by %d", start, leaders, hi-lo)
						}
						if lo, hi := spread(replicas, nodes); hi-lo > 1 {
							t.Errorf("start %d: replicas per node %v differ by %d", start, replicas, hi-lo)
						}
					}
				})
			}
		}
	}
}

func TestAssignReplicasRacks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		racks []string
	}{
		{"even", []string{"a", "a", "b", "b", "c", "c"}},
		{"uneven", []string{"a", "a", "a", "b", "c", "c"}},
		{"one per rack", []string{"c", "b", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := nodesWithRacks(tc.racks...)
			rackOf := map[int32]string{}
			for _, n := range nodes {
				rackOf[n.ID] = n.Rack
			}
			for start := range len(nodes) {
				got, err := AssignReplicas(nodes, 24, 3, start)
				if err != nil {
					t.Fatal(err)
				}
				checkWellFormed(t, got, nodes, 24, 3)
				leaders := map[int32]int{}
				for p, r := range got {
					leaders[r[0]]++
					racks := map[string]bool{}
					for _, id := range r {
						racks[rackOf[id]] = true
					}
					if len(racks) != 3 {
						t.Errorf("start %d partition %d: %v spans racks %v, want 3", start, p, r, racks)
					}
				}
				if lo, hi := spread(leaders, nodes); hi-lo > 1 {
					t.Errorf("start %d: leaders per node %v differ by %d", start, leaders, hi-lo)
				}
			}
		})
	}
}

func TestAssignReplicasErrors(t *testing.T) {
	nodes := nodesWithRacks("", "", "")
	if _, err := AssignReplicas(nodes, 3, 4, 0); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Errorf("RF 4 on 3 nodes: %v, want ErrInvalidReplicationFactor", err)
	}
	if _, err := AssignReplicas(nil, 3, 1, 0); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Errorf("no nodes: %v, want ErrInvalidReplicationFactor", err)
	}
	if _, err := AssignReplicas(nodes, 0, 1, 0); err == nil {
		t.Error("0 partitions accepted")
	}
	if _, err := AssignReplicas(append(nodes, nodes[0]), 3, 1, 0); err == nil {
		t.Error("duplicate node accepted")
	}
}

func TestAssignReplicasIsKafkas(t *testing.T) {
	// The layout Kafka's AdminUtils gives for 5 brokers, 10 partitions, RF 3
	// and start index 0: balanced already, so the evening-out pass leaves it.
	nodes := make([]NodeInfo, 5)
	for i := range nodes {
		nodes[i].ID = int32(i)
	}
	got, err := AssignReplicas(nodes, 10, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int32{{0, 1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 0}, {4, 0, 1}, {0, 2, 3}, {1, 3, 4}, {2, 4, 0}, {3, 0, 1}, {4, 1, 2}}
	for p := range want {
		if !slices.Equal(got[p], want[p]) {
			t.Errorf("partition %d: %v, want %v", p, got[p], want[p])
		}
	}
}
