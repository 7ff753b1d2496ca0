package storage

import (
	"fmt"

	"github.com/sluice-io/sluice/broker/batch"
)

// SetOnDurable installs fn to be called after the durable end advances
// (group-commit fsync, roll, Flush, and in the modes without write-path
// fsync after every append), with the new DurableEnd. fn runs with no
// storage lock held and must not block; calls may overlap and arrive out of
// order, so fn should keep the maximum it has seen. nil removes it.
//
// It is not a Config field because Config must stay comparable.
func (p *Partition) SetOnDurable(fn func(durableEnd int64)) {
	if fn == nil {
		p.onDurable.Store(nil)
		return
	}
	p.onDurable.Store(&fn)
}

// DurableEnd is the offset below which everything is on disk as the flush
// mode promises: under FlushSync fsynced, otherwise the log end offset. A
// leader counts its own copy towards the high watermark only up to here.
func (p *Partition) DurableEnd() int64 { return p.durEnd.Load() }

// SetHighWatermark raises the high watermark to min(off, DurableEnd()) if
// that is above it, and wakes Notify waiters. It never lowers it (only
// TruncateTo does). It is meant for ExternalHW, where nothing else moves
// the high watermark; without it appends keep moving it too.
func (p *Partition) SetHighWatermark(off int64) {
	// syncMu orders this with truncation, which lowers durEnd and hw
	// together under it; without it a stale durEnd could lift the HW past
	// a freshly truncated log end.
	p.syncMu.Lock()
	p.publishHW(min(off, p.durEnd.Load()))
	p.syncMu.Unlock()
}

// NotifyAppend returns a channel that is closed the next time the log end
// offset or the durable end advances, or the log is truncated, or the
// partition closes. A leader's long poll of follower fetches waits on it.
// Like Notify the channel is made on demand, and the log end should be
// checked after calling NotifyAppend, not before.
func (p *Partition) NotifyAppend() <-chan struct{} {
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	if p.notifyDone {
		return closedChan
	}
	if p.appendCh == nil {
		p.appendCh = make(chan struct{})
		p.appendWaiting.Store(true)
	}
	return p.appendCh
}

// AppendReplica appends batches exactly as the leader stored them: base
// offsets and partition leader epochs are kept, not assigned. The first
// batch must start at LogEndOffset and each following one where the
// previous ended, otherwise nothing is written and the error is
// ErrOffsetMismatch. CRCs are checked as for Append.
//
// Idempotent-producer state is updated from the batch headers without
// sequence checks, as a replay of the log does: the leader already checked
// them, and a follower that becomes leader must recognise retries of
// batches it only replicated. The leader-epoch cache learns new epochs,
// segments roll as for Append, and the returned Pending is waited on as
// with AppendAsync. records is not kept.
func (p *Partition) AppendReplica(records []byte) (AppendInfo, Pending, error) {
	if err := validateRecords(records); err != nil {
		return AppendInfo{}, Pending{}, err
	}
	p.mu.Lock()
	info, pending, err := p.appendReplicaLocked(records)
	fire := p.takeFire()
	p.mu.Unlock()
	if fire {
		p.fireOnDurable()
	}
	return info, pending, err
}

func (p *Partition) appendReplicaLocked(records []byte) (info AppendInfo, pending Pending, err error) {
	if p.closed {
		return info, pending, ErrClosed
	}
	if err := p.failure(); err != nil {
		return info, pending, err
	}
	now := nowMs()
	leo := p.leo.Load()
	next := leo
	epochs, epochsChanged := p.epochs, false
	for rest := records; len(rest) > 0; {
		h, _ := batch.ParseHeader(rest)
		if h.BaseOffset != next {
			return info, pending, fmt.Errorf("%w: batch at byte %d has base offset %d, expected %d",
				ErrOffsetMismatch, len(records)-len(rest), h.BaseOffset, next)
		}
		if e, changed := epochsWith(epochs, h.LeaderEpoch, h.BaseOffset); changed {
			epochs, epochsChanged = e, true
		}
		next = h.NextOffset()
		rest = rest[h.Size():]
	}
	if p.shouldRoll(len(records), next, now) {
		if err := p.roll(now); err != nil {
			return info, pending, err
		}
	}
	if epochsChanged {
		// Before the data, as in appendLocked.
		if err := p.setEpochs(epochs); err != nil {
			return info, pending, err
		}
	}
	if err := p.writeActive(records, p.active.size.Load(), now, true); err != nil {
		return info, pending, err
	}
	p.advanceLogEnd(next)
	info = AppendInfo{BaseOffset: leo, LastOffset: next - 1, LogAppendTime: now, LogStartOffset: p.lso.Load()}
	return info, p.pendingUntil(next), nil
}
