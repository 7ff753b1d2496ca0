package kafka

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/group"
)

// handleOffsetFetch returns committed offsets from memory (the offsets
// topic is replayed at start). A partition without a commit, of an unknown
// group or topic alike, gets offset -1 and no error, as in Kafka. A null
// topic list (v2+) asks for everything the group committed. v8+ asks for
// several groups at once.
func handleOffsetFetch(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	store := cx.s.groups.Offsets()
	if req.Version >= 8 {
		for _, g := range req.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group = g.Group
			if g.Group == "" {
				rg.ErrorCode = kerr.InvalidGroupID.Code
				cx.count(rg.ErrorCode)
				resp.Groups = append(resp.Groups, rg)
				continue
			}
			var wanted map[string][]int32
			if g.Topics != nil {
				wanted = make(map[string][]int32, len(g.Topics))
				for _, t := range g.Topics {
					wanted[t.Topic] = append(wanted[t.Topic], t.Partitions...)
				}
			}
			for _, t := range fetchOffsets(store, g.Group, wanted, topicOrder(g.Topics)) {
				rt := kmsg.NewOffsetFetchResponseGroupTopic()
				rt.Topic = t.topic
				for _, p := range t.parts {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p.partition, p.o.Offset, p.o.LeaderEpoch, p.o.Metadata
					rt.Partitions = append(rt.Partitions, rp)
				}
				rg.Topics = append(rg.Topics, rt)
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, nil
	}

	var wanted map[string][]int32
	var order []string
	if req.Topics != nil || req.Version < 2 {
		wanted = make(map[string][]int32, len(req.Topics))
		for _, t := range req.Topics {
			if _, ok := wanted[t.Topic]; !ok {
				order = append(order, t.Topic)
			}
			wanted[t.Topic] = append(wanted[t.Topic], t.Partitions...)
		}
	}
	var code int16
	if req.Group == "" {
		code = kerr.InvalidGroupID.Code
		cx.count(code)
		if req.Version >= 2 {
			resp.ErrorCode = code
		}
	}
	for _, t := range fetchOffsets(store, req.Group, wanted, order) {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.topic
		for _, p := range t.parts {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p.partition, p.o.Offset, p.o.LeaderEpoch, p.o.Metadata
			rp.ErrorCode = code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func topicOrder(ts []kmsg.OffsetFetchRequestGroupTopic) []string {
	var order []string
	seen := map[string]bool{}
	for _, t := range ts {
		if !seen[t.Topic] {
			seen[t.Topic] = true
			order = append(order, t.Topic)
		}
	}
	return order
}

type fetchedTopic struct {
	topic string
	parts []fetchedPartition
}

type fetchedPartition struct {
	partition int32
	o         group.Offset
}

var noMetadata = ""

// fetchOffsets looks up the wanted partitions in order (nil wanted: every
// committed partition, sorted).
func fetchOffsets(store *group.OffsetStore, g string, wanted map[string][]int32, order []string) []fetchedTopic {
	if wanted == nil {
		all := store.FetchAll(g)
		byTopic := map[string][]fetchedPartition{}
		for tp, o := range all {
			if o.Metadata == nil {
				o.Metadata = &noMetadata
			}
			byTopic[tp.Topic] = append(byTopic[tp.Topic], fetchedPartition{tp.Partition, o})
		}
		out := make([]fetchedTopic, 0, len(byTopic))
		for t, ps := range byTopic {
			sort.Slice(ps, func(i, j int) bool { return ps[i].partition < ps[j].partition })
			out = append(out, fetchedTopic{t, ps})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].topic < out[j].topic })
		return out
	}
	out := make([]fetchedTopic, 0, len(order))
	for _, t := range order {
		ft := fetchedTopic{topic: t}
		for _, p := range wanted[t] {
			o, ok := store.Fetch(g, group.TopicPartition{Topic: t, Partition: p})
			if !ok {
				o = group.Offset{Offset: -1, LeaderEpoch: -1}
			}
			if o.Metadata == nil {
				o.Metadata = &noMetadata
			}
			ft.parts = append(ft.parts, fetchedPartition{p, o})
		}
		out = append(out, ft)
	}
	return out
}
