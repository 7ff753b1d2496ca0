package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func newBenchFailoverCmd() *cobra.Command {
	o := &benchOptions{}
	var (
		rounds    int
		processes bool
		topic     string
		logDir    string
	)
	cmd := &cobra.Command{
		Use:   "failover",
		Short: "Measure how long acks=all produce stalls when a partition leader dies",
		Long: `Start a cluster of --cluster nodes, create a topic with one partition, three
replicas and min.insync.replicas=2, and run a franz-go producer (acks=all,
idempotent, metadata refreshed at most every 100 ms and retries backing
off from 100 ms to 1 s, as the Java client's defaults do) that
writes one record at a time. Then, --rounds times: kill the node that leads
the partition, measure the time from the kill to the first acknowledged
produce after it (necessarily on the new leader), restart the killed node
with the same data and wait until it is back in the ISR.

--processes runs every node as a 'sluice serve' child process and kills the
leader with SIGKILL. Without it the nodes run in this process and a kill
stops the node without any goodbye: its NATS server stops, every Kafka
connection is cut, nothing more is answered. An in-process kill still lets
NATS hand its Raft leaderships over on the way out (nats-server steps its
Raft leaders down on every shutdown), which a SIGKILL does not.

Each round reports whether the killed node led the JetStream streams of
the metadata bucket (KV_sluice_meta) and of the liveness bucket
(KV_sluice_live), and held the controller lease. Killing a stream leader
with SIGKILL costs a NATS Raft election (4-9 s, fixed in nats-server) before
metadata writes such as the new leader's epoch resume.

The failover time cannot be shorter than --session-timeout, after which a
silent node counts as dead.`,
		Example: `  sluice bench failover --cluster 3 --rounds 10
  sluice bench failover --processes --session-timeout 1s`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validateCluster(); err != nil {
				return usageError{err}
			}
			if o.cluster == 0 {
				return usageError{errors.New("--cluster 0: failover needs a cluster of 3 or more nodes")}
			}
			if rounds <= 0 {
				return usageError{fmt.Errorf("--rounds %d: must be positive", rounds)}
			}
			ctx, cancel := o.context(cmd.Context())
			defer cancel()
			return runFailover(ctx, cmd.OutOrStdout(), o, failoverConfig{rounds: rounds, processes: processes, topic: topic, logDir: logDir})
		},
	}
	f := cmd.Flags()
	o.addClusterFlags(f)
	f.Lookup("cluster").DefValue = "3"
	o.cluster = 3
	f.IntVar(&rounds, "rounds", 5, "leader kills to measure")
	f.BoolVar(&processes, "processes", false, "run the nodes as 'sluice serve' child processes and kill with SIGKILL")
	f.StringVar(&topic, "topic", "sluice-failover", "topic the producer writes")
	f.StringVar(&logDir, "node-logs", "", "--processes: append each node's log (JSON, info level) to DIR/node-<id>.log")
	f.StringVar(&o.dataDir, "data-dir", os.TempDir(), "parent directory of the nodes' temporary data directory")
	f.StringVar(&o.flush, "flush", "sync", "nodes' flush policy: sync, interval or os")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	return cmd
}

type failoverConfig struct {
	rounds    int
	processes bool
	topic     string
	logDir    string
}

// failoverNodes is a cluster whose nodes can be killed and restarted by
// node id.
type failoverNodes interface {
	addrs() []string
	// natsURL is a NATS client URL of node id, for stream leadership
	// queries.
	natsURL(id int32) string
	kill(id int32) error
	restart(ctx context.Context, id int32) error
	close()
}

// round is one measured leader kill.
type round struct {
	killed     int32
	metaLeader bool // the killed node led KV_sluice_meta
	liveLeader bool // ... KV_sluice_live
	controller bool
	failover   time.Duration
	// elected is when a surviving node first named a new leader in its
	// metadata: the cluster's part of failover, without the producer's
	// retry backoff; -1 if it was not seen.
	elected      time.Duration
	newLeader    int32
	newEpoch     int32
	backInSync   time.Duration // from restart to a full ISR
	failedWrites int64
}

