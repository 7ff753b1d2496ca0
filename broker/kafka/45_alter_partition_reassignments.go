package kafka

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var errNotCluster = fmt.Errorf("%w: a single node has nowhere to move replicas", errInvalidRequest)

// handleAlterPartitionReassignments (KIP-455) hands each partition's new
// replica set to the cluster's controller, which moves the replicas in
// the background: add the new ones, wait until they are in sync, move the
// leadership if needed, drop the old ones. A null replica list would
// cancel a reassignment in Kafka; sluice does not support cancelling yet.
func handleAlterPartitionReassignments(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AlterPartitionAssignmentsRequest)
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	if cx.s.cluster == nil {
		resp.ErrorCode = kerr.InvalidRequest.Code
		resp.ErrorMessage = errMessage(errNotCluster)
		return resp, nil
	}
	ctx, cancel := cx.s.requestContext(req.TimeoutMillis)
	defer cancel()
	for _, rt := range req.Topics {
		st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			sp.Partition = rp.Partition
			var err error
			switch {
			case rp.Replicas == nil:
				err = fmt.Errorf("%w: cancelling a reassignment is not supported", errInvalidRequest)
			default:
				err = cx.s.cluster.Reassign(ctx, rt.Topic, rp.Partition, rp.Replicas)
			}
			if err != nil {
				sp.ErrorCode = cx.code(err)
				sp.ErrorMessage = errMessage(err)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
