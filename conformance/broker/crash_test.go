package broker

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/testnode"
)

// TestKillNineLosesNoAcknowledgedRecord produces with acks=all against a node
// using the default flush policy (group commit, fsync before ack), kills the
// process with SIGKILL while writes are in flight, restarts it, and checks
// that every acknowledged record is there, in order, exactly once. It does
// this for several rounds on the same data directory so that recovery of a
// log that was itself recovered is exercised too.
func TestKillNineLosesNoAcknowledgedRecord(t *testing.T) {
	const (
		topic      = "crash"
		partitions = 3
		rounds     = 3
		perRound   = 15000 // acknowledged records to wait for before killing
	)
	node := testnode.Start(t, t.TempDir(), "--flush", "sync")
	createTopic(t, node.Addr, topic, partitions, nil)

	acked := make(map[int32][]int) // partition → acked sequence numbers in ack order
	next := 0
	for round := 0; round < rounds; round++ {
		next = produceUntilKilled(t, node, topic, next, perRound, acked)
		node.Restart()
	}

	stored := readAll(t, node.Addr, topic)
	total := 0
	for p := int32(0); p < partitions; p++ {
		got := stored[p]
		seen := make(map[int]bool, len(got))
		for _, v := range got {
			if seen[v] {
				t.Fatalf("partition %d: record %d stored twice", p, v)
			}
			seen[v] = true
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("partition %d: record %d follows %d, out of produce order", p, got[i], got[i-1])
			}
		}
		for _, v := range acked[p] {
			if !seen[v] {
				t.Fatalf("partition %d: acknowledged record %d lost after kill -9", p, v)
			}
		}
		total += len(acked[p])
	}
	if total < rounds*perRound {
		t.Fatalf("only %d records were acknowledged; the test did not exercise enough writes", total)
	}
	t.Logf("%d acknowledged records, all present after %d kill -9 rounds", total, rounds)
}

// produceUntilKilled runs an acks=all producer from sequence number start,
// kills the node once at least want records were acknowledged (with more in
// flight), and returns the next unused sequence number.
func produceUntilKilled(t *testing.T, node *testnode.Node, topic string, start, want int, acked map[int32][]int) int {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(node.Addr),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(time.Millisecond),
		kgo.RecordRetries(1),
		kgo.RequestRetries(1),
		kgo.RetryTimeout(time.Second),
		kgo.ProduceRequestTimeout(5*time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	// franz-go runs promises on goroutines of their own that Close does
	// not wait for: the round ends when every callback has run, so that
	// none of them writes acked while the next round does.
	var answered sync.WaitGroup
	defer func() {
		cl.Close()
		answered.Wait()
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu       sync.Mutex
		count    int
		killOnce sync.Once
		killed   = make(chan struct{})
	)
	seq := start
	for {
		select {
		case <-killed:
			return seq
		default:
		}
		v := seq
		seq++
		r := &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(v % 64)), Value: []byte(strconv.Itoa(v))}
		answered.Add(1)
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer answered.Done()
			if err != nil {
				return
			}
			mu.Lock()
			acked[r.Partition] = append(acked[r.Partition], v)
			count++
			if count >= want {
				killOnce.Do(func() {
					node.Kill()
					close(killed)
					cancel() // unblock a Produce waiting for buffer space
				})
			}
			mu.Unlock()
		})
		if seq-start > 50*want {
			t.Fatalf("produced %d records without %d acknowledgements", seq-start, want)
		}
	}
}

func createTopic(t *testing.T, addr, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, configs, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic %s: %v %v", topic, err, resp.Err)
	}
}

// readAll consumes a topic from the beginning up to the end offsets it has
// when called and returns the integer values per partition in offset order.
func readAll(t *testing.T, addr, topic string) map[int32][]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	remaining := 0
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		want[o.Partition] = o.Offset
		if o.Offset > 0 {
			remaining++
		}
	})
	out := make(map[int32][]int)
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("timed out reading %s; have %d partitions left", topic, remaining)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s-%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			v, err := strconv.Atoi(string(r.Value))
			if err != nil {
				t.Fatalf("record %s-%d@%d: value %q", r.Topic, r.Partition, r.Offset, r.Value)
			}
			out[r.Partition] = append(out[r.Partition], v)
			if r.Offset == want[r.Partition]-1 {
				remaining--
			}
		})
	}
	return out
}
