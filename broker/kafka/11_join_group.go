package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/group"
)

// handleJoinGroup joins a member to a group and waits until the rebalance
// completes (broker/group decides when). The wait blocks this connection's
// reader only: Kafka clients talk to the coordinator on a connection of
// their own, and no lock is held meanwhile.
func handleJoinGroup(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.JoinGroupRequest)
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	jr := group.JoinRequest{
		Group:            req.Group,
		MemberID:         req.MemberID,
		InstanceID:       deref(req.InstanceID),
		ProtocolType:     req.ProtocolType,
		SessionTimeout:   time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout: time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		RequireKnownID:   req.Version >= 4,
		ClientID:         string(cx.clientID),
		ClientHost:       cx.c.nc.RemoteAddr().String(),
	}
	if req.Version == 0 {
		jr.RebalanceTimeout = jr.SessionTimeout
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, group.Protocol{Name: p.Name, Metadata: append([]byte{}, p.Metadata...)}) // outlives the frame
	}
	res := cx.s.groups.Join(jr, cx.waitStop())
	resp.Generation = res.Generation
	resp.MemberID = res.MemberID
	resp.LeaderID = res.LeaderID
	if res.Err != nil {
		resp.ErrorCode = res.Err.Code
		cx.count(resp.ErrorCode)
		return resp, nil
	}
	resp.ProtocolType = &res.ProtocolType
	resp.Protocol = &res.Protocol
	for _, m := range res.Members {
		rm := kmsg.NewJoinGroupResponseMember()
		rm.MemberID = m.MemberID
		if m.InstanceID != "" {
			rm.InstanceID = &m.InstanceID
		}
		rm.ProtocolMetadata = m.Metadata
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
