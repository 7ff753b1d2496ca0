package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/group"
	"github.com/sluice-io/sluice/broker/storage"
)

// Cluster is the replicated cluster a server is one node of
// (broker/replication implements it). With a nil Config.Cluster the server
// is a single node that leads every partition of its broker, at leader
// epoch 0, and answers everything itself.
//
// With a Cluster, the topics are the cluster's (not just the ones this node
// holds), and every partition request is served only by the partition's
// leader: other nodes answer NOT_LEADER_OR_FOLLOWER, which makes Kafka
// clients refresh their metadata and go to the leader.
type Cluster interface {
	// Brokers lists the live nodes, sorted by id.
	Brokers() []ClusterBroker
	// ControllerID is the node running the controller, -1 if none.
	ControllerID() int32

	// Topics lists the cluster's topics sorted by name; Topic and
	// TopicByID find one.
	Topics() []ClusterTopic
	Topic(name string) (ClusterTopic, bool)
	TopicByID(id [16]byte) (ClusterTopic, bool)
	// CreateTopic creates a topic on the cluster and returns once every
	// partition has a leader. replicationFactor -1 means the cluster's
	// default. Errors: broker.ErrTopicExists, ErrInvalidReplication, and
	// the validation errors of broker.ValidateTopic.
	CreateTopic(ctx context.Context, name string, partitions, replicationFactor int32, configs map[string]string) (ClusterTopic, error)
	// EnsureTopic returns the topic, creating it with the defaults when
	// auto-creation is on (broker.ErrUnknownTopic otherwise).
	EnsureTopic(ctx context.Context, name string) (ClusterTopic, error)
	// DeleteTopic deletes a topic from every node.
	DeleteTopic(ctx context.Context, name string) error

	// Leader returns the local replica of a partition this node leads, and
	// its leader epoch. Errors: broker.ErrNotLeader,
	// broker.ErrLeaderNotAvailable, broker.ErrUnknownTopic.
	Leader(topic string, partition int32) (*storage.Partition, int32, error)
	// CheckInSync is the acks=all check made before appending: it fails
	// with broker.ErrNotEnoughReplicas while the ISR is smaller than the
	// topic's min.insync.replicas.
	CheckInSync(topic string, partition int32) error
	// AwaitReplicated waits until the partition's high watermark reaches
	// end, that is until every in-sync replica has the records below it.
	// It fails with broker.ErrNotLeader if leadership (epoch) is lost,
	// broker.ErrNotEnoughReplicasAfterAppend if the ISR shrinks below
	// min.insync.replicas, and broker.ErrReplicationTimeout after timeout.
	AwaitReplicated(topic string, partition int32, epoch int32, end int64, timeout time.Duration) error

	// Reassign asks the controller to move a partition to a new replica
	// set; it returns once the request is recorded.
	Reassign(ctx context.Context, topic string, partition int32, replicas []int32) error

	// NextProducerID hands out a producer id unique in the cluster.
	NextProducerID(ctx context.Context) (int64, error)
}

// ClusterBroker is one live node as Metadata reports it.
type ClusterBroker struct {
	ID   int32
	Host string
	Port int32
	Rack string
}

// ClusterTopic is a topic with its partitions' replication state.
type ClusterTopic struct {
	Info       broker.TopicInfo
	Partitions []ClusterPartition // index = partition number
}

// ClusterPartition is one partition's replication state.
type ClusterPartition struct {
	Leader      int32 // -1: no leader
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
	Offline     []int32 // replicas on nodes that are not live
}

// leaderPartition finds the partition a produce, fetch or offset lookup
// is served from: the broker's own partition on a single node, the local
// leader replica in a cluster. It returns the partition's leader epoch.
func (s *Server) leaderPartition(topic string, partition int32) (*storage.Partition, int32, error) {
	if s.cluster == nil {
		p, err := s.b.Partition(topic, partition)
		return p, singleNodeEpoch, err
	}
	return s.cluster.Leader(topic, partition)
}

