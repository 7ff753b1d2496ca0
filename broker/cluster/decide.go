package cluster

// The controller's decisions, as pure functions of the cached metadata and
// the live node set: no I/O, so the rules can be tested exhaustively. The
// shell in controller.go carries the resulting actions out as CAS writes.
//
// Rules (Kafka's, with unclean leader election off):
//   - A new partition's ISR is its live replicas (all replicas when none is
//     live: the log is empty, so any of them is in sync), its leader the
//     first live replica, or -1.
//   - A dead node leaves every ISR in which a live member remains. When
//     none would remain, the ISR stays as it is: every member of it holds
//     every acknowledged record (the high watermark counted them all), so
//     whichever comes back first can lead. Kafka keeps only the last
//     leader in that case; sluice does not, because its liveness view can
//     lose every node at once for a moment (the liveness stream changing
//     leader expires all heartbeats together), and keeping only a leader
//     that had really died left its partition without a leader until that
//     one node returned.
//   - A partition without a live leader elects the first replica, in
//     Replicas order, that is live and in the ISR; every leader change,
//     to -1 included, bumps LeaderEpoch.
//   - A reassignment widens Replicas to target ∪ old, waits for the leader
//     to bring every added replica into the ISR, then moves leadership off
//     removed replicas, narrows Replicas and ISR to the target, updates the
//     topic's assignment and finally deletes the request.
//   - A topic marked Deleting loses its partitions, then its requests, then
//     itself.

import (
	"encoding/hex"
	"slices"
	"sort"
	"strconv"
)

type actionKind int

const (
	actCreatePart actionKind = iota
	actUpdatePart
	actUpdateTopic
	actPurge
)

func (k actionKind) String() string {
	return [...]string{"create-partition", "update-partition", "update-topic", "purge"}[k]
}

// action is one CAS write: create (must not exist), update at rev, or
// purge at rev.
type action struct {
	kind  actionKind
	key   string
	rev   uint64
	value any // PartitionState or TopicAssignment
}

func newPartitionState(topic string, p int32, replicas []int32, live map[int32]bool) PartitionState {
	s := PartitionState{Topic: topic, Partition: p, Leader: -1, Replicas: slices.Clone(replicas)}
	for _, r := range replicas {
		if live[r] {
			s.ISR = append(s.ISR, r)
		}
	}
	if len(s.ISR) == 0 {
		s.ISR = slices.Clone(replicas)
	} else {
		s.Leader = s.ISR[0]
	}
	return s
}

