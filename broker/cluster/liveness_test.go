package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// liveBucketForTest runs a JetStream server and creates a liveness bucket
// configured as a node's, with a short TTL.
func liveBucketForTest(t *testing.T, ttl time.Duration) (jetstream.KeyValue, jetstream.Stream) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: liveBucket, History: 1, TTL: ttl,
		LimitMarkerTTL: time.Second, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, "KV_"+liveBucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv, stream
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func putJSON(t *testing.T, kv jetstream.KeyValue, key string, v any) uint64 {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(testCtx(t), key, b)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// waitExpired waits until the bucket holds nothing at all for key: the
// entry has expired and so has its expiry marker.
func waitExpired(t *testing.T, stream jetstream.Stream, key string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := stream.GetLastMsgForSubject(testCtx(t), "$KV."+liveBucket+"."+key)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still in the bucket after 20s: %v", key, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A liveness watch that was down while a controller's lease and its
// heartbeat expired, markers and all, must not keep believing in them once
// it is reopened. Resuming from the next revision did, and then no node
// ever took the lease again.
func TestLivenessWatchReopenedAfterExpiryForgetsTheDead(t *testing.T) {
	t.Parallel()
	ttl := 1500 * time.Millisecond
	kv, stream := liveBucketForTest(t, ttl)
	l := newLiveness(kv, NodeInfo{ID: 2}, ttl, slog.New(slog.DiscardHandler))
	bw := &bucketWatch{kv: kv, stream: stream, name: liveBucket, check: time.Hour,
		apply: l.applyBatch, resync: l.replace, log: l.log}

	putJSON(t, kv, keyController, controllerRecord{ID: 1, Incarnation: 7})
	putJSON(t, kv, nodeKey(1), NodeInfo{ID: 1, Incarnation: 7})
	runCtx, stopWatch := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if err := startBucketWatch(testCtx(t), runCtx, &wg, bw); err != nil {
		t.Fatal(err)
	}
	if l.controllerID() != 1 || !l.isLive(1) {
		t.Fatalf("loaded view: controller %d, node 1 live %v", l.controllerID(), l.isLive(1))
	}
	// The watch goes down; node 1 dies meanwhile and node 2 heartbeats.
	stopWatch()
	wg.Wait()
	waitExpired(t, stream, keyController)
	waitExpired(t, stream, nodeKey(1))
	putJSON(t, kv, nodeKey(2), NodeInfo{ID: 2, Incarnation: 9})

	watchCtx, endWatch := context.WithCancel(context.Background())
	defer endWatch()
	bw.nudge = make(chan struct{}, 1)
	if !bw.reopen(watchCtx) {
		t.Fatal("reopen failed")
	}
	defer func() { _ = bw.w.Stop() }()
	if rec, ok := l.controller(); ok {
		t.Errorf("after reopening, the expired lease of node %d (revision %d) is still the controller", rec.v.ID, rec.rev)
	}
	if l.isLive(1) {
		t.Error("after reopening, node 1 whose heartbeat expired is still live")
	}
	if !l.isLive(2) {
		t.Error("after reopening, node 2 that heartbeats is not live")
	}
}

// A campaign that cannot purge the cached lease at its revision asks the
// bucket: a lease gone from it is forgotten, a newer one is taken in, and
// a cache newer than what the bucket said is left alone.
func TestLivenessRefreshController(t *testing.T) {
	t.Parallel()
	ttl := time.Minute
	kv, _ := liveBucketForTest(t, ttl)
	l := newLiveness(kv, NodeInfo{ID: 2}, ttl, slog.New(slog.DiscardHandler))
	ctx := testCtx(t)
	cache := func(rec controllerRecord, rev uint64) {
		l.mu.Lock()
		l.ctrl, l.ctrlSet = versioned[controllerRecord]{rec, rev}, true
		l.mu.Unlock()
	}

	// Gone from the bucket.
	rev := putJSON(t, kv, keyController, controllerRecord{ID: 1})
	cache(controllerRecord{ID: 1, Epoch: rev}, rev)
	if err := kv.Purge(ctx, keyController); err != nil {
		t.Fatal(err)
	}
	l.refreshController(ctx, rev)
	if rec, ok := l.controller(); ok {
		t.Errorf("a purged lease is still cached: %+v", rec)
	}

	// Renewed by a live holder since the cache saw it.
	old := putJSON(t, kv, keyController, controllerRecord{ID: 3})
	cache(controllerRecord{ID: 3, Epoch: old}, old)
	newer := putJSON(t, kv, keyController, controllerRecord{ID: 3, Epoch: old})
	l.refreshController(ctx, old)
	if rec, ok := l.controller(); !ok || rec.rev != newer || rec.v.ID != 3 {
		t.Errorf("after a renewal at revision %d the cache holds %+v (set %v)", newer, rec, ok)
	}

	// The cache already holds something newer than the stale revision.
	if err := kv.Purge(ctx, keyController); err != nil {
		t.Fatal(err)
	}
	cache(controllerRecord{ID: 4, Epoch: newer + 10}, newer+10)
	l.refreshController(ctx, old)
	if rec, ok := l.controller(); !ok || rec.v.ID != 4 {
		t.Errorf("a newer cached lease was dropped for a stale revision: %+v (set %v)", rec, ok)
	}
}

// A reloaded watch hands over heartbeats this node has seen already; they
// must keep the time they were first seen, or a peer that died just as
// the watch was reloaded would look alive for another session timeout.
func TestLivenessReloadKeepsWhenHeartbeatsWereSeen(t *testing.T) {
	t.Parallel()
	ttl := time.Minute
	kv, stream := liveBucketForTest(t, ttl)
	l := newLiveness(kv, NodeInfo{ID: 2}, ttl, slog.New(slog.DiscardHandler))
	bw := &bucketWatch{kv: kv, stream: stream, name: liveBucket, check: time.Hour,
		apply: l.applyBatch, resync: l.replace, log: l.log}
	putJSON(t, kv, nodeKey(5), NodeInfo{ID: 5, Incarnation: 1})
	runCtx, stopWatch := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if err := startBucketWatch(testCtx(t), runCtx, &wg, bw); err != nil {
		t.Fatal(err)
	}
	stopWatch()
	wg.Wait()
	seen := func() time.Time {
		l.mu.RLock()
		defer l.mu.RUnlock()
		return l.nodes[5].seen
	}
	first := seen()
	time.Sleep(20 * time.Millisecond)

	watchCtx, endWatch := context.WithCancel(context.Background())
	defer endWatch()
	if !bw.reopen(watchCtx) {
		t.Fatal("reopen failed")
	}
	if got := seen(); !got.Equal(first) {
		t.Errorf("the same heartbeat, reloaded, moved node 5's last sighting from %v to %v", first, got)
	}
	// A heartbeat the watch missed counts from when it was written, not
	// from when the reloaded watch found it.
	putJSON(t, kv, nodeKey(5), NodeInfo{ID: 5, Incarnation: 1})
	written := time.Now()
	time.Sleep(300 * time.Millisecond)
	if !bw.reopen(watchCtx) {
		t.Fatal("second reopen failed")
	}
	if got := seen(); !got.After(first) || got.After(written) {
		t.Errorf("a heartbeat written at %v and reloaded 300ms later was seen at %v (first %v)", written, got, first)
	}
	_ = bw.w.Stop()
}
