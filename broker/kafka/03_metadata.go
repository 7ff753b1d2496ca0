package kafka

import (
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker"
)

// handleMetadata describes the cluster and the requested topics (all of
// them for a null list). On a single node, that is this node as the only
// broker and controller, leading every partition as its only replica. In a
// cluster (Config.Cluster), the live nodes and each partition's leader,
// epoch, replicas and in-sync replicas from the cluster metadata; a
// partition without a leader answers LEADER_NOT_AVAILABLE, which clients
// retry. Unknown topics are created when the request allows it and the
// node is configured to, and are otherwise reported with
// UNKNOWN_TOPIC_OR_PARTITION.
func handleMetadata(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	resp.ClusterID = &cx.s.cfg.ClusterID
	src := topicSource{cx}
	resp.Brokers, resp.ControllerID = src.brokers()

	// Version 0 has no null list: an empty one means all topics.
	if req.Topics == nil || req.Version == 0 && len(req.Topics) == 0 {
		topics := src.all()
		resp.Topics = make([]kmsg.MetadataResponseTopic, 0, len(topics))
		for _, t := range topics {
			resp.Topics = append(resp.Topics, topicMetadata(t))
		}
		return resp, nil
	}

	autoCreate := req.Version < 4 || req.AllowAutoTopicCreation
	resp.Topics = make([]kmsg.MetadataResponseTopic, 0, len(req.Topics))
	for _, rt := range req.Topics {
		var (
			t   ClusterTopic
			ok  bool
			err error
		)
		switch {
		case rt.Topic != nil:
			t, ok = src.byName(*rt.Topic)
			if !ok && autoCreate {
				t, err = src.ensure(*rt.Topic)
				ok = err == nil
			} else if !ok {
				err = broker.ErrUnknownTopic
			}
		default:
			if t, ok = src.byID(rt.TopicID); !ok {
				err = errUnknownTopicID
			}
		}
		if !ok {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic, mt.TopicID = rt.Topic, rt.TopicID
			mt.ErrorCode = cx.code(err)
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, topicMetadata(t))
	}
	return resp, nil
}

func topicMetadata(ct ClusterTopic) kmsg.MetadataResponseTopic {
	t := kmsg.NewMetadataResponseTopic()
	name := ct.Info.Name
	t.Topic = &name
	t.TopicID = ct.Info.ID
	t.IsInternal = ct.Info.Internal
	t.Partitions = make([]kmsg.MetadataResponseTopicPartition, len(ct.Partitions))
	for p, cp := range ct.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = int32(p)
		mp.Leader = cp.Leader
		mp.LeaderEpoch = cp.LeaderEpoch
		mp.Replicas = cp.Replicas
		mp.ISR = cp.ISR
		mp.OfflineReplicas = cp.Offline
		if cp.Leader < 0 {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		t.Partitions[p] = mp
	}
	return t
}

// topicSource answers the topic questions of Metadata and the admin APIs
// from the broker (a single node) or the cluster metadata.
type topicSource struct {
	cx *reqCtx
}

func (ts topicSource) brokers() ([]kmsg.MetadataResponseBroker, int32) {
	s := ts.cx.s
	if s.cluster == nil {
		br := kmsg.NewMetadataResponseBroker()
		br.NodeID = s.b.NodeID()
		br.Host, br.Port = ts.cx.c.advertised()
		return []kmsg.MetadataResponseBroker{br}, s.b.NodeID()
	}
	nodes := s.cluster.Brokers()
	out := make([]kmsg.MetadataResponseBroker, 0, len(nodes))
	for _, n := range nodes {
		br := kmsg.NewMetadataResponseBroker()
		br.NodeID, br.Host, br.Port = n.ID, n.Host, n.Port
		if n.ID == s.b.NodeID() && (n.Host == "" || n.Port == 0) {
			br.Host, br.Port = ts.cx.c.advertised()
		}
		if n.Rack != "" {
			rack := n.Rack
			br.Rack = &rack
		}
		out = append(out, br)
	}
	return out, s.cluster.ControllerID()
}

func (ts topicSource) all() []ClusterTopic {
	s := ts.cx.s
	if s.cluster != nil {
		return s.cluster.Topics()
	}
	infos := s.b.Topics()
	out := make([]ClusterTopic, len(infos))
	for i, info := range infos {
		out[i] = ts.single(info)
	}
	return out
}

func (ts topicSource) byName(name string) (ClusterTopic, bool) {
	s := ts.cx.s
	if s.cluster != nil {
		return s.cluster.Topic(name)
	}
	info, ok := s.b.Topic(name)
	return ts.single(info), ok
}

func (ts topicSource) byID(id [16]byte) (ClusterTopic, bool) {
	s := ts.cx.s
	if s.cluster != nil {
		return s.cluster.TopicByID(id)
	}
	info, ok := s.b.TopicByID(id)
	return ts.single(info), ok
}

func (ts topicSource) ensure(name string) (ClusterTopic, error) {
	s := ts.cx.s
	if s.cluster != nil {
		ctx, cancel := s.requestContext(0)
		defer cancel()
		return s.cluster.EnsureTopic(ctx, name)
	}
	info, err := s.b.EnsureTopic(name)
	return ts.single(info), err
}

// single describes a topic of a single node: this node leads every
// partition as its only replica.
func (ts topicSource) single(info broker.TopicInfo) ClusterTopic {
	node := ts.cx.s.b.NodeID()
	replicas := []int32{node} // shared by every partition; only encoded
	t := ClusterTopic{Info: info, Partitions: make([]ClusterPartition, info.Partitions)}
	for p := range t.Partitions {
		t.Partitions[p] = ClusterPartition{Leader: node, LeaderEpoch: singleNodeEpoch, Replicas: replicas, ISR: replicas}
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
