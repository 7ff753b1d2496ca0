package bench

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Target is the cluster a benchmark runs against.
type Target struct {
	Brokers []string
}

func (t Target) admin(ctx context.Context) (*kadm.Client, *kgo.Client, error) {
	// franz-go answers a metadata request from a cache younger than the
	// minimum age (5s by default), which would hide a topic just created.
	cl, err := kgo.NewClient(kgo.SeedBrokers(t.Brokers...), kgo.ClientID("sluice-bench"), kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl, nil
}

// EnsureTopic creates the topic with the given partition count if it does
// not exist and reports whether it did. An existing topic must have that
// many partitions, or the workloads of sluice and JetStream would differ.
func (t Target) EnsureTopic(ctx context.Context, topic string, partitions int32) (created bool, err error) {
	adm, cl, err := t.admin(ctx)
	if err != nil {
		return false, err
	}
	defer cl.Close()
	topics, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return false, err
	}
	if d, ok := topics[topic]; ok && d.Err == nil {
		if n := int32(len(d.Partitions)); n != partitions {
			return false, fmt.Errorf("topic %s exists with %d partitions, not %d", topic, n, partitions)
		}
		return false, nil
	}
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err != nil {
		return false, fmt.Errorf("create topic %s: %w %s", topic, err, resp.ErrMessage)
	}
	// Metadata can lag creation by a moment on a real cluster.
	deadline := time.Now().Add(10 * time.Second)
	for {
		topics, err := adm.ListTopics(ctx, topic)
		if err == nil && topics[topic].Err == nil && len(topics[topic].Partitions) == int(partitions) {
			return true, nil
		}
		if time.Now().After(deadline) {
			return true, fmt.Errorf("topic %s created but not in metadata after 10s", topic)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DeleteTopic removes a benchmark topic.
func (t Target) DeleteTopic(ctx context.Context, topic string) error {
	adm, cl, err := t.admin(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := adm.DeleteTopic(ctx, topic)
	if err == nil {
		err = resp.Err
	}
	return err
}

// endOffsets sums the topic's partition end offsets, by partition.
func (t Target) endOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	return t.offsets(ctx, topic, false)
}

func (t Target) offsets(ctx context.Context, topic string, start bool) (map[int32]int64, error) {
	adm, cl, err := t.admin(ctx)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	list := adm.ListEndOffsets
	if start {
		list = adm.ListStartOffsets
	}
	l, err := list(ctx, topic)
	if err == nil {
		err = l.Error()
	}
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64)
	l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// connPlan is one benchmark connection: the broker it talks to and the
// partitions it writes or reads.
type connPlan struct {
	addr       string
	partitions []int32
}

// planConns spreads a topic's partitions over n connections. Each
// connection talks to one broker, the leader of all its partitions; with
// fewer partitions than connections, several connections share a
// partition.
func (t Target) planConns(ctx context.Context, topic string, n int) ([]connPlan, error) {
	adm, cl, err := t.admin(ctx)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return nil, fmt.Errorf("topic %s: not in metadata: %v", topic, td.Err)
	}
	addrs := make(map[int32]string)
	for _, b := range md.Brokers {
		addrs[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	}
	byLeader := make(map[int32][]int32)
	var leaders []int32
	for _, p := range td.Partitions.Sorted() {
		if p.Leader < 0 || addrs[p.Leader] == "" {
			return nil, fmt.Errorf("topic %s partition %d has no reachable leader", topic, p.Partition)
		}
		if _, seen := byLeader[p.Leader]; !seen {
			leaders = append(leaders, p.Leader)
		}
		byLeader[p.Leader] = append(byLeader[p.Leader], p.Partition)
	}
	sort.Slice(leaders, func(i, j int) bool { return leaders[i] < leaders[j] })
	if n < len(leaders) {
		n = len(leaders)
	}
	var plans []connPlan
	for li, leader := range leaders {
		// Connections are dealt to leaders round robin.
		k := n / len(leaders)
		if li < n%len(leaders) {
			k++
		}
		parts := byLeader[leader]
		for c := 0; c < k; c++ {
			plan := connPlan{addr: addrs[leader]}
			if k <= len(parts) {
				for i := c; i < len(parts); i += k {
					plan.partitions = append(plan.partitions, parts[i])
				}
			} else {
				plan.partitions = []int32{parts[c%len(parts)]}
			}
			plans = append(plans, plan)
		}
	}
	return plans, nil
}
