package cluster

import (
	"slices"
	"testing"
)

func liveSet(ids ...int32) map[int32]bool {
	m := map[int32]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func TestNewPartitionState(t *testing.T) {
	for _, tc := range []struct {
		name       string
		live       map[int32]bool
		wantLeader int32
		wantISR    []int32
	}{
		{"all live", liveSet(1, 2, 3), 1, []int32{1, 2, 3}},
		{"preferred dead", liveSet(2, 3), 2, []int32{2, 3}},
		{"none live", liveSet(), -1, []int32{1, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newPartitionState("t", 0, []int32{1, 2, 3}, tc.live)
			if s.Leader != tc.wantLeader || !slices.Equal(s.ISR, tc.wantISR) || s.LeaderEpoch != 0 {
				t.Errorf("got %+v, want leader %d isr %v epoch 0", s, tc.wantLeader, tc.wantISR)
			}
		})
	}
}

func TestReconcilePartition(t *testing.T) {
	base := PartitionState{Topic: "t", Leader: 1, LeaderEpoch: 4, ISR: []int32{1, 2, 3}, Replicas: []int32{1, 2, 3}, PartitionEpoch: 9}
	with := func(f func(*PartitionState)) PartitionState {
		s := base.clone()
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name    string
		cur     PartitionState
		target  []int32
		live    map[int32]bool
		want    PartitionState
		changed bool
	}{
		{"nothing to do", base, nil, liveSet(1, 2, 3), base, false},
		{"follower dies", base, nil, liveSet(1, 3),
			with(func(s *PartitionState) { s.ISR = []int32{1, 3}; s.PartitionEpoch++ }), true},
		{"leader dies", base, nil, liveSet(2, 3),
			with(func(s *PartitionState) { s.Leader, s.LeaderEpoch, s.ISR = 2, 5, []int32{2, 3}; s.PartitionEpoch++ }), true},
		{"leader dies, next replica out of sync", with(func(s *PartitionState) { s.ISR = []int32{1, 3} }), nil, liveSet(2, 3),
			with(func(s *PartitionState) { s.Leader, s.LeaderEpoch, s.ISR = 3, 5, []int32{3}; s.PartitionEpoch++ }), true},
		{"last ISR member dies: kept, no leader", with(func(s *PartitionState) { s.ISR = []int32{1} }), nil, liveSet(2, 3),
			with(func(s *PartitionState) { s.Leader, s.LeaderEpoch, s.ISR = -1, 5, []int32{1}; s.PartitionEpoch++ }), true},
		{"every ISR member dies at once: all kept, no leader", base, nil, liveSet(4),
			with(func(s *PartitionState) { s.Leader, s.LeaderEpoch = -1, 5; s.PartitionEpoch++ }), true},
		{"after they all died, any ISR member that returns leads", with(func(s *PartitionState) { s.Leader, s.LeaderEpoch = -1, 5 }), nil, liveSet(3),
			with(func(s *PartitionState) { s.Leader, s.LeaderEpoch, s.ISR = 3, 6, []int32{3}; s.PartitionEpoch++ }), true},
		{"out-of-sync replicas are never elected", with(func(s *PartitionState) { s.Leader, s.ISR = -1, []int32{1} }), nil, liveSet(2, 3),
			with(func(s *PartitionState) { s.Leader, s.ISR = -1, []int32{1} }), false},
		{"last ISR member comes back", with(func(s *PartitionState) { s.Leader, s.ISR = -1, []int32{1} }), nil, liveSet(1, 2),
			with(func(s *PartitionState) { s.Leader, s.LeaderEpoch, s.ISR = 1, 5, []int32{1}; s.PartitionEpoch++ }), true},
		{"reassignment starts", base, []int32{4, 2, 3}, liveSet(1, 2, 3, 4),
			with(func(s *PartitionState) {
				s.Replicas, s.Adding, s.Removing = []int32{4, 2, 3, 1}, []int32{4}, []int32{1}
				s.PartitionEpoch++
			}), true},
		{"reassignment waits for the added replica", with(func(s *PartitionState) {
			s.Replicas, s.Adding, s.Removing = []int32{4, 2, 3, 1}, []int32{4}, []int32{1}
		}), []int32{4, 2, 3}, liveSet(1, 2, 3, 4), with(func(s *PartitionState) {
			s.Replicas, s.Adding, s.Removing = []int32{4, 2, 3, 1}, []int32{4}, []int32{1}
		}), false},
		{"reassignment completes and moves the leader", with(func(s *PartitionState) {
			s.Replicas, s.Adding, s.Removing, s.ISR = []int32{4, 2, 3, 1}, []int32{4}, []int32{1}, []int32{1, 2, 3, 4}
		}), []int32{4, 2, 3}, liveSet(1, 2, 3, 4), with(func(s *PartitionState) {
			s.Replicas, s.ISR, s.Leader, s.LeaderEpoch = []int32{4, 2, 3}, []int32{2, 3, 4}, 4, 5
			s.PartitionEpoch++
		}), true},
		{"reorder only keeps the leader", base, []int32{3, 2, 1}, liveSet(1, 2, 3),
			with(func(s *PartitionState) { s.Replicas = []int32{3, 2, 1}; s.PartitionEpoch++ }), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := reconcilePartition(tc.cur, tc.target, tc.live)
			if changed != tc.changed || !sameState(got, tc.want) || got.PartitionEpoch != tc.want.PartitionEpoch {
				t.Errorf("got %+v (changed %v)\nwant %+v (changed %v)", got, changed, tc.want, tc.changed)
			}
		})
	}
}

