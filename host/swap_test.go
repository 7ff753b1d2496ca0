package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/gowasm"
	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins"
)

// tagSpec is a job whose operator (the params test guest) answers every
// record with a record of the same key whose value is its parameters: the
// output says which version handled each input.
func tagSpec(version int) JobSpec {
	spec := echoSpec("tagger", "in", "out")
	spec.Parameters = map[string]any{"v": version}
	return spec
}

// TestSwapMidStream: records are produced without pause while the job
// changes versions four times (v1 -> v2 -> v1 -> v2 by parameters). Every
// input gets exactly one output, no task restarts, each partition's
// outputs change version at most four times and in order, and another job
// on the same input goes on processing through every swap.
func TestSwapMidStream(t *testing.T) {
	n := newNode(t)
	n.createTopic("in", 2)
	guest := testguests.Build("params")
	n.deploy(tagSpec(1), "params")
	n.deploy(echoSpec("bystander", "in", "out-b"), "echo")

	var produced atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i += 20 {
			select {
			case <-stop:
				return
			default:
			}
			n.produceByKey("in", records(20, func(j int) kv {
				return kv{key: []byte(fmt.Sprintf("k%07d", i+j)), value: []byte("x")}
			}))
			produced.Add(20)
			time.Sleep(2 * time.Millisecond)
		}
	}()

	bystanderIn := func() uint64 { return totals(n.status("bystander")).in }
	ctx := context.Background()
	for _, v := range []int{2, 1, 2} {
		time.Sleep(300 * time.Millisecond)
		before := bystanderIn()
		st, err := n.m.DeployBy(ctx, tagSpec(v), guest, "test")
		if err != nil {
			t.Fatalf("swap to v%d: %v", v, err)
		}
		if st.State != JobRunning {
			t.Fatalf("after the swap to v%d: %+v", v, st)
		}
		waitFor(t, 10*time.Second, func() string {
			if bystanderIn() <= before {
				return "the bystander job made no progress across the swap"
			}
			return ""
		})
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	total := produced.Load()
	waitFor(t, 60*time.Second, func() string {
		if c, b := n.count("out"), n.count("out-b"); c != total || b != total {
			return fmt.Sprintf("out has %d records, out-b %d, want %d", c, b, total)
		}
		return ""
	})

	seen := map[string]bool{}
	for p, recs := range n.read("out") {
		var versions []string
		for _, r := range recs {
			if seen[string(r.key)] {
				t.Fatalf("%s has two outputs", r.key)
			}
			seen[string(r.key)] = true
			var params struct{ V int }
			if err := json.Unmarshal(r.value, &params); err != nil {
				t.Fatalf("output %s = %q: %v", r.key, r.value, err)
			}
			v := fmt.Sprint(params.V)
			if len(versions) == 0 || versions[len(versions)-1] != v {
				versions = append(versions, v)
			}
		}
		if got := strings.Join(versions, ","); !strings.HasPrefix("1,2,1,2", got) {
			t.Errorf("partition %d went through versions %s, want a prefix of 1,2,1,2", p, got)
		}
	}
	if int64(len(seen)) != total {
		t.Errorf("%d distinct keys in out, %d produced", len(seen), total)
	}
	st := n.status("tagger")
	for _, ts := range st.Tasks {
		if ts.Restarts != 0 {
			t.Errorf("task %d restarted: %s", ts.Partition, ts.LastError)
		}
	}
	hist, err := n.m.History("tagger")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 4 || st.Version != 4 || hist[3].Result != VersionActive || hist[3].By != "test" {
		t.Fatalf("history %+v, status version %d", hist, st.Version)
	}
	for _, h := range hist[1:] {
		t.Logf("version %d: longest task pause %s", h.Version, h.SwapPause)
		if h.SwapPause <= 0 || h.SwapPause > 5*time.Second {
			t.Errorf("version %d: swap pause %s", h.Version, h.SwapPause)
		}
	}
	if got := metricSum(t, n, "sluice_task_swaps_total", "tagger"); got != 6 {
		t.Errorf("swaps metric = %v, want 6 (3 swaps x 2 tasks)", got)
	}
}

