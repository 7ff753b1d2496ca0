package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleFindCoordinator names the coordinator of a group (key type 0): on
// a single node, this node; in a cluster, the leader of the group's
// partition of the offsets topic, which is created on first use. Transaction
// coordinators (type 1) are refused, as sluice has no transactions.
// v4+ asks for several keys at once and gets one entry each.
func handleFindCoordinator(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	host, port := cx.c.advertised()
	node := cx.s.b.NodeID()
	// answer finds key's coordinator: this node, or in a cluster the
	// leader of the group's offsets partition.
	answer := func(key string) (code int16, msg *string) {
		switch {
		case req.CoordinatorType != 0:
			code = kerr.CoordinatorNotAvailable.Code
			s := "sluice has no transaction coordinator"
			msg = &s
		case key == "":
			code = kerr.InvalidGroupID.Code
		case cx.s.cluster != nil:
			b, err := cx.s.clusterCoordinator(key)
			if err != nil {
				code, msg = cx.code(err), errMessage(err)
				break
			}
			node, host, port = b.ID, b.Host, b.Port
		}
		cx.count(code)
		return code, msg
	}
	if req.Version < 4 {
		resp.ErrorCode, resp.ErrorMessage = answer(req.CoordinatorKey)
		if resp.ErrorCode == 0 {
			resp.NodeID, resp.Host, resp.Port = node, host, port
		} else {
			resp.NodeID, resp.Port = -1, -1
		}
		return resp, nil
	}
	for _, key := range req.CoordinatorKeys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		c.ErrorCode, c.ErrorMessage = answer(key)
		if c.ErrorCode == 0 {
			c.NodeID, c.Host, c.Port = node, host, port
		} else {
			c.NodeID, c.Port = -1, -1
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	return resp, nil
}
