package kafka

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchLongPollWakesOnProduce parks a fetch on an empty partition and
// checks that a produce on another connection wakes it with the data, long
// before MaxWait.
func TestFetchLongPollWakesOnProduce(t *testing.T) {
	e := newEnv(t)
	info := e.createTopic("poll", 2, nil)
	fetcher, producer := e.raw(), e.raw()

	const maxWait = 20000
	// Both partitions are watched; data arrives on the second one.
	req := fetchReq(12, "poll", info.ID, 0, 0, maxWait, 1)
	p1 := kmsg.NewFetchRequestTopicPartition()
	p1.Partition, p1.PartitionMaxBytes = 1, 1<<20
	req.Topics[0].Partitions = append(req.Topics[0].Partitions, p1)
	start := time.Now()
	corr := fetcher.send(req)
	eventually(t, "the fetch to wait", func() bool { return gaugeValue(t, e.s.m.fetchWaiting) == 1 })

	if r := producer.produceOne(9, "poll", 1, testBatch("late", 3, -1, -1, -1)); r.ErrorCode != 0 {
		t.Fatalf("produce: %s", errorName(r.ErrorCode))
	}
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 12
	fetcher.recv(corr, resp)
	if el := time.Since(start); el > maxWait/2*time.Millisecond {
		t.Fatalf("fetch returned after %v; it should wake on the produce", el)
	}
	got := resp.Topics[0].Partitions[1]
	if got.ErrorCode != 0 || got.HighWatermark != 3 || got.LastStableOffset != 3 || got.LogStartOffset != 0 {
		t.Fatalf("partition 1: code %s hw %d lso %d start %d", errorName(got.ErrorCode), got.HighWatermark, got.LastStableOffset, got.LogStartOffset)
	}
	if _, values := decodeValues(t, got.RecordBatches); !slices.Equal(values, []string{"late-0", "late-1", "late-2"}) {
		t.Fatalf("values %v", values)
	}
	if resp.SessionID != 0 {
		t.Fatalf("session id %d; sluice is sessionless", resp.SessionID)
	}
}

func TestFetchLongPollTimesOut(t *testing.T) {
	e := newEnv(t)
	info := e.createTopic("quiet", 1, nil)
	rc := e.raw()
	const maxWait = 300
	start := time.Now()
	resp := rc.do(fetchReq(16, "", info.ID, 0, 0, maxWait, 1)).(*kmsg.FetchResponse)
	if el := time.Since(start); el < maxWait*time.Millisecond {
		t.Fatalf("empty fetch returned after %v, before MaxWait %dms", el, maxWait)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) != 0 || p.HighWatermark != 0 {
		t.Fatalf("code %s, %d bytes, hw %d", errorName(p.ErrorCode), len(p.RecordBatches), p.HighWatermark)
	}
	if p.RecordBatches == nil {
		// kmsg decodes a null record set as nil; librdkafka rejects null
		// ("invalid MessageSetSize -1"), so it must be empty instead.
		t.Fatal("empty partition answered with a null record set")
	}
	if resp.Topics[0].TopicID != info.ID {
		t.Fatal("v13+ response must name the topic by id")
	}
}

func TestFetchErrors(t *testing.T) {
	e := newEnv(t)
	info := e.createTopic("f", 1, nil)
	rc := e.raw()
	rc.produceOne(9, "f", 0, testBatch("x", 5, -1, -1, -1))

	for _, tc := range []struct {
		name string
		req  *kmsg.FetchRequest
		want *kerr.Error
	}{
		{"offset past the end", fetchReq(12, "f", info.ID, 0, 99, 5000, 1), kerr.OffsetOutOfRange},
		{"negative offset", fetchReq(12, "f", info.ID, 0, -5, 5000, 1), kerr.OffsetOutOfRange},
		{"unknown topic", fetchReq(12, "nope", info.ID, 0, 0, 5000, 1), kerr.UnknownTopicOrPartition},
		{"unknown partition", fetchReq(12, "f", info.ID, 3, 0, 5000, 1), kerr.UnknownTopicOrPartition},
		{"unknown topic id", fetchReq(13, "", [16]byte{1, 2, 3}, 0, 0, 5000, 1), kerr.UnknownTopicID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			resp := rc.do(tc.req).(*kmsg.FetchResponse)
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("an error should answer at once, took %v", el)
			}
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != tc.want.Code {
				t.Fatalf("code %s, want %s", errorName(p.ErrorCode), tc.want.Message)
			}
			if tc.want == kerr.OffsetOutOfRange && (p.HighWatermark != 5 || p.LogStartOffset != 0) {
				t.Fatalf("out of range answer must carry offsets: hw %d start %d", p.HighWatermark, p.LogStartOffset)
			}
		})
	}

	t.Run("session id", func(t *testing.T) {
		req := fetchReq(12, "f", info.ID, 0, 0, 0, 0)
		req.SessionID, req.SessionEpoch = 42, 3
		if resp := rc.do(req).(*kmsg.FetchResponse); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
			t.Fatalf("code %s", errorName(resp.ErrorCode))
		}
	})
}