func TestPlanDeletionOrder(t *testing.T) {
	topic := TopicAssignment{Name: "gone", ID: [16]byte{7}, Replicas: [][]int32{{1}, {1}}, Deleting: true}
	v := metaView{
		topics:   map[string]versioned[TopicAssignment]{"gone": {topic, 5}},
		parts:    map[string]map[int32]versioned[PartitionState]{},
		reassign: map[topicPartition]versioned[[]int32]{{"gone", 1}: {[]int32{2}, 8}},
	}
	idHex := "07000000000000000000000000000000"
	v.parts[idHex] = map[int32]versioned[PartitionState]{0: {PartitionState{}, 6}, 1: {PartitionState{}, 7}}
	kinds := func(acts []action) []string {
		var out []string
		for _, a := range acts {
			out = append(out, a.kind.String()+" "+a.key)
		}
		slices.Sort(out)
		return out
	}
	if got := kinds(plan(v, liveSet(1))); !slices.Equal(got, []string{"purge part." + idHex + ".0", "purge part." + idHex + ".1"}) {
		t.Errorf("with partitions left: %v", got)
	}
	v.parts = map[string]map[int32]versioned[PartitionState]{}
	if got := kinds(plan(v, liveSet(1))); !slices.Equal(got, []string{"purge reassign.gone.1"}) {
		t.Errorf("with a request left: %v", got)
	}
	v.reassign = map[topicPartition]versioned[[]int32]{}
	if got := kinds(plan(v, liveSet(1))); !slices.Equal(got, []string{"purge topic.gone"}) {
		t.Errorf("at last: %v", got)
	}
}

func TestPlanRemovesOrphans(t *testing.T) {
	v := metaView{
		topics:   map[string]versioned[TopicAssignment]{},
		parts:    map[string]map[int32]versioned[PartitionState]{"ab": {0: {PartitionState{}, 3}}},
		reassign: map[topicPartition]versioned[[]int32]{{"nope", 0}: {[]int32{1}, 4}},
	}
	acts := plan(v, liveSet(1))
	if len(acts) != 2 || acts[0].kind != actPurge || acts[1].kind != actPurge {
		t.Errorf("plan = %+v, want two purges", acts)
	}
}
