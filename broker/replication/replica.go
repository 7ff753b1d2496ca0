package replication

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/cluster"
	"github.com/sluice-io/sluice/broker/storage"
)

// role is what this node does for a partition.
type role int

const (
	roleNone     role = iota // no leader, or not assigned here
	roleLeader               // serves clients and followers
	roleFollower             // fetches from the leader
)

// partKey names a partition.
type partKey struct {
	topic     string
	partition int32
}

// replica is this node's copy of one partition and its replication state.
type replica struct {
	m       *Manager
	key     partKey
	topicID [16]byte
	part    *storage.Partition

	// applyMu serializes applying fetched data with role changes, so that a
	// fetch answered by the old leader is never applied after this replica
	// has become leader itself.
	applyMu sync.Mutex

	mu       sync.Mutex
	role     role
	leader   int32 // the leader's node id; -1 when none
	epoch    int32 // leader epoch of the current role
	isr      []int32
	replicas []int32
	minISR   int
	// changed is closed (and replaced) whenever the role, epoch or ISR
	// changes, to wake acks=all producers waiting in AwaitReplicated.
	changed chan struct{}
	// Leader state.
	followers   map[int32]*followerState
	leaderStart int64 // log end when this node became leader
	isrChanging bool  // an ISR change is being written
}

// followerState is what a leader knows about one follower.
type followerState struct {
	end          int64 // the follower has (durably) every offset below end; -1 unknown
	lastFetch    time.Time
	lastFetchLEO int64     // the leader's log end at lastFetch
	caughtUp     time.Time // last time the follower had everything the leader had
}

