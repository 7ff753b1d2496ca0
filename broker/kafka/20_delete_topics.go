package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/group"
)

// handleDeleteTopics deletes topics named by name (all versions) or by id
// (v6+), and drops their metrics. The offsets topic cannot be deleted:
// the group coordinator holds it open and every group's offsets are in it.
func handleDeleteTopics(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)

	targets := req.Topics
	if req.Version < 6 {
		targets = make([]kmsg.DeleteTopicsRequestTopic, len(req.TopicNames))
		for i := range req.TopicNames {
			targets[i].Topic = &req.TopicNames[i]
		}
	}
	resp.Topics = make([]kmsg.DeleteTopicsResponseTopic, 0, len(targets))
	for _, t := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = t.Topic, t.TopicID
		var err error
		switch {
		case t.Topic != nil && *t.Topic == group.OffsetsTopic:
			err = errInternalTopic
		case t.Topic != nil:
			err = cx.deleteTopic(req.TimeoutMillis, *t.Topic)
		case t.TopicID != [16]byte{}:
			ct, ok := topicSource{cx}.byID(t.TopicID)
			if !ok {
				err = errUnknownTopicID
				break
			}
			name := ct.Info.Name
			st.Topic = &name
			if name == group.OffsetsTopic {
				err = errInternalTopic
				break
			}
			err = cx.deleteTopic(req.TimeoutMillis, name)
		default:
			err = errInvalidRequest
		}
		if err != nil {
			st.ErrorCode = cx.code(err)
			if req.Version >= 5 {
				st.ErrorMessage = errMessage(err)
			}
			if st.ErrorCode == kerr.KafkaStorageError.Code {
				cx.c.log.Error("delete topic failed", "topic", st.Topic, "err", err)
			}
		} else {
			cx.s.m.forgetTopic(*st.Topic)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// deleteTopic deletes a topic from this node, or in a cluster from every
// node.
func (cx *reqCtx) deleteTopic(timeoutMs int32, name string) error {
	if cx.s.cluster == nil {
		return cx.s.b.DeleteTopic(name)
	}
	ctx, cancel := cx.s.requestContext(timeoutMs)
	defer cancel()
	return cx.s.cluster.DeleteTopic(ctx, name)
}
