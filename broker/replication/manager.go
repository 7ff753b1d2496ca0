package replication

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/cluster"
	"github.com/sluice-io/sluice/broker/kafka"
	"github.com/sluice-io/sluice/broker/storage"
)

// Config configures a Manager.
type Config struct {
	Node   *cluster.Node
	Broker *broker.Broker // opened with ExternalHW
	// ReplicaLagMax is replica.lag.time.max.ms: a follower that has not
	// caught up for this long leaves the ISR. Default 10 s.
	ReplicaLagMax time.Duration
	// FetchWait is how long a follower fetch waits for new data at the
	// leader. Default 500 ms.
	FetchWait time.Duration
	// PartitionFetchBytes bounds one partition's data in a fetch; default
	// 1 MiB.
	PartitionFetchBytes int32
	// DefaultReplicationFactor is used for topics created without one;
	// default min(3, live nodes).
	DefaultReplicationFactor int32
	// AutoCreateTopics lets Metadata and produce create unknown topics with
	// DefaultPartitions partitions.
	AutoCreateTopics  bool
	DefaultPartitions int32
	// Registerer receives the replication metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Manager runs this node's replicas and is the node's kafka.Cluster.
type Manager struct {
	cfg  Config
	node *cluster.Node
	b    *broker.Broker
	log  *slog.Logger
	self int32
	conn *nats.Conn // fetches and their answers

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// kick asks the run loop to reconcile now (cap 1).
	kick chan struct{}

	mu       sync.Mutex
	replicas map[partKey]*replica
	// byID indexes replicas by topic id, which is how follower fetches
	// name partitions (one lookup per partition of every fetch).
	byID     map[idKey]*replica
	fetchers map[int32]*fetcher
	sub      *nats.Subscription

	pidMu            sync.Mutex
	pidNext, pidLast int64 // the current block of producer ids: [pidNext, pidLast)

	metrics *metrics
}

var _ kafka.Cluster = (*Manager)(nil)

// Start begins replicating: it applies the current metadata, starts
// serving follower fetches and follows metadata changes until Close.
func Start(cfg Config) (*Manager, error) {
	if cfg.Node == nil || cfg.Broker == nil {
		return nil, errors.New("replication: a node and a broker are required")
	}
	if cfg.ReplicaLagMax <= 0 {
		cfg.ReplicaLagMax = 10 * time.Second
	}
	if cfg.FetchWait <= 0 {
		cfg.FetchWait = 500 * time.Millisecond
	}
	if cfg.PartitionFetchBytes <= 0 {
		cfg.PartitionFetchBytes = 1 << 20
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	conn, err := cfg.Node.NewConn()
	if err != nil {
		return nil, fmt.Errorf("replication: connect: %w", err)
	}
	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		conn.Close()
		return nil, err
	}
	m := &Manager{
		cfg:      cfg,
		node:     cfg.Node,
		b:        cfg.Broker,
		log:      cfg.Logger.With("component", "replication"),
		self:     cfg.Node.ID(),
		conn:     conn,
		kick:     make(chan struct{}, 1),
		replicas: make(map[partKey]*replica),
		byID:     make(map[idKey]*replica),
		fetchers: make(map[int32]*fetcher),
		metrics:  met,
	}
	met.m = m
	m.ctx, m.cancel = context.WithCancel(context.Background())
	// Fetches are served on their own goroutines: a long poll must not
	// hold up the next follower's fetch (nats runs one subscription's
	// callbacks in turn).
	m.sub, err = conn.Subscribe(fetchSubject(m.node.ClusterName(), m.self), func(msg *nats.Msg) {
		m.wg.Go(func() { m.serveFetch(msg) })
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("replication: serve fetches: %w", err)
	}
	changed, unsubscribe := m.node.Meta().Subscribe()
	m.reconcile()
	m.wg.Go(func() {
		defer unsubscribe()
		m.run(changed)
	})
	return m, nil
}

// run applies metadata changes and checks follower lag until Close.
func (m *Manager) run(changed <-chan struct{}) {
	lagTick := time.NewTicker(max(m.cfg.ReplicaLagMax/4, 50*time.Millisecond))
	defer lagTick.Stop()
	resync := time.NewTicker(time.Second)
	defer resync.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-changed:
			m.reconcile()
		case <-m.kick:
			m.reconcile()
		case <-resync.C:
			// Metadata changes arrive as signals; a periodic pass also
			// retries anything that failed (a topic that could not be
			// opened, say).
			m.reconcile()
		case now := <-lagTick.C:
			for _, r := range m.allReplicas() {
				r.checkLag(now, m.cfg.ReplicaLagMax)
			}
			m.metrics.update()
		}
	}
}

