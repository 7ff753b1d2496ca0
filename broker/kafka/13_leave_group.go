package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/group"
)

// handleLeaveGroup removes members from a group, which rebalances. v0-v2
// name one member; v3+ name a batch (KIP-345), each answered separately.
func handleLeaveGroup(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.LeaveGroupRequest)
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		cx.count(resp.ErrorCode)
		return resp, nil
	}
	if req.Version < 3 {
		errs := cx.s.groups.Leave(req.Group, []group.LeaveMember{{MemberID: req.MemberID}})
		if errs[0] != nil {
			resp.ErrorCode = errs[0].Code
			cx.count(resp.ErrorCode)
		}
		return resp, nil
	}
	leaving := make([]group.LeaveMember, len(req.Members))
	for i, m := range req.Members {
		leaving[i] = group.LeaveMember{MemberID: m.MemberID, InstanceID: deref(m.InstanceID)}
	}
	errs := cx.s.groups.Leave(req.Group, leaving)
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = m.MemberID, m.InstanceID
		if errs[i] != nil {
			rm.ErrorCode = errs[i].Code
			cx.count(rm.ErrorCode)
		}
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}
