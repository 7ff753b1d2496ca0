package cluster

// A bucket watch feeds a local cache. nats.go implements a KV watch as an
// ordered push consumer: an R1 consumer the server places on a random
// replica of the stream. When that server stops, the client notices only
// after two missed idle heartbeats (10 s, fixed in nats.go), which would
// freeze this node's view of the cluster for that long after a peer dies.
// So the watch also compares, a few times per session timeout, the last
// revision it applied with the stream's last sequence; behind and not
// moving for two checks in a row means stalled, and the watch is opened
// again from the next revision. That check needs the stream to have a
// leader, which it does not while the dead server's Raft groups elect new
// ones, so the node also nudges its watches the moment it loses a route to
// a peer (see Node.watchRoutes): they reopen at once, on a live server.
//
// Reopening from the next revision is right for a bucket whose deletions
// stay in the stream as markers (sluice_meta). In a bucket whose keys
// expire (sluice_live), a key that expired while the watch was down is
// gone without a trace once its expiry marker has expired too, so such a
// watch reloads the whole bucket instead and replaces its cache with it
// (resync): resuming once left every node believing in a dead controller
// whose lease no longer existed, and no controller was ever elected again.

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-io/sluice/internal/jsretry"
)

type bucketWatch struct {
	kv     jetstream.KeyValue
	stream jetstream.Stream
	name   string
	check  time.Duration
	apply  func([]jetstream.KeyValueEntry)
	// resync, when set, is handed the bucket's whole current contents
	// after each reopen, in place of the revisions after the last one
	// applied (see the file comment); the cache drops every key not in it.
	resync func([]jetstream.KeyValueEntry)
	log    *slog.Logger

	w     jetstream.KeyWatcher
	rev   uint64        // last revision applied; owned by the watch goroutine after start
	nudge chan struct{} // cap 1: reopen now (a peer went away)
}

// reopenSoon asks the watch to reopen without waiting for the stall check.
func (bw *bucketWatch) reopenSoon() {
	select {
	case bw.nudge <- struct{}{}:
	default:
	}
}

// startBucketWatch loads the bucket's current contents through apply and
// then follows updates in a goroutine owned by wg until runCtx ends.
func startBucketWatch(ctx, runCtx context.Context, wg *sync.WaitGroup, bw *bucketWatch) error {
	w, err := openWatch(ctx, runCtx, jsretry.Do, bw.kv)
	if err != nil {
		return err
	}
	bw.w = w
	bw.nudge = make(chan struct{}, 1)
	initial, err := loadContents(ctx, w)
	if err != nil {
		_ = w.Stop()
		return err
	}
	bw.noteApplied(initial)
	bw.apply(initial)
	wg.Add(1)
	go func() {
		defer wg.Done()
		bw.follow(runCtx)
	}()
	return nil
}

// loadContents reads a new watch's initial values: each key's latest
// entry, up to the nil that marks their end.
func loadContents(ctx context.Context, w jetstream.KeyWatcher) ([]jetstream.KeyValueEntry, error) {
	var entries []jetstream.KeyValueEntry
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watch closed while loading")
			}
			if e == nil {
				return entries, nil
			}
			entries = append(entries, e)
		}
	}
}

// noteApplied moves rev past entries.
func (bw *bucketWatch) noteApplied(entries []jetstream.KeyValueEntry) {
	for _, e := range entries {
		if e != nil {
			bw.rev = max(bw.rev, e.Revision())
		}
	}
}

// openWatch opens a watch that lives until runCtx ends or it is stopped.
// nats.go ties the subscription to the context it was created with, so the
// creation timeout cannot be a deadline on that context: a timer cancels
// it instead, and a watch whose timer fired is discarded.
// retry is jsretry.Do or a variant with other attempt timeouts.
func openWatch(ctx, runCtx context.Context, retry func(context.Context, func(context.Context) error) error,
	kv jetstream.KeyValue, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	var w jetstream.KeyWatcher
	err := retry(ctx, func(attemptCtx context.Context) error {
		wctx, cancel := context.WithCancel(runCtx)
		stopTimer := context.AfterFunc(attemptCtx, cancel)
		var err error
		w, err = kv.WatchAll(wctx, opts...)
		if !stopTimer() {
			cancel()
			if err == nil {
				_ = w.Stop()
			}
			return errors.Join(context.DeadlineExceeded, err)
		}
		if err != nil {
			cancel()
		}
		return err
	})
	return w, err
}

