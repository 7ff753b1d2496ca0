package group

import (
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"sync"
	"time"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/storage"
)

// OffsetsTopic is the internal compacted topic that holds committed
// offsets and facts.
const OffsetsTopic = "__consumer_offsets"

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Offset is a committed position in a partition.
type Offset struct {
	Offset      int64
	LeaderEpoch int32   // -1 if unknown
	Metadata    *string // client's metadata string; nil is null
	CommitTime  int64   // broker time of the commit, ms since the epoch
}

// Fact is a small named value that a task records atomically with its
// offsets (for example the end offset of a state store's changelog). A
// nil Value deletes the fact.
type Fact struct {
	Name  string
	Value []byte
}

// Commit is everything one call to OffsetStore.Commit writes, as one
// RecordBatch, so it all becomes durable together or not at all.
type Commit struct {
	Group   string
	Offsets map[TopicPartition]Offset
	Facts   []Fact
}

// ErrTooManyEntries rejects a commit that does not fit in one batch.
var ErrTooManyEntries = errors.New("group: commit has too many entries for one batch")

const maxEntriesPerCommit = 1 << 20

// entry is a committed value with the log offset that wrote it: of two
// concurrent commits of one key, the later in the log wins in memory too,
// as it will on replay.
type entry[V any] struct {
	v      V
	logOff int64
}

type groupOffsets struct {
	offsets map[TopicPartition]entry[Offset]
	facts   map[string]entry[[]byte]
	// deletedAt is the log offset of the last DeleteGroup; older entries
	// landing after it in memory (commits racing the delete) are ignored.
	deletedAt int64
}

// OffsetStore keeps committed offsets and facts in memory, backed by the
// offsets topic. Its methods are safe for concurrent use; commits run
// concurrently and share fsyncs in storage (no lock is held while a commit
// waits for the disk).
type OffsetStore struct {
	parts []*storage.Partition // single node: the offsets topic's partitions
	now   func() time.Time

	// repl is set in a cluster, where parts is unused: each partition of
	// the offsets topic is written by its leader only, and that node
	// serves the groups hashed to it (see Ready).
	repl   Replicator
	loadMu sync.Mutex
	loaded map[int32]int32 // partition → leader epoch its groups were loaded at

	mu     sync.RWMutex
	groups map[string]*groupOffsets

	builders sync.Pool
}

// Replicator is the offsets topic's side of a replicated cluster. Only the
// leader of a partition of the offsets topic may write it, and a commit is
// acknowledged once every in-sync replica has it, so that it survives the
// loss of the node. The leader of the partition a group hashes to is the
// group's coordinator (FindCoordinator names it).
type Replicator interface {
	// OffsetsPartitions is the offsets topic's partition count; 0 while
	// the topic does not exist.
	OffsetsPartitions() int32
	// Lead returns the local replica of partition p and its leader epoch
	// when this node leads it, and an error otherwise.
	Lead(p int32) (*storage.Partition, int32, error)
	// AwaitReplicated waits until the in-sync replicas of partition p hold
	// every record below end, written at epoch.
	AwaitReplicated(p int32, epoch int32, end int64) error
}

// Errors of a clustered store; broker/kafka maps them to codes.
var (
	// ErrNotCoordinator: this node does not lead the group's partition of
	// the offsets topic; the client must find the coordinator again.
	ErrNotCoordinator = errors.New("group: this node is not the group's coordinator")
	// ErrCoordinatorNotAvailable: the offsets topic does not exist yet.
	ErrCoordinatorNotAvailable = errors.New("group: the offsets topic is not available")
)

// PartitionFor is the partition of an offsets topic of n partitions that
// holds group's offsets.
func PartitionFor(group string, n int32) int32 {
	h := fnv.New32a()
	h.Write([]byte(group))
	return int32(h.Sum32() % uint32(n))
}

