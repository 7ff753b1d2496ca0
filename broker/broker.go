// Package broker is one sluice node's set of topics and partitions: it
// creates, configures, opens and deletes topics, keeps their metadata on
// disk, and runs the background cleaner (retention and compaction). The
// Kafka front door (broker/kafka) and the CLI build on it.
//
// On disk, a node's data directory holds topics.json (see metadata.go) and
// one directory per partition named "<topic>-<partition>", as in Kafka.
package broker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-io/sluice/broker/storage"
)

// Errors callers branch on; broker/kafka maps each to a Kafka error code.
var (
	ErrTopicExists        = errors.New("broker: topic already exists")
	ErrUnknownTopic       = errors.New("broker: unknown topic or partition")
	ErrInvalidTopic       = errors.New("broker: invalid topic name")
	ErrInvalidPartitions  = errors.New("broker: invalid partition count")
	ErrInvalidConfig      = errors.New("broker: invalid topic config")
	ErrInvalidReplication = errors.New("broker: invalid replication factor")
	ErrClosed             = errors.New("broker: closed")
)

// Errors of a replicated cluster (broker/replication), here so that the
// Kafka front door can map them to codes without importing the cluster.
var (
	// ErrNotLeader: this node is not the partition's leader (any more).
	ErrNotLeader = errors.New("broker: this node is not the partition's leader")
	// ErrLeaderNotAvailable: the partition has no leader right now (an
	// election is running, or no in-sync replica is alive).
	ErrLeaderNotAvailable = errors.New("broker: the partition has no leader")
	// ErrNotEnoughReplicas: acks=all with fewer in-sync replicas than
	// min.insync.replicas; nothing was appended.
	ErrNotEnoughReplicas = errors.New("broker: fewer in-sync replicas than min.insync.replicas")
	// ErrNotEnoughReplicasAfterAppend: the records were appended, but the
	// ISR shrank below min.insync.replicas before they were replicated.
	ErrNotEnoughReplicasAfterAppend = errors.New("broker: appended, but the in-sync replicas fell below min.insync.replicas")
	// ErrFencedLeaderEpoch: the request names an older leader epoch.
	ErrFencedLeaderEpoch = errors.New("broker: leader epoch is older than the current one")
	// ErrUnknownLeaderEpoch: the request names a leader epoch this node
	// has not heard of yet.
	ErrUnknownLeaderEpoch = errors.New("broker: leader epoch is newer than this node knows")
	// ErrReplicationTimeout: acks=all did not complete within the
	// request's timeout.
	ErrReplicationTimeout = errors.New("broker: timed out waiting for the in-sync replicas")
)

// MaxPartitions bounds the partition count of one topic on a single node;
// each partition holds open files, so a typo like 1e9 must not be obeyed.
const MaxPartitions = 10000

// Config configures a node.
type Config struct {
	DataDir           string
	NodeID            int32
	Defaults          storage.Config // topic defaults; per-topic configs override
	AutoCreateTopics  bool           // EnsureTopic creates unknown topics
	DefaultPartitions int32          // partitions of auto-created topics
	CleanInterval     time.Duration  // how often the cleaner runs retention and compaction
	// ExternalHW hands every partition's high watermark to replication:
	// appends no longer make records visible to consumers, the leader
	// does once the in-sync replicas have them (cluster mode).
	ExternalHW bool
	Logger     *slog.Logger
}

// TopicInfo describes one topic.
type TopicInfo struct {
	Name       string
	ID         [16]byte
	Partitions int32
	Configs    map[string]string // explicitly set configs only
	Internal   bool              // name starts with "__"
}

// ConfigEntry is one topic config as DescribeConfigs reports it.
type ConfigEntry struct {
	Name      string
	Value     string
	IsDefault bool
	ReadOnly  bool
}

type topic struct {
	info       TopicInfo
	partitions []*storage.Partition
}

// Broker owns a node's topics. Methods are safe for concurrent use.
type Broker struct {
	cfg Config
	log *slog.Logger

	clusterID string

	mu     sync.RWMutex
	topics map[string]*topic
	byID   map[[16]byte]*topic
	closed bool
	// producerIDs hands out ids below producerIDLimit, which is persisted.
	nextProducerID  int64
	producerIDLimit int64
}

