package cluster

// Liveness: every node Puts node.<id> into sluice_live every
// SessionTimeout/3. The bucket's MaxAge is SessionTimeout and it has limit
// markers, so a key that stops being refreshed is removed by the server and
// every watcher receives a Purge: that is how a crashed node is noticed. A
// closing node purges its key itself, so peers react at once.
//
// The server sweeps expired messages lazily, so each watcher also keeps the
// local time it last saw a key and treats a key unseen for
// SessionTimeout + one heartbeat interval as dead. That local rule only
// applies while this node's own heartbeats keep arriving through the watch:
// a stalled watch (its consumer being moved after a server died) must not
// make every other node look dead.
//
// Routez-based detection (a route gone plus an old heartbeat) was left out:
// with in-process tests, a killed node's routes and its heartbeat stop at
// the same time, and the TTL already bounds detection to SessionTimeout.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-io/sluice/internal/jsretry"
)

const (
	keyPrefixNode = "node."
	keyController = "controller"
)

func nodeKey(id int32) string { return keyPrefixNode + strconv.Itoa(int(id)) }

// controllerRecord is the value of the controller lease.
type controllerRecord struct {
	ID          int32 `json:"id"`
	Incarnation int64 `json:"incarnation"`
	// Epoch is the revision of the Create that took the lease; it is 0 in
	// the Create itself (the revision is not known before) and filled by the
	// holder's first renewal.
	Epoch uint64 `json:"epoch,omitempty"`
}

type liveNode struct {
	info NodeInfo
	seen time.Time // when this node saw the heartbeat at rev arrive
	rev  uint64
}

type liveness struct {
	kv       jetstream.KeyValue
	watch    *bucketWatch
	self     NodeInfo
	timeout  time.Duration
	interval time.Duration
	log      *slog.Logger

	mu      sync.RWMutex
	nodes   map[int32]liveNode
	ctrl    versioned[controllerRecord]
	ctrlSet bool
	subs    map[int]chan struct{}
	nextSub int
	// heard is when the watch last delivered anything: a reloaded watch
	// went quiet then, so what it missed was written after it.
	heard time.Time
}

func newLiveness(kv jetstream.KeyValue, self NodeInfo, timeout time.Duration, log *slog.Logger) *liveness {
	return &liveness{
		kv:       kv,
		self:     self,
		timeout:  timeout,
		interval: timeout / 3,
		log:      log,
		nodes:    map[int32]liveNode{},
		subs:     map[int]chan struct{}{},
	}
}

func (l *liveness) start(ctx, runCtx context.Context, wg *sync.WaitGroup, stream jetstream.Stream) error {
	if err := l.beat(ctx); err != nil {
		return fmt.Errorf("cluster: first heartbeat: %w", err)
	}
	l.watch = &bucketWatch{kv: l.kv, stream: stream, name: liveBucket, check: l.interval / 2,
		apply: l.applyBatch, resync: l.replace, log: l.log}
	err := startBucketWatch(ctx, runCtx, wg, l.watch)
	if err != nil {
		return fmt.Errorf("cluster: watch %s: %w", liveBucket, err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.heartbeat(runCtx)
	}()
	return nil
}

func (l *liveness) beat(ctx context.Context) error {
	val, err := json.Marshal(l.self)
	if err != nil {
		return err
	}
	return jsretry.Do(ctx, func(ctx context.Context) error {
		_, err := l.kv.Put(ctx, nodeKey(l.self.ID), val)
		return err
	})
}

func (l *liveness) heartbeat(ctx context.Context) {
	tick := time.NewTicker(l.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		bctx, cancel := context.WithTimeout(ctx, l.timeout)
		if err := l.beat(bctx); err != nil && ctx.Err() == nil {
			l.log.Warn("heartbeat failed", "err", err)
		}
		cancel()
		l.sweep()
	}
}

// sweep drops nodes whose key the server has not expired yet although they
// stopped heartbeating (see the file comment).
func (l *liveness) sweep() {
	now := time.Now()
	l.mu.Lock()
	self, ok := l.nodes[l.self.ID]
	if !ok || now.Sub(self.seen) > l.timeout {
		l.mu.Unlock()
		return // our own watch is stale: it proves nothing about others
	}
	changed := false
	for id, n := range l.nodes {
		if now.Sub(n.seen) > l.timeout+l.interval {
			l.log.Info("node missed its heartbeats", "dead", id)
			delete(l.nodes, id)
			changed = true
		}
	}
	if changed {
		l.notifyLocked()
	}
	l.mu.Unlock()
}

func (l *liveness) applyBatch(entries []jetstream.KeyValueEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.heard = time.Now()
	changed := false
	for _, e := range entries {
		if e != nil && l.applyLocked(e) {
			changed = true
		}
	}
	if changed {
		l.notifyLocked()
	}
}

// replace makes entries, the bucket's whole contents, the view: nodes and
// a controller lease that are not in it are gone.
//
// The watch is typically reloaded just as a peer dies, so when each
// heartbeat was seen matters: one seen before keeps its time, and one the
// stalled watch missed counts from its own timestamp (never before the
// watch went quiet, never after now). Taken as now, the last heartbeat of
// a peer that died as the watch stalled kept it alive a whole sweep longer.
func (l *liveness) replace(entries []jetstream.KeyValueEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	known := l.nodes
	l.nodes = make(map[int32]liveNode, len(known))
	l.ctrl, l.ctrlSet = versioned[controllerRecord]{}, false
	quietSince, now := l.heard, time.Now()
	for _, e := range entries {
		if e == nil {
			continue
		}
		id := nodeIDOf(e.Key())
		prev, wasKnown := known[id]
		if wasKnown {
			l.nodes[id] = prev // so that applyLocked recognises a heartbeat already seen
		}
		l.applyLocked(e)
		if n, ok := l.nodes[id]; ok && (!wasKnown || prev.rev != n.rev) {
			n.seen = e.Created()
			if n.seen.Before(quietSince) {
				n.seen = quietSince
			}
			if n.seen.After(now) {
				n.seen = now
			}
			l.nodes[id] = n
		}
	}
	l.heard = now
	l.notifyLocked()
}

// nodeIDOf is the node id of a heartbeat key, -1 for other keys.
func nodeIDOf(key string) int32 {
	if !strings.HasPrefix(key, keyPrefixNode) {
		return -1
	}
	id, err := strconv.ParseInt(key[len(keyPrefixNode):], 10, 32)
	if err != nil || id < 0 {
		return -1
	}
	return int32(id)
}

// applyLocked applies one entry and reports whether subscribers should
// hear of it.
func (l *liveness) applyLocked(e jetstream.KeyValueEntry) bool {
	key := e.Key()
	deleted := e.Operation() != jetstream.KeyValuePut
	switch {
	case key == keyController:
		if deleted {
			l.ctrlSet = false
			l.ctrl = versioned[controllerRecord]{}
			return true
		}
		var rec controllerRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			l.log.Warn("ignoring malformed controller lease", "err", err)
			return false
		}
		if rec.Epoch == 0 {
			rec.Epoch = e.Revision()
		}
		l.ctrl, l.ctrlSet = versioned[controllerRecord]{rec, e.Revision()}, true
		return true
	case nodeIDOf(key) >= 0:
		id := nodeIDOf(key)
		if deleted {
			if _, ok := l.nodes[id]; !ok {
				return false
			}
			delete(l.nodes, id)
			return true
		}
		var info NodeInfo
		if err := json.Unmarshal(e.Value(), &info); err != nil {
			l.log.Warn("ignoring malformed heartbeat", "key", key, "err", err)
			return false
		}
		prev, known := l.nodes[id]
		seen := time.Now()
		if known && prev.rev == e.Revision() {
			// The same heartbeat again (a reloaded watch): it says
			// nothing new about the node being alive.
			seen = prev.seen
		}
		l.nodes[id] = liveNode{info: info, seen: seen, rev: e.Revision()}
		// A plain heartbeat changes nothing for subscribers.
		return !known || prev.info != info
	}
	return false
}