// apply brings the replica's role in line with the partition's metadata.
func (r *replica) apply(ps cluster.PartitionState, minISR int) {
	self := r.m.self
	r.mu.Lock()
	r.minISR = minISR
	r.replicas = slices.Clone(ps.Replicas)
	switch {
	case ps.Leader == self:
		if r.role == roleLeader && r.epoch == ps.LeaderEpoch {
			if !slices.Equal(r.isr, ps.ISR) {
				r.isr = slices.Clone(ps.ISR)
				r.notifyChangeLocked()
			}
			r.mu.Unlock()
			r.updateHW()
			return
		}
		r.mu.Unlock()
		r.becomeLeader(ps)
	case ps.Leader >= 0:
		if r.role == roleFollower && r.leader == ps.Leader && r.epoch == ps.LeaderEpoch {
			r.isr = slices.Clone(ps.ISR)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		r.becomeFollower(ps)
	default:
		// Leaderless: nothing to do if this replica already has no role
		// at this epoch (reconcile passes come every second).
		idle := r.role == roleNone && r.epoch == ps.LeaderEpoch
		r.mu.Unlock()
		if !idle {
			r.stop(ps.LeaderEpoch)
		}
	}
}

// becomeLeader starts leading at ps.LeaderEpoch. Followers in the ISR are
// given a full lag time from now before they can be dropped, as in Kafka.
func (r *replica) becomeLeader(ps cluster.PartitionState) {
	r.m.unfollow(r)
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	now := time.Now()
	r.mu.Lock()
	r.endRoleLocked()
	r.role, r.leader, r.epoch = roleLeader, r.m.self, ps.LeaderEpoch
	r.isr = slices.Clone(ps.ISR)
	r.followers = make(map[int32]*followerState, len(ps.Replicas))
	for _, id := range ps.Replicas {
		if id != r.m.self {
			r.followers[id] = &followerState{end: -1, caughtUp: now}
		}
	}
	r.leaderStart = r.part.LogEndOffset()
	r.mu.Unlock()
	r.m.log.Info("leading partition", "topic", r.key.topic, "partition", r.key.partition, "epoch", ps.LeaderEpoch, "isr", ps.ISR, "log_end", r.leaderStart)
	r.m.metrics.leaderElections.Inc()
	r.updateHW()
}

// becomeFollower starts fetching from ps.Leader.
func (r *replica) becomeFollower(ps cluster.PartitionState) {
	r.m.unfollow(r)
	r.applyMu.Lock()
	r.mu.Lock()
	r.endRoleLocked()
	r.role, r.leader, r.epoch = roleFollower, ps.Leader, ps.LeaderEpoch
	r.isr = slices.Clone(ps.ISR)
	r.mu.Unlock()
	r.applyMu.Unlock()
	r.m.log.Debug("following partition", "topic", r.key.topic, "partition", r.key.partition, "leader", ps.Leader, "epoch", ps.LeaderEpoch)
	r.m.follow(r, ps.Leader)
}

// stop ends any role: the partition has no leader, or is no longer
// assigned here.
func (r *replica) stop(epoch int32) {
	r.m.unfollow(r)
	r.applyMu.Lock()
	r.mu.Lock()
	r.endRoleLocked()
	r.role, r.leader, r.epoch = roleNone, -1, epoch
	r.mu.Unlock()
	r.applyMu.Unlock()
}

// endRoleLocked drops leader state and wakes its waiters. Needs mu.
func (r *replica) endRoleLocked() {
	r.notifyChangeLocked()
	r.followers = nil
	r.isrChanging = false
}

// notifyChangeLocked wakes everyone waiting on changed. Needs mu.
func (r *replica) notifyChangeLocked() {
	if r.changed != nil {
		close(r.changed)
	}
	r.changed = make(chan struct{})
}

// awaitHW waits until the high watermark reaches end while this replica
// leads at epoch; see kafka.Cluster.AwaitReplicated.
func (r *replica) awaitHW(epoch int32, end int64, timeout time.Duration) error {
	var timer *time.Timer
	for {
		hwCh := r.part.Notify() // before the check, so no advance is missed
		r.mu.Lock()
		switch {
		case r.role != roleLeader || r.epoch != epoch:
			r.mu.Unlock()
			return broker.ErrNotLeader
		case r.part.HighWatermark() >= end:
			r.mu.Unlock()
			return nil
		case len(r.isr) < r.minISR:
			r.mu.Unlock()
			return broker.ErrNotEnoughReplicasAfterAppend
		}
		changed := r.changed
		r.mu.Unlock()
		if timer == nil {
			if timeout <= 0 {
				return broker.ErrReplicationTimeout
			}
			timer = time.NewTimer(timeout)
			defer timer.Stop()
		}
		select {
		case <-hwCh:
		case <-changed:
		case <-timer.C:
			return broker.ErrReplicationTimeout
		case <-r.m.ctx.Done():
			return broker.ErrNotLeader
		}
	}
}

// leaderOf returns the partition and epoch if this replica leads.
func (r *replica) leaderOf() (*storage.Partition, int32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.role == roleLeader:
		return r.part, r.epoch, nil
	case r.leader < 0:
		return nil, 0, broker.ErrLeaderNotAvailable
	default:
		return nil, 0, broker.ErrNotLeader
	}
}

// updateHW raises the high watermark to what every in-sync replica has:
// the smallest durable end over the ISR. A follower in the ISR that has
// not fetched since this node became leader holds it where it is.
func (r *replica) updateHW() {
	r.mu.Lock()
	if r.role != roleLeader {
		r.mu.Unlock()
		return
	}
	hw := r.part.DurableEnd()
	for _, id := range r.isr {
		if id == r.m.self {
			continue
		}
		f := r.followers[id]
		if f == nil || f.end < 0 {
			hw = min(hw, r.part.HighWatermark())
			continue
		}
		hw = min(hw, f.end)
	}
	r.mu.Unlock()
	r.part.SetHighWatermark(hw)
}