// Open loads topic metadata from cfg.DataDir and opens every partition.
func Open(cfg Config) (*Broker, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("broker: no data directory configured")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = 1
	}
	if cfg.CleanInterval <= 0 {
		cfg.CleanInterval = 30 * time.Second
	}
	if cfg.Defaults == (storage.Config{}) {
		cfg.Defaults = storage.DefaultConfig()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("broker: data directory: %w", err)
	}
	md, err := loadMetadata(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b := &Broker{
		cfg:             cfg,
		log:             cfg.Logger,
		clusterID:       md.ClusterID,
		topics:          make(map[string]*topic),
		byID:            make(map[[16]byte]*topic),
		nextProducerID:  md.ProducerIDLimit,
		producerIDLimit: md.ProducerIDLimit,
	}
	b.removeDeletedDirs()
	for _, rec := range md.Topics {
		t, err := b.openTopic(rec)
		if err != nil {
			b.Close()
			return nil, err
		}
		b.topics[rec.Name] = t
		b.byID[rec.ID] = t
	}
	if b.clusterID == "" {
		var id [16]byte
		if _, err := rand.Read(id[:]); err != nil {
			return nil, err
		}
		b.clusterID = base64.RawURLEncoding.EncodeToString(id[:])
		b.mu.Lock()
		err := b.saveLocked()
		b.mu.Unlock()
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("broker: persist cluster id: %w", err)
		}
	}
	b.log.Info("broker opened", "data_dir", cfg.DataDir, "topics", len(b.topics))
	return b, nil
}

func (b *Broker) openTopic(rec topicRecord) (*topic, error) {
	cfg, err := effectiveConfig(b.cfg.Defaults, rec.Configs)
	if err != nil {
		return nil, fmt.Errorf("broker: topic %s: %w", rec.Name, err)
	}
	cfg.ExternalHW = b.cfg.ExternalHW
	t := &topic{info: infoOf(rec)}
	for p := int32(0); p < rec.Partitions; p++ {
		part, err := storage.OpenPartition(b.partitionDir(rec.Name, p), cfg, b.log.With("topic", rec.Name, "partition", p))
		if err != nil {
			for _, opened := range t.partitions {
				opened.Close()
			}
			return nil, fmt.Errorf("broker: open %s-%d: %w", rec.Name, p, err)
		}
		t.partitions = append(t.partitions, part)
	}
	return t, nil
}

func infoOf(rec topicRecord) TopicInfo {
	configs := make(map[string]string, len(rec.Configs))
	for k, v := range rec.Configs {
		configs[k] = v
	}
	return TopicInfo{Name: rec.Name, ID: rec.ID, Partitions: rec.Partitions, Configs: configs, Internal: strings.HasPrefix(rec.Name, "__")}
}

func (b *Broker) partitionDir(name string, p int32) string {
	return filepath.Join(b.cfg.DataDir, name+"-"+strconv.Itoa(int(p)))
}

// NodeID is this node's id.
func (b *Broker) NodeID() int32 { return b.cfg.NodeID }

// ClusterID identifies the cluster; it is generated once per data directory.
func (b *Broker) ClusterID() string { return b.clusterID }

// DefaultPartitions is the partition count for topics created without one.
func (b *Broker) DefaultPartitions() int32 { return b.cfg.DefaultPartitions }

// DataDir is the node's data directory.
func (b *Broker) DataDir() string { return b.cfg.DataDir }

// CreateTopic creates a topic. configs are Kafka topic config names (see
// topicconfig.go). Errors: ErrTopicExists, ErrInvalidTopic,
// ErrInvalidPartitions, ErrInvalidConfig (naming the offending keys).
func (b *Broker) CreateTopic(name string, partitions int32, configs map[string]string) (TopicInfo, error) {
	if err := ValidateTopic(name, partitions, configs); err != nil {
		return TopicInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return TopicInfo{}, ErrClosed
	}
	if _, ok := b.topics[name]; ok {
		return TopicInfo{}, fmt.Errorf("%w: %s", ErrTopicExists, name)
	}
	for other := range b.topics {
		if collisionKey(other) == collisionKey(name) {
			return TopicInfo{}, fmt.Errorf("%w: %q collides with existing topic %q ('.' and '_' are treated alike)", ErrInvalidTopic, name, other)
		}
	}
	rec := topicRecord{Name: name, Partitions: partitions, Configs: configs}
	if _, err := rand.Read(rec.ID[:]); err != nil {
		return TopicInfo{}, err
	}
	// Stale directories of an earlier topic with this name would be read as
	// this topic's data; deletion renames them away, so this is a safeguard.
	for p := int32(0); p < partitions; p++ {
		if err := os.RemoveAll(b.partitionDir(name, p)); err != nil {
			return TopicInfo{}, err
		}
	}
	t, err := b.openTopic(rec)
	if err != nil {
		return TopicInfo{}, err
	}
	b.topics[name] = t
	b.byID[rec.ID] = t
	if err := b.saveLocked(); err != nil {
		delete(b.topics, name)
		delete(b.byID, rec.ID)
		for _, p := range t.partitions {
			p.Delete()
		}
		return TopicInfo{}, fmt.Errorf("broker: persist topic %s: %w", name, err)
	}
	b.log.Info("topic created", "topic", name, "partitions", partitions, "configs", configs)
	return t.info, nil
}

