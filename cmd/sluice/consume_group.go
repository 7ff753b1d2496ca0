package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const groupConsumeHelp = `With --group NAME the command is a member of consumer group NAME: the members
of a group share the topic's partitions, so each record is printed by one of
them. Reading resumes at the group's committed offsets. A group that has no
committed offsets for the topic starts at the end, or at the oldest record
with --from-beginning; --offset and --partition do not apply to groups.
Offsets of printed records are committed every 5s, when a rebalance takes
their partition away, and on exit (also on SIGINT or SIGTERM), so a member
started again resumes right after the last record printed. Without --follow
a member exits once its partitions are read up to the end offsets that
existed when it started.

--balancers lists the partition assignment strategies the member offers,
most preferred first (cooperative-sticky, sticky, range, roundrobin). The
default, cooperative-sticky,range,roundrobin, lets sluice members move
partitions between them without stopping, and still lets members of other
clients join: a group can only use a strategy that every member offers, so
a librdkafka or kcat member (range,roundrobin by default) turns the whole
group to range with eager rebalancing, during which members re-read from the
committed offsets and a few records may be printed twice across the group.`

var defaultBalancers = []string{"cooperative-sticky", "range", "roundrobin"}

// commitTimeout bounds the final commit on exit, which must not hang a
// command the user has interrupted.
const commitTimeout = 10 * time.Second

// validateGroupFlags rejects flags that choose partitions or positions,
// which in a group belong to the group, and resolves --balancers.
func validateGroupFlags(f *pflag.FlagSet, o *consumeOptions) error {
	if !f.Changed("group") {
		if f.Changed("balancers") {
			return errors.New("--balancers applies only with --group")
		}
		return nil
	}
	if strings.TrimSpace(o.group) == "" {
		return errors.New("--group: the group name must not be empty")
	}
	for _, name := range []string{"partition", "offset"} {
		if f.Changed(name) {
			return fmt.Errorf("--group and --%s cannot be combined: the group assigns partitions and resumes from its committed offsets (use 'sluice group reset' to move them)", name)
		}
	}
	_, err := parseBalancers(o.balancers)
	return err
}

// parseBalancers turns --balancers names into franz-go balancers.
func parseBalancers(names []string) ([]kgo.GroupBalancer, error) {
	if len(names) == 0 {
		return nil, errors.New("--balancers: name at least one strategy")
	}
	var out []kgo.GroupBalancer
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if seen[n] {
			return nil, fmt.Errorf("--balancers: %q given twice", n)
		}
		seen[n] = true
		switch n {
		case "cooperative-sticky":
			out = append(out, kgo.CooperativeStickyBalancer())
		case "sticky":
			out = append(out, kgo.StickyBalancer())
		case "range":
			out = append(out, kgo.RangeBalancer())
		case "roundrobin":
			out = append(out, kgo.RoundRobinBalancer())
		default:
			return nil, fmt.Errorf("--balancers: unknown strategy %q (want cooperative-sticky, sticky, range or roundrobin)", n)
		}
	}
	return out, nil
}

// consumeGroup reads the topic as a member of o.group and writes formatted
// records to out, committing the offsets of what it has written.
//
// Offsets are marked only after the records are flushed to out, and
// rebalances are held off between a poll and that marking
// (BlockRebalanceOnPoll), so a partition never changes owner with printed
// records uncommitted: the next owner starts exactly after them.
func consumeGroup(ctx context.Context, cmd *cobra.Command, topic string, o consumeOptions, f *recordFormatter, out *bufio.Writer) error {
	adm, admCl, err := newAdmin(cmd)
	if err != nil {
		return err
	}
	defer admCl.Close()
	// The plan checks that the topic exists and records the end offsets
	// that a member without --follow reads up to.
	plan, err := planConsume(ctx, adm, topic, o)
	if err != nil {
		return err
	}
	if !o.fromBeginning {
		if err := anchorNewGroup(ctx, adm, o.group, topic, plan); err != nil {
			return err
		}
	}
	balancers, err := parseBalancers(o.balancers)
	if err != nil {
		return usageError{err}
	}
	reset := kgo.NewOffset().AtEnd()
	if o.fromBeginning {
		reset = kgo.NewOffset().AtStart()
	}
	m := &groupMember{topic: topic, next: map[int32]int64{}}
	cl, err := newClient(cmd,
		kgo.ConsumerGroup(o.group),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(balancers...),
		kgo.ConsumeResetOffset(reset),
		kgo.AutoCommitMarks(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(m.onAssigned),
		kgo.OnPartitionsRevoked(m.onRevoked),
		kgo.OnPartitionsLost(m.onLost),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.FetchMaxPartitionBytes(4<<20),
	)
	if err != nil {
		return err
	}
	err = m.run(ctx, cl, adm, o, plan, f, out)
	// The final commit runs even when ctx was interrupted: it is what lets
	// a restart resume after the last printed record.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if cerr := cl.CommitMarkedOffsets(cctx); cerr != nil && err == nil {
		err = fmt.Errorf("group %s: committing offsets: %w", o.group, cerr)
	}
	cl.AllowRebalance()
	cl.Close() // leaves the group, so the others take over at once
	return err
}

