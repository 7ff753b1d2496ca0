package kafka

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker/batch"
)

func TestProduceConsumeRoundTrip(t *testing.T) {
	e := newEnv(t)
	const topic, partitions, n = "orders", 3, 300
	e.createTopic(topic, partitions, nil)
	ctx := testCtx(t)

	prod := e.client(kgo.DefaultProduceTopic(topic))
	produced := make([]*kgo.Record, n)
	for i := range produced {
		produced[i] = &kgo.Record{
			Key:     []byte("key-" + strconv.Itoa(i%17)),
			Value:   []byte("value-" + strconv.Itoa(i)),
			Headers: []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}, {Key: "empty"}},
		}
	}
	if err := prod.ProduceSync(ctx, produced...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cons := e.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	for len(got) < n {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d records: %v", len(got), err)
		}
		got = append(got, fs.Records()...)
	}
	if len(got) != n {
		t.Fatalf("consumed %d records, want %d", len(got), n)
	}

	type loc struct {
		p   int32
		off int64
	}
	byLoc := make(map[loc]*kgo.Record, n)
	keyPartition := map[string]int32{}
	perPartition := make([]int, partitions)
	for _, r := range produced {
		byLoc[loc{r.Partition, r.Offset}] = r
		if p, ok := keyPartition[string(r.Key)]; ok && p != r.Partition {
			t.Errorf("key %s went to partitions %d and %d", r.Key, p, r.Partition)
		}
		keyPartition[string(r.Key)] = r.Partition
		perPartition[r.Partition]++
	}
	next := make([]int64, partitions)
	for _, r := range got {
		if r.Offset != next[r.Partition] {
			t.Fatalf("partition %d: offset %d, want %d (offsets must be dense from 0)", r.Partition, r.Offset, next[r.Partition])
		}
		next[r.Partition]++
		want, ok := byLoc[loc{r.Partition, r.Offset}]
		if !ok {
			t.Fatalf("consumed %d/%d, which no produce acknowledged", r.Partition, r.Offset)
		}
		if !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value) {
			t.Errorf("%d/%d: got %s=%s, want %s=%s", r.Partition, r.Offset, r.Key, r.Value, want.Key, want.Value)
		}
		if len(r.Headers) != 2 || r.Headers[0].Key != "i" || !bytes.Equal(r.Headers[0].Value, want.Headers[0].Value) || r.Headers[1].Key != "empty" {
			t.Errorf("%d/%d: headers %+v, want %+v", r.Partition, r.Offset, r.Headers, want.Headers)
		}
	}
	for p, c := range perPartition {
		if c == 0 {
			t.Errorf("partition %d got no records; keys should spread over all partitions", p)
		}
	}
}

func TestIdempotentProducerNoDuplicates(t *testing.T) {
	e := newEnv(t)
	const topic, n = "idem", 5000
	e.createTopic(topic, 2, nil)
	ctx := testCtx(t)

	// Small batches make many produce requests, pipelined per connection.
	prod := e.client(kgo.DefaultProduceTopic(topic), kgo.ProducerBatchMaxBytes(2048),
		kgo.ProducerLinger(0))
	results := make(chan error, n)
	for i := range n {
		prod.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))},
			func(_ *kgo.Record, err error) { results <- err })
	}
	for range n {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}

	cons := e.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := make(map[string]bool, n)
	for len(seen) < n {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		for _, r := range fs.Records() {
			if seen[string(r.Value)] {
				t.Fatalf("record %s consumed twice", r.Value)
			}
			seen[string(r.Value)] = true
		}
	}
	ends, err := e.admin().ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != n {
		t.Fatalf("partitions hold %d records, want %d", total, n)
	}
}