// TestFetchMaxBytes checks that the response stops at MaxBytes, except that
// the first batch always comes through, and that a later partition's batch
// that does not fit is left for the next fetch.
func TestFetchMaxBytes(t *testing.T) {
	e := newEnv(t)
	info := e.createTopic("big", 2, nil)
	rc := e.raw()
	var sizes []int
	for range 4 {
		b := testBatch("0123456789012345678901234567890123456789", 20, -1, -1, -1)
		sizes = append(sizes, len(b))
		rc.produceOne(9, "big", 0, b)
		rc.produceOne(9, "big", 1, b)
	}
	req := fetchReq(12, "big", info.ID, 0, 0, 0, 1)
	req.MaxBytes = int32(sizes[0] + sizes[1] + 10)
	p := rc.do(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if len(p.RecordBatches) != sizes[0]+sizes[1] {
		t.Fatalf("got %d bytes, want two batches (%d)", len(p.RecordBatches), sizes[0]+sizes[1])
	}
	req.MaxBytes = 1
	p = rc.do(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if len(p.RecordBatches) != sizes[0] {
		t.Fatalf("got %d bytes, want the first batch (%d) despite MaxBytes 1", len(p.RecordBatches), sizes[0])
	}

	// Partition 0 fills most of MaxBytes; partition 1's first batch does
	// not fit in what is left and must not be sent.
	p1 := kmsg.NewFetchRequestTopicPartition()
	p1.Partition, p1.PartitionMaxBytes = 1, 1<<20
	req.Topics[0].Partitions = append(req.Topics[0].Partitions, p1)
	req.MaxBytes = int32(sizes[0] + sizes[1]/2)
	ps := rc.do(req).(*kmsg.FetchResponse).Topics[0].Partitions
	if len(ps[0].RecordBatches) != sizes[0] || len(ps[1].RecordBatches) != 0 || ps[1].HighWatermark != 80 {
		t.Fatalf("got %d and %d bytes (hw %d), want %d and 0", len(ps[0].RecordBatches), len(ps[1].RecordBatches), ps[1].HighWatermark, sizes[0])
	}
}

func TestListOffsets(t *testing.T) {
	e := newEnv(t)
	e.createTopic("times", 1, nil)
	rc := e.raw()
	rc.produceOne(9, "times", 0, batchAt(1000, 2000, 3000))
	rc.produceOne(9, "times", 0, batchAt(4000, 9000, 5000))

	ctx := testCtx(t)
	adm := e.admin()
	check := func(what string, l kadm.ListedOffsets, err error, offset int64) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		o, ok := l.Lookup("times", 0)
		if !ok || o.Err != nil || o.Offset != offset {
			t.Fatalf("%s: %+v, want offset %d", what, o, offset)
		}
	}
	l, err := adm.ListStartOffsets(ctx, "times")
	check("earliest", l, err, 0)
	l, err = adm.ListEndOffsets(ctx, "times")
	check("latest", l, err, 6)
	l, err = adm.ListOffsetsAfterMilli(ctx, 2500, "times")
	check("after 2500ms", l, err, 2)
	l, err = adm.ListOffsetsAfterMilli(ctx, 4000, "times")
	check("after 4000ms", l, err, 3)
	l, err = adm.ListOffsetsAfterMilli(ctx, 99000, "times") // none: kadm falls back to the end
	check("after the last timestamp", l, err, 6)
	l, err = adm.ListMaxTimestampOffsets(ctx, "times")
	check("max timestamp", l, err, 4)
	if o, _ := l.Lookup("times", 0); o.Timestamp != 9000 {
		t.Fatalf("max timestamp %d, want 9000", o.Timestamp)
	}

	// Raw, for the error path and the oldest version.
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = 1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "times"
	for _, p := range []int32{0, 5} {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp := rc.do(req).(*kmsg.ListOffsetsResponse)
	if ps := resp.Topics[0].Partitions; ps[0].Offset != 6 || ps[0].ErrorCode != 0 || ps[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("v1: %+v", ps)
	}
}