// anchorNewGroup commits the current end offsets for a group that has
// none for the topic yet. Without it, "start at the end" would be decided
// anew whenever a partition is first assigned, so records written between
// the group's start and a rebalance or restart could be skipped. A group
// that already has members is left alone: its offsets are theirs.
func anchorNewGroup(ctx context.Context, adm *kadm.Client, group, topic string, plan *consumePlan) error {
	actx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	committed, err := adm.FetchOffsetsForTopics(actx, group, topic)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return fmt.Errorf("group %s: committed offsets: %w", group, err)
	}
	for _, c := range committed[topic] {
		if c.At >= 0 {
			return nil
		}
	}
	offsets := kadm.Offsets{}
	for p, end := range plan.end {
		offsets.AddOffset(topic, p, end, -1)
	}
	// A partition's refusal is not fatal: a member that joined meanwhile
	// owns the offsets, and the reset policy still applies.
	if _, err := adm.CommitOffsets(actx, group, offsets); err != nil {
		return fmt.Errorf("group %s: committing start offsets: %w", group, err)
	}
	return nil
}

// groupMember tracks which partitions this member owns and how far it has
// read each, so that without --follow it knows when it is done. The
// OnPartitions callbacks run on franz-go's group goroutine, hence the lock.
type groupMember struct {
	topic string

	mu       sync.Mutex
	assigned map[int32]bool  // nil until the first assignment
	next     map[int32]int64 // next offset to read, where known
}

func (m *groupMember) onAssigned(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.assigned == nil {
		m.assigned = map[int32]bool{}
	}
	for _, p := range parts[m.topic] {
		m.assigned[p] = true
	}
}

// onRevoked commits what was printed from the partitions that are leaving,
// before the group hands them to another member; replacing franz-go's
// default revoke callback means this commit must be made here.
func (m *groupMember) onRevoked(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	if err := cl.CommitMarkedOffsets(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "sluice: committing offsets before a rebalance: %v\n", err)
	}
	m.forget(parts)
}

// onLost drops partitions without committing: the group already gave them
// to someone else, and a commit would be refused or rewind theirs.
func (m *groupMember) onLost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	m.forget(parts)
}

func (m *groupMember) forget(parts map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range parts[m.topic] {
		delete(m.assigned, p)
		delete(m.next, p)
	}
}

func (m *groupMember) advance(p int32, next int64) {
	m.mu.Lock()
	m.next[p] = next
	m.mu.Unlock()
}

// unknown returns the owned partitions whose position is not yet known.
func (m *groupMember) unknown() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for p := range m.assigned {
		if _, ok := m.next[p]; !ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// caughtUp reports whether the member has an assignment and has read every
// partition it owns up to the plan's end offsets.
func (m *groupMember) caughtUp(plan *consumePlan) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.assigned == nil {
		return false
	}
	for p := range m.assigned {
		next, ok := m.next[p]
		if !ok || next < plan.end[p] {
			return false
		}
	}
	return true
}

// learnPositions sets the position of owned partitions that nothing has
// been read from yet: the group's committed offset, or, with none, the
// plan's verdict on whether the reset position leaves anything to read.
func (m *groupMember) learnPositions(ctx context.Context, adm *kadm.Client, group string, plan *consumePlan) error {
	parts := m.unknown()
	if len(parts) == 0 {
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	committed, err := adm.FetchOffsetsForTopics(actx, group, m.topic)
	if err != nil {
		return fmt.Errorf("group %s: committed offsets: %w", group, err)
	}
	for _, p := range parts {
		c, ok := committed.Lookup(m.topic, p)
		switch {
		case ok && c.Err == nil && c.At >= 0:
			m.advance(p, c.At)
		case plan.done[p]:
			m.advance(p, plan.end[p])
		}
	}
	return nil
}

// idlePoll is how long a member without --follow waits for records before
// checking whether it is done.
const idlePoll = time.Second

func (m *groupMember) run(ctx context.Context, cl *kgo.Client, adm *kadm.Client, o consumeOptions, plan *consumePlan, f *recordFormatter, out *bufio.Writer) error {
	var printed int64
	buf := make([]byte, 0, 4096)
	var marks []*kgo.Record
	for {
		if !o.follow && m.caughtUp(plan) {
			return nil
		}
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if !o.follow {
			pctx, cancel = context.WithTimeout(ctx, idlePoll)
		}
		fetches := cl.PollFetches(pctx)
		idle := pctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil // interrupted: what was printed stands and is committed
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil && !(idle && errors.Is(err, context.DeadlineExceeded)) {
				ferr = fmt.Errorf("consume %s partition %d as group %s: %w", t, p, o.group, err)
			}
		})
		if ferr != nil {
			cl.AllowRebalance()
			return ferr
		}
		marks = marks[:0]
		full := false
		for it := fetches.RecordIter(); !it.Done() && !full; {
			r := it.Next()
			m.advance(r.Partition, r.Offset+1)
			if !o.follow && r.Offset >= plan.end[r.Partition] {
				continue
			}
			buf = f.append(buf[:0], r)
			if _, err := out.Write(buf); err != nil {
				cl.AllowRebalance()
				return fmt.Errorf("writing output: %w", err)
			}
			marks = append(marks, r)
			printed++
			full = o.max > 0 && printed >= o.max
		}
		// Marking after the flush means an offset is committed only once
		// its record has reached the output.
		if err := out.Flush(); err != nil {
			cl.AllowRebalance()
			return fmt.Errorf("writing output: %w", err)
		}
		cl.MarkCommitRecords(marks...)
		cl.AllowRebalance()
		if full {
			return nil
		}
		if !o.follow && idle {
			if err := m.learnPositions(ctx, adm, o.group, plan); err != nil {
				return err
			}
		}
	}
}
