package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/cluster"
	"github.com/sluice-io/sluice/broker/cluster/clustertest"
	"github.com/sluice-io/sluice/broker/kafka"
	"github.com/sluice-io/sluice/broker/storage"
)

// testLagMax is replica.lag.time.max in tests: short, so that ISR changes
// happen within a test, long enough for a loaded machine.
const testLagMax = time.Second

// testNode is one in-process node: NATS node, broker, replica manager and
// Kafka listener, as `sluice serve --cluster-listen` wires them.
type testNode struct {
	t    *testing.T
	id   int32
	dir  string
	node *cluster.Node
	b    *broker.Broker
	repl *Manager
	srv  *kafka.Server
	ln   net.Listener
	addr string
}

// startCluster starts an n-node cluster and returns its nodes by id.
func startCluster(t *testing.T, n int) []*testNode {
	t.Helper()
	lns := make([]net.Listener, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
	}
	base := t.TempDir()
	nodes, err := clustertest.StartLocalCluster(t, n, base, func(c *cluster.Config) {
		c.Self.KafkaPort = int32(lns[c.NodeID].Addr().(*net.TCPAddr).Port)
	})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*testNode, n)
	for i, node := range nodes {
		tn := &testNode{t: t, id: node.ID(), dir: filepath.Join(node.Config().DataDir, "log"), node: node, ln: lns[i]}
		tn.startServing()
		out[i] = tn
	}
	t.Cleanup(func() {
		for _, tn := range out {
			tn.stop()
		}
	})
	return out
}

