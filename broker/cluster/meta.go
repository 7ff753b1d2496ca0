package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
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

// Keys of the sluice_meta bucket. Partition keys use the topic id, not the
// name, so that a topic deleted and created again under the same name never
// sees the old partition states.
const (
	keyClusterID      = "cluster.id"
	keyPrefixTopic    = "topic."
	keyPrefixPart     = "part."
	keyPrefixReassign = "reassign."
	keyProducerID     = "pid.next"
)

func topicKey(name string) string { return keyPrefixTopic + name }

func partKey(id [16]byte, p int32) string {
	return keyPrefixPart + hex.EncodeToString(id[:]) + "." + strconv.Itoa(int(p))
}

func reassignKey(topic string, p int32) string {
	return keyPrefixReassign + topic + "." + strconv.Itoa(int(p))
}

// splitLastDot parses "<a>.<p>" where a may itself contain dots.
func splitLastDot(s string) (string, int32, bool) {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 {
		return "", 0, false
	}
	p, err := strconv.ParseInt(s[i+1:], 10, 32)
	if err != nil || p < 0 {
		return "", 0, false
	}
	return s[:i], int32(p), true
}

// versioned is a value with the KV revision that wrote it, which is what
// a compare-and-set needs.
type versioned[T any] struct {
	v   T
	rev uint64
}

type topicPartition struct {
	topic string
	p     int32
}

// maxCASAttempts bounds a compare-and-set loop; losing this often means
// something rewrites the key in a loop.
const maxCASAttempts = 200

// MetaStore is this node's cache of the sluice_meta bucket, fed by one
// watch. Reads are local and never block on the network; they may lag the
// bucket by the watch delay, so a writer that must read its own write waits
// with WaitRevision (the write methods here do it for the caller).
type MetaStore struct {
	kv    jetstream.KeyValue
	log   *slog.Logger
	watch *bucketWatch

	mu        sync.RWMutex
	clusterID string
	topics    map[string]versioned[TopicAssignment]
	parts     map[string]map[int32]versioned[PartitionState] // by topic id hex
	reassign  map[topicPartition]versioned[[]int32]
	rev       uint64
	advanced  chan struct{} // closed and replaced whenever rev moves
	subs      map[int]chan struct{}
	nextSub   int
}

func newMetaStore(kv jetstream.KeyValue, log *slog.Logger) *MetaStore {
	return &MetaStore{
		kv:       kv,
		log:      log,
		topics:   map[string]versioned[TopicAssignment]{},
		parts:    map[string]map[int32]versioned[PartitionState]{},
		reassign: map[topicPartition]versioned[[]int32]{},
		advanced: make(chan struct{}),
		subs:     map[int]chan struct{}{},
	}
}

// start loads the bucket and follows it until runCtx ends.
func (m *MetaStore) start(ctx, runCtx context.Context, wg *sync.WaitGroup, stream jetstream.Stream, check time.Duration) error {
	m.watch = &bucketWatch{kv: m.kv, stream: stream, name: metaBucket, check: check, apply: m.apply, log: m.log}
	err := startBucketWatch(ctx, runCtx, wg, m.watch)
	if err != nil {
		return fmt.Errorf("cluster: watch %s: %w", metaBucket, err)
	}
	return nil
}

func (m *MetaStore) apply(entries []jetstream.KeyValueEntry) {
	m.mu.Lock()
	for _, e := range entries {
		if e == nil {
			continue
		}
		m.applyLocked(e)
		m.rev = max(m.rev, e.Revision())
	}
	close(m.advanced)
	m.advanced = make(chan struct{})
	for _, ch := range m.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	m.mu.Unlock()
}