func (bw *bucketWatch) follow(ctx context.Context) {
	defer func() { _ = bw.w.Stop() }()
	tick := time.NewTicker(bw.check)
	defer tick.Stop()
	updates := bw.w.Updates()
	batch := make([]jetstream.KeyValueEntry, 0, 64)
	var stalled int
	revAtCheck := bw.rev
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-updates:
			if !ok {
				updates = nil // reopened at the next check
				continue
			}
			batch = append(batch[:0], e)
			// Whatever already arrived is applied as one batch, so that
			// subscribers see a burst of writes as one change.
		drain:
			for len(batch) < cap(batch) {
				select {
				case e, ok := <-updates:
					if !ok {
						break drain
					}
					batch = append(batch, e)
				default:
					break drain
				}
			}
			bw.noteApplied(batch)
			bw.apply(batch)
		case <-bw.nudge:
			if bw.reopen(ctx) {
				updates = bw.w.Updates()
			} else {
				updates = nil // retried at the next check
			}
			stalled, revAtCheck = 0, bw.rev
		case <-tick.C:
			if updates != nil && !bw.behind(ctx, revAtCheck) {
				stalled = 0
			} else {
				stalled++
			}
			revAtCheck = bw.rev
			if stalled >= 2 || updates == nil {
				if bw.reopen(ctx) {
					updates = bw.w.Updates()
				}
				stalled = 0
			}
		}
	}
}

// behind tells whether the stream holds revisions past what was applied
// while nothing was applied since the last check.
func (bw *bucketWatch) behind(ctx context.Context, revAtCheck uint64) bool {
	if bw.rev != revAtCheck {
		return false
	}
	ictx, cancel := context.WithTimeout(ctx, bw.check)
	defer cancel()
	info, err := bw.stream.Info(ictx)
	if err != nil {
		return false // no stream leader right now; nothing to catch up from either
	}
	return info.State.LastSeq > bw.rev
}

// reopenAttempts are short because a watch is mostly reopened just after
// a server died: the request that creates the new watch's consumer is lost
// while the stream elects a new leader, and with Do's 750 ms and 1.5 s
// attempts the reopen, and with it the failover, waited 2.3 s where the
// election took about one.
func reopenAttempts(ctx context.Context, op func(context.Context) error) error {
	return jsretry.DoWithin(ctx, 250*time.Millisecond, 500*time.Millisecond, op)
}

func (bw *bucketWatch) reopen(ctx context.Context) bool {
	// Stop deletes the old consumer with a request that waits out nats.go's
	// 5 s timeout when the consumer's server is the one that died, so it
	// runs on its own; nothing reads the old watch after this.
	go func(old jetstream.KeyWatcher) { _ = old.Stop() }(bw.w)
	octx, cancel := context.WithTimeout(ctx, jsretry.AttemptTimeout)
	defer cancel()
	if bw.resync != nil {
		w, err := openWatch(octx, ctx, reopenAttempts, bw.kv)
		if err == nil {
			var contents []jetstream.KeyValueEntry
			if contents, err = loadContents(octx, w); err == nil {
				bw.noteApplied(contents)
				bw.resync(contents)
				bw.log.Info("reopened stalled watch", "bucket", bw.name, "keys", len(contents))
				bw.w = w
				return true
			}
			go func() { _ = w.Stop() }()
		}
		bw.log.Warn("could not reopen stalled watch", "bucket", bw.name, "err", err)
		return false
	}
	var opts []jetstream.WatchOpt
	if bw.rev > 0 {
		opts = append(opts, jetstream.ResumeFromRevision(bw.rev+1), jetstream.IncludeHistory())
	}
	w, err := openWatch(octx, ctx, reopenAttempts, bw.kv, opts...)
	if err != nil {
		bw.log.Warn("could not reopen stalled watch", "bucket", bw.name, "err", err)
		return false
	}
	bw.log.Info("reopened stalled watch", "bucket", bw.name, "from", bw.rev+1)
	bw.w = w
	return true
}