// ApplyTopic makes a topic that the cluster metadata defines exist on this
// node, with the metadata's id (not a new one), and returns it. A topic
// already present with the same id is left as it is; one with the same name
// but another id is an earlier incarnation that the cluster deleted while
// this node was away, so it is deleted first.
func (b *Broker) ApplyTopic(info TopicInfo) (TopicInfo, error) {
	if cur, ok := b.Topic(info.Name); ok {
		if cur.ID == info.ID {
			return cur, nil
		}
		b.log.Info("replacing an older incarnation of a topic", "topic", info.Name)
		if err := b.DeleteTopic(info.Name); err != nil && !errors.Is(err, ErrUnknownTopic) {
			return TopicInfo{}, err
		}
	}
	if err := ValidateTopic(info.Name, info.Partitions, info.Configs); err != nil {
		return TopicInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return TopicInfo{}, ErrClosed
	}
	if t, ok := b.topics[info.Name]; ok { // created concurrently
		return t.info, nil
	}
	rec := topicRecord{Name: info.Name, ID: info.ID, Partitions: info.Partitions, Configs: info.Configs}
	t, err := b.openTopic(rec)
	if err != nil {
		return TopicInfo{}, err
	}
	b.topics[info.Name] = t
	b.byID[rec.ID] = t
	if err := b.saveLocked(); err != nil {
		delete(b.topics, info.Name)
		delete(b.byID, rec.ID)
		for _, p := range t.partitions {
			p.Close()
		}
		return TopicInfo{}, fmt.Errorf("broker: persist topic %s: %w", info.Name, err)
	}
	b.log.Info("topic applied from cluster metadata", "topic", info.Name, "partitions", info.Partitions)
	return t.info, nil
}

// ValidateTopic checks a topic definition without creating it (Kafka's
// validate-only create).
func ValidateTopic(name string, partitions int32, configs map[string]string) error {
	if err := validTopicName(name); err != nil {
		return err
	}
	if partitions < 1 || partitions > MaxPartitions {
		return fmt.Errorf("%w: %d (must be 1..%d)", ErrInvalidPartitions, partitions, MaxPartitions)
	}
	_, err := effectiveConfig(storage.DefaultConfig(), configs)
	return err
}

