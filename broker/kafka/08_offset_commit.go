package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/group"
)

// maxOffsetMetadata bounds a commit's metadata string, as Kafka's
// offset.metadata.max.bytes.
const maxOffsetMetadata = 4096

// handleOffsetCommit stores a group's offsets. The group coordinator first
// checks the member and generation (a commit from outside the group, with
// generation -1, is allowed while the group has no members); partitions of
// unknown topics get UNKNOWN_TOPIC_OR_PARTITION; the rest are written as
// one batch to the offsets topic, so they are durable together before the
// answer.
func handleOffsetCommit(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	var groupErr *kerr.Error
	switch {
	case req.Group == "":
		groupErr = kerr.InvalidGroupID
	case req.Version == 0:
		// v0 has no member or generation: a commit from outside the group.
		groupErr = cx.s.groups.CheckCommit(req.Group, "", "", -1)
	default:
		groupErr = cx.s.groups.CheckCommit(req.Group, req.MemberID, deref(req.InstanceID), req.Generation)
	}

	commit := group.Commit{Group: req.Group, Offsets: make(map[group.TopicPartition]group.Offset)}
	codes := make([][]int16, len(req.Topics))
	for i, t := range req.Topics {
		codes[i] = make([]int16, len(t.Partitions))
		ct, known := topicSource{cx}.byName(t.Topic)
		info := ct.Info
		for j, p := range t.Partitions {
			switch {
			case groupErr != nil:
				codes[i][j] = groupErr.Code
			case !known || p.Partition < 0 || p.Partition >= info.Partitions:
				codes[i][j] = kerr.UnknownTopicOrPartition.Code
			case p.Metadata != nil && len(*p.Metadata) > maxOffsetMetadata:
				codes[i][j] = kerr.OffsetMetadataTooLarge.Code
			default:
				epoch := int32(-1)
				if req.Version >= 6 {
					epoch = p.LeaderEpoch
				}
				commit.Offsets[group.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = group.Offset{
					Offset: p.Offset, LeaderEpoch: epoch, Metadata: p.Metadata,
				}
			}
		}
	}
	var storeCode int16
	if err := cx.s.groups.Offsets().Commit(commit); err != nil {
		cx.s.log.Warn("offset commit failed", "group", req.Group, "err", err)
		storeCode = errorCode(err)
	}
	for i, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for j, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = codes[i][j]
			if rp.ErrorCode == 0 {
				rp.ErrorCode = storeCode
			}
			cx.count(rp.ErrorCode)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
