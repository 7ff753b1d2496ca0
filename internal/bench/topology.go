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

// TopicSpec is the benchmark topic's layout.
type TopicSpec struct {
	Partitions int32
	// ReplicationFactor 0 leaves an existing topic's alone and creates a
	// new one with 1 replica; -1 asks for the broker's default.
	ReplicationFactor int16
	Configs           map[string]*string // topic configs when created
}

// EnsureTopic creates the topic if it does not exist and reports whether
// it did. An existing topic must have the spec's partition count (and
// replication factor, if the spec gives one), or the workloads of sluice and
// JetStream would differ. It returns once every partition has a leader and
// all its replicas in sync, so that acks=all runs start on a healthy topic.
func (t Target) EnsureTopic(ctx context.Context, topic string, spec TopicSpec) (created bool, err error) {
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
		if n := int32(len(d.Partitions)); n != spec.Partitions {
			return false, fmt.Errorf("topic %s exists with %d partitions, not %d", topic, n, spec.Partitions)
		}
		for _, p := range d.Partitions {
			if rf := len(p.Replicas); spec.ReplicationFactor > 0 && rf != int(spec.ReplicationFactor) {
				return false, fmt.Errorf("topic %s exists with replication factor %d, not %d", topic, rf, spec.ReplicationFactor)
			}
		}
	} else {
		rf := spec.ReplicationFactor
		if rf == 0 {
			rf = 1
		}
		resp, err := adm.CreateTopic(ctx, spec.Partitions, rf, spec.Configs, topic)
		if err != nil {
			return false, fmt.Errorf("create topic %s: %w %s", topic, err, resp.ErrMessage)
		}
		created = true
	}
	// Metadata can lag creation by a moment on a real cluster, and
	// followers join the ISR once they have fetched.
	deadline := time.Now().Add(30 * time.Second)
	for {
		topics, err := adm.ListTopics(ctx, topic)
		if err == nil && topics[topic].Err == nil && len(topics[topic].Partitions) == int(spec.Partitions) && healthy(topics[topic].Partitions) {
			return created, nil
		}
		if time.Now().After(deadline) {
			return created, fmt.Errorf("topic %s: partitions without a leader or with replicas out of sync after 30s", topic)
		}
		select {
		case <-ctx.Done():
			return created, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// healthy reports whether every partition has a leader and a full ISR.
func healthy(parts kadm.PartitionDetails) bool {
	for _, p := range parts {
		if p.Err != nil || p.Leader < 0 || len(p.ISR) < len(p.Replicas) {
			return false
		}
	}
	return true
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
	// A cluster's nodes learn leaders and live nodes by watching its
	// metadata, so the node answering may lag a moment behind the one
	// that EnsureTopic asked.
	deadline := time.Now().Add(10 * time.Second)
	for {
		plans, err := t.tryPlanConns(ctx, topic, n)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return plans, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (t Target) tryPlanConns(ctx context.Context, topic string, n int) ([]connPlan, error) {
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
