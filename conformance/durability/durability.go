// Package durability checks a running cluster for the promise of acks=all:
// every acknowledged record is stored exactly once, in the order it was
// acknowledged, whatever happens to the nodes meanwhile. It talks to the
// cluster only through the Kafka protocol, so it works against any address
// (a sluice cluster, or Kafka itself), and leaves the mischief — killing
// leaders, cutting networks — to a callback that runs while it produces.
//
// Every value is unique ("<producer>-<sequence>"), so after the run the
// checker reads each partition back and can tell for every acknowledged
// value whether it is missing (lost), present more than once (duplicated)
// or out of the order in which its producer's values were acknowledged.
// Values that were sent but not acknowledged may be present or not, but
// not out of order either.
package durability

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config says what to produce where.
type Config struct {
	Brokers    []string // seed addresses
	Topic      string   // created if missing: Partitions, ReplicationFactor, min.insync.replicas 2
	Partitions int32
	// ReplicationFactor of a created topic; default 3.
	ReplicationFactor int16
	// Producers is the number of concurrent clients; default 3.
	Producers int
	// Rate bounds each producer's records per second; 0 produces as fast
	// as acknowledgements allow (a window of MaxInFlight records).
	Rate int
	// MaxInFlight bounds each producer's unacknowledged records; default 64.
	MaxInFlight int
	// Client options added to every producer and the reader (timeouts).
	ClientOpts []kgo.Opt
}

// Report is the outcome of a run.
type Report struct {
	Attempted  int // records handed to a producer
	Acked      int // acknowledged with acks=all
	Failed     int // answered with an error (may or may not be stored)
	Lost       int // acknowledged but not stored
	Duplicated int // stored more than once
	OutOfOrder int // stored out of their producer's order
	Stored     int // records read back
	// Examples holds up to ten problems in words, for a failing test.
	Examples []string
}

// OK reports whether nothing was lost, duplicated or reordered.
func (r Report) OK() bool { return r.Lost == 0 && r.Duplicated == 0 && r.OutOfOrder == 0 }

func (r Report) String() string {
	return fmt.Sprintf("attempted %d, acked %d, failed %d, stored %d, lost %d, duplicated %d, out of order %d",
		r.Attempted, r.Acked, r.Failed, r.Stored, r.Lost, r.Duplicated, r.OutOfOrder)
}

// Run produces until during returns (or ctx ends), then waits for the
// answers to what is in flight, reads every partition back and checks it.
// during gets a context that ends with ctx; it is where faults are
// injected. An error from during is returned along with the report.
func Run(ctx context.Context, cfg Config, during func(ctx context.Context) error) (Report, error) {
	if cfg.Producers <= 0 {
		cfg.Producers = 3
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = 3
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 1
	}
	if err := ensureTopic(ctx, cfg); err != nil {
		return Report{}, err
	}

	var (
		mu     sync.Mutex
		report Report
		acked  = map[int32][]string{} // partition → values in ack order
	)
	stop := make(chan struct{})
	// produceCtx ends with the run, so that a producer blocked on a full
	// buffer (the cluster not acknowledging) gets its records failed.
	produceCtx, cancelProduce := context.WithCancel(ctx)
	defer cancelProduce()
	var wg sync.WaitGroup
	for id := range cfg.Producers {
		opts := append([]kgo.Opt{
			kgo.SeedBrokers(cfg.Brokers...),
			kgo.DefaultProduceTopic(cfg.Topic),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(time.Millisecond),
			kgo.MaxBufferedRecords(cfg.MaxInFlight),
			kgo.MetadataMinAge(250 * time.Millisecond),
			kgo.RecordDeliveryTimeout(20 * time.Second),
		}, cfg.ClientOpts...)
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			close(stop)
			wg.Wait()
			return Report{}, err
		}
		wg.Go(func() {
			var pending sync.WaitGroup
			// finish waits for the answers to what is in flight until
			// produceCtx ends, then closes the client, which fails what
			// it still holds: a client can keep records for a partition
			// without a leader indefinitely (franz-go does not time them
			// out while the partition's leader epoch is unknown), and the
			// run must end with them counted as failed.
			finish := func() {
				answered := make(chan struct{})
				go func() {
					pending.Wait()
					close(answered)
				}()
				select {
				case <-answered:
				case <-produceCtx.Done():
				}
				cl.Close()
				pending.Wait()
			}
			var tick <-chan time.Time
			if cfg.Rate > 0 {
				t := time.NewTicker(time.Second / time.Duration(cfg.Rate))
				defer t.Stop()
				tick = t.C
			}
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					finish()
					return
				case <-ctx.Done():
					finish()
					return
				default:
				}
				if tick != nil {
					select {
					case <-tick:
					case <-stop:
						continue
					}
				}
				value := strconv.Itoa(id) + "-" + strconv.Itoa(seq)
				mu.Lock()
				report.Attempted++
				mu.Unlock()
				pending.Add(1)
				// Produce blocks while MaxInFlight records are buffered,
				// which is the producer's window.
				cl.Produce(produceCtx, &kgo.Record{Key: []byte(value), Value: []byte(value)}, func(r *kgo.Record, err error) {
					defer pending.Done()
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						report.Failed++
						return
					}
					report.Acked++
					acked[r.Partition] = append(acked[r.Partition], value)
				})
			}
		})
	}

	var duringErr error
	if during != nil {
		duringErr = during(ctx)
	} else {
		<-ctx.Done()
	}
	close(stop)
	// Records still in flight get their delivery timeout to be answered.
	time.AfterFunc(30*time.Second, cancelProduce)
	wg.Wait()

	stored, err := readBack(context.Background(), cfg)
	if err != nil {
		return report, errors.Join(duringErr, err)
	}
	check(&report, acked, stored)
	return report, duringErr
}