// TestProduceSequenceErrors drives an idempotent producer's sequence
// numbers by hand: a retried batch is acknowledged with its original
// offset, a gap and an old epoch are refused.
func TestProduceSequenceErrors(t *testing.T) {
	e := newEnv(t)
	const topic = "seq"
	e.createTopic(topic, 1, nil)
	rc := e.raw()

	ipid := kmsg.NewPtrInitProducerIDRequest()
	ipid.Version = 4
	pidResp := rc.do(ipid).(*kmsg.InitProducerIDResponse)
	if pidResp.ErrorCode != 0 || pidResp.ProducerID < 0 || pidResp.ProducerEpoch != 0 {
		t.Fatalf("InitProducerId: code %d id %d epoch %d", pidResp.ErrorCode, pidResp.ProducerID, pidResp.ProducerEpoch)
	}
	pid := pidResp.ProducerID

	first := testBatch("a", 5, pid, 0, 0)
	if r := rc.produceOne(12, topic, 0, first); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("first batch: code %d base %d", r.ErrorCode, r.BaseOffset)
	}
	if r := rc.produceOne(12, topic, 0, testBatch("b", 3, pid, 0, 5)); r.ErrorCode != 0 || r.BaseOffset != 5 {
		t.Fatalf("second batch: code %d base %d", r.ErrorCode, r.BaseOffset)
	}
	// The first batch again, as a producer retrying after a lost response.
	if r := rc.produceOne(12, topic, 0, first); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("duplicate batch: code %s base %d, want success with the original base offset 0",
			errorName(r.ErrorCode), r.BaseOffset)
	}
	// A gap: sequence 8 is next, 20 is not.
	if r := rc.produceOne(12, topic, 0, testBatch("gap", 2, pid, 0, 20)); r.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: code %s, want OUT_OF_ORDER_SEQUENCE_NUMBER", errorName(r.ErrorCode))
	}
	// A newer epoch fences the older one.
	if r := rc.produceOne(12, topic, 0, testBatch("e1", 1, pid, 1, 0)); r.ErrorCode != 0 {
		t.Fatalf("epoch 1: code %s", errorName(r.ErrorCode))
	}
	if r := rc.produceOne(12, topic, 0, testBatch("e0", 1, pid, 0, 8)); r.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("old epoch: code %s, want INVALID_PRODUCER_EPOCH", errorName(r.ErrorCode))
	}

	part, err := e.b.Partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if leo := part.LogEndOffset(); leo != 9 {
		t.Fatalf("log end offset %d, want 9 (5 + 3 + 1; the duplicate must not be written)", leo)
	}
}

func TestProducePartitionErrors(t *testing.T) {
	e := newEnv(t)
	e.createTopic("t", 1, nil)
	rc := e.raw()

	corrupt := testBatch("x", 2, -1, -1, -1)
	corrupt[len(corrupt)-1] ^= 0xff // breaks the CRC

	var txn batch.Builder
	txn.Reset(1)
	txn.SetProducer(1, 0, 0)
	txn.SetAttributes(batch.Transactional)
	txn.Add(0, 1, nil, []byte("v"), nil)

	var ctrl batch.Builder
	ctrl.Reset(1)
	ctrl.SetAttributes(batch.Control)
	ctrl.Add(0, 1, nil, []byte("v"), nil)

	for _, tc := range []struct {
		name      string
		topic     string
		partition int32
		records   []byte
		want      *kerr.Error
	}{
		{"unknown topic", "nope", 0, testBatch("x", 1, -1, -1, -1), kerr.UnknownTopicOrPartition},
		{"unknown partition", "t", 7, testBatch("x", 1, -1, -1, -1), kerr.UnknownTopicOrPartition},
		{"corrupt batch", "t", 0, corrupt, kerr.CorruptMessage},
		{"no records", "t", 0, nil, kerr.CorruptMessage},
		{"transactional batch", "t", 0, bytes.Clone(txn.Finish()), kerr.TransactionalIDAuthorizationFailed},
		{"control batch", "t", 0, bytes.Clone(ctrl.Finish()), kerr.InvalidRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rc.produceOne(12, tc.topic, tc.partition, tc.records)
			if r.ErrorCode != tc.want.Code {
				t.Fatalf("code %s, want %s", errorName(r.ErrorCode), tc.want.Message)
			}
			if r.ErrorMessage == nil {
				t.Error("v8+ response carries no error message")
			}
		})
	}

	t.Run("transactional id", func(t *testing.T) {
		req := produceReq(12, "t", 0, testBatch("x", 1, -1, -1, -1))
		req.TransactionID = kmsg.StringPtr("txn")
		resp := rc.do(req).(*kmsg.ProduceResponse)
		if c := resp.Topics[0].Partitions[0].ErrorCode; c != kerr.TransactionalIDAuthorizationFailed.Code {
			t.Fatalf("code %s", errorName(c))
		}
		ip := kmsg.NewPtrInitProducerIDRequest()
		ip.Version = 4
		ip.TransactionalID = kmsg.StringPtr("txn")
		if c := rc.do(ip).(*kmsg.InitProducerIDResponse).ErrorCode; c != kerr.TransactionalIDAuthorizationFailed.Code {
			t.Fatalf("InitProducerId with transactional id: code %s", errorName(c))
		}
	})
	t.Run("bad acks", func(t *testing.T) {
		req := produceReq(12, "t", 0, testBatch("x", 1, -1, -1, -1))
		req.Acks = 2
		resp := rc.do(req).(*kmsg.ProduceResponse)
		if c := resp.Topics[0].Partitions[0].ErrorCode; c != kerr.InvalidRequiredAcks.Code {
			t.Fatalf("code %s", errorName(c))
		}
	})
}