// startServing opens the broker, the replica manager and the Kafka server
// on the node (again, after stop).
func (tn *testNode) startServing() {
	t := tn.t
	t.Helper()
	var err error
	tn.b, err = broker.Open(broker.Config{DataDir: tn.dir, NodeID: tn.id, ExternalHW: true, Logger: clustertest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	tn.repl, err = Start(Config{Node: tn.node, Broker: tn.b, ReplicaLagMax: testLagMax, FetchWait: 200 * time.Millisecond,
		AutoCreateTopics: true, DefaultPartitions: 1, Logger: clustertest.Logger().With("node", tn.id)})
	if err != nil {
		t.Fatal(err)
	}
	tn.srv, err = kafka.NewServer(tn.b, kafka.Config{Cluster: tn.repl, ClusterID: tn.node.Meta().ClusterID(), Logger: clustertest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if tn.ln == nil {
		tn.ln, err = net.Listen("tcp", tn.addr)
		if err != nil {
			t.Fatal(err)
		}
	}
	tn.addr = tn.ln.Addr().String()
	ln := tn.ln
	go tn.srv.Serve(ln)
}

// stop closes everything but the NATS node, gracefully.
func (tn *testNode) stop() {
	if tn.srv != nil {
		tn.srv.Close()
		tn.srv, tn.ln = nil, nil
	}
	if tn.repl != nil {
		tn.repl.Close()
		tn.repl = nil
	}
	if tn.b != nil {
		tn.b.Close()
		tn.b = nil
	}
}

// kill stops the node as abruptly as one process allows: the NATS node
// vanishes without saying goodbye, and the Kafka listener and log close.
func (tn *testNode) kill() {
	tn.node.Kill()
	tn.stop()
}

// restart brings a killed node back with the same data and ports.
func (tn *testNode) restart() {
	t := tn.t
	t.Helper()
	node, err := clustertest.Restart(t, tn.node)
	if err != nil {
		t.Fatal(err)
	}
	tn.node = node
	tn.startServing()
}

// client is a kgo client seeded with every node's address.
func client(t *testing.T, nodes []*testNode, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	var seeds []string
	for _, n := range nodes {
		if n.srv != nil {
			seeds = append(seeds, n.addr)
		}
	}
	opts = append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.RetryTimeout(30 * time.Second), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func createTopic(t *testing.T, cl *kgo.Client, name string, partitions int32, rf int16, configs map[string]*string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, rf, configs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

// partitionState is what the cluster metadata says about a partition, as
// seen by node n.
func partitionState(t *testing.T, n *testNode, topic string, p int32) cluster.PartitionState {
	t.Helper()
	var ps cluster.PartitionState
	// A node's metadata follows the bucket by a watch, so right after a
	// create it may not have the partition yet.
	waitFor(t, 10*time.Second, fmt.Sprintf("node %d to see %s-%d", n.id, topic, p), func() bool {
		var ok bool
		ps, ok = n.node.Meta().Partition(topic, p)
		return ok && ps.Leader >= 0
	})
	return ps
}

func nodeByID(nodes []*testNode, id int32) *testNode {
	for _, n := range nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// waitFor polls cond until it holds or fails the test.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	clustertest.WaitFor(t, timeout, what, cond)
}

// logBytes reads a replica's whole log (up to its log end).
func logBytes(t *testing.T, n *testNode, topic string, p int32) []byte {
	t.Helper()
	part, err := n.b.Partition(topic, p)
	if err != nil {
		t.Fatalf("node %d: %v", n.id, err)
	}
	return readAll(t, part)
}

func readAll(t *testing.T, part *storage.Partition) []byte {
	t.Helper()
	var out []byte
	off := part.LogStartOffset()
	for off < part.LogEndOffset() {
		data, err := part.ReadReplica(nil, off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) == 0 {
			break
		}
		out = append(out, data...)
		next, err := lastOffsetAfter(data)
		if err != nil {
			t.Fatal(err)
		}
		off = next
	}
	return out
}

// lastOffsetAfter returns the offset after the last batch in data.
func lastOffsetAfter(data []byte) (int64, error) {
	var next int64 = -1
	for len(data) >= 61 {
		base := int64(beUint64(data[0:8]))
		length := int(beUint32(data[8:12]))
		lastDelta := int64(beUint32(data[23:27]))
		next = base + lastDelta + 1
		if 12+length > len(data) {
			return 0, errors.New("partial batch")
		}
		data = data[12+length:]
	}
	if next < 0 {
		return 0, errors.New("no batch")
	}
	return next, nil
}

func beUint64(b []byte) uint64 {
	return uint64(beUint32(b[0:4]))<<32 | uint64(beUint32(b[4:8]))
}

func beUint32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// waitIdentical waits until every listed node's replica of the partition
// holds the same bytes, and returns them.
func waitIdentical(t *testing.T, nodes []*testNode, topic string, p int32) []byte {
	t.Helper()
	var last string
	deadline := time.Now().Add(15 * time.Second)
	for {
		var first []byte
		same := true
		var ends []string
		for i, n := range nodes {
			b := logBytes(t, n, topic, p)
			part, _ := n.b.Partition(topic, p)
			ends = append(ends, fmt.Sprintf("n%d:leo=%d,hw=%d", n.id, part.LogEndOffset(), part.HighWatermark()))
			if i == 0 {
				first = b
			} else if !bytes.Equal(first, b) {
				same = false
			}
		}
		if same {
			return first
		}
		last = fmt.Sprint(ends)
		if time.Now().After(deadline) {
			t.Fatalf("replicas of %s-%d still differ: %s", topic, p, last)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// produceValues produces values to one partition with the client and
// returns the errors per value.
func produceValues(ctx context.Context, cl *kgo.Client, topic string, p int32, values []string) []error {
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}
	}
	res := cl.ProduceSync(ctx, recs...)
	errs := make([]error, len(res))
	for i, r := range res {
		errs[i] = r.Err
	}
	return errs
}

// consumeAll reads a partition from offset 0 up to its end (the high
// watermark as ListOffsets reports it) and returns the values.
func consumeAll(t *testing.T, nodes []*testNode, topic string, p int32) []string {
	t.Helper()
	cl := client(t, nodes, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, ok := ends.Lookup(topic, p)
	if !ok || end.Err != nil {
		t.Fatalf("end offset of %s-%d: %v", topic, p, end.Err)
	}
	var out []string
	for int64(len(out)) < end.Offset {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), end.Offset, err)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

func values(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + "-" + strconv.Itoa(i)
	}
	return out
}

func without(ids []int32, id int32) []int32 {
	return slices.DeleteFunc(slices.Clone(ids), func(x int32) bool { return x == id })
}
