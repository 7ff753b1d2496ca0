package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/group"
)

// handleSyncGroup delivers the leader's assignment: the leader's request
// carries every member's, and each member's request waits for its own.
func handleSyncGroup(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SyncGroupRequest)
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	sr := group.SyncRequest{
		Group:        req.Group,
		MemberID:     req.MemberID,
		InstanceID:   deref(req.InstanceID),
		Generation:   req.Generation,
		ProtocolType: deref(req.ProtocolType),
		Protocol:     deref(req.Protocol),
	}
	if len(req.GroupAssignment) > 0 {
		sr.Assignments = make(map[string][]byte, len(req.GroupAssignment))
		for _, a := range req.GroupAssignment {
			// Copied: the coordinator keeps them past this request's frame.
			sr.Assignments[a.MemberID] = append([]byte{}, a.MemberAssignment...)
		}
	}
	res := cx.s.groups.Sync(sr, cx.waitStop())
	if res.Err != nil {
		resp.ErrorCode = res.Err.Code
		cx.count(resp.ErrorCode)
		resp.MemberAssignment = []byte{}
		return resp, nil
	}
	resp.ProtocolType, resp.Protocol = &res.ProtocolType, &res.Protocol
	resp.MemberAssignment = res.Assignment
	return resp, nil
}