// followerFetched records a follower's fetch at offset and returns whether
// the follower should join the ISR. Needs mu, with r leading.
func (r *replica) followerFetchedLocked(id int32, offset int64, now time.Time) (expand bool) {
	f := r.followers[id]
	if f == nil {
		// A replica being added by a reassignment fetches before the
		// metadata naming it reaches us, or one we do not know at all.
		if !slices.Contains(r.replicas, id) {
			return false
		}
		f = &followerState{end: -1}
		r.followers[id] = f
	}
	leo := r.part.LogEndOffset()
	// Kafka's rule: a fetch at the leader's current end means caught up
	// now; one at the end the leader had at the previous fetch means
	// caught up as of that fetch.
	switch {
	case offset >= leo:
		f.caughtUp = now
	case offset >= f.lastFetchLEO && f.lastFetch.After(f.caughtUp):
		f.caughtUp = f.lastFetch
	}
	f.end, f.lastFetch, f.lastFetchLEO = offset, now, leo
	if slices.Contains(r.isr, id) || r.isrChanging {
		return false
	}
	return offset >= r.part.HighWatermark() && offset >= r.leaderStart
}

// proposeISR writes a new ISR to the partition's metadata, on the
// condition that this node still leads at the same epoch. It runs in the
// background; the metadata watch then applies the result.
func (r *replica) proposeISR(isr []int32, why string) {
	r.mu.Lock()
	if r.role != roleLeader || r.isrChanging {
		r.mu.Unlock()
		return
	}
	r.isrChanging = true
	epoch := r.epoch
	r.mu.Unlock()

	r.m.wg.Go(func() {
		ctx, cancel := context.WithTimeout(r.m.ctx, 5*time.Second)
		defer cancel()
		ps, err := r.m.node.Meta().UpdatePartition(ctx, r.key.topic, r.key.partition, func(cur cluster.PartitionState) (cluster.PartitionState, error) {
			if cur.Leader != r.m.self || cur.LeaderEpoch != epoch {
				return cur, errDeposed
			}
			cur.ISR = isr
			return cur, nil
		})
		r.mu.Lock()
		if r.role == roleLeader && r.epoch == epoch {
			r.isrChanging = false
			if err == nil {
				r.isr = slices.Clone(ps.ISR)
				r.notifyChangeLocked()
			}
		}
		r.mu.Unlock()
		switch {
		case err == nil:
			r.m.log.Info("ISR changed", "topic", r.key.topic, "partition", r.key.partition, "isr", isr, "why", why)
			if why == "shrink" {
				r.m.metrics.isrShrinks.Inc()
			} else {
				r.m.metrics.isrExpands.Inc()
			}
			r.updateHW()
		case errors.Is(err, errDeposed):
			r.m.log.Info("ISR change refused: no longer the leader", "topic", r.key.topic, "partition", r.key.partition, "epoch", epoch)
		default:
			r.m.log.Warn("ISR change failed", "topic", r.key.topic, "partition", r.key.partition, "err", err)
		}
	})
}

var errDeposed = errors.New("replication: this node no longer leads the partition at this epoch")

// checkLag drops followers from the ISR that have not caught up within
// the lag time.
func (r *replica) checkLag(now time.Time, lagMax time.Duration) {
	r.mu.Lock()
	if r.role != roleLeader || r.isrChanging {
		r.mu.Unlock()
		return
	}
	var keep []int32
	shrink := false
	for _, id := range r.isr {
		f := r.followers[id]
		if id != r.m.self && f != nil && now.Sub(f.caughtUp) > lagMax {
			shrink = true
			continue
		}
		keep = append(keep, id)
	}
	r.mu.Unlock()
	if shrink {
		r.proposeISR(keep, "shrink")
	}
}

// replicationLag reports, for a leader, how far the slowest in-sync follower is
// behind the log end (for metrics).
func (r *replica) replicationLag() (lag int64, underReplicated bool, leading bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.role != roleLeader {
		return 0, false, false
	}
	leo := r.part.LogEndOffset()
	for id, f := range r.followers {
		if !slices.Contains(r.isr, id) {
			continue
		}
		if f.end >= 0 {
			lag = max(lag, leo-f.end)
		}
	}
	return lag, len(r.isr) < len(r.replicas), true
}