// minus returns the elements of a not in b, in a's order.
func minus(a, b []int32) []int32 {
	var out []int32
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func intersect(a, b []int32) []int32 {
	var out []int32
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func containsAll(set, xs []int32) bool {
	for _, x := range xs {
		if !slices.Contains(set, x) {
			return false
		}
	}
	return true
}

func sameState(a, b PartitionState) bool {
	return a.Leader == b.Leader && a.LeaderEpoch == b.LeaderEpoch &&
		slices.Equal(a.ISR, b.ISR) && slices.Equal(a.Replicas, b.Replicas) &&
		slices.Equal(a.Adding, b.Adding) && slices.Equal(a.Removing, b.Removing)
}

// firstLiveInSync is the first of candidates that is live and in the ISR,
// or -1.
func firstLiveInSync(candidates, isr []int32, live map[int32]bool) int32 {
	for _, r := range candidates {
		if live[r] && slices.Contains(isr, r) {
			return r
		}
	}
	return -1
}

func reassignDone(s PartitionState, target []int32) bool {
	return slices.Equal(s.Replicas, target) && len(s.Adding) == 0 && len(s.Removing) == 0
}

// reconcilePartition applies the rules above to one partition. target is
// the pending reassignment, nil when there is none. It reports whether the
// state changed; PartitionEpoch is bumped when it did.
func reconcilePartition(cur PartitionState, target []int32, live map[int32]bool) (PartitionState, bool) {
	next := cur.clone()

	if target != nil {
		origin := cur.Replicas
		if len(cur.Adding) > 0 || len(cur.Removing) > 0 {
			origin = minus(cur.Replicas, cur.Adding)
		}
		adding, removing := minus(target, origin), minus(origin, target)
		if len(adding) == 0 && len(removing) == 0 {
			next.Replicas, next.Adding, next.Removing = slices.Clone(target), nil, nil
		} else {
			next.Replicas = append(slices.Clone(target), removing...)
			next.Adding, next.Removing = adding, removing
		}
	}

	if isr := liveList(next.ISR, live); len(isr) > 0 {
		next.ISR = isr
	}

	if cur.Leader < 0 || !live[cur.Leader] || !slices.Contains(next.ISR, cur.Leader) {
		next.Leader = firstLiveInSync(next.Replicas, next.ISR, live)
	}

	if target != nil && (len(next.Adding) > 0 || len(next.Removing) > 0) && containsAll(next.ISR, next.Adding) {
		if isr := intersect(next.ISR, target); firstLiveInSync(target, isr, live) >= 0 {
			if !slices.Contains(isr, next.Leader) || !live[next.Leader] {
				next.Leader = firstLiveInSync(target, isr, live)
			}
			next.Replicas, next.ISR = slices.Clone(target), isr
			next.Adding, next.Removing = nil, nil
		}
	}

	if next.Leader != cur.Leader {
		next.LeaderEpoch = cur.LeaderEpoch + 1
	}
	if sameState(cur, next) {
		return cur, false
	}
	next.PartitionEpoch = cur.PartitionEpoch + 1
	return next, true
}

func liveList(ids []int32, live map[int32]bool) []int32 {
	var out []int32
	for _, id := range ids {
		if live[id] {
			out = append(out, id)
		}
	}
	return out
}

// plan lists the writes that bring the metadata in line with the rules.
// Writes that depend on an earlier one (finishing a reassignment, deleting
// a topic) are planned only once the cache shows the earlier one applied.
func plan(v metaView, live map[int32]bool) []action {
	var acts []action
	names := make([]string, 0, len(v.topics))
	for name := range v.topics {
		names = append(names, name)
	}
	sort.Strings(names)
	known := map[string]bool{}
	for _, name := range names {
		t := v.topics[name]
		idHex := hex.EncodeToString(t.v.ID[:])
		known[idHex] = true
		parts := v.parts[idHex]
		if t.v.Deleting {
			acts = append(acts, planDeletion(v, t, parts)...)
			continue
		}
		finished := map[int32][]int32{}
		for p := range t.v.Partitions() {
			s, ok := parts[p]
			if !ok {
				acts = append(acts, action{kind: actCreatePart, key: partKey(t.v.ID, p),
					value: newPartitionState(name, p, t.v.Replicas[p], live)})
				continue
			}
			r, pending := v.reassign[topicPartition{name, p}]
			var target []int32
			if pending {
				target = r.v
			}
			if next, changed := reconcilePartition(s.v, target, live); changed {
				acts = append(acts, action{kind: actUpdatePart, key: partKey(t.v.ID, p), rev: s.rev, value: next})
				continue
			}
			if pending && reassignDone(s.v, target) {
				if slices.Equal(t.v.Replicas[p], target) {
					acts = append(acts, action{kind: actPurge, key: reassignKey(name, p), rev: r.rev})
				} else {
					finished[p] = target
				}
			}
		}
		if len(finished) > 0 {
			nt := t.v.clone()
			for p, r := range finished {
				nt.Replicas[p] = slices.Clone(r)
			}
			acts = append(acts, action{kind: actUpdateTopic, key: topicKey(name), rev: t.rev, value: nt})
		}
	}
	for idHex, parts := range v.parts {
		if known[idHex] {
			continue
		}
		for p, s := range parts { // left over from a deleted topic
			acts = append(acts, action{kind: actPurge, key: keyPrefixPart + idHex + "." + strconv.Itoa(int(p)), rev: s.rev})
		}
	}
	for tp, r := range v.reassign {
		if t, ok := v.topics[tp.topic]; !ok || tp.p >= t.v.Partitions() {
			acts = append(acts, action{kind: actPurge, key: reassignKey(tp.topic, tp.p), rev: r.rev})
		}
	}
	return acts
}

func planDeletion(v metaView, t versioned[TopicAssignment], parts map[int32]versioned[PartitionState]) []action {
	var acts []action
	if len(parts) > 0 {
		for p, s := range parts {
			acts = append(acts, action{kind: actPurge, key: partKey(t.v.ID, p), rev: s.rev})
		}
		return acts
	}
	for tp, r := range v.reassign {
		if tp.topic == t.v.Name {
			acts = append(acts, action{kind: actPurge, key: reassignKey(tp.topic, tp.p), rev: r.rev})
		}
	}
	if len(acts) > 0 {
		return acts
	}
	return []action{{kind: actPurge, key: topicKey(t.v.Name), rev: t.rev}}
}
