package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleDescribeGroups describes groups: state, protocol and members with
// their subscriptions and (when Stable) assignments. An unknown group is
// reported as Dead with no error before v6 and GROUP_ID_NOT_FOUND from v6
// on, as Kafka does (KIP-1043).
func handleDescribeGroups(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = name
		rg.AuthorizedOperations = -2147483648 // not computed
		d, ok := cx.s.groups.Describe(name)
		rg.State = string(d.State)
		switch {
		case name == "":
			rg.ErrorCode = kerr.InvalidGroupID.Code
		case !ok && req.Version >= 6:
			rg.ErrorCode = kerr.GroupIDNotFound.Code
		}
		cx.count(rg.ErrorCode)
		rg.ProtocolType, rg.Protocol = d.ProtocolType, d.Protocol
		for _, m := range d.Members {
			rm := kmsg.NewDescribeGroupsResponseGroupMember()
			rm.MemberID, rm.ClientID, rm.ClientHost = m.MemberID, m.ClientID, m.ClientHost
			if m.InstanceID != "" {
				id := m.InstanceID
				rm.InstanceID = &id
			}
			rm.ProtocolMetadata, rm.MemberAssignment = m.Metadata, m.Assignment
			if rm.ProtocolMetadata == nil {
				rm.ProtocolMetadata = []byte{}
			}
			if rm.MemberAssignment == nil {
				rm.MemberAssignment = []byte{}
			}
			rg.Members = append(rg.Members, rm)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}
