package kafka

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleListGroups lists groups with members or committed offsets,
// filtered by state (v4+, case-insensitive as in Kafka) and type (v5+;
// every sluice group is "classic").
func handleListGroups(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	typeOK := len(req.TypesFilter) == 0
	for _, t := range req.TypesFilter {
		if strings.EqualFold(t, "classic") {
			typeOK = true
		}
	}
	if !typeOK {
		return resp, nil
	}
	for _, d := range cx.s.groups.List() {
		if len(req.StatesFilter) > 0 {
			match := false
			for _, s := range req.StatesFilter {
				match = match || strings.EqualFold(s, string(d.State))
			}
			if !match {
				continue
			}
		}
		g := kmsg.NewListGroupsResponseGroup()
		g.Group, g.ProtocolType, g.GroupState, g.GroupType = d.Name, d.ProtocolType, string(d.State), "classic"
		resp.Groups = append(resp.Groups, g)
	}
	return resp, nil
}
