package replication

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/storage"
)

// fetcher copies the partitions this node follows on one leader node. It
// keeps one fetch in flight: the next fetch reports the offsets the last
// one made durable, which is what moves the leader's high watermark.
type fetcher struct {
	m      *Manager
	leader int32

	mu    sync.Mutex
	parts map[*replica]struct{}
	wake  chan struct{}   // cap 1: the partition set changed
	ctx   context.Context // ends when the fetcher is closed
	stop  context.CancelFunc
}

func newFetcher(m *Manager, leader int32) *fetcher {
	f := &fetcher{
		m:      m,
		leader: leader,
		parts:  make(map[*replica]struct{}),
		wake:   make(chan struct{}, 1),
	}
	f.ctx, f.stop = context.WithCancel(m.ctx)
	m.wg.Go(f.run)
	return f
}

func (f *fetcher) add(r *replica) {
	f.mu.Lock()
	f.parts[r] = struct{}{}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// remove drops r and reports whether the fetcher has nothing left.
func (f *fetcher) remove(r *replica) (empty bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.parts, r)
	return len(f.parts) == 0
}

// close stops the fetcher without waiting for it: a fetch in flight to a
// dead leader must not hold up the failover that made this replica stop
// following it. Manager.Close waits for every fetcher.
func (f *fetcher) close() { f.stop() }

// fetchTarget is one partition of a fetch, with the epoch it was asked in.
type fetchTarget struct {
	r     *replica
	epoch int32
}

func (f *fetcher) run() {
	subject := fetchSubject(f.m.node.ClusterName(), f.leader)
	var targets []fetchTarget
	backoff := time.Duration(0)
	for {
		if backoff > 0 {
			select {
			case <-f.ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		if f.ctx.Err() != nil {
			return
		}
		targets = f.targets(targets[:0])
		if len(targets) == 0 {
			select {
			case <-f.ctx.Done():
				return
			case <-f.wake:
			}
			continue
		}
		req := f.request(targets)
		ctx, cancel := context.WithTimeout(f.ctx, f.m.cfg.FetchWait+2*time.Second)
		msg, err := f.m.conn.RequestWithContext(ctx, subject, req.AppendTo(nil))
		cancel()
		if f.ctx.Err() != nil {
			return
		}
		if err != nil {
			f.m.log.Debug("replica fetch failed", "leader", f.leader, "err", err)
			backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
			continue
		}
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.Version = fetchVersion
		if err := resp.ReadFrom(msg.Data); err != nil {
			f.m.log.Warn("malformed replica fetch response", "leader", f.leader, "err", err)
			backoff = time.Second
			continue
		}
		if f.apply(targets, resp) {
			backoff = 0
		} else {
			// Every partition failed (typically the leader moved and the
			// metadata has not reached us yet): do not spin.
			backoff = min(max(2*backoff, 50*time.Millisecond), 500*time.Millisecond)
		}
	}
}

// targets lists the partitions still followed on this leader, with their
// epochs.
func (f *fetcher) targets(dst []fetchTarget) []fetchTarget {
	f.mu.Lock()
	defer f.mu.Unlock()
	for r := range f.parts {
		r.mu.Lock()
		if r.role == roleFollower && r.leader == f.leader {
			dst = append(dst, fetchTarget{r: r, epoch: r.epoch})
		}
		r.mu.Unlock()
	}
	return dst
}

func (f *fetcher) request(targets []fetchTarget) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = fetchVersion
	req.ReplicaID = f.m.self
	req.ReplicaState.ID = f.m.self
	req.ReplicaState.Epoch = -1
	req.MaxWaitMillis = int32(f.m.cfg.FetchWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = f.m.maxFetchBytes()
	req.SessionID, req.SessionEpoch = 0, -1
	byTopic := make(map[[16]byte]int, 4)
	for _, t := range targets {
		i, ok := byTopic[t.r.topicID]
		if !ok {
			i = len(req.Topics)
			byTopic[t.r.topicID] = i
			rt := kmsg.NewFetchRequestTopic()
			rt.TopicID = t.r.topicID
			req.Topics = append(req.Topics, rt)
		}
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition = t.r.key.partition
		p.CurrentLeaderEpoch = t.epoch
		p.FetchOffset = t.r.part.LogEndOffset()
		p.LastFetchedEpoch = t.r.part.LatestEpoch()
		p.LogStartOffset = t.r.part.LogStartOffset()
		p.PartitionMaxBytes = f.m.cfg.PartitionFetchBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
	}
	return req
}

// apply stores what the leader sent and waits until it is durable. It
// reports whether any partition made progress or could go on.
func (f *fetcher) apply(targets []fetchTarget, resp *kmsg.FetchResponse) (ok bool) {
	type idKey struct {
		topicID   [16]byte
		partition int32
	}
	byKey := make(map[idKey]fetchTarget, len(targets))
	for _, t := range targets {
		byKey[idKey{t.r.topicID, t.r.key.partition}] = t
	}
	var pendings []storage.Pending
	type hwUpdate struct {
		part *storage.Partition
		hw   int64
	}
	var hws []hwUpdate
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			t, found := byKey[idKey{rt.TopicID, rp.Partition}]
			if !found {
				continue
			}
			pending, progressed := f.applyPartition(t, rp)
			if progressed {
				ok = true
				hws = append(hws, hwUpdate{t.r.part, rp.HighWatermark})
			}
			if pending != (storage.Pending{}) {
				pendings = append(pendings, pending)
			}
		}
	}
	// Partitions fsync independently; waiting in parallel costs one
	// fsync of latency rather than one per partition.
	var wg sync.WaitGroup
	for _, p := range pendings[min(1, len(pendings)):] {
		wg.Go(func() { _ = p.Wait() })
	}
	if len(pendings) > 0 {
		_ = pendings[0].Wait()
	}
	wg.Wait()
	// The high watermark may only cover what is durable here, so it is
	// set after the waits.
	for _, u := range hws {
		u.part.SetHighWatermark(min(u.hw, u.part.LogEndOffset()))
	}
	return ok
}

