package kafka

import (
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker"
)

// leaderEpoch is the epoch of every partition's one and only leader. It
// becomes per-partition state with replication.
const leaderEpoch int32 = 0

// handleMetadata describes the cluster: this node as its only broker and
// controller, and the requested topics (all of them for a null list), each
// partition led by this node with itself as the only replica. Unknown topics
// are created when the request allows it and the broker is configured to
// (broker.EnsureTopic decides), and are otherwise reported with
// UNKNOWN_TOPIC_OR_PARTITION.
func handleMetadata(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	b := cx.s.b
	node := b.NodeID()

	br := kmsg.NewMetadataResponseBroker()
	br.NodeID = node
	br.Host, br.Port = cx.c.advertised()
	resp.Brokers = []kmsg.MetadataResponseBroker{br}
	resp.ClusterID = &cx.s.cfg.ClusterID
	resp.ControllerID = node

	replicas := []int32{node} // shared by every partition; only encoded
	// Version 0 has no null list: an empty one means all topics.
	if req.Topics == nil || req.Version == 0 && len(req.Topics) == 0 {
		topics := b.Topics()
		resp.Topics = make([]kmsg.MetadataResponseTopic, 0, len(topics))
		for _, t := range topics {
			resp.Topics = append(resp.Topics, topicMetadata(t, node, replicas))
		}
		return resp, nil
	}

	autoCreate := req.Version < 4 || req.AllowAutoTopicCreation
	resp.Topics = make([]kmsg.MetadataResponseTopic, 0, len(req.Topics))
	for _, rt := range req.Topics {
		var (
			info broker.TopicInfo
			ok   bool
			err  error
		)
		switch {
		case rt.Topic != nil:
			info, ok = b.Topic(*rt.Topic)
			if !ok && autoCreate {
				info, err = b.EnsureTopic(*rt.Topic)
				ok = err == nil
			} else if !ok {
				err = broker.ErrUnknownTopic
			}
		default:
			if info, ok = b.TopicByID(rt.TopicID); !ok {
				err = errUnknownTopicID
			}
		}
		if !ok {
			t := kmsg.NewMetadataResponseTopic()
			t.Topic, t.TopicID = rt.Topic, rt.TopicID
			t.ErrorCode = cx.code(err)
			resp.Topics = append(resp.Topics, t)
			continue
		}
		resp.Topics = append(resp.Topics, topicMetadata(info, node, replicas))
	}
	return resp, nil
}

func topicMetadata(info broker.TopicInfo, node int32, replicas []int32) kmsg.MetadataResponseTopic {
	t := kmsg.NewMetadataResponseTopic()
	name := info.Name
	t.Topic = &name
	t.TopicID = info.ID
	t.IsInternal = info.Internal
	t.Partitions = make([]kmsg.MetadataResponseTopicPartition, info.Partitions)
	for p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = int32(p)
		mp.Leader = node
		mp.LeaderEpoch = leaderEpoch
		mp.Replicas = replicas
		mp.ISR = replicas
		t.Partitions[p] = mp
	}
	return t
}

// advertised is the host and port Metadata reports for this node; see
// Config.AdvertisedHost.
func (c *conn) advertised() (string, int32) {
	host, port := c.s.cfg.AdvertisedHost, c.s.cfg.AdvertisedPort
	if host != "" && port != 0 {
		return host, port
	}
	if a, ok := c.nc.LocalAddr().(*net.TCPAddr); ok {
		if host == "" {
			host = a.IP.String()
		}
		if port == 0 {
			port = int32(a.Port)
		}
	}
	if host == "" {
		host = "localhost"
	}
	return host, port
}
