package group

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/batch"
)

func openBroker(t testing.TB, dir string) *broker.Broker {
	t.Helper()
	b, err := broker.Open(broker.Config{DataDir: dir, NodeID: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openCoordinator(t testing.TB, b *broker.Broker, parts int32) *Coordinator {
	t.Helper()
	c, err := New(b, Options{OffsetsPartitions: parts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestOffsetsReplay commits offsets and facts, deletes a group, reopens
// the broker and checks that replay rebuilds exactly that state.
func TestOffsetsReplay(t *testing.T) {
	for _, parts := range []int32{1, 3} {
		t.Run(fmt.Sprint(parts, "partitions"), func(t *testing.T) {
			dir := t.TempDir()
			b := openBroker(t, dir)
			c := openCoordinator(t, b, parts)
			s := c.Offsets()
			meta := "m"
			tp := TopicPartition{Topic: "in", Partition: 2}
			for i := range int64(5) {
				if err := s.Commit(Commit{Group: "g1", Offsets: map[TopicPartition]Offset{tp: {Offset: 10 + i, LeaderEpoch: 3, Metadata: &meta}},
					Facts: []Fact{{Name: "changelog-0", Value: []byte(fmt.Sprint(100 + i))}}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Commit(Commit{Group: "g1", Facts: []Fact{{Name: "gone", Value: []byte("x")}}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(Commit{Group: "g1", Facts: []Fact{{Name: "gone"}}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(Commit{Group: "g2", Offsets: map[TopicPartition]Offset{tp: {Offset: 7}}}); err != nil {
				t.Fatal(err)
			}
			if had, err := s.DeleteGroup("g2"); !had || err != nil {
				t.Fatalf("delete: %v %v", had, err)
			}
			check := func(s *OffsetStore) {
				t.Helper()
				o, ok := s.Fetch("g1", tp)
				if !ok || o.Offset != 14 || o.LeaderEpoch != 3 || o.Metadata == nil || *o.Metadata != "m" || o.CommitTime == 0 {
					t.Fatalf("g1 offset: %+v %v", o, ok)
				}
				if v, ok := s.Fact("g1", "changelog-0"); !ok || string(v) != "104" {
					t.Fatalf("fact: %q %v", v, ok)
				}
				if _, ok := s.Fact("g1", "gone"); ok {
					t.Fatal("deleted fact is back")
				}
				if _, ok := s.Fetch("g2", tp); ok || s.Has("g2") {
					t.Fatal("deleted group is back")
				}
			}
			check(s)
			c.Close()
			b.Close()

			b = openBroker(t, dir)
			defer b.Close()
			check(openCoordinator(t, b, 7).Offsets()) // an existing topic keeps its count
			if info, _ := b.Topic(OffsetsTopic); info.Partitions != parts || info.Configs["cleanup.policy"] != "compact" {
				t.Fatalf("offsets topic: %+v", info)
			}
		})
	}
}

// TestCommitIsOneBatch checks the atomicity promise: a commit with many
// offsets and facts is one RecordBatch, one append.
func TestCommitIsOneBatch(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	c := openCoordinator(t, b, 1)
	offs := map[TopicPartition]Offset{}
	for p := range int32(50) {
		offs[TopicPartition{"in", p}] = Offset{Offset: int64(p)}
	}
	if err := c.Offsets().Commit(Commit{Group: "job/J/task/3", Offsets: offs, Facts: []Fact{{"store-a", []byte("1")}, {"store-b", []byte("2")}}}); err != nil {
		t.Fatal(err)
	}
	p, _ := b.Partition(OffsetsTopic, 0)
	data, err := p.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	_, h, rest, err := batch.Next(data)
	if err != nil || len(rest) != 0 || h.RecordCount != 52 {
		t.Fatalf("want one batch of 52 records: count %d, %d bytes left, err %v", h.RecordCount, len(rest), err)
	}
}

// TestConcurrentCommitsLastWins commits one key from many goroutines; the
// value in memory must be the one replay produces (the last in the log).
func TestConcurrentCommitsLastWins(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	c := openCoordinator(t, b, 1)
	tp := TopicPartition{"in", 0}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				if err := c.Offsets().Commit(Commit{Group: "g", Offsets: map[TopicPartition]Offset{tp: {Offset: int64(i*100 + j)}}}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	live, _ := c.Offsets().Fetch("g", tp)
	c.Close()
	b.Close()
	b = openBroker(t, dir)
	defer b.Close()
	replayed, _ := openCoordinator(t, b, 1).Offsets().Fetch("g", tp)
	if live.Offset != replayed.Offset {
		t.Fatalf("memory had %d, replay has %d", live.Offset, replayed.Offset)
	}
}

// BenchmarkOffsetCommit measures commits per second with concurrent
// committers (b.SetParallelism scales them), each commit one partition
// of its own group, fsynced before it returns.
func BenchmarkOffsetCommit(b *testing.B) {
	br := openBroker(b, b.TempDir())
	defer br.Close()
	c := openCoordinator(b, br, 1)
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := fmt.Sprint("g", n.Add(1))
		var i int64
		for pb.Next() {
			i++
			if err := c.Offsets().Commit(Commit{Group: g, Offsets: map[TopicPartition]Offset{{"in", 0}: {Offset: i}}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}