func (m *MetaStore) applyLocked(e jetstream.KeyValueEntry) {
	key := e.Key()
	deleted := e.Operation() != jetstream.KeyValuePut
	bad := func(err error) { m.log.Warn("ignoring malformed metadata", "key", key, "err", err) }
	switch {
	case key == keyClusterID:
		if !deleted {
			m.clusterID = string(e.Value())
		}
	case strings.HasPrefix(key, keyPrefixTopic):
		name := key[len(keyPrefixTopic):]
		if deleted {
			delete(m.topics, name)
			return
		}
		var t TopicAssignment
		if err := json.Unmarshal(e.Value(), &t); err != nil {
			bad(err)
			return
		}
		m.topics[name] = versioned[TopicAssignment]{t, e.Revision()}
	case strings.HasPrefix(key, keyPrefixPart):
		idHex, p, ok := splitLastDot(key[len(keyPrefixPart):])
		if !ok {
			bad(errors.New("bad partition key"))
			return
		}
		if deleted {
			delete(m.parts[idHex], p)
			if len(m.parts[idHex]) == 0 {
				delete(m.parts, idHex)
			}
			return
		}
		var s PartitionState
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			bad(err)
			return
		}
		if m.parts[idHex] == nil {
			m.parts[idHex] = map[int32]versioned[PartitionState]{}
		}
		m.parts[idHex][p] = versioned[PartitionState]{s, e.Revision()}
	case strings.HasPrefix(key, keyPrefixReassign):
		topic, p, ok := splitLastDot(key[len(keyPrefixReassign):])
		if !ok {
			bad(errors.New("bad reassignment key"))
			return
		}
		tp := topicPartition{topic, p}
		if deleted {
			delete(m.reassign, tp)
			return
		}
		var target []int32
		if err := json.Unmarshal(e.Value(), &target); err != nil {
			bad(err)
			return
		}
		m.reassign[tp] = versioned[[]int32]{target, e.Revision()}
	}
}

// ensureClusterID creates cluster.id if this is the first node, and waits
// until the cache holds it.
func (m *MetaStore) ensureClusterID(ctx context.Context) error {
	if m.ClusterID() != "" {
		return nil
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := base64.RawURLEncoding.EncodeToString(raw[:]) // Kafka's cluster id format
	err := jsretry.Do(ctx, func(ctx context.Context) error {
		_, err := m.kv.Create(ctx, keyClusterID, []byte(id))
		return err
	})
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("cluster: creating cluster id: %w", err)
	}
	return m.waitFor(ctx, func() bool { return m.clusterID != "" })
}

// waitFor blocks until cond (called with m.mu read-locked) holds or ctx ends.
func (m *MetaStore) waitFor(ctx context.Context, cond func() bool) error {
	for {
		m.mu.RLock()
		ok, ch := cond(), m.advanced
		m.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// ClusterID is the Kafka cluster id, created once by the first node.
func (m *MetaStore) ClusterID() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.clusterID
}

// Revision is the last bucket revision applied to the cache.
func (m *MetaStore) Revision() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.rev
}

// WaitRevision waits until the cache has applied revision rev (read your
// writes: pass the revision a write returned).
func (m *MetaStore) WaitRevision(ctx context.Context, rev uint64) error {
	return m.waitFor(ctx, func() bool { return m.rev >= rev })
}

// Sync waits until the cache holds every revision the bucket had when Sync
// was called: a node that hears of a change from a client (which learned
// it from another node) can catch up before it answers.
func (m *MetaStore) Sync(ctx context.Context) error {
	info, err := m.watch.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("cluster: sync %s: %w", metaBucket, err)
	}
	return m.WaitRevision(ctx, info.State.LastSeq)
}

// Topics lists all topics sorted by name, those being deleted included.
func (m *MetaStore) Topics() []TopicAssignment {
	m.mu.RLock()
	out := make([]TopicAssignment, 0, len(m.topics))
	for _, t := range m.topics {
		out = append(out, t.v.clone())
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b TopicAssignment) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Topic returns one topic's assignment.
func (m *MetaStore) Topic(name string) (TopicAssignment, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.topics[name]
	return t.v.clone(), ok
}

// Partition returns one partition's state; false until the controller has
// created it.
func (m *MetaStore) Partition(topic string, p int32) (PartitionState, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.partitionLocked(topic, p)
	return s.v.clone(), ok
}

func (m *MetaStore) partitionLocked(topic string, p int32) (versioned[PartitionState], bool) {
	t, ok := m.topics[topic]
	if !ok {
		return versioned[PartitionState]{}, false
	}
	s, ok := m.parts[hex.EncodeToString(t.v.ID[:])][p]
	return s, ok
}

// Partitions returns the states of a topic's partitions that exist, by
// partition number.
func (m *MetaStore) Partitions(topic string) []PartitionState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.topics[topic]
	if !ok {
		return nil
	}
	byP := m.parts[hex.EncodeToString(t.v.ID[:])]
	out := make([]PartitionState, 0, len(byP))
	for _, s := range byP {
		out = append(out, s.v.clone())
	}
	slices.SortFunc(out, func(a, b PartitionState) int { return int(a.Partition - b.Partition) })
	return out
}