// EnsureTopic returns the topic, creating it with the default partition
// count if it does not exist and auto-creation is enabled.
func (b *Broker) EnsureTopic(name string) (TopicInfo, error) {
	if info, ok := b.Topic(name); ok {
		return info, nil
	}
	if !b.cfg.AutoCreateTopics {
		return TopicInfo{}, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	info, err := b.CreateTopic(name, b.cfg.DefaultPartitions, nil)
	if errors.Is(err, ErrTopicExists) {
		if info, ok := b.Topic(name); ok {
			return info, nil
		}
	}
	return info, err
}

// DeleteTopic removes a topic and its data. ErrUnknownTopic if absent.
func (b *Broker) DeleteTopic(name string) error {
	b.mu.Lock()
	t, ok := b.topics[name]
	if !ok {
		b.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	delete(b.topics, name)
	delete(b.byID, t.info.ID)
	if err := b.saveLocked(); err != nil {
		b.topics[name] = t
		b.byID[t.info.ID] = t
		b.mu.Unlock()
		return fmt.Errorf("broker: persist deletion of %s: %w", name, err)
	}
	b.mu.Unlock()

	// The metadata no longer names the topic, so a crash from here on only
	// leaves directories that removeDeletedDirs or a later create clears.
	for p, part := range t.partitions {
		dir := b.partitionDir(name, int32(p))
		part.Close()
		gone := fmt.Sprintf("%s.%x-delete", dir, t.info.ID)
		if err := os.Rename(dir, gone); err != nil {
			b.log.Warn("rename deleted partition", "dir", dir, "err", err)
			continue
		}
		if err := os.RemoveAll(gone); err != nil {
			b.log.Warn("remove deleted partition", "dir", gone, "err", err)
		}
	}
	b.log.Info("topic deleted", "topic", name)
	return nil
}

// removeDeletedDirs finishes deletions interrupted by a crash.
func (b *Broker) removeDeletedDirs() {
	entries, _ := os.ReadDir(b.cfg.DataDir)
	for _, e := range entries {
		if e.IsDir() && strings.HasSuffix(e.Name(), "-delete") {
			os.RemoveAll(filepath.Join(b.cfg.DataDir, e.Name()))
		}
	}
}

// Topics lists all topics sorted by name.
func (b *Broker) Topics() []TopicInfo {
	b.mu.RLock()
	out := make([]TopicInfo, 0, len(b.topics))
	for _, t := range b.topics {
		out = append(out, t.info)
	}
	b.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topic returns one topic's description.
func (b *Broker) Topic(name string) (TopicInfo, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, ok := b.topics[name]
	if !ok {
		return TopicInfo{}, false
	}
	return t.info, true
}

// TopicByID finds a topic by its id, for requests that name topics by id.
func (b *Broker) TopicByID(id [16]byte) (TopicInfo, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, ok := b.byID[id]
	if !ok {
		return TopicInfo{}, false
	}
	return t.info, true
}

// DescribeConfigs returns every supported config of a topic with its
// effective value.
func (b *Broker) DescribeConfigs(name string) ([]ConfigEntry, error) {
	info, ok := b.Topic(name)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	return describe(b.cfg.Defaults, info.Configs)
}

// DescribeTopicConfigs is DescribeConfigs for a topic this node may not
// hold, given its explicitly set configs (from the cluster metadata).
func (b *Broker) DescribeTopicConfigs(configs map[string]string) ([]ConfigEntry, error) {
	return describe(b.cfg.Defaults, configs)
}

// Partition returns an open partition, or ErrUnknownTopic if the topic or
// the partition does not exist.
func (b *Broker) Partition(topicName string, partition int32) (*storage.Partition, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, ok := b.topics[topicName]
	if !ok || partition < 0 || int(partition) >= len(t.partitions) {
		return nil, fmt.Errorf("%w: %s-%d", ErrUnknownTopic, topicName, partition)
	}
	return t.partitions[partition], nil
}

// NextProducerID allocates a producer id for InitProducerId; ids are unique
// across restarts.
func (b *Broker) NextProducerID() (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.nextProducerID >= b.producerIDLimit {
		b.producerIDLimit = b.nextProducerID + producerIDBlock
		if err := b.saveLocked(); err != nil {
			b.producerIDLimit = b.nextProducerID
			return 0, fmt.Errorf("broker: reserve producer ids: %w", err)
		}
	}
	id := b.nextProducerID
	b.nextProducerID++
	return id, nil
}

func (b *Broker) saveLocked() error {
	md := metadata{ClusterID: b.clusterID, ProducerIDLimit: b.producerIDLimit}
	for _, t := range b.topics {
		md.Topics = append(md.Topics, topicRecord{Name: t.info.Name, ID: t.info.ID, Partitions: t.info.Partitions, Configs: t.info.Configs})
	}
	sort.Slice(md.Topics, func(i, j int) bool { return md.Topics[i].Name < md.Topics[j].Name })
	return saveMetadata(b.cfg.DataDir, md)
}

// Run runs the background cleaner until ctx is done: retention and
// compaction for every partition, every CleanInterval.
func (b *Broker) Run(ctx context.Context) error {
	tick := time.NewTicker(b.cfg.CleanInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			b.CleanOnce(now)
		}
	}
}

// CleanOnce runs retention and compaction on every partition once.
func (b *Broker) CleanOnce(now time.Time) {
	type target struct {
		name string
		p    int
		part *storage.Partition
	}
	var targets []target
	b.mu.RLock()
	for name, t := range b.topics {
		for p, part := range t.partitions {
			targets = append(targets, target{name, p, part})
		}
	}
	b.mu.RUnlock()
	for _, t := range targets {
		if err := t.part.Clean(now); err != nil && !errors.Is(err, storage.ErrClosed) {
			b.log.Warn("cleaning partition", "topic", t.name, "partition", t.p, "err", err)
		}
	}
}

// Close closes all partitions (flushing them). It is safe to call twice.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	for name, t := range b.topics {
		for p, part := range t.partitions {
			if err := part.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s-%d: %w", name, p, err))
			}
		}
	}
	return errors.Join(errs...)
}
