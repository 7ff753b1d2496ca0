package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestAPIVersions(t *testing.T) {
	e := newEnv(t)
	rc := e.raw()
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName, req.ClientSoftwareVersion = "sluice-test", "1.0"
		resp := rc.do(req).(*kmsg.ApiVersionsResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("v%d: code %s", v, errorName(resp.ErrorCode))
		}
		got := map[int16][2]int16{}
		for _, k := range resp.ApiKeys {
			got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
		}
		for _, a := range supportedAPIs() {
			if got[a.key] != [2]int16{a.min, a.max} {
				t.Fatalf("v%d: %s advertised as %v, want %d..%d", v, kmsg.NameForKey(a.key), got[a.key], a.min, a.max)
			}
		}
		if len(got) != len(supportedAPIs()) {
			t.Fatalf("v%d advertises %d APIs, want only the %d implemented", v, len(got), len(supportedAPIs()))
		}
	}

	// A version from the future gets Kafka's fallback: a v0 response with
	// UNSUPPORTED_VERSION and our list, on a connection that stays open.
	for _, v := range []int16{5, 77} {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		corr := rc.send(req)
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 0
		rc.recv(corr, resp)
		if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) != len(supportedAPIs()) {
			t.Fatalf("ApiVersions v%d: code %s, %d keys", v, errorName(resp.ErrorCode), len(resp.ApiKeys))
		}
	}
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	if resp := rc.do(req).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatal("connection unusable after the fallback")
	}
}

// TestUnsupportedAPI sends requests sluice does not implement and expects
// well-formed UNSUPPORTED_VERSION answers on a connection that stays open.
func TestUnsupportedAPI(t *testing.T) {
	e := newEnv(t)
	e.createTopic("t", 1, nil)
	rc := e.raw()

	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.Version = 3
	commit.Group, commit.TransactionalID = "g", "tx"
	ct := kmsg.NewTxnOffsetCommitRequestTopic()
	ct.Topic = "t"
	for p := range int32(2) {
		cp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		cp.Partition, cp.Offset = p, 10
		ct.Partitions = append(ct.Partitions, cp)
	}
	commit.Topics = append(commit.Topics, ct)
	cresp := rc.do(commit).(*kmsg.TxnOffsetCommitResponse)
	if len(cresp.Topics) != 1 || cresp.Topics[0].Topic != "t" || len(cresp.Topics[0].Partitions) != 2 {
		t.Fatalf("TxnOffsetCommit answer does not mirror the request: %+v", cresp.Topics)
	}
	for i, p := range cresp.Topics[0].Partitions {
		if p.Partition != int32(i) || p.ErrorCode != kerr.UnsupportedVersion.Code {
			t.Fatalf("partition %+v", p)
		}
	}

	end := kmsg.NewPtrEndTxnRequest()
	end.Version = 3
	end.TransactionalID = "tx"
	if r := rc.do(end).(*kmsg.EndTxnResponse); r.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("EndTxn: code %s", errorName(r.ErrorCode))
	}

	// A supported API below our minimum version.
	old := produceReq(2, "t", 0, testBatch("x", 1, -1, -1, -1))
	if r := rc.do(old).(*kmsg.ProduceResponse); r.Topics[0].Partitions[0].ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("produce v2: code %s", errorName(r.Topics[0].Partitions[0].ErrorCode))
	}
	part, _ := e.b.Partition("t", 0)
	if part.HighWatermark() != 0 {
		t.Fatal("an unsupported produce version wrote data")
	}

	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	if r := rc.do(md).(*kmsg.MetadataResponse); len(r.Topics) != 2 { // t and __consumer_offsets
		t.Fatal("connection unusable after unsupported requests")
	}
}

// TestMalformedFrames sends broken frames, each on its own connection: the
// server must close that connection, log why, and keep serving others.
func TestMalformedFrames(t *testing.T) {
	e := newEnv(t)
	header := func(key, version int16) []byte {
		b := kbin.AppendInt16(nil, key)
		b = kbin.AppendInt16(b, version)
		b = kbin.AppendInt32(b, 1)
		return kbin.AppendNullableString(b, kmsg.StringPtr("c"))
	}
	frame := func(body []byte) []byte { return append(kbin.AppendInt32(nil, int32(len(body))), body...) }
	size := func(n int32) []byte { return kbin.AppendInt32(nil, n) }

	for _, tc := range []struct {
		name  string
		bytes []byte
		half  bool // close our write side after sending
		log   string
	}{
		{"negative size", size(-2), false, "invalid frame size"},
		{"size below a header", append(size(4), 0, 0, 0, 0), false, "invalid frame size"},
		{"size above the maximum", size(200 << 20), false, "invalid frame size"},
		{"truncated body", append(size(100), header(3, 12)...), true, "unexpected EOF"},
		{"unknown api key", frame(header(9999, 0)), false, "unknown api key"},
		{"negative api key", frame(header(-7, 0)), false, "unknown api key"},
		{"version unknown to the codec", frame(header(3, 99)), false, "api version unknown"},
		{"header cut inside the client id", frame([]byte{0, 3, 0, 12, 0, 0, 0, 1, 0, 40, 'a'}), false, "malformed request header"},
		{"garbage body", frame(append(header(19, 4), 0, 0, 0, 9, 0xff)), false, "malformed request body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := e.raw()
			rc.write(tc.bytes)
			if tc.half {
				rc.nc.(*net.TCPConn).CloseWrite()
			}
			rc.expectClosed()
			eventually(t, "a log line", func() bool { return strings.Contains(e.logs.String(), tc.log) })

			other := e.raw()
			req := kmsg.NewPtrApiVersionsRequest()
			req.Version = 3
			if r := other.do(req).(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 {
				t.Fatal("server no longer serves other clients")
			}
		})
	}
}

