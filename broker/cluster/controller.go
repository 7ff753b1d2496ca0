package cluster

// The controller lease is the key "controller" in sluice_live: whoever
// Creates it is the controller, renews it with an Update at its revision
// every heartbeat interval, and has lost it as soon as an Update fails on
// the revision. The key expires with the bucket's MaxAge when the holder
// stops renewing; peers also purge it (at its revision, so they cannot
// remove a fresh renewal) when the holder's own liveness key is gone.
// The holder gives up by itself when it could not renew for
// SessionTimeout - interval, before the key can expire under it.
//
// Exactly one controller at a time is as strong as the KV CAS; the partition
// writes are CAS too, so a controller that lost the lease a moment ago can at
// worst write a state computed from the current one.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

type controller struct {
	meta *MetaStore
	live *liveness
	log  *slog.Logger

	// Owned by the run goroutine (and by resign, after run returned).
	rev       uint64
	epoch     uint64
	renewedAt time.Time
	held      atomic.Bool
}

func newController(meta *MetaStore, live *liveness, log *slog.Logger) *controller {
	return &controller{meta: meta, live: live, log: log}
}

func (c *controller) isController() bool { return c.held.Load() }

func (c *controller) run(ctx context.Context) {
	metaCh, unsubMeta := c.meta.Subscribe()
	defer unsubMeta()
	liveCh, unsubLive := c.live.subscribe()
	defer unsubLive()
	tick := time.NewTicker(c.live.interval)
	defer tick.Stop()
	for {
		c.campaign(ctx)
		// A controller that does not see its own heartbeat has a liveness
		// view in flux (its watch is being reloaded, or the liveness stream
		// just changed leader and expired every heartbeat at once): deciding
		// who is dead from it would move leaders off live nodes.
		if c.held.Load() && c.live.isLive(c.live.self.ID) {
			c.reconcile(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-metaCh:
		case <-liveCh:
		case <-tick.C:
		}
	}
}

func (c *controller) record() []byte {
	b, _ := json.Marshal(controllerRecord{ID: c.live.self.ID, Incarnation: c.live.self.Incarnation, Epoch: c.epoch})
	return b
}

// campaign renews the lease when held, and otherwise takes it when nobody
// live holds it.
func (c *controller) campaign(ctx context.Context) {
	now := time.Now()
	if c.held.Load() {
		if now.Sub(c.renewedAt) < c.live.interval {
			return
		}
		actx, cancel := context.WithTimeout(ctx, c.live.interval)
		rev, err := c.live.kv.Update(actx, keyController, c.record(), c.rev)
		cancel()
		switch {
		case err == nil:
			c.rev, c.renewedAt = rev, now
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
			c.lose("lease taken over", err)
		case now.Sub(c.renewedAt) > c.live.timeout-c.live.interval:
			c.lose("lease renewal failing", err)
		}
		return
	}
	cur, present := c.live.controller()
	if present && cur.v.ID != c.live.self.ID && c.live.isLive(cur.v.ID) {
		return
	}
	actx, cancel := context.WithTimeout(ctx, c.live.interval)
	defer cancel()
	if present {
		// A dead holder, or a lease of ours we no longer know the revision of.
		if err := c.live.kv.Purge(actx, keyController, jetstream.LastRevision(cur.rev)); err != nil {
			// Renewed or taken meanwhile, which the watch will tell; or
			// the cache missed the lease's expiry, which nothing would
			// tell, so ask the bucket.
			c.live.refreshController(actx, cur.rev)
			return
		}
	}
	c.epoch = 0
	rev, err := c.live.kv.Create(actx, keyController, c.record())
	if err != nil {
		return
	}
	c.rev, c.epoch, c.renewedAt = rev, rev, now
	c.held.Store(true)
	c.log.Info("became controller", "epoch", rev)
}

func (c *controller) lose(why string, err error) {
	c.held.Store(false)
	c.log.Info("lost the controller lease", "why", why, "err", err)
}

// resign gives the lease up at once so that a peer takes over without
// waiting for it to expire.
func (c *controller) resign(ctx context.Context) {
	if !c.held.Swap(false) {
		return
	}
	if err := c.live.kv.Purge(ctx, keyController, jetstream.LastRevision(c.rev)); err != nil {
		c.log.Debug("could not release the controller lease", "err", err)
	}
}

// reconcile carries out one plan. A CAS conflict is not an error: the
// newer value reaches the cache, which triggers the next reconcile.
func (c *controller) reconcile(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, c.live.timeout)
	defer cancel()
	for _, a := range plan(c.meta.view(), c.live.liveSet()) {
		if !c.held.Load() || rctx.Err() != nil {
			return
		}
		var err error
		switch a.kind {
		case actCreatePart:
			_, err = c.meta.createJSON(rctx, a.key, a.value)
		case actUpdatePart, actUpdateTopic:
			_, err = c.meta.casUpdate(rctx, a.key, a.value, a.rev)
		case actPurge:
			err = c.meta.purge(rctx, a.key, a.rev)
		}
		switch {
		case err == nil:
			c.log.Debug("controller wrote", "action", a.kind, "key", a.key)
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
			c.log.Debug("controller write lost a race", "action", a.kind, "key", a.key)
		default:
			c.log.Warn("controller write failed", "action", a.kind, "key", a.key, "err", err)
		}
	}
}