// reconcile makes the local replicas match the cluster metadata.
func (m *Manager) reconcile() {
	meta := m.node.Meta()
	seen := make(map[partKey]bool)
	for _, t := range meta.Topics() {
		if t.Deleting {
			m.dropTopic(t)
			continue
		}
		// A replica being added by a reassignment is in the partition's
		// replicas before it is in the topic's assignment.
		parts := meta.Partitions(t.Name)
		mine := false
		for _, ps := range parts {
			mine = mine || slices.Contains(ps.Replicas, m.self)
		}
		if !mine {
			continue
		}
		info := broker.TopicInfo{Name: t.Name, ID: t.ID, Partitions: t.Partitions(), Configs: t.Configs}
		if _, err := m.b.ApplyTopic(info); err != nil {
			m.log.Error("cannot create a topic's replicas on this node", "topic", t.Name, "err", err)
			continue
		}
		minISR := broker.MinInsyncReplicas(t.Configs)
		for _, ps := range parts {
			if !slices.Contains(ps.Replicas, m.self) {
				continue
			}
			key := partKey{t.Name, ps.Partition}
			r, err := m.replicaFor(key, t.ID)
			if err != nil {
				m.log.Error("cannot open a replica", "topic", t.Name, "partition", ps.Partition, "err", err)
				continue
			}
			seen[key] = true
			r.apply(ps, minISR)
		}
	}
	m.mu.Lock()
	var gone []*replica
	for key, r := range m.replicas {
		if !seen[key] {
			gone = append(gone, r)
			m.forgetLocked(r)
		}
	}
	m.mu.Unlock()
	for _, r := range gone {
		r.stop(-1)
	}
}

// dropTopic stops a deleted topic's replicas and removes its local data.
func (m *Manager) dropTopic(t cluster.TopicAssignment) {
	m.mu.Lock()
	var gone []*replica
	for key, r := range m.replicas {
		if key.topic == t.Name {
			gone = append(gone, r)
			m.forgetLocked(r)
		}
	}
	m.mu.Unlock()
	for _, r := range gone {
		r.stop(-1)
	}
	if local, ok := m.b.Topic(t.Name); ok && local.ID == t.ID {
		if err := m.b.DeleteTopic(t.Name); err != nil && !errors.Is(err, broker.ErrUnknownTopic) {
			m.log.Warn("deleting a topic's local replicas", "topic", t.Name, "err", err)
		}
	}
}

// replicaFor returns the replica of key, creating it (with no role yet).
func (m *Manager) replicaFor(key partKey, topicID [16]byte) (*replica, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.replicas[key]; ok && r.topicID == topicID {
		return r, nil
	}
	part, err := m.b.Partition(key.topic, key.partition)
	if err != nil {
		return nil, err
	}
	r := &replica{m: m, key: key, topicID: topicID, part: part, leader: -1, epoch: -1}
	r.changed = make(chan struct{})
	part.SetOnDurable(func(int64) { r.updateHW() })
	if old, ok := m.replicas[key]; ok {
		m.forgetLocked(old) // the topic was deleted and created again
	}
	m.replicas[key] = r
	m.byID[idKey{topicID, key.partition}] = r
	return r, nil
}

// idKey names a partition as follower fetches do.
type idKey struct {
	topicID   [16]byte
	partition int32
}

