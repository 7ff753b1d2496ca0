package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker"
)

var (
	errDuplicateTopic         = errors.New("topic named more than once in the request")
	errInvalidReplicaAssignmt = errors.New("replica assignment must name this node as the only replica of partitions 0..n-1")
)

// handleCreateTopics creates topics, or with ValidateOnly checks that they
// could be created. A single node holds one replica of everything, so the
// replication factor must be 1 or -1 (the default).
func handleCreateTopics(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	b := cx.s.b

	seen := make(map[string]int, len(req.Topics))
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	resp.Topics = make([]kmsg.CreateTopicsResponseTopic, 0, len(req.Topics))
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic

		if cx.s.cluster != nil {
			resp.Topics = append(resp.Topics, cx.createClusterTopic(req, rt, seen[rt.Topic] > 1))
			continue
		}
		partitions, configs, err := createArgs(rt, b.NodeID(), b.DefaultPartitions(), seen[rt.Topic] > 1)
		var info broker.TopicInfo
		if err == nil {
			if req.ValidateOnly {
				err = broker.ValidateTopic(rt.Topic, partitions, configs)
				if _, exists := b.Topic(rt.Topic); err == nil && exists {
					err = fmt.Errorf("%w: %s", broker.ErrTopicExists, rt.Topic)
				}
			} else {
				info, err = b.CreateTopic(rt.Topic, partitions, configs)
			}
		}
		if err != nil {
			st.ErrorCode = cx.code(err)
			if req.Version >= 1 {
				st.ErrorMessage = errMessage(err)
			}
			if st.ErrorCode == kerr.KafkaStorageError.Code {
				cx.c.log.Error("create topic failed", "topic", rt.Topic, "err", err)
			}
			resp.Topics = append(resp.Topics, st)
			continue
		}
		st.NumPartitions = partitions
		st.ReplicationFactor = 1
		if !req.ValidateOnly {
			st.TopicID = info.ID
			st.Configs = createdConfigs(b, rt.Topic)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// createArgs checks the single-node rules of one topic in the request and
// returns its partition count and configs.
func createArgs(rt *kmsg.CreateTopicsRequestTopic, node, defaultPartitions int32, duplicate bool) (int32, map[string]string, error) {
	if duplicate {
		return 0, nil, errDuplicateTopic
	}
	partitions := rt.NumPartitions
	switch {
	case len(rt.ReplicaAssignment) > 0:
		// Kafka requires NumPartitions and ReplicationFactor to be -1
		// when an assignment is given; the assignment decides both.
		if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
			return 0, nil, fmt.Errorf("%w: with a replica assignment, partitions and replication factor must be -1", errInvalidRequest)
		}
		seen := make([]bool, len(rt.ReplicaAssignment))
		for _, a := range rt.ReplicaAssignment {
			if a.Partition < 0 || int(a.Partition) >= len(seen) || seen[a.Partition] ||
				len(a.Replicas) != 1 || a.Replicas[0] != node {
				return 0, nil, errInvalidReplicaAssignmt
			}
			seen[a.Partition] = true
		}
		partitions = int32(len(rt.ReplicaAssignment))
	case rt.ReplicationFactor != -1 && rt.ReplicationFactor != 1:
		return 0, nil, fmt.Errorf("%w: %d on a single node (use 1 or -1)", broker.ErrInvalidReplication, rt.ReplicationFactor)
	case partitions == -1:
		partitions = defaultPartitions // NumPartitions -1 (v4+)
	}
	var configs map[string]string
	if len(rt.Configs) > 0 {
		configs = make(map[string]string, len(rt.Configs))
		for _, c := range rt.Configs {
			if c.Value == nil {
				continue // null means "use the default", as in Kafka
			}
			configs[c.Name] = *c.Value
		}
	}
	return partitions, configs, nil
}

// createdConfigs is the created topic's configuration, which CreateTopics
// v5+ returns so that clients need no DescribeConfigs round trip.
func createdConfigs(b *broker.Broker, topic string) []kmsg.CreateTopicsResponseTopicConfig {
	entries, err := b.DescribeConfigs(topic)
	if err != nil {
		return nil
	}
	out := make([]kmsg.CreateTopicsResponseTopicConfig, 0, len(entries))
	for _, e := range entries {
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name = e.Name
		v := e.Value
		c.Value = &v
		c.ReadOnly = e.ReadOnly
		c.Source = int8(configSource(e))
		out = append(out, c)
	}
	return out
}

// createClusterTopic creates one topic of a CreateTopics request in a
// cluster: the controller spreads its replicas over the live nodes.
// Explicit replica assignments are not supported yet.
func (cx *reqCtx) createClusterTopic(req *kmsg.CreateTopicsRequest, rt *kmsg.CreateTopicsRequestTopic, duplicate bool) kmsg.CreateTopicsResponseTopic {
	st := kmsg.NewCreateTopicsResponseTopic()
	st.Topic = rt.Topic
	var (
		t   ClusterTopic
		err error
	)
	partitions, rf := rt.NumPartitions, rt.ReplicationFactor
	if partitions == -1 {
		partitions = cx.s.b.DefaultPartitions()
	}
	configs := map[string]string{}
	for _, c := range rt.Configs {
		if c.Value != nil {
			configs[c.Name] = *c.Value
		}
	}
	switch {
	case duplicate:
		err = errDuplicateTopic
	case len(rt.ReplicaAssignment) > 0:
		err = fmt.Errorf("%w: explicit replica assignments are not supported; give a replication factor", errInvalidRequest)
	case rf == 0 || rf < -1:
		err = fmt.Errorf("%w: %d", broker.ErrInvalidReplication, rf)
	case req.ValidateOnly:
		err = broker.ValidateTopic(rt.Topic, partitions, configs)
		if _, exists := cx.s.cluster.Topic(rt.Topic); err == nil && exists {
			err = fmt.Errorf("%w: %s", broker.ErrTopicExists, rt.Topic)
		}
	default:
		ctx, cancel := cx.s.requestContext(req.TimeoutMillis)
		t, err = cx.s.cluster.CreateTopic(ctx, rt.Topic, partitions, int32(rf), configs)
		cancel()
	}
	if err != nil {
		st.ErrorCode = cx.code(err)
		if req.Version >= 1 {
			st.ErrorMessage = errMessage(err)
		}
		return st
	}
	st.NumPartitions = partitions
	st.ReplicationFactor = rf
	if !req.ValidateOnly {
		st.TopicID = t.Info.ID
		if len(t.Partitions) > 0 {
			st.ReplicationFactor = int16(len(t.Partitions[0].Replicas))
		}
	}
	return st
}