// Reassignment returns the pending reassignment target of a partition.
func (m *MetaStore) Reassignment(topic string, p int32) ([]int32, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, ok := m.reassign[topicPartition{topic, p}]
	return slices.Clone(r.v), ok
}

// Subscribe returns a signal that fires (coalesced, capacity 1) after every
// change applied to the cache, and a function that unsubscribes. Consumers
// re-read what they need after each signal.
func (m *MetaStore) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	id := m.nextSub
	m.nextSub++
	m.subs[id] = ch
	m.mu.Unlock()
	return ch, func() {
		m.mu.Lock()
		delete(m.subs, id)
		m.mu.Unlock()
	}
}

func validTopicName(name string) bool {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validReplicaList(r []int32) bool {
	if len(r) == 0 {
		return false
	}
	for i, id := range r {
		if id < 0 || slices.Contains(r[:i], id) {
			return false
		}
	}
	return true
}

// CreateTopic writes topic.<name> (ErrTopicExists if it is there) and waits
// until ctx for the controller to create every partition with a leader and
// for this node's cache to see them.
func (m *MetaStore) CreateTopic(ctx context.Context, t TopicAssignment) error {
	if !validTopicName(t.Name) {
		return fmt.Errorf("cluster: invalid topic name %q", t.Name)
	}
	if len(t.Replicas) == 0 {
		return fmt.Errorf("cluster: topic %q: no partitions", t.Name)
	}
	for p, r := range t.Replicas {
		if !validReplicaList(r) {
			return fmt.Errorf("%w: topic %q partition %d: %v", ErrInvalidReplicas, t.Name, p, r)
		}
	}
	t.Deleting = false
	val, err := json.Marshal(t)
	if err != nil {
		return err
	}
	var rev uint64
	err = jsretry.Do(ctx, func(ctx context.Context) (err error) {
		rev, err = m.kv.Create(ctx, topicKey(t.Name), val)
		return err
	})
	if errors.Is(err, jetstream.ErrKeyExists) {
		// A retried Create whose first attempt landed finds its own value.
		cur, ok := m.fetchTopic(ctx, t.Name)
		if !ok || cur.v.ID != t.ID {
			return fmt.Errorf("%w: %s", ErrTopicExists, t.Name)
		}
		rev = cur.rev
	} else if err != nil {
		return fmt.Errorf("cluster: creating topic %s: %w", t.Name, err)
	}
	idHex := hex.EncodeToString(t.ID[:])
	return m.waitFor(ctx, func() bool {
		if m.rev < rev {
			return false
		}
		parts := m.parts[idHex]
		for p := range t.Partitions() {
			if s, ok := parts[p]; !ok || s.v.Leader < 0 {
				return false
			}
		}
		return true
	})
}

func (m *MetaStore) fetchTopic(ctx context.Context, name string) (versioned[TopicAssignment], bool) {
	var e jetstream.KeyValueEntry
	err := jsretry.Do(ctx, func(ctx context.Context) (err error) {
		e, err = m.kv.Get(ctx, topicKey(name))
		return err
	})
	if err != nil {
		return versioned[TopicAssignment]{}, false
	}
	var t TopicAssignment
	if json.Unmarshal(e.Value(), &t) != nil {
		return versioned[TopicAssignment]{}, false
	}
	return versioned[TopicAssignment]{t, e.Revision()}, true
}

// DeleteTopic marks the topic Deleting; the controller then removes its
// partitions and the topic itself. It waits until ctx for the topic to
// disappear from this node's cache (as Kafka's DeleteTopics waits up to its
// timeout), so a following CreateTopic of the same name succeeds.
func (m *MetaStore) DeleteTopic(ctx context.Context, name string) error {
	_, err := m.updateTopic(ctx, name, func(t TopicAssignment) (TopicAssignment, error) {
		t.Deleting = true
		return t, nil
	})
	if err != nil {
		return err
	}
	return m.waitFor(ctx, func() bool {
		_, ok := m.topics[name]
		return !ok
	})
}

// updateTopic is a CAS loop on topic.<name>.
func (m *MetaStore) updateTopic(ctx context.Context, name string, fn func(TopicAssignment) (TopicAssignment, error)) (TopicAssignment, error) {
	for range maxCASAttempts {
		cur, ok := m.fetchTopic(ctx, name)
		if !ok {
			if ctx.Err() != nil {
				return TopicAssignment{}, ctx.Err()
			}
			return TopicAssignment{}, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
		}
		next, err := fn(cur.v.clone())
		if err != nil {
			return TopicAssignment{}, err
		}
		next.Name, next.ID = cur.v.Name, cur.v.ID
		rev, err := m.casUpdate(ctx, topicKey(name), next, cur.rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return TopicAssignment{}, err
		}
		return next, m.WaitRevision(ctx, rev)
	}
	return TopicAssignment{}, fmt.Errorf("%w: topic %s", ErrConflict, name)
}

func (m *MetaStore) casUpdate(ctx context.Context, key string, v any, rev uint64) (uint64, error) {
	val, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	var newRev uint64
	err = jsretry.Do(ctx, func(ctx context.Context) (err error) {
		newRev, err = m.kv.Update(ctx, key, val, rev)
		return err
	})
	return newRev, err
}

// UpdatePartition changes a partition's state with a CAS loop on its key:
// fn gets the latest state and returns the next one, or an error that
// aborts (a leader returns one when cur shows it was deposed). A revision
// conflict re-reads and calls fn again. PartitionEpoch is bumped here. On
// success the cache already holds the result.
func (m *MetaStore) UpdatePartition(ctx context.Context, topic string, p int32, fn func(cur PartitionState) (PartitionState, error)) (PartitionState, error) {
	m.mu.RLock()
	t, ok := m.topics[topic]
	cached, cachedOK := m.partitionLocked(topic, p)
	m.mu.RUnlock()
	if !ok {
		return PartitionState{}, fmt.Errorf("%w: %s", ErrUnknownTopic, topic)
	}
	key := partKey(t.v.ID, p)
	for attempt := range maxCASAttempts {
		cur := cached
		if attempt > 0 || !cachedOK {
			// The cache was stale; ask the bucket.
			var e jetstream.KeyValueEntry
			err := jsretry.Do(ctx, func(ctx context.Context) (err error) {
				e, err = m.kv.Get(ctx, key)
				return err
			})
			if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
				return PartitionState{}, fmt.Errorf("%w: %s/%d", ErrUnknownTopic, topic, p)
			}
			if err != nil {
				return PartitionState{}, err
			}
			cur.rev = e.Revision()
			cur.v = PartitionState{}
			if err := json.Unmarshal(e.Value(), &cur.v); err != nil {
				return PartitionState{}, fmt.Errorf("cluster: %s: %w", key, err)
			}
		}
		next, err := fn(cur.v.clone())
		if err != nil {
			return PartitionState{}, err
		}
		next.Topic, next.Partition = cur.v.Topic, cur.v.Partition
		next.PartitionEpoch = cur.v.PartitionEpoch + 1
		rev, err := m.casUpdate(ctx, key, next, cur.rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return PartitionState{}, fmt.Errorf("cluster: updating %s/%d: %w", topic, p, err)
		}
		return next, m.WaitRevision(ctx, rev)
	}
	return PartitionState{}, fmt.Errorf("%w: %s/%d", ErrConflict, topic, p)
}

