package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleDeleteGroups deletes groups that have no members, with their
// committed offsets (tombstones in the offsets topic).
func handleDeleteGroups(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = name
		if name == "" {
			rg.ErrorCode = kerr.InvalidGroupID.Code
		} else if err := cx.s.groups.Delete(name); err != nil {
			rg.ErrorCode = err.Code
		}
		cx.count(rg.ErrorCode)
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}
