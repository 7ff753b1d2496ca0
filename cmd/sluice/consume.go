package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type consumeOptions struct {
	fromBeginning bool
	offset        int64
	partition     int32
	follow        bool
	max           int64
	format        string
	group         string
	balancers     []string
}

func newConsumeCmd() *cobra.Command {
	var o consumeOptions
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print a topic's records to stdout",
		Long: `Print a topic's records to stdout, in offset order within each partition.

Where reading starts: by default at the end, so only records written from now
on are printed (useful with --follow); --from-beginning starts at the oldest
record still stored; --offset N starts at offset N.

Without --follow the command exits once it has printed everything up to the
end offsets that existed when it started. With --follow it keeps waiting for
new records, like tail -f, until interrupted. --max stops after that many
records either way.

` + groupConsumeHelp + `

` + formatHelp,
		Example: `  sluice consume orders --from-beginning
  sluice consume orders --partition 2 --offset 1000 --max 10 --format '%p:%o %k=%v\n'
  sluice consume orders --follow --format json
  sluice consume orders --group billing --follow`,
		Args: exactArgs("TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if err := validateGroupFlags(f, &o); err != nil {
				return usageError{err}
			}
			if f.Changed("offset") && o.fromBeginning {
				return usageError{errors.New("--offset and --from-beginning both say where to start; give one")}
			}
			if f.Changed("offset") && o.offset < 0 {
				return usageError{fmt.Errorf("--offset %d: must not be negative", o.offset)}
			}
			if !f.Changed("partition") {
				o.partition = -1
			} else if o.partition < 0 {
				return usageError{fmt.Errorf("--partition %d: must not be negative", o.partition)}
			}
			if f.Changed("max") && o.max <= 0 {
				return usageError{fmt.Errorf("--max %d: must be positive", o.max)}
			}
			if !f.Changed("offset") {
				o.offset = -1
			}
			formatter, err := compileFormat(o.format)
			if err != nil {
				return usageError{err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			run := consume
			if o.group != "" {
				run = consumeGroup
			}
			err = run(ctx, cmd, args[0], o, formatter, out)
			if ferr := out.Flush(); err == nil && ferr != nil {
				err = fmt.Errorf("writing output: %w", ferr)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.fromBeginning, "from-beginning", false, "start at the oldest stored record")
	f.Int64Var(&o.offset, "offset", 0, "start at this offset (in every partition read)")
	f.Int32Var(&o.partition, "partition", 0, "read only this partition (default: all)")
	f.BoolVar(&o.follow, "follow", false, "keep waiting for new records instead of exiting at the end")
	f.Int64Var(&o.max, "max", 0, "stop after this many records (default: no limit)")
	f.StringVar(&o.format, "format", `%v\n`, "output format: a template with %v %k %p %o %t %T, or json (see above)")
	f.StringVar(&o.group, "group", "", "consume as a member of this consumer group, resuming from and committing its offsets")
	f.StringSliceVar(&o.balancers, "balancers", defaultBalancers, "with --group: partition assignment strategies, in order of preference")
	addBrokersFlag(cmd)
	return cmd
}

// consume reads the topic and writes formatted records to out.
func consume(ctx context.Context, cmd *cobra.Command, topic string, o consumeOptions, f *recordFormatter, out *bufio.Writer) error {
	adm, admCl, err := newAdmin(cmd)
	if err != nil {
		return err
	}
	defer admCl.Close()
	plan, err := planConsume(ctx, adm, topic, o)
	if err != nil {
		return err
	}
	if !o.follow && plan.remaining == 0 {
		return nil
	}

	cl, err := newClient(cmd,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: plan.start}),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.FetchMaxPartitionBytes(4<<20),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	var printed int64
	buf := make([]byte, 0, 4096)
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil // interrupted: what was printed stands
		}
		if err := fetches.Err0(); err != nil {
			return fmt.Errorf("consume %s: %w", topic, err)
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("consume %s partition %d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		for it := fetches.RecordIter(); !it.Done(); {
			r := it.Next()
			if !o.follow && !plan.take(r.Partition, r.Offset) {
				continue
			}
			buf = f.append(buf[:0], r)
			if _, err := out.Write(buf); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
			printed++
			if o.max > 0 && printed >= o.max {
				return nil
			}
		}
		if !o.follow && plan.remaining == 0 {
			return nil
		}
		// Flushing per poll keeps --follow output timely while large
		// backlogs are still written in big chunks.
		if err := out.Flush(); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
	}
}

// consumePlan is where each partition starts and, without --follow, the
// end offset each must reach.
type consumePlan struct {
	start     map[int32]kgo.Offset
	end       map[int32]int64
	done      map[int32]bool
	remaining int // partitions not yet done
}

// take reports whether the record at (partition, offset) is inside the
// plan, marking the partition done when its last planned record is seen.
func (p *consumePlan) take(partition int32, offset int64) bool {
	if p.done[partition] {
		return false
	}
	end := p.end[partition]
	if offset >= end {
		p.finish(partition)
		return false
	}
	if offset == end-1 {
		p.finish(partition)
	}
	return true
}

func (p *consumePlan) finish(partition int32) {
	if !p.done[partition] {
		p.done[partition] = true
		p.remaining--
	}
}

func planConsume(ctx context.Context, adm *kadm.Client, topic string, o consumeOptions) (*consumePlan, error) {
	lctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	topics, err := adm.ListTopics(lctx, topic)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", topic, err)
	}
	t, ok := topics[topic]
	if !ok || t.Err != nil {
		if ok {
			err = t.Err
		} else {
			err = errors.New("not in the broker's metadata")
		}
		return nil, fmt.Errorf("consume %s: %w", topic, err)
	}
	var parts []int32
	if o.partition >= 0 {
		if _, ok := t.Partitions[o.partition]; !ok {
			return nil, fmt.Errorf("consume %s: partition %d does not exist (the topic has %d)", topic, o.partition, len(t.Partitions))
		}
		parts = []int32{o.partition}
	} else {
		for _, p := range t.Partitions.Sorted() {
			parts = append(parts, p.Partition)
		}
	}
	starts, err := adm.ListStartOffsets(lctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("consume %s: log start offsets: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(lctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("consume %s: end offsets: %w", topic, err)
	}

	plan := &consumePlan{start: map[int32]kgo.Offset{}, end: map[int32]int64{}, done: map[int32]bool{}}
	for _, p := range parts {
		s, _ := starts.Lookup(topic, p)
		e, _ := ends.Lookup(topic, p)
		var from int64
		switch {
		case o.offset >= 0:
			from = o.offset
			plan.start[p] = kgo.NewOffset().At(o.offset)
		case o.fromBeginning:
			from = s.Offset
			plan.start[p] = kgo.NewOffset().AtStart()
		default:
			from = e.Offset
			plan.start[p] = kgo.NewOffset().AtEnd()
		}
		plan.end[p] = e.Offset
		plan.remaining++
		if from >= e.Offset {
			plan.finish(p)
		}
	}
	return plan, nil
}