// NextProducerIDBlock reserves size producer ids, unique across the
// cluster, and returns the first.
func (m *MetaStore) NextProducerIDBlock(ctx context.Context, size int64) (int64, error) {
	if size <= 0 {
		return 0, fmt.Errorf("cluster: producer id block size %d", size)
	}
	for range maxCASAttempts {
		var e jetstream.KeyValueEntry
		err := jsretry.Do(ctx, func(ctx context.Context) (err error) {
			e, err = m.kv.Get(ctx, keyProducerID)
			return err
		})
		var start int64
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			err = jsretry.Do(ctx, func(ctx context.Context) error {
				_, err := m.kv.Create(ctx, keyProducerID, []byte(strconv.FormatInt(size, 10)))
				return err
			})
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			if err != nil {
				return 0, fmt.Errorf("cluster: producer ids: %w", err)
			}
			return 0, nil
		case err != nil:
			return 0, fmt.Errorf("cluster: producer ids: %w", err)
		}
		start, err = strconv.ParseInt(string(e.Value()), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cluster: %s: %w", keyProducerID, err)
		}
		err = jsretry.Do(ctx, func(ctx context.Context) error {
			_, err := m.kv.Update(ctx, keyProducerID, []byte(strconv.FormatInt(start+size, 10)), e.Revision())
			return err
		})
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("cluster: producer ids: %w", err)
		}
		return start, nil
	}
	return 0, fmt.Errorf("%w: %s", ErrConflict, keyProducerID)
}

