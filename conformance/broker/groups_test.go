package broker

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/testnode"
)

// poll retries cond until it holds or 60s pass; the interval is a poll
// rate, not a wait for the condition.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKcatAndFranzGoShareGroup puts a librdkafka balanced consumer (kcat
// -G, default assignors range,roundrobin) and a franz-go member with the
// range balancer in one group: the partitions are split between them and
// every record produced afterwards is consumed exactly once across both.
func TestKcatAndFranzGoShareGroup(t *testing.T) {
	kcatBin := kcatPath(t)
	node := testnode.Start(t, t.TempDir())
	const topic, group, partitions, perPartition = "shared", "mixed", 4, 50
	createTopic(t, node.Addr, topic, partitions, nil)

	// kcat prints "partition offset" per record.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, kcatBin, "-b", node.Addr, "-G", group, "-q", "-u",
		"-X", "auto.offset.reset=earliest", "-X", "client.id=kcat-member", "-f", "%p %o\n", topic)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("kcat stderr:\n%s", stderr.String())
		}
	}()

	var mu sync.Mutex
	seen := map[[2]int64][]string{} // (partition, offset) → who consumed it
	record := func(who string, p int32, o int64) {
		mu.Lock()
		seen[[2]int64{int64(p), o}] = append(seen[[2]int64{int64(p), o}], who)
		mu.Unlock()
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var p int32
			var o int64
			if _, err := fmt.Sscanf(sc.Text(), "%d %d", &p, &o); err == nil {
				record("kcat", p, o)
			}
		}
	}()

	cl, err := kgo.NewClient(kgo.SeedBrokers(node.Addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.Balancers(kgo.RangeBalancer()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ClientID("franz-member"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	go func() {
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) { record("franz-go", r.Partition, r.Offset) })
		}
	}()

	admCl, err := kgo.NewClient(kgo.SeedBrokers(node.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	owner := map[int32]string{}
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last group description: %s", last)
		}
	}()
	poll(t, "both members in a stable group with the partitions split", func() bool {
		dg, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			return false
		}
		g := dg[group]
		last = fmt.Sprintf("state %s protocol %q members %d", g.State, g.Protocol, len(g.Members))
		for _, m := range g.Members {
			last += fmt.Sprintf(" [%s %s]", m.ClientID, m.MemberID)
		}
		if g.State != "Stable" || len(g.Members) != 2 || g.Protocol != "range" {
			return false
		}
		clear(owner)
		for _, m := range g.Members {
			ca, ok := m.Assigned.AsConsumer()
			if !ok {
				return false
			}
			for _, at := range ca.Topics {
				for _, p := range at.Partitions {
					owner[p] = m.ClientID
				}
			}
		}
		counts := map[string]int{}
		for _, who := range owner {
			counts[who]++
		}
		return len(owner) == partitions && counts["kcat-member"] > 0 && counts["franz-member"] > 0
	})

	prod, err := kgo.NewClient(kgo.SeedBrokers(node.Addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var recs []*kgo.Record
	for p := range int32(partitions) {
		for i := range perPartition {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d", i)})
		}
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	poll(t, "every record consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= partitions*perPartition
	})
	mu.Lock()
	defer mu.Unlock()
	byWho := map[string]int{}
	for k, who := range seen {
		if len(who) != 1 {
			t.Fatalf("partition %d offset %d consumed by %v", k[0], k[1], who)
		}
		want := map[string]string{"kcat-member": "kcat", "franz-member": "franz-go"}[owner[int32(k[0])]]
		if who[0] != want {
			t.Fatalf("partition %d (assigned to %s) consumed by %s", k[0], owner[int32(k[0])], who[0])
		}
		byWho[who[0]]++
	}
	t.Logf("records consumed: %v; assignment %v", byWho, owner)
}

// TestCommittedOffsetsSurviveKillNine commits offsets (a kgo group member
// and kadm commits from outside a group, concurrently), kills `sluice
// serve` with SIGKILL while commits are in flight, restarts it and checks
// that OffsetFetch returns every acknowledged commit.
func TestCommittedOffsetsSurviveKillNine(t *testing.T) {
	node := testnode.Start(t, t.TempDir(), "--flush", "sync")
	const topic, partitions = "committed", 3
	createTopic(t, node.Addr, topic, partitions, nil)
	prod, err := kgo.NewClient(kgo.SeedBrokers(node.Addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for p := range int32(partitions) {
		for i := range 20 {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d", i)})
		}
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	prod.Close()

	// A group member consumes everything and commits it.
	member, err := kgo.NewClient(kgo.SeedBrokers(node.Addr), kgo.ConsumerGroup("members"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for n := 0; n < 60; {
		fs := member.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 60", n)
		}
		n += len(fs.Records())
		if err := member.CommitRecords(ctx, fs.Records()...); err != nil {
			t.Fatal(err)
		}
	}
	member.Close()

	// Outside commits, one committer per partition, until the kill.
	acked := make([]atomic.Int64, partitions)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for p := range int32(partitions) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := kgo.NewClient(kgo.SeedBrokers(node.Addr), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
			if err != nil {
				t.Error(err)
				return
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			for at := int64(1); ; at++ {
				select {
				case <-stop:
					return
				default:
				}
				offs := kadm.Offsets{}
				offs.Add(kadm.Offset{Topic: topic, Partition: p, At: at, LeaderEpoch: -1})
				cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
				resp, err := adm.CommitOffsets(cctx, "outside", offs)
				ccancel()
				if err != nil || resp.Error() != nil {
					return // the node died
				}
				acked[p].Store(at)
			}
		}()
	}
	poll(t, "some commits acknowledged", func() bool {
		for p := range acked {
			if acked[p].Load() < 50 {
				return false
			}
		}
		return true
	})
	node.Kill()
	close(stop)
	wg.Wait()
	node.Restart()

	cl, err := kgo.NewClient(kgo.SeedBrokers(node.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer fcancel()
	got, err := adm.FetchOffsets(fctx, "members")
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(partitions) {
		if o, ok := got.Lookup(topic, p); !ok || o.At != 20 {
			t.Fatalf("group member's commit for partition %d after kill -9: %+v", p, o)
		}
	}
	got, err = adm.FetchOffsets(fctx, "outside")
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(partitions) {
		o, ok := got.Lookup(topic, p)
		// The commit in flight at the kill may or may not have landed.
		if !ok || o.At < acked[p].Load() || o.At > acked[p].Load()+1 {
			t.Fatalf("partition %d: committed %+v after kill -9, last acknowledged %d", p, o, acked[p].Load())
		}
	}
	t.Logf("acknowledged commits before the kill: %d %d %d", acked[0].Load(), acked[1].Load(), acked[2].Load())
	if !strings.Contains(node.Logs(), "sluice ready") {
		t.Fatalf("restarted node did not come up:\n%s", node.Logs())
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
