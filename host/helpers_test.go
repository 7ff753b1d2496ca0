package host

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/group"
	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins/wazero"
)

// testNode is a broker, an offset store and a Manager on one data
// directory, as a sluice node has them.
type testNode struct {
	t     testing.TB
	dir   string
	b     *broker.Broker
	coord *group.Coordinator
	m     *Manager
	reg   *prometheus.Registry
}

var sharedCacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-host-test-cache-")
	if err != nil {
		panic(err)
	}
	sharedCacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func testLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startNode(t testing.TB, dir string) *testNode {
	t.Helper()
	n := &testNode{t: t, dir: dir, reg: prometheus.NewRegistry()}
	var err error
	n.b, err = broker.Open(broker.Config{DataDir: filepath.Join(dir, "broker"), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	n.coord, err = group.New(n.b, group.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// One compilation cache for the whole test binary: compiling a Go
	// guest takes seconds, and each test has its own data directory.
	rt, err := wazero.New(context.Background(), wazero.Options{CacheDir: sharedCacheDir})
	if err != nil {
		t.Fatal(err)
	}
	n.m, err = NewManager(context.Background(), Config{
		DataDir: dir, Broker: n.b, Offsets: n.coord.Offsets(), Logger: testLogger(), Registerer: n.reg, Runtime: rt,
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newNode starts a node in a fresh directory, closed when the test ends.
func newNode(t testing.TB) *testNode {
	n := startNode(t, t.TempDir())
	t.Cleanup(n.close)
	return n
}

func (n *testNode) close() {
	if n.m == nil {
		return
	}
	if err := n.m.Close(); err != nil {
		n.t.Errorf("manager close: %v", err)
	}
	n.coord.Close()
	n.b.Close()
	n.m = nil
}

func (n *testNode) createTopic(name string, partitions int32) {
	n.t.Helper()
	if _, err := n.b.CreateTopic(name, partitions, nil); err != nil {
		n.t.Fatal(err)
	}
}

type kv struct {
	key, value []byte
	headers    []batch.RecordHeader
	offset     int64
	ts         int64
}

// produce appends records to one partition in batches of up to 500.
func (n *testNode) produce(topic string, partition int32, recs []kv) {
	n.t.Helper()
	part, err := n.b.Partition(topic, partition)
	if err != nil {
		n.t.Fatal(err)
	}
	var bld batch.Builder
	for len(recs) > 0 {
		k := min(len(recs), 500)
		ts := time.Now().UnixMilli()
		bld.Reset(ts)
		for i, r := range recs[:k] {
			bld.Add(int32(i), ts, r.key, r.value, r.headers)
		}
		if _, err := part.Append(bld.Finish(), 0); err != nil {
			n.t.Fatal(err)
		}
		recs = recs[k:]
	}
}

// produceByKey spreads records over the topic's partitions by key, as a
// Kafka producer would.
func (n *testNode) produceByKey(topic string, recs []kv) {
	n.t.Helper()
	info, ok := n.b.Topic(topic)
	if !ok {
		n.t.Fatalf("no topic %s", topic)
	}
	per := make([][]kv, info.Partitions)
	for _, r := range recs {
		p := partitionForKey(r.key, info.Partitions)
		per[p] = append(per[p], r)
	}
	for p, rs := range per {
		if len(rs) > 0 {
			n.produce(topic, int32(p), rs)
		}
	}
}

// read returns every record of every partition of a topic.
func (n *testNode) read(topic string) [][]kv {
	n.t.Helper()
	info, ok := n.b.Topic(topic)
	if !ok {
		n.t.Fatalf("no topic %s", topic)
	}
	out := make([][]kv, info.Partitions)
	for p := int32(0); p < info.Partitions; p++ {
		part, err := n.b.Partition(topic, p)
		if err != nil {
			n.t.Fatal(err)
		}
		off := part.LogStartOffset()
		var buf []byte
		for off < part.HighWatermark() {
			data, err := part.ReadInto(buf, off, 1<<20)
			if err != nil {
				n.t.Fatal(err)
			}
			buf = data[:0]
			if len(data) == 0 {
				break
			}
			for len(data) > 0 {
				b, h, rest, err := batch.Next(data)
				if err != nil {
					break
				}
				data = rest
				off = h.NextOffset()
				err = batch.Records(b, func(r *batch.Record) bool {
					out[p] = append(out[p], kv{
						key: clone(r.Key), value: clone(r.Value), offset: r.Offset, ts: r.Timestamp,
						headers: append([]batch.RecordHeader(nil), r.Headers...),
					})
					return true
				})
				if err != nil {
					n.t.Fatal(err)
				}
			}
		}
	}
	return out
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// count is the number of records in a topic.
func (n *testNode) count(topic string) int64 {
	info, ok := n.b.Topic(topic)
	if !ok {
		return 0
	}
	var total int64
	for p := int32(0); p < info.Partitions; p++ {
		part, _ := n.b.Partition(topic, p)
		total += part.HighWatermark() - part.LogStartOffset()
	}
	return total
}

// waitFor polls cond until it returns "" (done) or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *testNode) deploy(spec JobSpec, guest string) JobStatus {
	n.t.Helper()
	st, err := n.m.Deploy(context.Background(), spec, testguests.Build(guest))
	if err != nil {
		n.t.Fatalf("deploy %s: %v", spec.Name, err)
	}
	return st
}

func (n *testNode) status(name string) JobStatus {
	n.t.Helper()
	st, err := n.m.Status(name)
	if err != nil {
		n.t.Fatal(err)
	}
	return st
}

// waitTasks waits until every task of a job satisfies ok.
func (n *testNode) waitTasks(name string, timeout time.Duration, what string, ok func(TaskStatus) bool) JobStatus {
	n.t.Helper()
	var st JobStatus
	waitFor(n.t, timeout, func() string {
		st = n.status(name)
		if len(st.Tasks) == 0 {
			return "no tasks"
		}
		for _, ts := range st.Tasks {
			if !ok(ts) {
				return fmt.Sprintf("task %d is not %s: %+v", ts.Partition, what, ts)
			}
		}
		return ""
	})
	return st
}

func records(n int, f func(i int) kv) []kv {
	out := make([]kv, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