// TestLargeFrame checks a frame that arrives in pieces larger than the
// first read chunk.
func TestLargeFrame(t *testing.T) {
	e := newEnv(t)
	e.createTopic("large", 1, nil)
	rc := e.raw()
	big := testBatch(string(make([]byte, 100<<10)), 30, -1, -1, -1) // ~3 MiB
	if r := rc.produceOne(9, "large", 0, big); r.ErrorCode != 0 {
		t.Fatalf("code %s", errorName(r.ErrorCode))
	}
}

func TestCloseWakesLongPoll(t *testing.T) {
	e := newEnv(t)
	info := e.createTopic("idle", 1, nil)
	rc := e.raw()
	rc.send(fetchReq(12, "idle", info.ID, 0, 0, 60000, 1))
	eventually(t, "the fetch to wait", func() bool { return gaugeValue(t, e.s.m.fetchWaiting) == 1 })

	closed := make(chan struct{})
	go func() { e.s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while a fetch was long-polling")
	}
	rc.expectClosed()
	if _, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		t.Fatal("listener still accepts after Close")
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	info := e.createTopic("m", 1, nil)
	rc := e.raw()
	b1, b2 := testBatch("a", 3, -1, -1, -1), testBatch("b", 4, -1, -1, -1)
	rc.produceOne(9, "m", 0, b1)
	rc.produceOne(9, "m", 0, b2)
	rc.produceOne(9, "m", 5, b1) // unknown partition
	rc.do(fetchReq(12, "m", info.ID, 0, 0, 0, 1))

	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"sluice_kafka_records_in_total", map[string]string{"topic": "m"}, 7},
		{"sluice_kafka_bytes_in_total", map[string]string{"topic": "m"}, float64(len(b1) + len(b2))},
		{"sluice_kafka_records_out_total", map[string]string{"topic": "m"}, 7},
		{"sluice_kafka_bytes_out_total", map[string]string{"topic": "m"}, float64(len(b1) + len(b2))},
		{"sluice_kafka_requests_total", map[string]string{"api": "Produce"}, 3},
		{"sluice_kafka_errors_total", map[string]string{"api": "Produce", "error": "UNKNOWN_TOPIC_OR_PARTITION"}, 1},
		{"sluice_kafka_request_duration_seconds", map[string]string{"api": "Fetch"}, 1}, // sample count
		{"sluice_partition_log_end_offset", map[string]string{"topic": "m", "partition": "0"}, 7},
		{"sluice_partition_high_watermark", map[string]string{"topic": "m", "partition": "0"}, 7},
		{"sluice_partition_log_start_offset", map[string]string{"topic": "m", "partition": "0"}, 0},
		{"sluice_kafka_connections", nil, 1},
	}
	// Request metrics are recorded after the response is written, so the
	// last request's may trail its response by a moment.
	for _, w := range want {
		eventually(t, fmt.Sprintf("%s%v = %v", w.name, w.labels, w.value), func() bool {
			got, ok := metricValue(t, e.reg, w.name, w.labels)
			return ok && got == w.value
		})
	}

	// A second server cannot register the same metrics on one registry.
	if _, err := NewServer(e.b, Config{Registerer: e.reg}); err == nil {
		t.Error("NewServer registered duplicate metrics")
	}
}

// metricValue finds one series in reg; for histograms it is the count.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func TestReadFrameGrows(t *testing.T) {
	body := make([]byte, 3*frameReadChunk+17)
	for i := range body {
		body[i] = byte(i)
	}
	data := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	data = append(data, body...)
	bp, err := readFrame(&chunkReader{data: data, n: 4096}, 100<<20)
	if err != nil {
		t.Fatal(err)
	}
	if string(*bp) != string(body) {
		t.Fatal("frame bytes differ")
	}
	putBuf(bp)

	_, err = readFrame(&chunkReader{data: data[:len(data)-1], n: 1 << 20}, 100<<20)
	if err == nil {
		t.Fatal("a truncated frame was accepted")
	}
	if _, err := readFrame(&chunkReader{data: data, n: 1 << 20}, 1<<20); !errors.Is(err, errFrameSize) {
		t.Fatalf("frame above the maximum: %v", err)
	}
}

// chunkReader returns at most n bytes per Read, like a slow socket.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, errEOF
	}
	k := copy(p[:min(len(p), c.n)], c.data)
	c.data = c.data[k:]
	return k, nil
}

var errEOF = errors.New("EOF")

// TestEveryVersionAnswers sends a minimal request of every supported API at
// every advertised version and decodes the answer at that version.
func TestEveryVersionAnswers(t *testing.T) {
	e := newEnv(t)
	e.createTopic("t", 1, nil)
	rc := e.raw()
	for _, a := range supportedAPIs() {
		for v := a.min; v <= a.max; v++ {
			req := kmsg.RequestForKey(a.key)
			if d, ok := req.(interface{ Default() }); ok {
				d.Default()
			}
			req.SetVersion(v)
			switch r := req.(type) {
			case *kmsg.ProduceRequest:
				r.Acks = 1
			case *kmsg.FetchRequest:
				r.MaxWaitMillis = 0
			case *kmsg.ApiVersionsRequest:
				r.ClientSoftwareName, r.ClientSoftwareVersion = "test", "1"
			}
			resp := rc.do(req)
			if resp.GetVersion() != v {
				t.Fatalf("%s v%d answered as v%d", kmsg.NameForKey(a.key), v, resp.GetVersion())
			}
		}
	}
}
