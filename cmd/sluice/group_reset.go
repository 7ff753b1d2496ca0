package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
)

type resetOptions struct {
	topic      string
	partition  int32 // -1: every partition
	toEarliest bool
	toLatest   bool
	toOffset   int64
	toTime     string
	dryRun     bool

	target  string // which --to-* was given
	atMilli int64  // --to-time, parsed
}

func newGroupResetCmd() *cobra.Command {
	var o resetOptions
	cmd := &cobra.Command{
		Use:   "reset NAME --topic TOPIC --to-earliest|--to-latest|--to-offset N|--to-time T",
		Short: "Move a group's committed offsets for a topic (the group must have no members)",
		Long: `Set the committed offsets of a consumer group for one topic, or one partition
of it with --partition, and print each partition's old and new offset.

--to-earliest moves to the oldest stored record, --to-latest to the end (so
only records written afterwards are read), --to-offset N to offset N (kept
within the partition's log start and end), and --to-time T to the first
record with a timestamp at or after T, given as RFC 3339
(2026-01-02T15:04:05Z) or Unix milliseconds; a partition with no such record
moves to its end.

As in Kafka, a group with active members is refused: they would overwrite
the new offsets with their next commit. Stop them first. --dry-run prints
what would change without committing.`,
		Example: `  sluice group reset billing --topic orders --to-earliest
  sluice group reset billing --topic orders --partition 2 --to-offset 1000 --dry-run
  sluice group reset billing --topic orders --to-time 2026-11-25T09:00:00Z`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.validate(cmd.Flags()); err != nil {
				return usageError{err}
			}
			return withAdmin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return resetGroup(ctx, cmd.OutOrStdout(), adm, args[0], o)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.topic, "topic", "", "topic whose offsets to move (required)")
	f.Int32Var(&o.partition, "partition", 0, "move only this partition (default: all)")
	f.BoolVar(&o.toEarliest, "to-earliest", false, "move to the oldest stored record")
	f.BoolVar(&o.toLatest, "to-latest", false, "move to the end of each partition")
	f.Int64Var(&o.toOffset, "to-offset", 0, "move to this offset")
	f.StringVar(&o.toTime, "to-time", "", "move to the first record at or after this time (RFC 3339 or Unix milliseconds)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the new offsets without committing them")
	return cmd
}

func (o *resetOptions) validate(f *pflag.FlagSet) error {
	if o.topic == "" {
		return errors.New("--topic is required")
	}
	if !f.Changed("partition") {
		o.partition = -1
	} else if o.partition < 0 {
		return fmt.Errorf("--partition %d: must not be negative", o.partition)
	}
	var given []string
	for _, name := range []string{"to-earliest", "to-latest", "to-offset", "to-time"} {
		if f.Changed(name) {
			given = append(given, "--"+name)
		}
	}
	switch len(given) {
	case 0:
		return errors.New("say where to move the offsets: --to-earliest, --to-latest, --to-offset N or --to-time T")
	case 1:
		o.target = given[0]
	default:
		return fmt.Errorf("%s and %s both say where to move the offsets; give one", given[0], given[1])
	}
	if (o.target == "--to-earliest" && !o.toEarliest) || (o.target == "--to-latest" && !o.toLatest) {
		return fmt.Errorf("%s=false: give a target instead", o.target)
	}
	if o.target == "--to-offset" && o.toOffset < 0 {
		return fmt.Errorf("--to-offset %d: must not be negative", o.toOffset)
	}
	if o.target == "--to-time" {
		ms, err := parseResetTime(o.toTime)
		if err != nil {
			return fmt.Errorf("--to-time: %w", err)
		}
		o.atMilli = ms
	}
	return nil
}

// parseResetTime accepts the two forms operators have at hand: a timestamp
// copied from a log (RFC 3339) or a record's timestamp (Unix ms, as
// consume --format %T prints it).
func parseResetTime(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 0 {
			return 0, fmt.Errorf("%d: must not be negative", ms)
		}
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q: want RFC 3339 (2026-01-02T15:04:05Z) or Unix milliseconds", s)
	}
	return t.UnixMilli(), nil
}

func resetGroup(ctx context.Context, w io.Writer, adm *kadm.Client, group string, o resetOptions) error {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("reset group %s: %w", group, err)
	}
	if d, ok := described[group]; ok && d.Err == nil && len(d.Members) > 0 {
		return fmt.Errorf("reset group %s: the group has %d active members (state %s); stop them first, or they would overwrite the new offsets", group, len(d.Members), d.State)
	}

	starts, err := listed(adm.ListStartOffsets(ctx, o.topic))
	if err != nil {
		return fmt.Errorf("reset group %s: log start offsets of %s: %w", group, o.topic, err)
	}
	ends, err := listed(adm.ListEndOffsets(ctx, o.topic))
	if err != nil {
		return fmt.Errorf("reset group %s: log end offsets of %s: %w", group, o.topic, err)
	}
	var atTime kadm.ListedOffsets
	if o.target == "--to-time" {
		if atTime, err = listed(adm.ListOffsetsAfterMilli(ctx, o.atMilli, o.topic)); err != nil {
			return fmt.Errorf("reset group %s: offsets of %s at %s: %w", group, o.topic, o.toTime, err)
		}
	}
	parts := ends[o.topic]
	if len(parts) == 0 {
		return fmt.Errorf("reset group %s: topic %s not found", group, o.topic)
	}
	if o.partition >= 0 {
		if _, ok := parts[o.partition]; !ok {
			return fmt.Errorf("reset group %s: partition %d does not exist (the topic has %d)", group, o.partition, len(parts))
		}
	}
	old, err := adm.FetchOffsetsForTopics(ctx, group, o.topic)
	if err != nil {
		return fmt.Errorf("reset group %s: committed offsets: %w", group, err)
	}

	next := kadm.Offsets{}
	for p := range parts {
		if o.partition >= 0 && p != o.partition {
			continue
		}
		start, _ := starts.Lookup(o.topic, p)
		end, _ := ends.Lookup(o.topic, p)
		var at int64
		switch o.target {
		case "--to-earliest":
			at = start.Offset
		case "--to-latest":
			at = end.Offset
		case "--to-offset":
			// Outside the log the group would only be reset again by
			// the consumer's reset policy; say where it really lands.
			at = min(max(o.toOffset, start.Offset), end.Offset)
		case "--to-time":
			t, _ := atTime.Lookup(o.topic, p)
			at = t.Offset
			if at < 0 {
				at = end.Offset
			}
		}
		next.AddOffset(o.topic, p, at, -1)
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tOLD\tNEW")
	for _, n := range next.Sorted() {
		was := "-"
		if c, ok := old.Lookup(n.Topic, n.Partition); ok && c.Err == nil && c.At >= 0 {
			was = strconv.FormatInt(c.At, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t→ %d\n", n.Topic, n.Partition, was, n.At)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if o.dryRun {
		fmt.Fprintln(w, "dry run: nothing committed")
		return nil
	}
	resp, err := adm.CommitOffsets(ctx, group, next)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("reset group %s: commit: %w", group, err)
	}
	fmt.Fprintf(w, "reset group %s: %d partitions of %s committed\n", group, len(next[o.topic]), o.topic)
	return nil
}

// listed folds the per-partition errors of a ListOffsets answer into one.
func listed(l kadm.ListedOffsets, err error) (kadm.ListedOffsets, error) {
	if err == nil {
		err = l.Error()
	}
	return l, err
}