// forgetLocked removes r from both indexes; m.mu is held.
func (m *Manager) forgetLocked(r *replica) {
	if m.replicas[r.key] == r {
		delete(m.replicas, r.key)
	}
	if k := (idKey{r.topicID, r.key.partition}); m.byID[k] == r {
		delete(m.byID, k)
	}
}

func (m *Manager) replica(topic string, partition int32) *replica {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.replicas[partKey{topic, partition}]
}

func (m *Manager) replicaByID(topicID [16]byte, partition int32) *replica {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byID[idKey{topicID, partition}]
}

func (m *Manager) allReplicas() []*replica {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*replica, 0, len(m.replicas))
	for _, r := range m.replicas {
		out = append(out, r)
	}
	return out
}

// follow adds r to the fetcher of leader, starting one if needed.
func (m *Manager) follow(r *replica, leader int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return
	}
	f := m.fetchers[leader]
	if f == nil {
		f = newFetcher(m, leader)
		m.fetchers[leader] = f
	}
	f.add(r)
}

// unfollow removes r from whichever fetcher has it; a fetcher left with
// nothing stops.
func (m *Manager) unfollow(r *replica) {
	m.mu.Lock()
	var idle []*fetcher
	for leader, f := range m.fetchers {
		if f.remove(r) {
			idle = append(idle, f)
			delete(m.fetchers, leader)
		}
	}
	m.mu.Unlock()
	for _, f := range idle {
		f.close()
	}
}

// maxFetchBytes keeps a fetch answer under the NATS payload limit.
func (m *Manager) maxFetchBytes() int32 {
	limit := m.conn.MaxPayload() - 64<<10
	return int32(max(limit, 64<<10))
}

// Close stops replicating. The broker and the node stay open.
func (m *Manager) Close() error {
	m.cancel()
	m.sub.Unsubscribe()
	m.mu.Lock()
	fetchers := m.fetchers
	m.fetchers = map[int32]*fetcher{}
	m.mu.Unlock()
	for _, f := range fetchers {
		f.close()
	}
	m.wg.Wait() // the fetchers too
	for _, r := range m.allReplicas() {
		r.part.SetOnDurable(nil)
		r.stop(-1)
	}
	m.conn.Close()
	return nil
}

// --- kafka.Cluster -------------------------------------------------------

// Brokers lists the live nodes.
func (m *Manager) Brokers() []kafka.ClusterBroker {
	nodes := m.node.LiveNodes()
	out := make([]kafka.ClusterBroker, len(nodes))
	for i, n := range nodes {
		out[i] = kafka.ClusterBroker{ID: n.ID, Host: n.KafkaHost, Port: n.KafkaPort, Rack: n.Rack}
	}
	return out
}

// ControllerID is the controller's node id.
func (m *Manager) ControllerID() int32 { return m.node.ControllerID() }

// Topics lists the cluster's topics.
func (m *Manager) Topics() []kafka.ClusterTopic {
	ts := m.node.Meta().Topics()
	out := make([]kafka.ClusterTopic, 0, len(ts))
	for _, t := range ts {
		if !t.Deleting {
			out = append(out, m.describe(t))
		}
	}
	return out
}

// Topic finds a topic by name.
func (m *Manager) Topic(name string) (kafka.ClusterTopic, bool) {
	t, ok := m.node.Meta().Topic(name)
	if !ok || t.Deleting {
		return kafka.ClusterTopic{}, false
	}
	return m.describe(t), true
}

// TopicByID finds a topic by id.
func (m *Manager) TopicByID(id [16]byte) (kafka.ClusterTopic, bool) {
	for _, t := range m.node.Meta().Topics() {
		if t.ID == id && !t.Deleting {
			return m.describe(t), true
		}
	}
	return kafka.ClusterTopic{}, false
}