// ensureTopic creates the topic unless it exists.
func ensureTopic(ctx context.Context, cfg Config) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	two := "2"
	resp, err := adm.CreateTopic(ctx, cfg.Partitions, cfg.ReplicationFactor, map[string]*string{"min.insync.replicas": &two}, cfg.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
		return fmt.Errorf("durability: create topic %s: %w", cfg.Topic, err)
	}
	return nil
}

// readBack reads every partition from the start to its high watermark.
func readBack(ctx context.Context, cfg Config) (map[int32][]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(250 * time.Millisecond),
	}, cfg.ClientOpts...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("durability: end offsets: %w", err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { want[o.Partition] = o.Offset })
	stored := map[int32][]string{}
	done := func() bool {
		for p, end := range want {
			if int64(len(stored[p])) < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("durability: reading back: %w", ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < want[r.Partition] {
				stored[r.Partition] = append(stored[r.Partition], string(r.Value))
			}
		})
	}
	return stored, nil
}

// check compares what was acknowledged with what is stored.
func check(r *Report, acked, stored map[int32][]string) {
	note := func(format string, args ...any) {
		if len(r.Examples) < 10 {
			r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
		}
	}
	parts := make([]int32, 0, len(stored))
	for p := range stored {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		values := stored[p]
		r.Stored += len(values)
		pos := make(map[string]int, len(values))
		for i, v := range values {
			if _, dup := pos[v]; dup {
				r.Duplicated++
				note("partition %d: %s stored twice (offsets %d and %d)", p, v, pos[v], i)
				continue
			}
			pos[v] = i
		}
		// Each producer's values must appear in sequence order: that is
		// the order they were sent in, and acks=all with idempotence
		// acknowledges in that order too.
		lastSeq := map[string]int{}
		for i, v := range values {
			producer, seq := splitValue(v)
			if prev, ok := lastSeq[producer]; ok && seq <= prev {
				r.OutOfOrder++
				note("partition %d offset %d: %s after %s-%d", p, i, v, producer, prev)
			}
			lastSeq[producer] = max(lastSeq[producer], seq)
		}
	}
	for p, values := range acked {
		have := make(map[string]bool, len(stored[p]))
		for _, v := range stored[p] {
			have[v] = true
		}
		for _, v := range values {
			if !have[v] {
				r.Lost++
				note("partition %d: acknowledged %s is missing", p, v)
			}
		}
	}
}

func splitValue(v string) (producer string, seq int) {
	i := strings.LastIndexByte(v, '-')
	if i < 0 {
		return v, -1
	}
	n, err := strconv.Atoi(v[i+1:])
	if err != nil {
		return v, -1
	}
	return v[:i], n
}