// TestProduceAllVersions produces with every supported produce version and
// fetches with every supported fetch version (v13+ by topic id).
func TestProduceAllVersions(t *testing.T) {
	e := newEnv(t)
	info := e.createTopic("versions", 1, nil)
	rc := e.raw()
	var want []string
	for v := int16(3); v <= 12; v++ {
		prefix := fmt.Sprintf("v%d", v)
		r := rc.produceOne(v, "versions", 0, testBatch(prefix, 2, -1, -1, -1))
		if r.ErrorCode != 0 || r.BaseOffset != int64(len(want)) {
			t.Fatalf("produce v%d: code %s base %d", v, errorName(r.ErrorCode), r.BaseOffset)
		}
		want = append(want, prefix+"-0", prefix+"-1")
	}
	for v := int16(4); v <= 16; v++ {
		resp := rc.do(fetchReq(v, "versions", info.ID, 0, 0, 0, 0)).(*kmsg.FetchResponse)
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("fetch v%d: %+v", v, resp)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.HighWatermark != int64(len(want)) {
			t.Fatalf("fetch v%d: code %s hw %d", v, errorName(p.ErrorCode), p.HighWatermark)
		}
		offsets, values := decodeValues(t, p.RecordBatches)
		if !slices.Equal(values, want) || offsets[len(offsets)-1] != int64(len(want)-1) {
			t.Fatalf("fetch v%d: values %v offsets %v", v, values, offsets)
		}
	}
}

// TestProducePipelined sends many produce requests before reading any
// response, as franz-go does, and expects answers in request order.
func TestProducePipelined(t *testing.T) {
	e := newEnv(t)
	e.createTopic("pipe", 2, nil)
	rc := e.raw()
	const n = 20
	corrs := make([]int32, n)
	for i := range corrs {
		corrs[i] = rc.send(produceReq(9, "pipe", int32(i%2), testBatch("p", 3, -1, -1, -1)))
	}
	for i, corr := range corrs {
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		rc.recv(corr, resp)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset != int64(i/2*3) {
			t.Fatalf("response %d: code %s base %d, want base %d", i, errorName(p.ErrorCode), p.BaseOffset, i/2*3)
		}
	}
}

func TestProduceAcksZero(t *testing.T) {
	e := newEnv(t)
	e.createTopic("fire", 1, nil)
	rc := e.raw()

	// No response to acks=0: the next frame on the connection must be the
	// ApiVersions response.
	req := produceReq(9, "fire", 0, testBatch("f", 4, -1, -1, -1))
	req.Acks = 0
	rc.send(req)
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	av.ClientSoftwareName, av.ClientSoftwareVersion = "test", "1"
	if resp := rc.do(av).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions after acks=0 produce: code %d", resp.ErrorCode)
	}
	part, _ := e.b.Partition("fire", 0)
	if hw := part.HighWatermark(); hw != 4 {
		t.Fatalf("high watermark %d after acks=0 produce, want 4", hw)
	}

	// A failed acks=0 produce closes the connection, as in Kafka.
	bad := produceReq(9, "missing", 0, testBatch("f", 1, -1, -1, -1))
	bad.Acks = 0
	rc.send(bad)
	rc.expectClosed()

	// And through a real client.
	ctx := testCtx(t)
	cl := e.client(kgo.DefaultProduceTopic("fire"), kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	for i := range 100 {
		cl.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "104 records", func() bool { return part.HighWatermark() == 104 })
}

func TestInitProducerIDUnique(t *testing.T) {
	e := newEnv(t)
	rc := e.raw()
	seen := map[int64]bool{}
	for v := int16(0); v <= 5; v++ {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version = v
		resp := rc.do(req).(*kmsg.InitProducerIDResponse)
		if resp.ErrorCode != 0 || seen[resp.ProducerID] {
			t.Fatalf("v%d: code %d id %d (seen %v)", v, resp.ErrorCode, resp.ProducerID, seen)
		}
		seen[resp.ProducerID] = true
	}
}
