package kafka

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestCreateTopics(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	adm := e.admin()

	resp, err := adm.CreateTopic(ctx, 4, 1, map[string]*string{"retention.ms": kadm.StringPtr("60000")}, "made")
	if err != nil {
		t.Fatal(err)
	}
	if resp.NumPartitions != 4 || resp.ReplicationFactor != 1 || resp.ID == [16]byte{} {
		t.Fatalf("create response %+v", resp)
	}
	info, ok := e.b.Topic("made")
	if !ok || info.Partitions != 4 || info.Configs["retention.ms"] != "60000" || info.ID != resp.ID {
		t.Fatalf("broker has %+v", info)
	}
	if _, err := adm.CreateTopic(ctx, -1, -1, nil, "defaults"); err != nil {
		t.Fatalf("broker defaults (-1, -1): %v", err)
	}

	for _, tc := range []struct {
		name       string
		topic      string
		partitions int32
		rf         int16
		configs    map[string]*string
		want       *kerr.Error
	}{
		{"exists", "made", 1, 1, nil, kerr.TopicAlreadyExists},
		{"bad name", "no/slash", 1, 1, nil, kerr.InvalidTopicException},
		{"empty name", "", 1, 1, nil, kerr.InvalidTopicException},
		{"zero partitions", "zero", 0, 1, nil, kerr.InvalidPartitions},
		{"unknown config", "cfg", 1, 1, map[string]*string{"no.such.config": kadm.StringPtr("1")}, kerr.InvalidConfig},
		{"bad config value", "cfg2", 1, 1, map[string]*string{"retention.ms": kadm.StringPtr("soon")}, kerr.InvalidConfig},
		{"replication factor 3", "rf3", 1, 3, nil, kerr.InvalidReplicationFactor},
		{"replication factor 0", "rf0", 1, 0, nil, kerr.InvalidReplicationFactor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adm.CreateTopic(ctx, tc.partitions, tc.rf, tc.configs, tc.topic)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %s", err, tc.want.Message)
			}
			if tc.want != kerr.TopicAlreadyExists {
				if _, ok := e.b.Topic(tc.topic); ok {
					t.Fatal("a refused topic exists")
				}
			}
		})
	}

	t.Run("validate only", func(t *testing.T) {
		rs, err := adm.ValidateCreateTopics(ctx, 2, 1, nil, "dry")
		if err != nil || rs.Error() != nil {
			t.Fatalf("%v %v", err, rs.Error())
		}
		if _, ok := e.b.Topic("dry"); ok {
			t.Fatal("validate-only created the topic")
		}
		rs, _ = adm.ValidateCreateTopics(ctx, 2, 1, nil, "made")
		if !errors.Is(rs.Error(), kerr.TopicAlreadyExists) {
			t.Fatalf("validate-only of an existing topic: %v", rs.Error())
		}
	})

	t.Run("duplicate in request", func(t *testing.T) {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Version = 7
		for range 2 {
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "twice", 1, 1
			req.Topics = append(req.Topics, rt)
		}
		resp := e.raw().do(req).(*kmsg.CreateTopicsResponse)
		for _, st := range resp.Topics {
			if st.ErrorCode != kerr.InvalidRequest.Code {
				t.Fatalf("code %s", errorName(st.ErrorCode))
			}
		}
	})

	t.Run("replica assignment", func(t *testing.T) {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Version = 7
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "assigned", -1, -1
		for p := range int32(2) {
			a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
			a.Partition, a.Replicas = p, []int32{e.b.NodeID()}
			rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
		}
		req.Topics = append(req.Topics, rt)
		rc := e.raw()
		if st := rc.do(req).(*kmsg.CreateTopicsResponse).Topics[0]; st.ErrorCode != 0 || st.NumPartitions != 2 {
			t.Fatalf("code %s partitions %d", errorName(st.ErrorCode), st.NumPartitions)
		}
		req.Topics[0].Topic = "elsewhere"
		req.Topics[0].ReplicaAssignment[1].Replicas = []int32{99}
		if st := rc.do(req).(*kmsg.CreateTopicsResponse).Topics[0]; st.ErrorCode != kerr.InvalidReplicaAssignment.Code {
			t.Fatalf("assignment to another node: code %s", errorName(st.ErrorCode))
		}
	})
}

func TestDeleteTopics(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	adm := e.admin()
	e.createTopic("a", 1, nil)
	byID := e.createTopic("b", 1, nil)

	rs, err := adm.DeleteTopics(ctx, "a", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if r := rs["a"]; r.Err != nil {
		t.Fatalf("delete a: %v", r.Err)
	}
	if r := rs["missing"]; !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete missing: %v", r.Err)
	}
	if _, ok := e.b.Topic("a"); ok {
		t.Fatal("topic a still exists")
	}

	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Version = 6
	for _, id := range [][16]byte{byID.ID, {9, 9, 9}} {
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.TopicID = id
		req.Topics = append(req.Topics, rt)
	}
	resp := e.raw().do(req).(*kmsg.DeleteTopicsResponse)
	if r := resp.Topics[0]; r.ErrorCode != 0 || r.Topic == nil || *r.Topic != "b" {
		t.Fatalf("delete by id: code %s topic %v", errorName(r.ErrorCode), r.Topic)
	}
	if r := resp.Topics[1]; r.ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("delete unknown id: code %s", errorName(r.ErrorCode))
	}
	if _, ok := e.b.Topic("b"); ok {
		t.Fatal("topic b still exists")
	}
}