// singleNodeEpoch is the leader epoch of every partition of a single node,
// which never changes leader.
const singleNodeEpoch int32 = 0

// checkLeaderEpoch compares a request's CurrentLeaderEpoch with the
// partition's, as Kafka does for fetches and offset lookups: -1 skips the
// check, an older epoch is fenced, a newer one not yet known here.
func checkLeaderEpoch(requested, current int32) error {
	switch {
	case requested < 0 || requested == current:
		return nil
	case requested < current:
		return broker.ErrFencedLeaderEpoch
	default:
		return broker.ErrUnknownLeaderEpoch
	}
}

// requestContext bounds cluster operations a request starts (topic
// creation, producer id blocks) by its timeout and the server's life.
func (s *Server) requestContext(timeoutMs int32) (context.Context, context.CancelFunc) {
	timeout := time.Duration(timeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// offsetsReplicator is the cluster as the group coordinator's offset store
// sees it: the replicated offsets topic.
type offsetsReplicator struct{ c Cluster }

func (r offsetsReplicator) OffsetsPartitions() int32 {
	t, ok := r.c.Topic(group.OffsetsTopic)
	if !ok {
		return 0
	}
	return t.Info.Partitions
}

func (r offsetsReplicator) Lead(p int32) (*storage.Partition, int32, error) {
	return r.c.Leader(group.OffsetsTopic, p)
}

// offsetCommitTimeout bounds the wait for an offset commit's replication,
// as Kafka's offsets.commit.timeout.ms (5 s).
const offsetCommitTimeout = 5 * time.Second

func (r offsetsReplicator) AwaitReplicated(p int32, epoch int32, end int64) error {
	return r.c.AwaitReplicated(group.OffsetsTopic, p, epoch, end, offsetCommitTimeout)
}

// coordinates reports whether this cluster node coordinates every group a
// group request names (loading a group's offsets when it first does). If
// not, it leaves the answer in cx.notCoordinator: NOT_COORDINATOR, which
// makes the client look the coordinator up again.
func (s *Server) coordinates(cx *reqCtx, req kmsg.Request) bool {
	for _, g := range groupsOf(req) {
		err := s.groups.Offsets().Ready(g)
		if err == nil {
			continue
		}
		code := cx.code(err)
		cx.notCoordinator = errorResponse(req, code, err.Error())
		cx.count(code)
		return false
	}
	return true
}

// offsetsTopicConfigs are the configs of the offsets topic a cluster
// creates on the first FindCoordinator, as Kafka does.
var offsetsTopicConfigs = map[string]string{"cleanup.policy": "compact", "segment.bytes": "104857600"}

// clusterCoordinator finds the coordinator of a group in a cluster: the
// leader of the group's partition of the offsets topic, which is created
// when first needed.
func (s *Server) clusterCoordinator(key string) (ClusterBroker, error) {
	t, ok := s.cluster.Topic(group.OffsetsTopic)
	if !ok {
		ctx, cancel := s.requestContext(0)
		defer cancel()
		partitions := s.cfg.GroupOptions.OffsetsPartitions
		if partitions <= 0 {
			partitions = 1
		}
		var err error
		t, err = s.cluster.CreateTopic(ctx, group.OffsetsTopic, partitions, -1, offsetsTopicConfigs)
		if errors.Is(err, broker.ErrTopicExists) {
			t, ok = s.cluster.Topic(group.OffsetsTopic)
			if !ok {
				return ClusterBroker{}, group.ErrCoordinatorNotAvailable
			}
		} else if err != nil {
			return ClusterBroker{}, errors.Join(group.ErrCoordinatorNotAvailable, err)
		}
	}
	if len(t.Partitions) == 0 {
		return ClusterBroker{}, group.ErrCoordinatorNotAvailable
	}
	leader := t.Partitions[group.PartitionFor(key, int32(len(t.Partitions)))].Leader
	for _, b := range s.cluster.Brokers() {
		if b.ID == leader {
			return b, nil
		}
	}
	return ClusterBroker{}, group.ErrCoordinatorNotAvailable
}
