package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// GroupConsumer reads a topic from its end alongside a produce benchmark,
// to show what an active consumer group costs the producers. As a group
// member it commits after every poll: not every few seconds, as autocommit
// does, but the heaviest commit load an application would put on the node.
// Without a group it reads the same way and commits nothing, which
// separates the cost of the reading from the cost of the group.
type GroupConsumer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
	group  bool // commit after every poll

	mu      sync.Mutex
	records int64
	commits int64
	err     error
}

// GroupStats is what a GroupConsumer did.
type GroupStats struct {
	Records int64 // records consumed
	Commits int64 // successful offset commits
}

// StartGroupConsumer starts reading topic, as the only member of group if
// group is not empty, and returns once it reads every partition, so that
// the produce run it accompanies is measured with the group already
// stable.
func (t Target) StartGroupConsumer(ctx context.Context, topic, group string) (*GroupConsumer, error) {
	assigned := make(chan struct{})
	var once sync.Once
	opts := []kgo.Opt{
		kgo.SeedBrokers(t.Brokers...),
		kgo.ClientID("sluice-bench-group"),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
	}
	if group != "" {
		opts = append(opts,
			kgo.ConsumerGroup(group),
			kgo.DisableAutoCommit(),
			kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
				once.Do(func() { close(assigned) })
			}))
	} else {
		close(assigned)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	pctx, cancel := context.WithCancel(context.Background())
	g := &GroupConsumer{cl: cl, cancel: cancel, done: make(chan struct{}), group: group != ""}
	go g.run(pctx)
	select {
	case <-assigned:
		return g, nil
	case <-g.done:
		_, err := g.Stop()
		return nil, fmt.Errorf("group %s: member failed before its assignment: %w", group, err)
	case <-ctx.Done():
		g.Stop()
		return nil, fmt.Errorf("group %s: no assignment: %w", group, ctx.Err())
	}
}

func (g *GroupConsumer) run(ctx context.Context) {
	defer close(g.done)
	for {
		fetches := g.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		if err := fetches.Err(); err != nil {
			g.fail(err)
			return
		}
		n := int64(fetches.NumRecords())
		if n == 0 {
			continue
		}
		var err error
		if g.group {
			err = g.cl.CommitUncommittedOffsets(ctx)
			if ctx.Err() != nil {
				return
			}
		}
		g.mu.Lock()
		g.records += n
		if err == nil && g.group {
			g.commits++
		}
		g.mu.Unlock()
		if err != nil {
			g.fail(fmt.Errorf("commit: %w", err))
			return
		}
	}
}

func (g *GroupConsumer) fail(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		g.err = err
	}
}

// Stop ends the member, leaving the group, and reports what it did and the
// first error it met.
func (g *GroupConsumer) Stop() (GroupStats, error) {
	g.cancel()
	<-g.done
	g.cl.Close()
	g.mu.Lock()
	defer g.mu.Unlock()
	err := g.err
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return GroupStats{Records: g.records, Commits: g.commits}, err
}

// groupSettle is how long to wait after the produce run for the consumer
// to read what was written, so that its counts cover the run.
const groupSettle = 10 * time.Second

// WaitConsumed waits until the member has consumed at least n records or
// a short grace period has passed.
func (g *GroupConsumer) WaitConsumed(ctx context.Context, n int64) {
	deadline := time.Now().Add(groupSettle)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		g.mu.Lock()
		got, failed := g.records, g.err != nil
		g.mu.Unlock()
		if got >= n || failed {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// DeleteGroup removes a benchmark's consumer group and its offsets.
func (t Target) DeleteGroup(ctx context.Context, group string) error {
	adm, cl, err := t.admin(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := adm.DeleteGroup(ctx, group)
	if err == nil {
		err = resp.Err
	}
	return err
}