// newReplicatedStore is the store of a cluster node; it reads nothing until
// it leads a partition (see Ready).
func newReplicatedStore(repl Replicator, now func() time.Time) *OffsetStore {
	s := &OffsetStore{now: now, groups: make(map[string]*groupOffsets), repl: repl, loaded: make(map[int32]int32)}
	s.builders.New = func() any { return new(batch.Builder) }
	return s
}

// Ready is the coordinator check of a cluster: it fails with
// ErrNotCoordinator unless this node leads the group's partition of the
// offsets topic, and the first time it leads it at a new epoch it loads
// the partition's groups from the local log (which, on a new leader, holds
// everything the old one acknowledged). On a single node it always
// succeeds.
func (s *OffsetStore) Ready(group string) error {
	if s.repl == nil {
		return nil
	}
	_, _, _, err := s.lead(group)
	return err
}

// lead resolves group's partition in a cluster, loading it if needed.
func (s *OffsetStore) lead(group string) (int32, *storage.Partition, int32, error) {
	n := s.repl.OffsetsPartitions()
	if n <= 0 {
		return 0, nil, 0, ErrCoordinatorNotAvailable
	}
	p := PartitionFor(group, n)
	part, epoch, err := s.repl.Lead(p)
	if err != nil {
		return p, nil, 0, fmt.Errorf("%w: %v", ErrNotCoordinator, err)
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if e, ok := s.loaded[p]; ok && e == epoch {
		return p, part, epoch, nil
	}
	// What another node wrote while it led the partition is in our log
	// now (we followed it); what we held in memory from an earlier term
	// may be stale.
	s.mu.Lock()
	for g := range s.groups {
		if PartitionFor(g, n) == p {
			delete(s.groups, g)
		}
	}
	s.mu.Unlock()
	if err := s.replayTo(part, part.LogEndOffset()); err != nil {
		return p, nil, 0, fmt.Errorf("group: load %s-%d: %w", OffsetsTopic, p, err)
	}
	s.loaded[p] = epoch
	return p, part, epoch, nil
}

// openOffsetStore creates the offsets topic if missing and replays it.
func openOffsetStore(b *broker.Broker, partitions int32, now func() time.Time) (*OffsetStore, error) {
	info, ok := b.Topic(OffsetsTopic)
	if !ok {
		var err error
		info, err = b.CreateTopic(OffsetsTopic, partitions, map[string]string{
			"cleanup.policy": "compact",
			"segment.bytes":  "104857600",
		})
		if errors.Is(err, broker.ErrTopicExists) {
			info, ok = b.Topic(OffsetsTopic)
			if !ok {
				return nil, fmt.Errorf("group: %s vanished", OffsetsTopic)
			}
		} else if err != nil {
			return nil, fmt.Errorf("group: create %s: %w", OffsetsTopic, err)
		}
	}
	s := &OffsetStore{now: now, groups: make(map[string]*groupOffsets)}
	s.builders.New = func() any { return new(batch.Builder) }
	for p := int32(0); p < info.Partitions; p++ {
		part, err := b.Partition(OffsetsTopic, p)
		if err != nil {
			return nil, fmt.Errorf("group: %s-%d: %w", OffsetsTopic, p, err)
		}
		s.parts = append(s.parts, part)
		if err := s.replay(part); err != nil {
			return nil, fmt.Errorf("group: replay %s-%d: %w", OffsetsTopic, p, err)
		}
	}
	return s, nil
}

func (s *OffsetStore) partitionFor(group string) *storage.Partition {
	return s.parts[PartitionFor(group, int32(len(s.parts)))]
}

// replay loads a partition of the offsets topic into memory.
func (s *OffsetStore) replay(p *storage.Partition) error {
	return s.replayTo(p, -1)
}

// replayTo loads a partition into memory up to end, or up to the high
// watermark for end -1.
func (s *OffsetStore) replayTo(p *storage.Partition, end int64) error {
	off := p.LogStartOffset()
	limit, read := p.HighWatermark(), p.ReadInto
	if end >= 0 {
		limit, read = end, p.ReadReplica
	}
	var buf []byte
	for off < limit {
		data, err := read(buf, off, 1<<20)
		if err != nil {
			return err
		}
		buf = data[:0]
		if len(data) == 0 {
			break
		}
		for len(data) > 0 {
			b, h, rest, err := batch.Next(data)
			if err != nil {
				break // a partial batch at the end of the read
			}
			data = rest
			off = h.NextOffset()
			var derr error
			err = batch.Records(b, func(r *batch.Record) bool {
				if derr = s.apply(r.Key, r.Value, r.Offset); derr != nil {
					return false
				}
				return true
			})
			if err == nil {
				err = derr
			}
			if err != nil {
				return fmt.Errorf("offset %d: %w", h.BaseOffset, err)
			}
		}
	}
	return nil
}

// apply puts one record of the offsets topic into memory.
func (s *OffsetStore) apply(key, value []byte, logOff int64) error {
	k, err := decodeKey(key)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[k.group]
	if g == nil {
		if value == nil || k.kind == kindGroupDeleted {
			return nil
		}
		g = &groupOffsets{offsets: map[TopicPartition]entry[Offset]{}, facts: map[string]entry[[]byte]{}, deletedAt: -1}
		s.groups[k.group] = g
	}
	if logOff <= g.deletedAt {
		return nil
	}
	switch k.kind {
	case kindOffset:
		if cur, ok := g.offsets[k.tp]; ok && cur.logOff > logOff {
			return nil
		}
		if value == nil {
			delete(g.offsets, k.tp)
			break
		}
		o, err := decodeOffset(value)
		if err != nil {
			return err
		}
		g.offsets[k.tp] = entry[Offset]{o, logOff}
	case kindFact:
		if cur, ok := g.facts[k.name]; ok && cur.logOff > logOff {
			return nil
		}
		if value == nil {
			delete(g.facts, k.name)
			break
		}
		v, err := decodeFact(value)
		if err != nil {
			return err
		}
		g.facts[k.name] = entry[[]byte]{v, logOff}
	case kindGroupDeleted:
		// Every entry older than the marker is gone; the marker itself
		// stays until compaction removes its tombstone.
		g.deletedAt = logOff
		for tp, e := range g.offsets {
			if e.logOff < logOff {
				delete(g.offsets, tp)
			}
		}
		for n, e := range g.facts {
			if e.logOff < logOff {
				delete(g.facts, n)
			}
		}
	}
	if len(g.offsets) == 0 && len(g.facts) == 0 && k.kind == kindGroupDeleted {
		delete(s.groups, k.group)
	}
	return nil
}

// Commit durably records c's offsets and facts as ONE RecordBatch in one
// append to the group's partition of the offsets topic: after a crash
// either all of them are there or none. It returns once they are durable
// (per the offsets topic's flush policy, fsync by default) and visible to
// Fetch. Concurrent commits share fsyncs.
func (s *OffsetStore) Commit(c Commit) error {
	n := len(c.Offsets) + len(c.Facts)
	if n == 0 {
		return nil
	}
	if n > maxEntriesPerCommit {
		return ErrTooManyEntries
	}
	now := s.now().UnixMilli()
	bld := s.builders.Get().(*batch.Builder)
	defer s.builders.Put(bld)
	bld.Reset(now)
	// Sorted, so that a batch's layout does not depend on map order.
	tps := make([]TopicPartition, 0, len(c.Offsets))
	for tp := range c.Offsets {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool {
		return tps[i].Topic < tps[j].Topic || tps[i].Topic == tps[j].Topic && tps[i].Partition < tps[j].Partition
	})
	var delta int32
	stamped := make([]Offset, len(tps))
	for i, tp := range tps {
		o := c.Offsets[tp]
		o.CommitTime = now
		stamped[i] = o
		bld.Add(delta, now, encodeOffsetKey(c.Group, tp), encodeOffset(o), nil)
		delta++
	}
	for _, f := range c.Facts {
		var v []byte
		if f.Value != nil {
			v = encodeFact(f.Value)
		}
		bld.Add(delta, now, encodeFactKey(c.Group, f.Name), v, nil)
		delta++
	}
	info, err := s.append(c.Group, bld.Finish())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[c.Group]
	if g == nil {
		g = &groupOffsets{offsets: map[TopicPartition]entry[Offset]{}, facts: map[string]entry[[]byte]{}, deletedAt: -1}
		s.groups[c.Group] = g
	}
	off := info.BaseOffset
	if off <= g.deletedAt {
		return nil
	}
	for i, tp := range tps {
		if cur, ok := g.offsets[tp]; !ok || cur.logOff < off {
			g.offsets[tp] = entry[Offset]{stamped[i], off}
		}
		off++
	}
	for _, f := range c.Facts {
		if cur, ok := g.facts[f.Name]; !ok || cur.logOff < off {
			if f.Value == nil {
				delete(g.facts, f.Name)
			} else {
				g.facts[f.Name] = entry[[]byte]{append([]byte(nil), f.Value...), off}
			}
		}
		off++
	}
	return nil
}

// append writes one batch and waits for it to be durable (in a cluster:
// on every in-sync replica), holding no lock of the store meanwhile.
func (s *OffsetStore) append(group string, records []byte) (storage.AppendInfo, error) {
	if s.repl != nil {
		p, part, epoch, err := s.lead(group)
		if err != nil {
			return storage.AppendInfo{}, err
		}
		info, pending, err := part.AppendAsync(records, epoch)
		if err == nil {
			err = pending.Wait()
		}
		if err == nil {
			err = s.repl.AwaitReplicated(p, epoch, info.LastOffset+1)
		}
		return info, err
	}
	info, pending, err := s.partitionFor(group).AppendAsync(records, 0)
	if err != nil {
		return info, err
	}
	if err := pending.Wait(); err != nil {
		return info, err
	}
	return info, nil
}

// DeleteGroup removes a group's offsets and facts: one batch holding a
// tombstone for each and a group-deleted marker, so replay drops even
// entries that compaction has not yet tombstoned. It reports whether the
// group had anything stored.
func (s *OffsetStore) DeleteGroup(group string) (bool, error) {
	s.mu.RLock()
	g := s.groups[group]
	var keys [][]byte
	if g != nil {
		for tp := range g.offsets {
			keys = append(keys, encodeOffsetKey(group, tp))
		}
		for n := range g.facts {
			keys = append(keys, encodeFactKey(group, n))
		}
	}
	s.mu.RUnlock()
	if g == nil {
		return false, nil
	}
	now := s.now().UnixMilli()
	var bld batch.Builder
	bld.Reset(now)
	for i, k := range keys {
		bld.Add(int32(i), now, k, nil, nil)
	}
	bld.Add(int32(len(keys)), now, encodeGroupDeletedKey(group), nil, nil)
	info, err := s.append(group, bld.Finish())
	if err != nil {
		return true, err
	}
	s.apply(encodeGroupDeletedKey(group), nil, info.LastOffset)
	return true, nil
}

// Fetch returns a group's committed offset for tp.
func (s *OffsetStore) Fetch(group string, tp TopicPartition) (Offset, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if g := s.groups[group]; g != nil {
		e, ok := g.offsets[tp]
		return e.v, ok
	}
	return Offset{}, false
}

// FetchAll returns every committed offset of a group.
func (s *OffsetStore) FetchAll(group string) map[TopicPartition]Offset {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[TopicPartition]Offset{}
	if g := s.groups[group]; g != nil {
		for tp, e := range g.offsets {
			out[tp] = e.v
		}
	}
	return out
}

// Fact returns a fact recorded with Commit.
func (s *OffsetStore) Fact(group, name string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if g := s.groups[group]; g != nil {
		e, ok := g.facts[name]
		return e.v, ok
	}
	return nil, false
}

// Groups lists the groups with stored offsets or facts.
func (s *OffsetStore) Groups() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.groups))
	for g := range s.groups {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// Has reports whether a group has stored offsets or facts.
func (s *OffsetStore) Has(group string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.groups[group] != nil
}