// applyPartition handles one partition of a fetch response.
func (f *fetcher) applyPartition(t fetchTarget, rp *kmsg.FetchResponseTopicPartition) (storage.Pending, bool) {
	r := t.r
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.mu.Lock()
	current := r.role == roleFollower && r.leader == f.leader && r.epoch == t.epoch
	r.mu.Unlock()
	if !current {
		return storage.Pending{}, false // the role changed while we fetched
	}
	part := r.part
	log := f.m.log.With("topic", r.key.topic, "partition", r.key.partition, "leader", f.leader)

	if rp.DivergingEpoch.EndOffset >= 0 {
		target := rp.DivergingEpoch.EndOffset
		if rp.DivergingEpoch.Epoch >= 0 {
			_, ownEnd := part.EndOffsetForEpoch(rp.DivergingEpoch.Epoch)
			if ownEnd >= 0 {
				target = min(target, ownEnd)
			}
		}
		end, err := part.TruncateTo(target)
		if err != nil {
			log.Error("truncating a divergent log failed", "to", target, "err", err)
			return storage.Pending{}, false
		}
		log.Info("truncated a divergent log tail", "epoch", rp.DivergingEpoch.Epoch, "to", end)
		f.m.metrics.truncations.Inc()
		return storage.Pending{}, true
	}
	switch rp.ErrorCode {
	case 0:
	case kerr.OffsetOutOfRange.Code:
		if rp.LogStartOffset > part.LogEndOffset() {
			if err := part.TruncateFullyAndStartAt(rp.LogStartOffset); err != nil {
				log.Error("restarting the log at the leader's start failed", "err", err)
				return storage.Pending{}, false
			}
			log.Info("log restarted at the leader's log start", "offset", rp.LogStartOffset)
			return storage.Pending{}, true
		}
		// Our log ends past the leader's and the epochs did not tell us
		// where they part: keep what the leader has acknowledged.
		end, err := part.TruncateTo(rp.HighWatermark)
		if err != nil {
			log.Error("truncating to the leader's high watermark failed", "err", err)
			return storage.Pending{}, false
		}
		log.Warn("log ended past the leader's; truncated to its high watermark", "to", end)
		return storage.Pending{}, true
	default:
		log.Debug("replica fetch refused", "error", kerr.ErrorForCode(rp.ErrorCode))
		return storage.Pending{}, false
	}

	var pending storage.Pending
	if len(rp.RecordBatches) > 0 {
		_, p, err := part.AppendReplica(rp.RecordBatches)
		switch {
		case errors.Is(err, storage.ErrOffsetMismatch):
			log.Warn("fetched data does not start at our log end; refetching", "log_end", part.LogEndOffset())
			return storage.Pending{}, false
		case err != nil:
			log.Error("appending fetched data failed", "err", err)
			return storage.Pending{}, false
		}
		pending = p
	}
	return pending, true
}
