package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/broker/batch"
	"github.com/sluice-io/sluice/broker/group"
	"github.com/sluice-io/sluice/broker/kafka"
	"github.com/sluice-io/sluice/broker/storage"
	"github.com/sluice-io/sluice/host"
)

// processingNode is a whole node in this process — broker, group
// coordinator, Kafka listener on a free loopback port and job manager —
// for `sluice demo` and `sluice bench pipeline`, which must run with
// nothing else installed or started. It is assembled like `sluice serve`
// assembles one, minus the HTTP listener.
type processingNode struct {
	b      *broker.Broker
	coord  *group.Coordinator
	srv    *kafka.Server
	ln     net.Listener
	jobs   *host.Manager
	served chan error
	cancel context.CancelFunc
	ran    chan struct{}
}

func startProcessingNode(ctx context.Context, dir string, flush storage.FlushMode, log *slog.Logger) (n *processingNode, err error) {
	defaults := storage.DefaultConfig()
	defaults.FlushMode = flush
	n = &processingNode{served: make(chan error, 1), ran: make(chan struct{})}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if n.b, err = broker.Open(broker.Config{
		DataDir:       filepath.Join(dir, "broker"),
		NodeID:        1,
		Defaults:      defaults,
		CleanInterval: cleanInterval,
		Logger:        log,
	}); err != nil {
		return nil, err
	}
	undo = append(undo, func() { n.b.Close() })
	if n.coord, err = group.New(n.b, group.Options{}); err != nil {
		return nil, fmt.Errorf("group coordinator: %w", err)
	}
	undo = append(undo, func() { n.coord.Close() })
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { defer close(n.ran); n.b.Run(runCtx) }()
	undo = append(undo, func() { cancel(); <-n.ran })

	if n.jobs, err = host.NewManager(ctx, host.Config{
		DataDir: filepath.Join(dir, "host"),
		Broker:  n.b,
		Offsets: n.coord.Offsets(),
		Logger:  log,
	}); err != nil {
		return nil, fmt.Errorf("job manager: %w", err)
	}
	undo = append(undo, func() { n.jobs.Close() })
	if n.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	undo = append(undo, func() { n.ln.Close() })
	if n.srv, err = kafka.NewServer(n.b, kafka.Config{Logger: log, Groups: n.coord}); err != nil {
		return nil, fmt.Errorf("kafka server: %w", err)
	}
	go func() { n.served <- n.srv.Serve(n.ln) }()
	return n, nil
}

// Addr is the Kafka listener's address.
func (n *processingNode) Addr() string { return n.ln.Addr().String() }

// Close shuts the node down in the order serve does: clients first, then
// the jobs (a final checkpoint each), then the coordinator and the broker.
func (n *processingNode) Close() error {
	err := n.srv.Close()
	if serr := <-n.served; serr != nil && !errors.Is(serr, kafka.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) {
		err = errors.Join(err, serr)
	}
	err = errors.Join(err, n.jobs.Close())
	n.coord.Close()
	n.cancel()
	<-n.ran
	return errors.Join(err, n.b.Close())
}

// createTopic creates a topic unless it exists with the same partition
// count.
func (n *processingNode) createTopic(name string, partitions int32) error {
	if info, ok := n.b.Topic(name); ok {
		if info.Partitions != partitions {
			return fmt.Errorf("topic %s exists with %d partitions, want %d", name, info.Partitions, partitions)
		}
		return nil
	}
	_, err := n.b.CreateTopic(name, partitions, nil)
	return err
}

// highWatermarks sums a topic's high watermarks over its partitions, which
// for a topic that was never truncated is its record count.
func (n *processingNode) highWatermarks(topic string) (int64, error) {
	return n.sumPartitions(topic, (*storage.Partition).HighWatermark)
}

// topicBytes sums the sizes of a topic's partitions' segments.
func (n *processingNode) topicBytes(topic string) (int64, error) {
	return n.sumPartitions(topic, (*storage.Partition).Size)
}

// sumPartitions sums f over a topic's partitions.
func (n *processingNode) sumPartitions(topic string, f func(*storage.Partition) int64) (int64, error) {
	info, ok := n.b.Topic(topic)
	if !ok {
		return 0, fmt.Errorf("topic %s does not exist", topic)
	}
	var sum int64
	for p := int32(0); p < info.Partitions; p++ {
		part, err := n.b.Partition(topic, p)
		if err != nil {
			return 0, err
		}
		sum += f(part)
	}
	return sum, nil
}

// appendRecords writes records straight into the topic's partitions with
// the storage API (no network, no Kafka client): gen(p, i) gives the key
// and value of the i-th record of partition p, for i < perPartition[p].
// Every record has the time its batch was started as its timestamp.
// Batches are appended asynchronously and waited for once per partition,
// so fsyncs are shared. Partitions are written in parallel.
func (n *processingNode) appendRecords(topic string, perPartition []int64, batchRecords int, gen func(p int32, i int64) (key, value []byte)) error {
	return n.appendBatches(topic, perPartition, batchRecords, func(p int32, i, now int64) ([]byte, []byte, int64) {
		k, v := gen(p, i)
		return k, v, now
	})
}

