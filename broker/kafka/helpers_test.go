package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/internal/testnode"
)

// testEnv is a real broker on a temporary directory with a real server on
// a loopback port.
type testEnv struct {
	t      testing.TB
	b      *broker.Broker
	s      *Server
	reg    *prometheus.Registry
	addr   string
	logs   *testnode.SyncBuffer
	served chan error
}

type envOption func(*broker.Config, *Config)

func withAutoCreate(partitions int32) envOption {
	return func(bc *broker.Config, _ *Config) {
		bc.AutoCreateTopics = true
		bc.DefaultPartitions = partitions
	}
}

func withServerConfig(fn func(*Config)) envOption {
	return func(_ *broker.Config, c *Config) { fn(c) }
}

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	logs := &testnode.SyncBuffer{}
	bc := broker.Config{DataDir: t.TempDir(), NodeID: 1, Logger: slog.New(slog.DiscardHandler)}
	e := &testEnv{t: t, reg: prometheus.NewRegistry(), logs: logs, served: make(chan error, 1)}
	sc := Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Registerer: e.reg}
	for _, o := range opts {
		o(&bc, &sc)
	}
	b, err := broker.Open(bc)
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	s, err := NewServer(b, sc)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	e.s = s
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	go func() { e.served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-e.served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		b.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return e
}

func (e *testEnv) createTopic(name string, partitions int32, configs map[string]string) broker.TopicInfo {
	e.t.Helper()
	info, err := e.b.CreateTopic(name, partitions, configs)
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

func (e *testEnv) client(opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.addr), kgo.FetchMaxWait(200 * time.Millisecond)}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

func (e *testEnv) admin() *kadm.Client { return kadm.NewClient(e.client()) }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawConn speaks kmsg over a plain TCP connection, for tests that need exact
// control over versions, pipelining and bytes on the wire.
type rawConn struct {
	t    testing.TB
	nc   net.Conn
	corr int32
	fmt  *kmsg.RequestFormatter
}

func (e *testEnv) raw() *rawConn {
	e.t.Helper()
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	return &rawConn{t: e.t, nc: nc, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw-test"))}
}

// send writes req at its set version and returns its correlation id.
func (r *rawConn) send(req kmsg.Request) int32 {
	r.t.Helper()
	r.corr++
	r.write(r.fmt.AppendRequest(nil, req, r.corr))
	return r.corr
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// readFrame reads one response frame.
func (r *rawConn) readFrame() ([]byte, error) {
	r.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	var sz [4]byte
	if _, err := io.ReadFull(r.nc, sz[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint32(sz[:]))
	_, err := io.ReadFull(r.nc, buf)
	return buf, err
}

// recv reads the response to corr into resp (whose version must be set).
func (r *rawConn) recv(corr int32, resp kmsg.Response) {
	r.t.Helper()
	buf, err := r.readFrame()
	if err != nil {
		r.t.Fatalf("reading %s response: %v", kmsg.NameForKey(resp.Key()), err)
	}
	rd := kbin.Reader{Src: buf}
	if got := rd.Int32(); got != corr {
		r.t.Fatalf("correlation id %d, want %d", got, corr)
	}
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		kmsg.SkipTags(&rd)
	}
	if err := resp.ReadFrom(rd.Src); err != nil {
		r.t.Fatalf("decoding %s v%d response: %v", kmsg.NameForKey(resp.Key()), resp.GetVersion(), err)
	}
}

// do sends req and returns its response.
func (r *rawConn) do(req kmsg.Request) kmsg.Response {
	r.t.Helper()
	resp := req.ResponseKind()
	r.recv(r.send(req), resp)
	return resp
}

// expectClosed asserts that the server closes the connection.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(r.nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		r.t.Fatal("server did not close the connection")
	}
}

// produceReq builds a produce request of one batch for one partition.
func produceReq(version int16, topic string, partition int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = version
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// produceOne sends a produce request and returns its only partition result.
func (r *rawConn) produceOne(version int16, topic string, partition int32, records []byte) kmsg.ProduceResponseTopicPartition {
	r.t.Helper()
	resp := r.do(produceReq(version, topic, partition, records)).(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		r.t.Fatalf("produce response has %d topics", len(resp.Topics))
	}
	return resp.Topics[0].Partitions[0]
}

// fetchReq builds a fetch request for one partition.
func fetchReq(version int16, topic string, id [16]byte, partition int32, offset int64, maxWait, minBytes int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = version
	req.MaxWaitMillis = maxWait
	req.MinBytes = minBytes
	req.MaxBytes = 50 << 20
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = partition
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// testBatch encodes n records "<prefix>-i" with the given producer
// identity (id -1 for none).
func testBatch(prefix string, n int, producerID int64, epoch int16, seq int32) []byte {
	var b batch.Builder
	ts := time.Now().UnixMilli()
	b.Reset(ts)
	if producerID >= 0 {
		b.SetProducer(producerID, epoch, seq)
	}
	for i := range n {
		b.Add(int32(i), ts, []byte(fmt.Sprintf("k%d", i)), []byte(fmt.Sprintf("%s-%d", prefix, i)), nil)
	}
	return bytes.Clone(b.Finish())
}

// batchAt is testBatch with explicit record timestamps.
func batchAt(timestamps ...int64) []byte {
	var b batch.Builder
	b.Reset(timestamps[0])
	for i, ts := range timestamps {
		b.Add(int32(i), ts, nil, []byte(fmt.Sprint(ts)), nil)
	}
	return bytes.Clone(b.Finish())
}

// decodeValues returns the values of every record in fetched batches.
func decodeValues(t testing.TB, data []byte) (offsets []int64, values []string) {
	t.Helper()
	for len(data) > 0 {
		b, _, rest, err := batch.Next(data)
		if err != nil {
			t.Fatalf("fetched bytes do not parse: %v", err)
		}
		if err := batch.Records(b, func(r *batch.Record) bool {
			offsets = append(offsets, r.Offset)
			values = append(values, string(r.Value))
			return true
		}); err != nil {
			t.Fatal(err)
		}
		data = rest
	}
	return offsets, values
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not a wait for a condition
	}
}

func gaugeValue(t testing.TB, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
