package cluster

import (
	"errors"
	"slices"
)

// NodeInfo is what a node advertises about itself in the liveness bucket.
type NodeInfo struct {
	ID        int32  `json:"id"`
	KafkaHost string `json:"kafkaHost"`
	KafkaPort int32  `json:"kafkaPort"`
	Rack      string `json:"rack,omitempty"`
	// Incarnation is random per process start, so peers can tell a restart
	// (which lost in-memory state) from a node that never went away.
	Incarnation int64 `json:"incarnation"`
}

// TopicAssignment is the desired state of a topic: which nodes hold each
// partition. It is written when the topic is created and changed by the
// controller only (reassignment, deletion).
type TopicAssignment struct {
	Name     string            `json:"name"`
	ID       [16]byte          `json:"id"`       // Kafka topic id
	Replicas [][]int32         `json:"replicas"` // per partition, preferred leader first; len = partition count
	Configs  map[string]string `json:"configs,omitempty"`
	Deleting bool              `json:"deleting,omitempty"`
}

// Partitions is the partition count.
func (t TopicAssignment) Partitions() int32 { return int32(len(t.Replicas)) }

func (t TopicAssignment) clone() TopicAssignment {
	c := t
	c.Replicas = make([][]int32, len(t.Replicas))
	for i, r := range t.Replicas {
		c.Replicas[i] = slices.Clone(r)
	}
	if t.Configs != nil {
		c.Configs = make(map[string]string, len(t.Configs))
		for k, v := range t.Configs {
			c.Configs[k] = v
		}
	}
	return c
}

// PartitionState is the current leadership of one partition, as KRaft's
// PartitionRecord: written by the controller (elections, reassignment) and by
// the partition leader (ISR shrink and expand), always as a CAS.
type PartitionState struct {
	Topic          string  `json:"topic"`
	Partition      int32   `json:"partition"`
	Leader         int32   `json:"leader"`      // -1: none (no live in-sync replica; unclean election is off)
	LeaderEpoch    int32   `json:"leaderEpoch"` // bumped on every leader change
	ISR            []int32 `json:"isr"`
	Replicas       []int32 `json:"replicas"` // current assignment (during a reassignment: old ∪ new)
	Adding         []int32 `json:"adding,omitempty"`
	Removing       []int32 `json:"removing,omitempty"`
	PartitionEpoch int32   `json:"partitionEpoch"` // bumped on every change (ISR or leader), like KRaft's
}

func (s PartitionState) clone() PartitionState {
	c := s
	c.ISR = slices.Clone(s.ISR)
	c.Replicas = slices.Clone(s.Replicas)
	c.Adding = slices.Clone(s.Adding)
	c.Removing = slices.Clone(s.Removing)
	return c
}

// Sentinel errors that callers branch on (the Kafka layer maps them to error
// codes).
var (
	ErrTopicExists  = errors.New("cluster: topic already exists")
	ErrUnknownTopic = errors.New("cluster: unknown topic or partition")
	// ErrConflict means a compare-and-set kept losing to concurrent writers.
	ErrConflict = errors.New("cluster: too many concurrent updates")
	// ErrNotController is for requests only the controller may serve. Nothing
	// in this package returns it yet: the controller's own writes simply stop
	// when its lease is lost.
	ErrNotController            = errors.New("cluster: this node is not the controller")
	ErrInvalidReplicationFactor = errors.New("cluster: replication factor larger than the number of live nodes")
	ErrInvalidReplicas          = errors.New("cluster: invalid replica list")
)