func (m *Manager) describe(t cluster.TopicAssignment) kafka.ClusterTopic {
	ct := kafka.ClusterTopic{
		Info: broker.TopicInfo{
			Name: t.Name, ID: t.ID, Partitions: t.Partitions(), Configs: t.Configs,
			Internal: strings.HasPrefix(t.Name, "__"),
		},
		Partitions: make([]kafka.ClusterPartition, t.Partitions()),
	}
	for p := range ct.Partitions {
		ct.Partitions[p] = kafka.ClusterPartition{Leader: -1, LeaderEpoch: -1, Replicas: t.Replicas[p]}
	}
	for _, ps := range m.node.Meta().Partitions(t.Name) {
		if ps.Partition < 0 || int(ps.Partition) >= len(ct.Partitions) {
			continue
		}
		cp := kafka.ClusterPartition{Leader: ps.Leader, LeaderEpoch: ps.LeaderEpoch, Replicas: ps.Replicas, ISR: ps.ISR}
		for _, id := range ps.Replicas {
			if !m.node.IsLive(id) {
				cp.Offline = append(cp.Offline, id)
			}
		}
		ct.Partitions[ps.Partition] = cp
	}
	return ct
}

// CreateTopic creates a topic across the cluster.
func (m *Manager) CreateTopic(ctx context.Context, name string, partitions, rf int32, configs map[string]string) (kafka.ClusterTopic, error) {
	if err := broker.ValidateTopic(name, partitions, configs); err != nil {
		return kafka.ClusterTopic{}, err
	}
	live := m.node.LiveNodes()
	if rf == -1 {
		rf = m.cfg.DefaultReplicationFactor
		if rf <= 0 {
			rf = int32(min(3, len(live)))
		}
	}
	if rf < 1 || int(rf) > len(live) {
		return kafka.ClusterTopic{}, fmt.Errorf("%w: %d with %d live nodes", broker.ErrInvalidReplication, rf, len(live))
	}
	if min := broker.MinInsyncReplicas(configs); min > int(rf) {
		return kafka.ClusterTopic{}, fmt.Errorf("%w: min.insync.replicas %d is above the replication factor %d", broker.ErrInvalidConfig, min, rf)
	}
	replicas, err := cluster.AssignReplicas(live, partitions, rf, mrand.IntN(len(live)))
	if err != nil {
		return kafka.ClusterTopic{}, fmt.Errorf("%w: %v", broker.ErrInvalidReplication, err)
	}
	t := cluster.TopicAssignment{Name: name, Replicas: replicas, Configs: configs}
	if _, err := rand.Read(t.ID[:]); err != nil {
		return kafka.ClusterTopic{}, err
	}
	if err := m.node.Meta().CreateTopic(ctx, t); err != nil {
		if errors.Is(err, cluster.ErrTopicExists) {
			return kafka.ClusterTopic{}, fmt.Errorf("%w: %s", broker.ErrTopicExists, name)
		}
		return kafka.ClusterTopic{}, err
	}
	m.log.Info("topic created", "topic", name, "partitions", partitions, "replication_factor", rf)
	ct, _ := m.Topic(name)
	return ct, nil
}

// EnsureTopic returns a topic, creating it if auto-creation is on.
func (m *Manager) EnsureTopic(ctx context.Context, name string) (kafka.ClusterTopic, error) {
	if t, ok := m.Topic(name); ok {
		return t, nil
	}
	if !m.cfg.AutoCreateTopics {
		return kafka.ClusterTopic{}, fmt.Errorf("%w: %s", broker.ErrUnknownTopic, name)
	}
	t, err := m.CreateTopic(ctx, name, m.cfg.DefaultPartitions, -1, nil)
	if errors.Is(err, broker.ErrTopicExists) {
		if err := m.node.Meta().WaitRevision(ctx, m.node.Meta().Revision()); err == nil {
			if t, ok := m.Topic(name); ok {
				return t, nil
			}
		}
	}
	return t, err
}

// DeleteTopic deletes a topic from the cluster.
func (m *Manager) DeleteTopic(ctx context.Context, name string) error {
	err := m.node.Meta().DeleteTopic(ctx, name)
	if errors.Is(err, cluster.ErrUnknownTopic) {
		return fmt.Errorf("%w: %s", broker.ErrUnknownTopic, name)
	}
	return err
}