func runFailover(ctx context.Context, w io.Writer, o *benchOptions, fc failoverConfig) error {
	env := &benchEnv{}
	defer env.close()
	tmp, err := o.tempDir(env)
	if err != nil {
		return err
	}
	var nodes failoverNodes
	mode := "in-process nodes, kill = NATS stopped and connections cut"
	if fc.processes {
		pc, err := startProcessCluster(ctx, o.cluster, tmp, o.flush, o.sessionTimeout, fc.logDir)
		if err != nil {
			return err
		}
		nodes = pc
		mode = "'sluice serve' processes, kill = SIGKILL"
	} else {
		if err := o.startCluster(ctx, env); err != nil {
			return err
		}
		nodes = localFailover{env.cluster}
	}
	env.closers = append(env.closers, nodes.close)
	fmt.Fprintf(w, "bench failover: %d nodes (%s), session timeout %v, flush=%s, %d rounds\n",
		o.cluster, mode, o.sessionTimeout, o.flush, fc.rounds)
	fmt.Fprintf(w, "topic %s: 1 partition, replication factor 3, min.insync.replicas 2; kgo producer, acks=all, one record at a time\n", fc.topic)

	target := failoverTarget{nodes: nodes, topic: fc.topic}
	two := "2"
	adm, admCl, err := target.admin()
	if err != nil {
		return err
	}
	defer admCl.Close()
	if resp, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &two}, fc.topic); err != nil || resp.Err != nil {
		return fmt.Errorf("create topic %s: %w", fc.topic, errors.Join(err, resp.Err))
	}
	if _, err := target.waitInSync(ctx, -1); err != nil {
		return err
	}

	p, err := startFailoverProducer(ctx, nodes.addrs(), fc.topic)
	if err != nil {
		return err
	}
	defer p.stop()
	if _, err := p.ackAfter(ctx, time.Now(), time.Minute); err != nil {
		return fmt.Errorf("first produce: %w", err)
	}

	var results []round
	for i := range fc.rounds {
		r, err := target.round(ctx, p)
		if err != nil {
			return fmt.Errorf("round %d: %w", i+1, err)
		}
		results = append(results, r)
		fmt.Fprintf(w, "round %d: killed node %d (%s): first acks=all produce after %s on node %d (epoch %d); back in the ISR %s after restart\n",
			i+1, r.killed, r.roles(), r.failover.Round(time.Millisecond), r.newLeader, r.newEpoch, r.backInSync.Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	writeFailoverTable(w, results, p.acked(), p.failed())
	return nil
}

func (r round) roles() string {
	var roles []string
	if r.metaLeader {
		roles = append(roles, "KV_sluice_meta leader")
	}
	if r.liveLeader {
		roles = append(roles, "KV_sluice_live leader")
	}
	if r.controller {
		roles = append(roles, "controller")
	}
	if len(roles) == 0 {
		return "partition leader only"
	}
	return "partition leader, " + strings.Join(roles, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// writeFailoverTable prints every round and the p50 and max, over all
// rounds and over those that did not kill the metadata stream's leader.
func writeFailoverTable(w io.Writer, rs []round, acked, failed int64) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\tkilled\tKV meta leader\tKV live leader\tcontroller\tleader elected\tfailover\tnew leader\tback in ISR\t")
	for i, r := range rs {
		elected := "-"
		if r.elected >= 0 {
			elected = r.elected.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", i+1, r.killed, yesNo(r.metaLeader), yesNo(r.liveLeader), yesNo(r.controller),
			elected, r.failover.Round(time.Millisecond), r.newLeader, r.backInSync.Round(time.Millisecond))
	}
	tw.Flush()
	// summary prints the p50 and max of one duration of the rounds kept.
	summary := func(label string, of func(round) time.Duration, keep func(round) bool) {
		var ds []time.Duration
		for _, r := range rs {
			if keep(r) && of(r) >= 0 {
				ds = append(ds, of(r))
			}
		}
		if len(ds) == 0 {
			return
		}
		slices.Sort(ds)
		p50 := ds[(len(ds)+1)/2-1]
		fmt.Fprintf(w, "%s (%d rounds): p50 %s, max %s\n", label, len(ds), p50.Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	}
	elected := func(r round) time.Duration { return r.elected }
	failover := func(r round) time.Duration { return r.failover }
	all := func(round) bool { return true }
	summary("new leader in the metadata", elected, all)
	summary("failover time", failover, all)
	summary("failover time without the KV_sluice_meta leader killed", failover, func(r round) bool { return !r.metaLeader })
	summary("failover time with the KV_sluice_meta leader killed", failover, func(r round) bool { return r.metaLeader })
	fmt.Fprintf(w, "producer: %d records acknowledged, %d failed\n", acked, failed)
}

// failoverTarget runs rounds against a cluster.
type failoverTarget struct {
	nodes failoverNodes
	topic string
}

func (t failoverTarget) admin() (*kadm.Client, *kgo.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(t.nodes.addrs()...), kgo.ClientID("sluice-bench-failover"),
		kgo.MetadataMinAge(10*time.Millisecond), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl, nil
}

// partition is the partition's state in the metadata of the cluster.
func (t failoverTarget) partition(ctx context.Context) (kadm.PartitionDetail, error) {
	adm, cl, err := t.admin()
	if err != nil {
		return kadm.PartitionDetail{}, err
	}
	defer cl.Close()
	mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	md, err := adm.Metadata(mctx, t.topic)
	if err != nil {
		return kadm.PartitionDetail{}, err
	}
	td, ok := md.Topics[t.topic]
	if !ok || td.Err != nil {
		return kadm.PartitionDetail{}, fmt.Errorf("topic %s not in metadata: %v", t.topic, td.Err)
	}
	p, ok := td.Partitions[0]
	if !ok {
		return kadm.PartitionDetail{}, fmt.Errorf("topic %s has no partition 0", t.topic)
	}
	return p, nil
}

// waitInSync waits until the partition has a leader other than notLeader
// and all three replicas in the ISR, and the metadata and liveness streams
// have a leader and every replica current: only then can the next kill be
// survived.
func (t failoverTarget) waitInSync(ctx context.Context, notLeader int32) (kadm.PartitionDetail, error) {
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for {
		p, err := t.partition(ctx)
		if err == nil {
			switch {
			case p.Leader < 0 || p.Leader == notLeader:
				err = fmt.Errorf("leader %d", p.Leader)
			case len(p.ISR) < len(p.Replicas) || len(p.Replicas) == 0:
				err = fmt.Errorf("ISR %v of replicas %v", p.ISR, p.Replicas)
			default:
				err = t.streamsCurrent(ctx, p.Leader)
			}
		}
		if err == nil {
			return p, nil
		}
		last = err
		if time.Now().After(deadline) {
			return p, fmt.Errorf("partition %s-0 not back in sync after 2m: %w", t.topic, last)
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The JetStream streams behind the cluster's buckets.
const (
	metaStream = "KV_sluice_meta"
	liveStream = "KV_sluice_live"
)

// streamLeaders asks node id's NATS server which servers lead the metadata
// and liveness streams, and fails unless every replica is current.
func (t failoverTarget) streamLeaders(ctx context.Context, id int32) (meta, live string, err error) {
	nc, err := nats.Connect(t.nodes.natsURL(id), nats.Name("sluice-bench-failover"), nats.NoReconnect())
	if err != nil {
		return "", "", err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", "", err
	}
	leaders := make([]string, 2)
	for i, name := range []string{metaStream, liveStream} {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := js.Stream(sctx, name)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(sctx)
		}
		cancel()
		if err != nil {
			return "", "", fmt.Errorf("stream %s: %w", name, err)
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return "", "", fmt.Errorf("stream %s has no leader", name)
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return "", "", fmt.Errorf("stream %s: replica %s not current", name, r.Name)
			}
		}
		leaders[i] = info.Cluster.Leader
	}
	return leaders[0], leaders[1], nil
}

func (t failoverTarget) streamsCurrent(ctx context.Context, id int32) error {
	_, _, err := t.streamLeaders(ctx, id)
	return err
}

// natsServerName is node id's NATS server name (broker/cluster names its
// servers so).
func natsServerName(id int32) string { return "sluice-" + strconv.Itoa(int(id)) }

// round kills the partition leader, measures the time to the first
// acknowledged produce after the kill, and restarts the node.
func (t failoverTarget) round(ctx context.Context, p *failoverProducer) (round, error) {
	part, err := t.waitInSync(ctx, -1)
	if err != nil {
		return round{}, err
	}
	r := round{killed: part.Leader}
	// A replica's "current" flag can drop for a moment between two
	// heartbeats on a busy machine, after waitInSync saw it set: ask
	// again for a while before giving up on the round.
	var meta, live string
	for deadline := time.Now().Add(30 * time.Second); ; {
		if meta, live, err = t.streamLeaders(ctx, part.Leader); err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return r, err
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.metaLeader, r.liveLeader = meta == natsServerName(r.killed), live == natsServerName(r.killed)
	var survivors []string
	if adm, cl, err := t.admin(); err == nil {
		if md, err := adm.Metadata(ctx); err == nil {
			r.controller = md.Controller == r.killed
			for _, b := range md.Brokers {
				if b.NodeID != r.killed {
					survivors = append(survivors, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
				}
			}
		}
		cl.Close()
	}
	failedBefore := p.failed()

	killedAt := time.Now()
	if err := t.nodes.kill(r.killed); err != nil {
		return r, fmt.Errorf("kill node %d: %w", r.killed, err)
	}
	electCtx, stopWatching := context.WithTimeout(ctx, time.Minute)
	defer stopWatching()
	elected := make(chan time.Duration, 1)
	go func() { elected <- t.watchElection(electCtx, survivors, r.killed, killedAt) }()
	// Acknowledgements read before the kill finished may still come from
	// the old leader; one read after it cannot.
	ackedAt, err := p.ackAfter(ctx, time.Now(), 2*time.Minute)
	if err != nil {
		return r, fmt.Errorf("no produce acknowledged after killing node %d: %w", r.killed, err)
	}
	r.failover = ackedAt.Sub(killedAt)
	r.elected = <-elected
	r.failedWrites = p.failed() - failedBefore

	after, err := t.partition(ctx)
	if err == nil {
		r.newLeader, r.newEpoch = after.Leader, after.LeaderEpoch
	}
	restartAt := time.Now()
	if err := t.nodes.restart(ctx, r.killed); err != nil {
		return r, fmt.Errorf("restart node %d: %w", r.killed, err)
	}
	if _, err := t.waitInSync(ctx, -1); err != nil {
		return r, err
	}
	r.backInSync = time.Since(restartAt)
	return r, nil
}

// watchElection asks the surviving nodes for the partition's leader every
// few milliseconds (each node directly: a client would also try the dead
// one) and returns the time from killedAt to the first answer naming a
// leader other than killed, or -1 if ctx ends first.
func (t failoverTarget) watchElection(ctx context.Context, survivors []string, killed int32, killedAt time.Time) time.Duration {
	if len(survivors) == 0 {
		return -1
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(survivors...), kgo.ClientID("sluice-bench-failover"))
	if err != nil {
		return -1
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(t.topic)
	req.Topics = append(req.Topics, rt)
	for ctx.Err() == nil {
		for _, b := range cl.SeedBrokers() {
			rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			resp, err := b.Request(rctx, req)
			cancel()
			if err != nil {
				continue
			}
			for _, mt := range resp.(*kmsg.MetadataResponse).Topics {
				for _, mp := range mt.Partitions {
					if mp.Partition == 0 && mp.Leader >= 0 && mp.Leader != killed {
						return time.Since(killedAt)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	return -1
}

// failoverProducer writes one record at a time with acks=all and notes
// when each acknowledgement arrives.
type failoverProducer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	okCount  int64
	errCount int64
	lastErr  error
	after    time.Time
	waiter   chan time.Time
}

func startFailoverProducer(ctx context.Context, seeds []string, topic string) (*failoverProducer, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("sluice-bench-failover"),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// What a user tunes for fast failover: refresh metadata as soon as
		// a leader moves, not at most every 5 s.
		kgo.MetadataMinAge(100*time.Millisecond),
		// franz-go backs off up to 5 s between retries; the Java client's
		// defaults (retry.backoff.ms 100, retry.backoff.max.ms 1000) keep
		// retrying a dead leader's partition at most a second apart.
		kgo.RetryBackoffFn(func(fails int) time.Duration {
			return min(100*time.Millisecond<<min(max(fails-1, 0), 4), time.Second)
		}),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(ctx)
	p := &failoverProducer{cl: cl, cancel: cancel, done: make(chan struct{})}
	go p.run(pctx)
	return p, nil
}

func (p *failoverProducer) run(ctx context.Context) {
	defer close(p.done)
	value := make([]byte, 100)
	for i := 0; ctx.Err() == nil; i++ {
		err := p.cl.ProduceSync(ctx, &kgo.Record{Value: strconv.AppendInt(value[:0], int64(i), 10)}).FirstErr()
		at := time.Now()
		p.mu.Lock()
		if err != nil {
			if ctx.Err() == nil {
				p.errCount++
				p.lastErr = err
			}
		} else {
			p.okCount++
			if p.waiter != nil && at.After(p.after) {
				p.waiter <- at
				p.waiter = nil
			}
		}
		p.mu.Unlock()
	}
}

// ackAfter returns the time of the first acknowledgement received after
// t, waiting up to timeout.
func (p *failoverProducer) ackAfter(ctx context.Context, t time.Time, timeout time.Duration) (time.Time, error) {
	ch := make(chan time.Time, 1)
	p.mu.Lock()
	p.after, p.waiter = t, ch
	p.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case at := <-ch:
		return at, nil
	case <-timer.C:
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waiter = nil
	return time.Time{}, fmt.Errorf("none within %v (%d failed writes, last: %v)", timeout, p.errCount, p.lastErr)
}

func (p *failoverProducer) acked() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.okCount
}

func (p *failoverProducer) failed() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errCount
}

func (p *failoverProducer) stop() {
	p.cancel()
	<-p.done
	p.cl.Close()
}

// localFailover kills and restarts in-process nodes.
type localFailover struct{ lc *localCluster }

func (l localFailover) addrs() []string         { return l.lc.addrs() }
func (l localFailover) natsURL(id int32) string { return l.lc.nodes[id].node.ClientURL() }
func (l localFailover) kill(id int32) error     { l.lc.nodes[id].kill(); return nil }
func (l localFailover) close()                  {} // env closes the cluster
func (l localFailover) restart(ctx context.Context, id int32) error {
	return l.lc.restart(ctx, int(id))
}
