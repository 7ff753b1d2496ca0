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
	if req.Version < 4 {
		c := findCoordinator(cx, req.CoordinatorType, req.CoordinatorKey)
		resp.ErrorCode, resp.ErrorMessage = c.ErrorCode, c.ErrorMessage
		resp.NodeID, resp.Host, resp.Port = c.NodeID, c.Host, c.Port
		return resp, nil
	}
	for _, key := range req.CoordinatorKeys {
		resp.Coordinators = append(resp.Coordinators, findCoordinator(cx, req.CoordinatorType, key))
	}
	return resp, nil
}

// findCoordinator answers for one key: this node, or in a cluster the
// leader of the group's offsets partition.
func findCoordinator(cx *reqCtx, typ int8, key string) kmsg.FindCoordinatorResponseCoordinator {
	c := kmsg.NewFindCoordinatorResponseCoordinator()
	c.Key = key
	switch {
	case typ != 0:
		c.ErrorCode = kerr.CoordinatorNotAvailable.Code
		msg := "sluice has no transaction coordinator"
		c.ErrorMessage = &msg
	case key == "":
		c.ErrorCode = kerr.InvalidGroupID.Code
	case cx.s.cluster != nil:
		b, err := cx.s.clusterCoordinator(key)
		if err != nil {
			c.ErrorCode, c.ErrorMessage = cx.code(err), errMessage(err)
			break
		}
		c.NodeID, c.Host, c.Port = b.ID, b.Host, b.Port
	default:
		c.NodeID = cx.s.b.NodeID()
		c.Host, c.Port = cx.c.advertised()
	}
	cx.count(c.ErrorCode)
	if c.ErrorCode != 0 {
		c.NodeID, c.Host, c.Port = -1, "", -1
	}
	return c
}
