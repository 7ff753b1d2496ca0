package storage

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Group commit. An append writes under mu and then waits here until an
// fsync has covered its last offset. There is no flusher goroutine on the
// sync path: the first waiter that finds no fsync running becomes the
// leader, snapshots the log end, runs fdatasync without holding any lock,
// publishes the new durable offset and wakes the others. Appends that land
// while an fsync runs are covered by the next one, so one fsync serves
// every append that arrived during the previous one: the group grows with
// the load and the fsync rate stays at about 1/fsync-latency.

// waitDurable returns once every offset below target is fsynced. gen is
// the truncation generation the caller's data was written in: if the log
// is truncated before the data is durable, the wait fails with
// errTruncated instead of waiting for offsets that may never come back.
func (p *Partition) waitDurable(target, gen int64) error {
	advanced, err := p.awaitDurable(target, gen)
	if advanced {
		// Outside syncMu: the callback must see no storage lock.
		p.fireOnDurable()
	}
	return err
}

// awaitDurable is waitDurable under syncMu; advanced reports that this
// caller moved the durable end.
func (p *Partition) awaitDurable(target, gen int64) (advanced bool, err error) {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	for p.durable < target {
		if p.syncErr != nil {
			return advanced, p.syncErr
		}
		if p.truncGen.Load() != gen {
			return advanced, errTruncated
		}
		if p.syncing {
			p.syncCond.Wait()
			continue
		}
		p.syncing = true
		p.syncMu.Unlock()
		end, syncGen, err := p.syncActive()
		p.syncMu.Lock()
		p.syncing = false
		switch {
		case errors.Is(err, ErrClosed):
			// Close fsyncs before it closes files, so nothing we wait for can
			// still be missing unless that final fsync failed (syncErr).
			if p.durable < target && p.syncErr == nil {
				p.syncErr = ErrClosed
			}
		case errors.Is(err, errTruncated):
			// The segment we meant to fsync was cut or removed; the loop
			// starts over against the new log.
		case err != nil:
			// After a failed fsync the kernel may have dropped the dirty
			// pages, so a retry can succeed without the data on disk. The
			// partition stops accepting writes instead (see markFailed).
			p.syncErr = fmt.Errorf("storage: fsync failed, partition stopped: %w", err)
			p.markFailed(p.syncErr)
		case syncGen != p.truncGen.Load():
			// A truncation ran during the fsync: end may lie beyond the
			// new log end, and data appended since is not covered.
		case end > p.durable:
			p.durable = end
			p.raiseDurableEnd(end)
			advanced = true
		}
		p.syncCond.Broadcast()
	}
	return advanced, nil
}

// syncActive fsyncs the active segment and returns the offset it covers
// and the truncation generation it belongs to. Earlier segments were
// fsynced when they rolled.
func (p *Partition) syncActive() (int64, int64, error) {
	p.mu.Lock()
	seg, end, gen := p.active, p.leo.Load(), p.truncGen.Load()
	p.mu.Unlock()
	if p.testSyncHook != nil {
		p.testSyncHook()
	}
	// Shared segMu keeps the file open for the fsync; retention could
	// otherwise close it if a roll made it a closed segment meanwhile.
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	if p.filesClosed {
		return 0, gen, ErrClosed
	}
	if p.truncGen.Load() != gen {
		// A truncation may have closed seg's file (it holds segMu
		// exclusively while it changes the generation).
		return 0, gen, errTruncated
	}
	if err := fdatasync(seg.log); err != nil {
		return 0, gen, err
	}
	p.syncs.Add(1)
	return end, gen, nil
}

// advanceDurable records that everything below off is on disk without an
// fsync of the active segment (a roll fsyncs the old one). Needs mu.
func (p *Partition) advanceDurable(off int64) {
	p.syncMu.Lock()
	if off > p.durable {
		p.durable = off
		p.raiseDurableEnd(off)
		p.fireDue = true
	}
	p.syncCond.Broadcast()
	p.syncMu.Unlock()
}

// raiseDurableEnd moves DurableEnd up to off (never down) and, unless the
// high watermark is external, the high watermark with it. It wakes
// NotifyAppend waiters: a leader waiting for followers also waits for its
// own fsync. Needs mu or syncMu, which is what keeps it from racing a
// truncation lowering both.
func (p *Partition) raiseDurableEnd(off int64) {
	for {
		cur := p.durEnd.Load()
		if off <= cur {
			return
		}
		if p.durEnd.CompareAndSwap(cur, off) {
			break
		}
	}
	if !p.externalHW.Load() {
		p.publishHW(off)
	}
	p.wakeAppend()
}