func (l *liveness) notifyLocked() {
	for _, ch := range l.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (l *liveness) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	id := l.nextSub
	l.nextSub++
	l.subs[id] = ch
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.subs, id)
		l.mu.Unlock()
	}
}

func (l *liveness) liveNodes() []NodeInfo {
	l.mu.RLock()
	out := make([]NodeInfo, 0, len(l.nodes))
	for _, n := range l.nodes {
		out = append(out, n.info)
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b NodeInfo) int { return int(a.ID - b.ID) })
	return out
}

func (l *liveness) isLive(id int32) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.nodes[id]
	return ok
}

// liveSet is a snapshot of the live node ids.
func (l *liveness) liveSet() map[int32]bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make(map[int32]bool, len(l.nodes))
	for id := range l.nodes {
		out[id] = true
	}
	return out
}

func (l *liveness) controller() (versioned[controllerRecord], bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.ctrl, l.ctrlSet
}

func (l *liveness) controllerID() int32 {
	rec, ok := l.controller()
	if !ok {
		return -1
	}
	return rec.v.ID
}

func (l *liveness) controllerEpoch() uint64 {
	rec, ok := l.controller()
	if !ok {
		return 0
	}
	return rec.v.Epoch
}

// refreshController reads the controller lease from the bucket when the
// cached one, at revision stale, could not be purged: if the lease is gone,
// the cache forgets it (unless the watch brought a newer one meanwhile),
// so that the next campaign creates it.
func (l *liveness) refreshController(ctx context.Context, stale uint64) {
	e, err := l.kv.Get(ctx, keyController)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		l.mu.Lock()
		if l.ctrlSet && l.ctrl.rev == stale {
			l.log.Info("the controller lease expired unseen; forgetting it", "holder", l.ctrl.v.ID, "revision", stale)
			l.ctrl, l.ctrlSet = versioned[controllerRecord]{}, false
			l.notifyLocked()
		}
		l.mu.Unlock()
	case err == nil:
		l.mu.Lock()
		if !l.ctrlSet || e.Revision() > l.ctrl.rev {
			l.applyLocked(e)
			l.notifyLocked()
		}
		l.mu.Unlock()
	}
}

// leave purges this node's key so that peers see the exit at once.
func (l *liveness) leave(ctx context.Context) {
	err := jsretry.Do(ctx, func(ctx context.Context) error {
		return l.kv.Purge(ctx, nodeKey(l.self.ID))
	})
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		l.log.Warn("could not remove liveness key", "err", err)
	}
}