// appendTimed is appendRecords with each record's timestamp given by gen:
// gen(p, i) gives the key, value and timestamp of the i-th record of
// partition p. The builder copies key and value, so gen may reuse one
// buffer per partition.
func (n *processingNode) appendTimed(topic string, perPartition []int64, batchRecords int, gen func(p int32, i int64) (key, value []byte, ts int64)) error {
	return n.appendBatches(topic, perPartition, batchRecords, func(p int32, i, _ int64) ([]byte, []byte, int64) {
		return gen(p, i)
	})
}

// appendBatches writes batches of batchRecords records into the topic's
// partitions, the partitions in parallel: gen(p, i, now) gives the key,
// value and timestamp of the i-th record of partition p, now being the
// time (Unix ms) its batch was started. A batch's base timestamp is its
// first record's.
func (n *processingNode) appendBatches(topic string, perPartition []int64, batchRecords int, gen func(p int32, i, now int64) (key, value []byte, ts int64)) error {
	var wg sync.WaitGroup
	errs := make([]error, len(perPartition))
	for p := range perPartition {
		wg.Add(1)
		go func(p int32) {
			defer wg.Done()
			errs[p] = n.appendPartition(topic, p, perPartition[p], batchRecords, gen)
		}(int32(p))
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (n *processingNode) appendPartition(topic string, p int32, count int64, batchRecords int, gen func(p int32, i, now int64) (key, value []byte, ts int64)) error {
	part, err := n.b.Partition(topic, p)
	if err != nil {
		return err
	}
	var (
		bld  batch.Builder
		last storage.Pending // a zero Pending (count 0) waits for nothing
	)
	for i := int64(0); i < count; {
		now := time.Now().UnixMilli()
		for j := 0; j < batchRecords && i < count; j++ {
			k, v, ts := gen(p, i, now)
			if j == 0 {
				bld.Reset(ts)
			}
			bld.Add(int32(j), ts, k, v, nil)
			i++
		}
		_, pending, err := part.AppendAsync(bld.Finish(), 0)
		if err != nil {
			return fmt.Errorf("append to %s-%d: %w", topic, p, err)
		}
		last = pending
	}
	return last.Wait()
}

// latestValues reads a whole topic and returns the last value of each key,
// as a compacted topic's reader would see it.
func (n *processingNode) latestValues(topic string) (map[string]string, error) {
	info, ok := n.b.Topic(topic)
	if !ok {
		return nil, fmt.Errorf("topic %s does not exist", topic)
	}
	latest := map[string]string{}
	for p := int32(0); p < info.Partitions; p++ {
		if err := n.eachRecord(topic, p, 0, func(rec *batch.Record) bool {
			latest[string(rec.Key)] = string(rec.Value)
			return true
		}); err != nil {
			return nil, err
		}
	}
	return latest, nil
}

// readRecords returns copies of the records of a topic's partition with
// offsets in [from, to).
func (n *processingNode) readRecords(topic string, p int32, from, to int64) ([]batch.Record, error) {
	var recs []batch.Record
	err := n.eachRecord(topic, p, from, func(rec *batch.Record) bool {
		if rec.Offset >= to {
			return false
		}
		if rec.Offset >= from {
			r := *rec
			r.Key, r.Value = bytes.Clone(rec.Key), bytes.Clone(rec.Value)
			r.Headers = nil
			for _, h := range rec.Headers {
				r.Headers = append(r.Headers, batch.RecordHeader{Key: strings.Clone(h.Key), Value: bytes.Clone(h.Value)})
			}
			recs = append(recs, r)
		}
		return true
	})
	return recs, err
}

// eachRecord calls fn for the records of a topic's partition from the
// batch holding offset from (or the log start) up to the high watermark,
// skipping control batches, until fn returns false. The record passed to
// fn aliases a read buffer: fn copies what it keeps.
func (n *processingNode) eachRecord(topic string, p int32, from int64, fn func(*batch.Record) bool) error {
	part, err := n.b.Partition(topic, p)
	if err != nil {
		return err
	}
	for off := max(from, part.LogStartOffset()); off < part.HighWatermark(); {
		data, err := part.Read(off, 4<<20)
		if err != nil {
			return fmt.Errorf("reading %s-%d at %d: %w", topic, p, off, err)
		}
		next := off
		for rest := data; len(rest) > 0; {
			b, h, r, err := batch.Next(rest)
			if err != nil {
				return fmt.Errorf("reading %s-%d at %d: %w", topic, p, next, err)
			}
			rest, next = r, h.NextOffset()
			if h.IsControl() {
				continue
			}
			more := true
			if err := batch.Records(b, func(rec *batch.Record) bool {
				more = fn(rec)
				return more
			}); err != nil {
				return err
			}
			if !more {
				return nil
			}
		}
		if next <= off {
			return fmt.Errorf("reading %s-%d: no progress at offset %d", topic, p, off)
		}
		off = next
	}
	return nil
}