// RequestReassignment asks the controller to move partition p of topic to
// the given replicas (preferred leader first). A later request for the same
// partition replaces a pending one.
func (m *MetaStore) RequestReassignment(ctx context.Context, topic string, p int32, replicas []int32) error {
	if !validReplicaList(replicas) {
		return fmt.Errorf("%w: %v", ErrInvalidReplicas, replicas)
	}
	t, ok := m.Topic(topic)
	if !ok || p < 0 || p >= t.Partitions() || t.Deleting {
		return fmt.Errorf("%w: %s/%d", ErrUnknownTopic, topic, p)
	}
	val, _ := json.Marshal(replicas)
	var rev uint64
	err := jsretry.Do(ctx, func(ctx context.Context) (err error) {
		rev, err = m.kv.Put(ctx, reassignKey(topic, p), val)
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: reassigning %s/%d: %w", topic, p, err)
	}
	return m.WaitRevision(ctx, rev)
}

// metaView is a consistent copy of the cache for the controller.
type metaView struct {
	rev      uint64
	topics   map[string]versioned[TopicAssignment]
	parts    map[string]map[int32]versioned[PartitionState]
	reassign map[topicPartition]versioned[[]int32]
}

func (m *MetaStore) view() metaView {
	m.mu.RLock()
	defer m.mu.RUnlock()
	v := metaView{
		rev:      m.rev,
		topics:   make(map[string]versioned[TopicAssignment], len(m.topics)),
		parts:    make(map[string]map[int32]versioned[PartitionState], len(m.parts)),
		reassign: make(map[topicPartition]versioned[[]int32], len(m.reassign)),
	}
	for k, t := range m.topics {
		v.topics[k] = versioned[TopicAssignment]{t.v.clone(), t.rev}
	}
	for k, byP := range m.parts {
		c := make(map[int32]versioned[PartitionState], len(byP))
		for p, s := range byP {
			c[p] = versioned[PartitionState]{s.v.clone(), s.rev}
		}
		v.parts[k] = c
	}
	for k, r := range m.reassign {
		v.reassign[k] = versioned[[]int32]{slices.Clone(r.v), r.rev}
	}
	return v
}

// Raw CAS writes for the controller. rev 0 with create means "must not
// exist".
func (m *MetaStore) createJSON(ctx context.Context, key string, v any) (uint64, error) {
	val, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	var rev uint64
	err = jsretry.Do(ctx, func(ctx context.Context) (err error) {
		rev, err = m.kv.Create(ctx, key, val)
		return err
	})
	return rev, err
}

func (m *MetaStore) purge(ctx context.Context, key string, rev uint64) error {
	return jsretry.Do(ctx, func(ctx context.Context) error {
		return m.kv.Purge(ctx, key, jetstream.LastRevision(rev))
	})
}
