package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleHeartbeat keeps a member's session alive; during a rebalance it
// answers REBALANCE_IN_PROGRESS, which tells the member to rejoin.
func handleHeartbeat(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.HeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if err := cx.s.groups.Heartbeat(req.Group, req.MemberID, deref(req.InstanceID), req.Generation); err != nil {
		resp.ErrorCode = err.Code
		cx.count(err.Code)
	}
	return resp, nil
}
