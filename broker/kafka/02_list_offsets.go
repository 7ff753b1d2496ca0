package kafka

import (
	"math"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/storage"
)

// Special timestamps of a ListOffsets request.
const (
	listLatest         = -1 // high watermark
	listEarliest       = -2 // log start offset
	listMaxTimestamp   = -3 // record with the largest timestamp (KIP-734, v7+)
	listEarliestLocal  = -4 // local log start (KIP-405, v8+); all our data is local
	listLatestTiered   = -5 // last offset in tiered storage (KIP-1005, v9+); we have none
	listNotFoundOffset = -1
)

// handleListOffsets answers offset lookups: earliest, latest, first offset
// at or after a timestamp, and the offset of the largest timestamp.
func handleListOffsets(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	resp.Topics = make([]kmsg.ListOffsetsResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt, st := &req.Topics[i], &resp.Topics[i]
		*st = kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ListOffsetsResponseTopicPartition, len(rt.Partitions))
		for j := range rt.Partitions {
			sp := &st.Partitions[j]
			*sp = kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rt.Partitions[j].Partition
			part, epoch, err := cx.s.leaderPartition(rt.Topic, sp.Partition)
			if err == nil && req.Version >= 4 {
				err = checkLeaderEpoch(rt.Partitions[j].CurrentLeaderEpoch, epoch)
			}
			if err == nil {
				sp.Offset, sp.Timestamp, err = listOffset(part, rt.Partitions[j].Timestamp)
			}
			if err != nil {
				sp.ErrorCode = cx.code(err)
				sp.Offset, sp.Timestamp = -1, -1
				continue
			}
			if sp.Offset >= 0 {
				sp.LeaderEpoch = epoch
			}
		}
	}
	return resp, nil
}

// listOffset resolves one lookup to an offset and, for timestamp lookups,
// the timestamp found; -1 stands for "none".
func listOffset(p *storage.Partition, ts int64) (offset, timestamp int64, err error) {
	switch ts {
	case listLatest:
		return p.HighWatermark(), -1, nil
	case listEarliest, listEarliestLocal:
		return p.LogStartOffset(), -1, nil
	case listLatestTiered:
		return listNotFoundOffset, -1, nil
	case listMaxTimestamp:
		return maxTimestampOffset(p)
	}
	if ts < 0 {
		return listNotFoundOffset, -1, errInvalidTimestamp
	}
	off, found, err := p.OffsetForTimestamp(ts)
	if err != nil {
		return -1, -1, err
	}
	if off < 0 || off >= p.HighWatermark() {
		return listNotFoundOffset, -1, nil
	}
	return off, found, nil
}

// maxTimestampOffset finds the record with the largest timestamp using only
// OffsetForTimestamp: the largest timestamp T with a record at or after it
// is found by binary search over non-negative timestamps (at most 63
// lookups), and the record is the first one at or after T. Clients ask for
// this rarely (KIP-734 topic liveness), so this beats a storage API for it.
func maxTimestampOffset(p *storage.Partition) (offset, timestamp int64, err error) {
	hw := p.HighWatermark()
	visible := func(ts int64) (bool, error) {
		off, _, err := p.OffsetForTimestamp(ts)
		return off >= 0 && off < hw, err
	}
	ok, err := visible(0)
	if err != nil || !ok {
		return listNotFoundOffset, -1, err
	}
	lo, hi := int64(0), int64(math.MaxInt64) // visible(lo) holds; find the last such
	for lo < hi {
		mid := lo + (hi-lo)/2 + 1
		ok, err := visible(mid)
		if err != nil {
			return -1, -1, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	off, ts, err := p.OffsetForTimestamp(lo)
	if err != nil {
		return -1, -1, err
	}
	return off, ts, nil
}