// TestBrokenVersionKeepsTheOldOne: a new version whose init fails, one
// that breaks the ABI, and one that changes the job's topics are each
// refused; the running version goes on, and the history records each
// failure. Then rollback and delete.
func TestBrokenVersionKeepsTheOldOne(t *testing.T) {
	n := newNode(t)
	n.createTopic("in", 2)
	n.deploy(tagSpec(1), "params")
	n.produceByKey("in", records(10, func(i int) kv { return kv{key: []byte(fmt.Sprintf("a%d", i)), value: []byte("x")} }))
	waitFor(t, 30*time.Second, func() string {
		if c := n.count("out"); c != 10 {
			return fmt.Sprintf("out has %d", c)
		}
		return ""
	})
	ctx := context.Background()
	v1 := n.status("tagger")

	_, err := n.m.DeployBy(ctx, tagSpec(2), testguests.Build("initfail"), "test")
	if !errors.Is(err, ErrInvalidJob) || !strings.Contains(err.Error(), "bad params") {
		t.Errorf("init failure: %v", err)
	}
	_, err = n.m.DeployBy(ctx, tagSpec(2), testguests.Build("noexport"), "test")
	var ve *plugins.ValidationError
	if !errors.As(err, &ve) {
		t.Errorf("bad ABI: %v", err)
	}
	moved := tagSpec(2)
	moved.Outputs = []OutputSpec{{Topic: "elsewhere"}}
	_, err = n.m.DeployBy(ctx, moved, testguests.Build("params"), "test")
	if !errors.Is(err, ErrInvalidJob) || !strings.Contains(err.Error(), "cannot change the job's topics") {
		t.Errorf("changed outputs: %v", err)
	}
	n.m.NoteFailedDeploy("tagger", "file jobs/tagger.yaml", errors.New("unknown key \"paramters\""))

	st := n.status("tagger")
	if st.ModuleSHA != v1.ModuleSHA || st.Version != 1 || st.State != JobRunning ||
		!strings.Contains(st.LastDeployError, "version 5 (file jobs/tagger.yaml) refused") {
		t.Errorf("after the refused versions: %+v", st)
	}
	n.produceByKey("in", records(10, func(i int) kv { return kv{key: []byte(fmt.Sprintf("b%d", i)), value: []byte("x")} }))
	waitFor(t, 30*time.Second, func() string {
		if c := n.count("out"); c != 20 {
			return fmt.Sprintf("out has %d", c)
		}
		return ""
	})
	hist, err := n.m.History("tagger")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 5 {
		t.Fatalf("history has %d versions: %+v", len(hist), hist)
	}
	for i, want := range []string{"bad params", "sluice_process", "cannot change the job's topics", "paramters"} {
		h := hist[i+1]
		if h.Result != VersionFailed || !strings.Contains(h.Error, want) {
			t.Errorf("version %d: %s %q, want failed with %q", h.Version, h.Result, h.Error, want)
		}
	}
	if hist[0].Result != VersionActive {
		t.Errorf("version 1 is %s, want active", hist[0].Result)
	}
	if got := metricSum(t, n, "sluice_job_failed_swaps_total", "tagger"); got != 4 {
		t.Errorf("failed swaps metric = %v, want 4", got)
	}

	// A good version, then a rollback to the one before it.
	if _, err := n.m.DeployBy(ctx, tagSpec(2), testguests.Build("params"), "test"); err != nil {
		t.Fatal(err)
	}
	st, err = n.m.Rollback(ctx, "tagger", 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	if st.LastDeployError != "" {
		t.Errorf("a good version still reports the refused one: %q", st.LastDeployError)
	}
	hist, _ = n.m.History("tagger")
	last := hist[len(hist)-1]
	if st.Version != 7 || last.Parameters["v"] != float64(1) || !strings.Contains(last.By, "rollback to 1") {
		t.Errorf("after rollback: version %d, last %+v", st.Version, last)
	}
	if _, err := n.m.Rollback(ctx, "tagger", 3, "test"); !errors.Is(err, ErrNoSuchVersion) {
		t.Errorf("rollback to a failed version: %v", err)
	}

	// Delete removes the job and its files; the output stays.
	if err := n.m.Delete(ctx, "tagger"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.m.History("tagger"); !errors.Is(err, ErrNoSuchJob) {
		t.Errorf("history after delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "jobs", "tagger")); !os.IsNotExist(err) {
		t.Errorf("job directory after delete: %v", err)
	}
	if n.count("out") != 20 {
		t.Errorf("the output topic lost records")
	}
}

// TestStatefulSwap: word count changes versions mid-stream (new
// parameters) and keeps its counts: the state is the task's, not the
// instance's.
func TestStatefulSwap(t *testing.T) {
	n := newNode(t)
	n.createTopic("sentences", 2)
	first := text(3, 64<<10)
	want := map[string]int{}
	countWords(first, want)
	n.produceSentences(first)
	n.deployFile("../examples/wordcount/split.yaml", "../examples/wordcount/go/split")
	n.deployFile("../examples/wordcount/count.yaml", "../examples/wordcount/go/count")
	n.waitCounts(want, 2*time.Minute)

	spec, err := LoadJobFile("../examples/wordcount/count.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec.CommitInterval = 200 * time.Millisecond
	spec.Parameters = map[string]any{"note": "v2"}
	if _, err := n.m.DeployBy(context.Background(), spec, gowasm.MustBuild("../examples/wordcount/go/count"), "test"); err != nil {
		t.Fatal(err)
	}
	second := text(4, 64<<10)
	countWords(second, want)
	n.produceSentences(second)
	n.waitCounts(want, 2*time.Minute)
	if st := n.status("count"); st.Version != 2 {
		t.Errorf("count is at version %d, want 2", st.Version)
	}
}

type jobTotals struct{ in, out uint64 }

func totals(st JobStatus) jobTotals {
	var t jobTotals
	for _, ts := range st.Tasks {
		t.in += ts.RecordsIn
		t.out += ts.RecordsOut
	}
	return t
}
