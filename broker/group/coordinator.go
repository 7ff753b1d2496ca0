package group

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/broker"
)

// Options configures a Coordinator.
type Options struct {
	Config
	// OffsetsPartitions is the partition count of a newly created offsets
	// topic; default 1. An existing topic keeps its count.
	OffsetsPartitions int32
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Replicator makes the coordinator one node's part of a cluster's
	// (see Replicator); nil is a single node, which opens (and creates)
	// the offsets topic in its broker.
	Replicator Replicator
}

// Coordinator is the shell around Machine: it serializes calls with a
// mutex that is never held while waiting, parks JoinGroup and SyncGroup
// callers until the machine answers them, runs a timer for the machine's
// deadlines, and owns the offset store.
type Coordinator struct {
	b       *broker.Broker
	now     func() time.Time
	offsets *OffsetStore

	mu      sync.Mutex
	m       *Machine
	waiters map[Token]chan Reply
	nextTok Token

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

// New opens the offset store (creating and replaying the offsets topic; in
// a cluster, lazily, see OffsetStore.Ready) and starts the coordinator's
// timer. Close stops it.
func New(b *broker.Broker, opts Options) (*Coordinator, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MemberIDNonce == "" {
		var nonce [6]byte
		rand.Read(nonce[:])
		opts.MemberIDNonce = hex.EncodeToString(nonce[:]) + "-"
	}
	if opts.OffsetsPartitions <= 0 {
		opts.OffsetsPartitions = 1
	}
	var store *OffsetStore
	if opts.Replicator != nil {
		store = newReplicatedStore(opts.Replicator, opts.Now)
	} else {
		var err error
		if store, err = openOffsetStore(b, opts.OffsetsPartitions, opts.Now); err != nil {
			return nil, err
		}
	}
	c := &Coordinator{
		b: b, now: opts.Now, offsets: store,
		m:       NewMachine(opts.Config),
		waiters: make(map[Token]chan Reply),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	c.wg.Add(1)
	go c.timerLoop()
	return c, nil
}

// Offsets is the coordinator's offset store.
func (c *Coordinator) Offsets() *OffsetStore { return c.offsets }

// Close stops the timer and answers every waiting request with
// COORDINATOR_NOT_AVAILABLE.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return nil
	default:
	}
	close(c.done)
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

func (c *Coordinator) timerLoop() {
	defer c.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		c.mu.Lock()
		next := c.m.NextDeadline()
		c.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(c.now()), 0)
		}
		t.Reset(wait)
		select {
		case <-c.done:
			return
		case <-c.kick:
		case <-t.C:
			c.mu.Lock()
			c.deliverLocked(c.m.Tick(c.now()))
			c.mu.Unlock()
		}
	}
}

// deliverLocked hands replies to their waiters. Each channel has room for
// its one reply, so this never blocks.
func (c *Coordinator) deliverLocked(rs []Reply) {
	for _, r := range rs {
		if ch, ok := c.waiters[r.To]; ok {
			delete(c.waiters, r.To)
			ch <- r
		}
	}
}

// poke tells the timer that deadlines may have moved.
func (c *Coordinator) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// call runs fn on the machine with a fresh token and waits for the reply
// to that token, for stop, or for Close.
func (c *Coordinator) call(stop <-chan struct{}, fn func(now time.Time, tok Token) []Reply) (Reply, bool) {
	ch := make(chan Reply, 1)
	c.mu.Lock()
	c.nextTok++
	tok := c.nextTok
	c.waiters[tok] = ch
	c.deliverLocked(fn(c.now(), tok))
	c.mu.Unlock()
	c.poke()
	select {
	case r := <-ch:
		return r, true
	case <-stop:
	case <-c.done:
	}
	c.mu.Lock()
	delete(c.waiters, tok)
	c.mu.Unlock()
	select {
	case r := <-ch:
		return r, true
	default:
		return Reply{}, false
	}
}

// Join handles a JoinGroup and waits until the rebalance completes, stop
// is closed, or the coordinator closes.
func (c *Coordinator) Join(req JoinRequest, stop <-chan struct{}) JoinResult {
	r, ok := c.call(stop, func(now time.Time, tok Token) []Reply { return c.m.Join(now, req, tok) })
	if !ok {
		return JoinResult{Err: kerr.CoordinatorNotAvailable, MemberID: req.MemberID, Generation: -1}
	}
	return *r.Join
}

// Sync handles a SyncGroup and waits for the leader's assignment.
func (c *Coordinator) Sync(req SyncRequest, stop <-chan struct{}) SyncResult {
	r, ok := c.call(stop, func(now time.Time, tok Token) []Reply { return c.m.Sync(now, req, tok) })
	if !ok {
		return SyncResult{Err: kerr.CoordinatorNotAvailable}
	}
	return *r.Sync
}

// Heartbeat handles a Heartbeat.
func (c *Coordinator) Heartbeat(group, memberID, instanceID string, generation int32) *kerr.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.Heartbeat(c.now(), group, memberID, instanceID, generation)
}

// Leave handles a LeaveGroup.
func (c *Coordinator) Leave(group string, members []LeaveMember) []*kerr.Error {
	c.mu.Lock()
	errs, rs := c.m.Leave(c.now(), group, members)
	c.deliverLocked(rs)
	c.mu.Unlock()
	c.poke()
	return errs
}

// Describe describes a group; a group that only has stored offsets is
// Empty, and one with neither is Dead with ok false.
func (c *Coordinator) Describe(group string) (Description, bool) {
	c.mu.Lock()
	d, ok := c.m.Describe(group)
	c.mu.Unlock()
	if !ok && c.offsets.Has(group) {
		return Description{Name: group, State: Empty}, true
	}
	return d, ok
}

// List lists the groups with members or stored offsets.
func (c *Coordinator) List() []Description {
	c.mu.Lock()
	ds := c.m.Groups()
	c.mu.Unlock()
	seen := make(map[string]bool, len(ds))
	for _, d := range ds {
		seen[d.Name] = true
	}
	for _, g := range c.offsets.Groups() {
		if !seen[g] {
			ds = append(ds, Description{Name: g, State: Empty, ProtocolType: "consumer"})
		}
	}
	return ds
}

// Delete deletes an empty group and its offsets: GROUP_ID_NOT_FOUND if
// neither exists, NON_EMPTY_GROUP if it has members.
func (c *Coordinator) Delete(group string) *kerr.Error {
	c.mu.Lock()
	_, known := c.m.Describe(group)
	err := c.m.Delete(group)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	had, werr := c.offsets.DeleteGroup(group)
	if werr != nil {
		return kerr.KafkaStorageError
	}
	if !had && !known {
		return kerr.GroupIDNotFound
	}
	return nil
}

// CheckCommit says whether a member may commit offsets now.
func (c *Coordinator) CheckCommit(group, memberID, instanceID string, generation int32) *kerr.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.CheckCommit(c.now(), group, memberID, instanceID, generation)
}