// fireOnDurable runs the OnDurable callback, if any, with the current
// durable end. It is called without storage locks; calls may overlap and
// arrive out of order, hence the callback takes the max.
func (p *Partition) fireOnDurable() {
	if fn := p.onDurable.Load(); fn != nil {
		(*fn)(p.durEnd.Load())
	}
}

// markFailed stops appends after an error that leaves the log in an
// unknown state on disk. The partition must be reopened to recover.
func (p *Partition) markFailed(err error) {
	p.failMu.Lock()
	if p.failed == nil {
		p.failed = err
		p.log.Error("storage: partition stopped accepting writes", "dir", p.dir, "err", err)
	}
	p.failMu.Unlock()
}

func (p *Partition) failure() error {
	p.failMu.Lock()
	defer p.failMu.Unlock()
	return p.failed
}

// publishHW raises the high watermark to off (never lowers it) and wakes
// long-polling readers.
func (p *Partition) publishHW(off int64) {
	for {
		cur := p.hw.Load()
		if off <= cur {
			return
		}
		if p.hw.CompareAndSwap(cur, off) {
			break
		}
	}
	p.wakeHW()
}

// wakeHW wakes Notify waiters.
func (p *Partition) wakeHW() {
	p.notifyMu.Lock()
	if p.notifyCh != nil {
		close(p.notifyCh)
		p.notifyCh = nil
	}
	p.notifyMu.Unlock()
}

// wakeAppend wakes NotifyAppend waiters. The flag keeps the append path
// off notifyMu while nobody waits: NotifyAppend sets it before its caller
// re-reads the log end, and the appender stores the log end before it
// reads the flag, so one of the two always sees the other.
func (p *Partition) wakeAppend() {
	if !p.appendWaiting.Load() {
		return
	}
	p.notifyMu.Lock()
	if p.appendCh != nil {
		close(p.appendCh)
		p.appendCh = nil
	}
	p.appendWaiting.Store(false)
	p.notifyMu.Unlock()
}

// Notify returns a channel that is closed the next time the high watermark
// advances or the partition closes. Long-polling fetches wait on it.
//
// The channel is made on demand, so appends allocate nothing when nobody
// is waiting. Check the high watermark after calling Notify, not before,
// to avoid missing an advance.
func (p *Partition) Notify() <-chan struct{} {
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	if p.notifyDone {
		return closedChan
	}
	if p.notifyCh == nil {
		p.notifyCh = make(chan struct{})
	}
	return p.notifyCh
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (p *Partition) closeNotify() {
	p.notifyMu.Lock()
	p.notifyDone = true
	if p.notifyCh != nil {
		close(p.notifyCh)
		p.notifyCh = nil
	}
	if p.appendCh != nil {
		close(p.appendCh)
		p.appendCh = nil
	}
	p.notifyMu.Unlock()
}

// Flush fsyncs everything appended so far.
func (p *Partition) Flush() error {
	for {
		p.mu.Lock()
		closed, end, gen := p.closed, p.leo.Load(), p.truncGen.Load()
		p.mu.Unlock()
		if closed {
			return ErrClosed
		}
		// A truncation during the wait changed what "everything" is; flush
		// the new log instead.
		if err := p.waitDurable(end, gen); !errors.Is(err, errTruncated) {
			return err
		}
	}
}

// intervalFlusher fsyncs the partition periodically under FlushInterval.
type intervalFlusher struct {
	stopCh chan struct{}
	done   chan struct{}
}

func (p *Partition) startFlusher(every time.Duration) *intervalFlusher {
	f := &intervalFlusher{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-f.stopCh:
				return
			case <-t.C:
				if err := p.Flush(); err != nil && !errors.Is(err, ErrClosed) {
					p.log.Error("storage: periodic flush failed", "dir", p.dir, "err", err)
				}
			}
		}
	}()
	return f
}

// stop ends the flusher and waits for it. It must not be called with
// Partition.mu held: a running Flush needs mu.
func (f *intervalFlusher) stop() {
	if f == nil {
		return
	}
	close(f.stopCh)
	<-f.done
}

// syncDir makes file creations, renames and deletions in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
