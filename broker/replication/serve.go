package replication

import (
	"fmt"
	"reflect"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/storage"
)

// fetchVersion is the FetchRequest version replication speaks: v15 names
// the follower in ReplicaState, v13+ names topics by id, v12+ carries
// LastFetchedEpoch and DivergingEpoch.
const fetchVersion = 15

// fetchSubject is where the leader node id serves follower fetches.
func fetchSubject(clusterName string, leader int32) string {
	return fmt.Sprintf("sluice.%s.repl.fetch.%d", clusterName, leader)
}

// servedPart is one partition of a follower fetch being answered.
type servedPart struct {
	req  *kmsg.FetchRequestTopicPartition
	resp *kmsg.FetchResponseTopicPartition
	r    *replica
	part *storage.Partition
}

// serveFetch answers one follower fetch. It runs on its own goroutine
// because it may long-poll for new data.
func (m *Manager) serveFetch(msg *nats.Msg) {
	req := kmsg.NewPtrFetchRequest()
	req.Version = fetchVersion
	if err := req.ReadFrom(msg.Data); err != nil {
		m.log.Warn("malformed replica fetch", "err", err)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.Version = fetchVersion
		resp.ErrorCode = kerr.InvalidRequest.Code
		m.respond(msg, resp)
		return
	}
	follower := req.ReplicaState.ID
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	resp.Version = fetchVersion

	var parts []servedPart
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt, st := &req.Topics[i], &resp.Topics[i]
		*st = kmsg.NewFetchResponseTopic()
		st.TopicID = rt.TopicID
		st.Partitions = make([]kmsg.FetchResponseTopicPartition, len(rt.Partitions))
		for j := range rt.Partitions {
			sp := &st.Partitions[j]
			*sp = kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rt.Partitions[j].Partition
			sp.RecordBatches = []byte{}
			r := m.replicaByID(rt.TopicID, sp.Partition)
			if r == nil {
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				continue
			}
			parts = append(parts, servedPart{req: &rt.Partitions[j], resp: sp, r: r})
		}
	}

	// First pass: epoch checks, divergence, follower bookkeeping.
	now := time.Now()
	live := parts[:0]
	for i := range parts {
		if m.checkFollowerFetch(follower, &parts[i], now) {
			live = append(live, parts[i])
		}
	}
	parts = live

	maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	var timer *time.Timer
	budget := int(req.MaxBytes)
	for {
		chs := make([]<-chan struct{}, 0, len(parts))
		total := 0
		for i := range parts {
			sp := &parts[i]
			chs = append(chs, sp.part.NotifyAppend())
			limit := min(int(sp.req.PartitionMaxBytes), budget-total)
			if limit <= 0 {
				continue
			}
			data, err := sp.part.ReadReplica(nil, sp.req.FetchOffset, limit)
			if err != nil {
				sp.resp.ErrorCode = kerr.KafkaStorageError.Code
				m.log.Warn("replica read failed", "topic", sp.r.key.topic, "partition", sp.r.key.partition, "err", err)
				continue
			}
			if len(data) > limit && total > 0 {
				continue // the first batch alone is over the budget; next time
			}
			sp.resp.RecordBatches = data
			total += len(data)
		}
		if total > 0 || maxWait <= 0 || len(chs) == 0 {
			break
		}
		if timer == nil {
			timer = time.NewTimer(maxWait)
			defer timer.Stop()
		}
		if !waitAny(chs, timer.C, m.ctx.Done()) {
			break
		}
	}
	for i := range parts {
		sp := &parts[i]
		sp.resp.HighWatermark = sp.part.HighWatermark()
		sp.resp.LastStableOffset = sp.resp.HighWatermark
		sp.resp.LogStartOffset = sp.part.LogStartOffset()
	}
	m.respond(msg, resp)
}

// checkFollowerFetch validates one partition of a follower fetch and
// records the follower's position. It returns false when the answer is an
// error or a divergence, with no records.
func (m *Manager) checkFollowerFetch(follower int32, sp *servedPart, now time.Time) bool {
	r, req, resp := sp.r, sp.req, sp.resp
	r.mu.Lock()
	switch {
	case r.role != roleLeader:
		r.mu.Unlock()
		resp.ErrorCode = kerr.NotLeaderForPartition.Code
		return false
	case req.CurrentLeaderEpoch < r.epoch:
		r.mu.Unlock()
		resp.ErrorCode = kerr.FencedLeaderEpoch.Code
		return false
	case req.CurrentLeaderEpoch > r.epoch:
		r.mu.Unlock()
		resp.ErrorCode = kerr.UnknownLeaderEpoch.Code
		return false
	}
	part := r.part
	resp.HighWatermark = part.HighWatermark()
	resp.LogStartOffset = part.LogStartOffset()

	// Divergence: the follower's last epoch must end in our log no
	// earlier than where the follower's log ends.
	if req.LastFetchedEpoch >= 0 && req.FetchOffset > part.LogStartOffset() {
		epoch, end := part.EndOffsetForEpoch(req.LastFetchedEpoch)
		if epoch != req.LastFetchedEpoch || end < req.FetchOffset {
			r.mu.Unlock()
			if epoch < 0 {
				end = part.LogStartOffset()
			}
			resp.DivergingEpoch.Epoch = epoch
			resp.DivergingEpoch.EndOffset = end
			return false
		}
	}
	if req.FetchOffset < part.LogStartOffset() || req.FetchOffset > part.LogEndOffset() {
		r.mu.Unlock()
		resp.ErrorCode = kerr.OffsetOutOfRange.Code
		return false
	}
	expand := r.followerFetchedLocked(follower, req.FetchOffset, now)
	var isr []int32
	if expand {
		isr = append(append(isr, r.isr...), follower)
	}
	r.mu.Unlock()
	r.updateHW()
	if expand {
		r.proposeISR(isr, "expand")
	}
	sp.part = part
	return true
}

// respond sends an encoded FetchResponse as the reply.
func (m *Manager) respond(msg *nats.Msg, resp *kmsg.FetchResponse) {
	if err := msg.Respond(resp.AppendTo(nil)); err != nil && m.ctx.Err() == nil {
		m.log.Debug("replica fetch reply failed", "err", err)
	}
}

// waitAny blocks until one of chs is closed (true), or timeout fires or
// done is closed (false).
func waitAny(chs []<-chan struct{}, timeout <-chan time.Time, done <-chan struct{}) bool {
	cases := make([]reflect.SelectCase, 0, len(chs)+2)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timeout)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(done)})
	for _, ch := range chs {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	chosen, _, _ := reflect.Select(cases)
	return chosen >= 2
}