// Leader returns the local partition if this node leads it. When it does
// not, the metadata may name it already without this node having caught up
// (a client can learn of a new leader from another node first), so before
// sending the client away it syncs its metadata and, if named, takes the
// role up; this costs at most roleTakeUpWait, on a path that is rare.
func (m *Manager) Leader(topic string, partition int32) (*storage.Partition, int32, error) {
	part, epoch, err := m.leaderNow(topic, partition)
	if err == nil {
		return part, epoch, nil
	}
	ctx, cancel := context.WithTimeout(m.ctx, roleTakeUpWait)
	defer cancel()
	if m.node.Meta().Sync(ctx) != nil {
		return part, epoch, err
	}
	if ps, ok := m.node.Meta().Partition(topic, partition); !ok || ps.Leader != m.self {
		return m.leaderNow(topic, partition)
	}
	select {
	case m.kick <- struct{}{}:
	default:
	}
	for {
		if part, epoch, err = m.leaderNow(topic, partition); err == nil {
			return part, epoch, nil
		}
		select {
		case <-ctx.Done():
			return part, epoch, err
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// leaderNow answers Leader from the replica's current role.
func (m *Manager) leaderNow(topic string, partition int32) (*storage.Partition, int32, error) {
	if r := m.replica(topic, partition); r != nil {
		return r.leaderOf()
	}
	ps, ok := m.node.Meta().Partition(topic, partition)
	switch {
	case !ok:
		return nil, 0, fmt.Errorf("%w: %s-%d", broker.ErrUnknownTopic, topic, partition)
	case ps.Leader < 0:
		return nil, 0, broker.ErrLeaderNotAvailable
	default:
		return nil, 0, broker.ErrNotLeader
	}
}

// roleTakeUpWait bounds how long a request waits for this node to catch up
// with the metadata and take up a leadership it has been given.
const roleTakeUpWait = 500 * time.Millisecond

// CheckInSync fails while the ISR is below min.insync.replicas.
func (m *Manager) CheckInSync(topic string, partition int32) error {
	r := m.replica(topic, partition)
	if r == nil {
		return broker.ErrNotLeader
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.isr) < r.minISR {
		return fmt.Errorf("%w: ISR %v, min.insync.replicas %d", broker.ErrNotEnoughReplicas, r.isr, r.minISR)
	}
	return nil
}

// AwaitReplicated waits for the high watermark to reach end.
func (m *Manager) AwaitReplicated(topic string, partition int32, epoch int32, end int64, timeout time.Duration) error {
	r := m.replica(topic, partition)
	if r == nil {
		return broker.ErrNotLeader
	}
	return r.awaitHW(epoch, end, timeout)
}

// NextProducerID hands out producer ids from blocks reserved in the
// cluster metadata, so ids are unique across nodes and restarts.
func (m *Manager) NextProducerID(ctx context.Context) (int64, error) {
	m.pidMu.Lock()
	defer m.pidMu.Unlock()
	if m.pidNext >= m.pidLast {
		const block = 1000
		start, err := m.node.Meta().NextProducerIDBlock(ctx, block)
		if err != nil {
			return 0, fmt.Errorf("replication: reserve producer ids: %w", err)
		}
		m.pidNext, m.pidLast = start, start+block
	}
	id := m.pidNext
	m.pidNext++
	return id, nil
}

// Reassign records a reassignment for the controller. The new replicas
// must be live nodes: moving a partition onto a node that is down would
// stall until it came back.
func (m *Manager) Reassign(ctx context.Context, topic string, partition int32, replicas []int32) error {
	for _, id := range replicas {
		if !m.node.IsLive(id) {
			return fmt.Errorf("%w: node %d is not live", broker.ErrInvalidReplication, id)
		}
	}
	err := m.node.Meta().RequestReassignment(ctx, topic, partition, replicas)
	switch {
	case errors.Is(err, cluster.ErrUnknownTopic):
		return fmt.Errorf("%w: %s-%d", broker.ErrUnknownTopic, topic, partition)
	case errors.Is(err, cluster.ErrInvalidReplicas):
		return fmt.Errorf("%w: %v", broker.ErrInvalidReplication, err)
	}
	return err
}