func TestDescribeConfigs(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	adm := e.admin()
	e.createTopic("c", 1, map[string]string{"retention.ms": "1234", "cleanup.policy": "compact"})

	rcs, err := adm.DescribeTopicConfigs(ctx, "c", "missing")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("c", nil)
	if err != nil || rc.Err != nil {
		t.Fatal(err, rc.Err)
	}
	got := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		got[c.Key] = c
	}
	if c := got["retention.ms"]; c.MaybeValue() != "1234" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("retention.ms: %+v", c)
	}
	if c := got["cleanup.policy"]; c.MaybeValue() != "compact" {
		t.Errorf("cleanup.policy: %+v", c)
	}
	if c, ok := got["segment.bytes"]; !ok || c.Source != kmsg.ConfigSourceDefaultConfig || c.MaybeValue() == "" {
		t.Errorf("segment.bytes (a default): %+v", c)
	}
	if m, _ := rcs.On("missing", nil); !errors.Is(m.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("missing topic: %v", m.Err)
	}

	brs, err := adm.DescribeBrokerConfigs(ctx, e.b.NodeID())
	if err != nil {
		t.Fatal(err)
	}
	if len(brs) != 1 || brs[0].Err != nil || len(brs[0].Configs) == 0 {
		t.Fatalf("broker configs %+v", brs)
	}

	// Only the requested names.
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Version = 4
	r := kmsg.NewDescribeConfigsRequestResource()
	r.ResourceType, r.ResourceName, r.ConfigNames = kmsg.ConfigResourceTypeTopic, "c", []string{"retention.ms"}
	req.Resources = append(req.Resources, r)
	resp := e.raw().do(req).(*kmsg.DescribeConfigsResponse)
	if cs := resp.Resources[0].Configs; len(cs) != 1 || cs[0].Name != "retention.ms" {
		t.Fatalf("filtered configs %+v", cs)
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t)
	info := e.createTopic("known", 3, nil)
	rc := e.raw()

	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	for _, name := range []string{"known", "unknown"} {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	req.AllowAutoTopicCreation = true // the broker is not configured for it
	resp := rc.do(req).(*kmsg.MetadataResponse)

	if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 1 || resp.ControllerID != 1 || resp.ClusterID == nil {
		t.Fatalf("brokers %+v controller %d cluster %v", resp.Brokers, resp.ControllerID, resp.ClusterID)
	}
	if b := resp.Brokers[0]; b.Host != "127.0.0.1" || b.Port == 0 {
		t.Fatalf("advertised %s:%d", b.Host, b.Port)
	}
	known, unknown := resp.Topics[0], resp.Topics[1]
	if known.ErrorCode != 0 || known.TopicID != info.ID || len(known.Partitions) != 3 {
		t.Fatalf("known: %+v", known)
	}
	for _, p := range known.Partitions {
		if p.Leader != 1 || len(p.Replicas) != 1 || p.Replicas[0] != 1 || len(p.ISR) != 1 || p.ErrorCode != 0 {
			t.Fatalf("partition %+v", p)
		}
	}
	if unknown.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown topic: code %s", errorName(unknown.ErrorCode))
	}
	if _, ok := e.b.Topic("unknown"); ok {
		t.Fatal("metadata created a topic although auto-creation is off")
	}

	// All topics, at the oldest version, and by id.
	all := kmsg.NewPtrMetadataRequest()
	all.Version = 0
	// The offsets topic is listed too, as in Kafka.
	if r := rc.do(all).(*kmsg.MetadataResponse); len(r.Topics) != 2 || *r.Topics[0].Topic != "__consumer_offsets" || *r.Topics[1].Topic != "known" {
		t.Fatalf("v0 all topics: %+v", r.Topics)
	}
	byID := kmsg.NewPtrMetadataRequest()
	byID.Version = 12
	rt := kmsg.NewMetadataRequestTopic()
	rt.TopicID = info.ID
	byID.Topics = append(byID.Topics, rt)
	if r := rc.do(byID).(*kmsg.MetadataResponse); r.Topics[0].ErrorCode != 0 || *r.Topics[0].Topic != "known" {
		t.Fatalf("by id: %+v", r.Topics[0])
	}
}

func TestMetadataAutoCreate(t *testing.T) {
	e := newEnv(t, withAutoCreate(2))
	rc := e.raw()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	req.AllowAutoTopicCreation = true
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("auto")
	req.Topics = append(req.Topics, rt)
	resp := rc.do(req).(*kmsg.MetadataResponse)
	if t0 := resp.Topics[0]; t0.ErrorCode != 0 || len(t0.Partitions) != 2 {
		t.Fatalf("auto-created topic: code %s, %d partitions", errorName(t0.ErrorCode), len(t0.Partitions))
	}

	req.AllowAutoTopicCreation = false
	*req.Topics[0].Topic = "not-auto"
	if c := rc.do(req).(*kmsg.MetadataResponse).Topics[0].ErrorCode; c != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("creation not allowed by the request: code %s", errorName(c))
	}
}
