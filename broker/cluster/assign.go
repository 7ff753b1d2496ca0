package cluster

import (
	"fmt"
	"slices"
	"sort"
)

// AssignReplicas places the replicas of a new topic's partitions in the
// manner of Kafka (AdminUtils.assignReplicasToBrokers): partition p's
// preferred leader is nodes[(startIndex+p) % n], and its followers are
// taken in the order that follows the leader with a shift growing each time
// the partitions wrap around the node list, so that the same pairs of nodes
// do not always share partitions. Kafka's layout can leave a node with two
// replicas more than another when the partition count is not a multiple of
// the node count; a last pass moves followers until counts differ by at
// most one.
//
// When every node has a rack, the node list alternates racks
// (r1-a, r2-a, r3-a, r1-b, ...) and a follower is skipped while its rack
// already holds a replica of the partition and racks without one remain:
// with RF >= the rack count, every partition spans every rack.
//
// nodes need not be sorted; rf larger than len(nodes) is
// ErrInvalidReplicationFactor. startIndex lets callers vary where the
// round-robin starts (Kafka picks it at random).
func AssignReplicas(nodes []NodeInfo, partitions int32, rf int32, startIndex int) ([][]int32, error) {
	if partitions <= 0 {
		return nil, fmt.Errorf("cluster: %d partitions: must be positive", partitions)
	}
	if rf <= 0 || int(rf) > len(nodes) {
		return nil, fmt.Errorf("%w: %d with %d nodes", ErrInvalidReplicationFactor, rf, len(nodes))
	}
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b NodeInfo) int { return int(a.ID - b.ID) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].ID == sorted[i-1].ID {
			return nil, fmt.Errorf("cluster: node %d listed twice", sorted[i].ID)
		}
	}
	n := len(sorted)
	start := ((startIndex % n) + n) % n
	rackOf := map[int32]string{}
	racked := true
	for _, node := range sorted {
		rackOf[node.ID] = node.Rack
		racked = racked && node.Rack != ""
	}
	order, numRacks := sorted, 1
	if racked {
		order, numRacks = rackAlternated(sorted)
	}

	out := make([][]int32, partitions)
	shift := start
	for p := range int(partitions) {
		if p > 0 && p%n == 0 {
			shift++
		}
		first := (p + start) % n
		leader := order[first].ID
		replicas := []int32{leader}
		racks := map[string]bool{rackOf[leader]: true}
		for k := 0; len(replicas) < int(rf); k++ {
			cand := order[followerIndex(first, shift*numRacks, k, n)].ID
			rackFree := !racked || !racks[rackOf[cand]] || len(racks) == numRacks
			if rackFree && !slices.Contains(replicas, cand) {
				replicas = append(replicas, cand)
				racks[rackOf[cand]] = true
			}
		}
		out[p] = replicas
	}
	evenOutFollowers(out, sorted, rackOf, racked)
	return out, nil
}

// evenOutFollowers moves follower replicas from the most to the least
// loaded node until replica counts differ by at most one. Kafka's layout
// can leave a difference of two when the partition count is not a multiple
// of the node count; the leaders, and a partition's rack spread, stay.
func evenOutFollowers(out [][]int32, nodes []NodeInfo, rackOf map[int32]string, racked bool) {
	count := map[int32]int{}
	for _, r := range out {
		for _, id := range r {
			count[id]++
		}
	}
	for range len(out) * len(nodes) { // each move lowers the spread; this bounds the loop
		hi, lo := nodes[0].ID, nodes[0].ID
		for _, node := range nodes {
			if count[node.ID] > count[hi] {
				hi = node.ID
			}
			if count[node.ID] < count[lo] {
				lo = node.ID
			}
		}
		if count[hi]-count[lo] <= 1 || !moveFollower(out, hi, lo, rackOf, racked) {
			return
		}
		count[hi]--
		count[lo]++
	}
}

// moveFollower replaces from by to as a follower of one partition that has
// from as a follower and not to, keeping the partition's racks spread.
func moveFollower(out [][]int32, from, to int32, rackOf map[int32]string, racked bool) bool {
	for p := len(out) - 1; p >= 0; p-- {
		r := out[p]
		i := slices.Index(r, from)
		if i < 1 || slices.Contains(r, to) {
			continue
		}
		if racked && rackOf[from] != rackOf[to] {
			spansTo := slices.ContainsFunc(r, func(id int32) bool { return rackOf[id] == rackOf[to] })
			othersFrom := slices.ContainsFunc(r, func(id int32) bool { return id != from && rackOf[id] == rackOf[from] })
			if spansTo && !othersFrom {
				continue // the move would drop from's rack for a rack already there
			}
		}
		r[i] = to
		return true
	}
	return false
}

func followerIndex(first, shift, k, n int) int {
	if n == 1 {
		return first
	}
	return (first + 1 + (shift+k)%(n-1)) % n
}

// rackAlternated orders nodes so that consecutive ones sit in different
// racks: the first node of each rack (racks sorted by name), then the
// second of each, and so on.
func rackAlternated(sorted []NodeInfo) ([]NodeInfo, int) {
	byRack := map[string][]NodeInfo{}
	for _, node := range sorted {
		byRack[node.Rack] = append(byRack[node.Rack], node)
	}
	racks := make([]string, 0, len(byRack))
	for r := range byRack {
		racks = append(racks, r)
	}
	sort.Strings(racks)
	out := make([]NodeInfo, 0, len(sorted))
	for i := 0; len(out) < len(sorted); i++ {
		for _, r := range racks {
			if i < len(byRack[r]) {
				out = append(out, byRack[r][i])
			}
		}
	}
	return out, len(racks)
}
