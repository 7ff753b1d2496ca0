package host

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/host/admin"
	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/internal/testnode"
)

// TestSwapByEditingTheJobFile runs a real node with --jobs-dir. A job file
// deploys the params test operator (it answers each record with a record
// of the same key whose value is its parameters, so each output names the
// version that made it). While a Kafka client keeps producing, the file's
// parameters are edited v1 -> v2 -> v1 -> v2. Every produced record has
// exactly one output, the versions follow the edits in order, the node is
// the same process throughout, and the job's history lists the versions
// as coming from the file.
func TestSwapByEditingTheJobFile(t *testing.T) {
	jobs := t.TempDir()
	module := filepath.Join(t.TempDir(), "tagger.wasm")
	if err := os.WriteFile(module, testguests.Build("params"), 0o644); err != nil {
		t.Fatal(err)
	}
	node := testnode.Start(t, t.TempDir(), "--jobs-dir", jobs)
	must(t)(node.Run("", "topic", "create", "in", "--partitions", "2"))
	file := filepath.Join(jobs, "tagger.yaml")
	write := func(v int) {
		// As editors do: a temporary file renamed over the old one.
		tmp := filepath.Join(jobs, ".tagger.yaml.tmp")
		job := fmt.Sprintf("name: tagger\nmodule: %s\ninputs: [in]\noutputs: [out]\ncommit-interval: 200ms\nparameters:\n  v: %d\n", module, v)
		if err := os.WriteFile(tmp, []byte(job), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	c := admin.NewClient(node.Admin, nil)
	version := func() int {
		st, err := c.Status(context.Background(), "tagger")
		if err != nil {
			return 0
		}
		return st.Version
	}
	write(1)
	waitFor(t, 2*time.Minute, "the job file deployed", func() bool { return version() == 1 })
	pid := node.PID()

	cl, err := kgo.NewClient(kgo.SeedBrokers(node.Addr), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var produced atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx := context.Background()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var recs []*kgo.Record
			for j := 0; j < 20; j++ {
				recs = append(recs, &kgo.Record{Topic: "in", Key: fmt.Appendf(nil, "k%07d", i*20+j), Value: []byte("x")})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			produced.Add(20)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for v, want := range []int{2, 1, 2} {
		time.Sleep(500 * time.Millisecond)
		write(want)
		waitFor(t, 2*time.Minute, fmt.Sprintf("version %d from the edited file", v+2), func() bool { return version() == v+2 })
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	total := produced.Load()
	got := map[string]int{}
	byPartition := map[int32][]int{}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(node.Addr), kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for int64(len(got)) < total && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		fetches := consumer.PollFetches(ctx)
		cancel()
		fetches.EachRecord(func(r *kgo.Record) {
			got[string(r.Key)]++
			var p struct{ V int }
			if err := json.Unmarshal(r.Value, &p); err != nil {
				t.Errorf("output %s = %q: %v", r.Key, r.Value, err)
			}
			vs := byPartition[r.Partition]
			if len(vs) == 0 || vs[len(vs)-1] != p.V {
				byPartition[r.Partition] = append(vs, p.V)
			}
		})
	}
	if int64(len(got)) != total {
		t.Fatalf("%d distinct outputs for %d produced records", len(got), total)
	}
	for k, n := range got {
		if n != 1 {
			t.Errorf("%s has %d outputs", k, n)
		}
	}
	for p, vs := range byPartition {
		if s := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(vs)), ","), "[]"); !strings.HasPrefix("1,2,1,2", s) {
			t.Errorf("partition %d went through versions %s, want a prefix of 1,2,1,2", p, s)
		}
	}
	if !node.Running() || node.PID() != pid {
		t.Errorf("the node restarted: pid %d -> %d, running %v", pid, node.PID(), node.Running())
	}
	hist, err := c.History(context.Background(), "tagger")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hist {
		if !strings.HasPrefix(h.By, "file ") {
			t.Errorf("version %d came from %q, want the job file", h.Version, h.By)
		}
	}
	st, err := c.Status(context.Background(), "tagger")
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range st.Tasks {
		if ts.Restarts != 0 {
			t.Errorf("task %d restarted: %s", ts.Partition, ts.LastError)
		}
	}
}
