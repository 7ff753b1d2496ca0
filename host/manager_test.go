package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-io/sluice/internal/testguests"
)

func echoSpec(name, in, out string) JobSpec {
	return JobSpec{Name: name, Inputs: []string{in}, Outputs: []OutputSpec{{Topic: out}}, CommitInterval: 100 * time.Millisecond}
}

// checkEcho checks that topic out holds exactly the records of want, each
// in the partition its key hashes to.
func checkEcho(t *testing.T, n *testNode, out string, want []kv) {
	t.Helper()
	got := map[string]string{}
	parts := n.read(out)
	for p, recs := range parts {
		for _, r := range recs {
			if q := partitionForKey(r.key, int32(len(parts))); int(q) != p {
				t.Fatalf("key %q is in partition %d, murmur2 says %d", r.key, p, q)
			}
			if _, dup := got[string(r.key)]; dup {
				t.Fatalf("key %q appears twice", r.key)
			}
			got[string(r.key)] = string(r.value)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s has %d records, want %d", out, len(got), len(want))
	}
	for _, w := range want {
		if got[string(w.key)] != string(w.value) {
			t.Fatalf("key %q: value %q, want %q", w.key, got[string(w.key)], w.value)
		}
	}
}

func TestEchoJob(t *testing.T) {
	n := newNode(t)
	n.createTopic("in", 4)
	want := records(5000, func(i int) kv {
		return kv{key: []byte(fmt.Sprintf("k%05d", i)), value: []byte(fmt.Sprintf("v%d", i))}
	})
	n.produceByKey("in", want)
	st := n.deploy(echoSpec("echo", "in", "out"), "echo")
	if len(st.Tasks) != 4 || st.State != JobRunning {
		t.Fatalf("status after deploy: %+v", st)
	}
	if info, ok := n.b.Topic("out"); !ok || info.Partitions != 4 {
		t.Fatalf("output topic: %+v %v (want 4 partitions, as the input)", info, ok)
	}
	waitFor(t, 30*time.Second, func() string {
		if c := n.count("out"); c != int64(len(want)) {
			return fmt.Sprintf("out has %d records", c)
		}
		return ""
	})
	checkEcho(t, n, "out", want)
	// Checkpoints catch up and the figures add up.
	st = n.waitTasks("echo", 10*time.Second, "checkpointed", func(ts TaskStatus) bool {
		return ts.Inputs[0].Committed == ts.Inputs[0].End && ts.Inputs[0].Lag == 0
	})
	var in, out uint64
	for _, ts := range st.Tasks {
		in += ts.RecordsIn
		out += ts.RecordsOut
		if ts.State != TaskRunning {
			t.Errorf("task %d: %s", ts.Partition, ts.State)
		}
	}
	if in != 5000 || out != 5000 {
		t.Errorf("records in %d out %d, want 5000 each", in, out)
	}
	if got := testutil.ToFloat64(n.m.metrics.recordsIn.WithLabelValues("echo", "0")); got != float64(st.Tasks[0].RecordsIn) {
		t.Errorf("metric records_in{partition=0} = %v, status says %d", got, st.Tasks[0].RecordsIn)
	}
	// More input later is picked up (the task waits on Notify).
	more := records(100, func(i int) kv { return kv{key: []byte(fmt.Sprintf("late%d", i)), value: []byte("x")} })
	n.produceByKey("in", more)
	waitFor(t, 10*time.Second, func() string {
		if c := n.count("out"); c != 5100 {
			return fmt.Sprintf("out has %d records", c)
		}
		return ""
	})
	checkEcho(t, n, "out", append(want, more...))
}

func TestDeployErrors(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	n.createTopic("a", 2)
	n.createTopic("b", 3)
	echo := testguests.Build("echo")

	_, err := n.m.Deploy(ctx, echoSpec("j", "sentences", "out"), echo)
	if err == nil || !errors.Is(err, ErrInvalidJob) || !strings.Contains(err.Error(), "input topic \"sentences\" does not exist; create it with `sluice topic create sentences`") {
		t.Errorf("missing input: %v", err)
	}
	spec := JobSpec{Name: "j", Inputs: []string{"a", "b"}, Outputs: []OutputSpec{{Topic: "out"}}}
	_, err = n.m.Deploy(ctx, spec, echo)
	if err == nil || !errors.Is(err, ErrInvalidJob) || !containsAll(err.Error(), "not co-partitioned", "a has 2", "b has 3", "repartition") {
		t.Errorf("co-partitioning: %v", err)
	}
	n.createTopic("j-s-changelog", 5)
	spec = echoSpec("j", "a", "out")
	spec.Stores = []StoreSpec{{Name: "s"}}
	_, err = n.m.Deploy(ctx, spec, echo)
	if err == nil || !containsAll(err.Error(), "changelog topic j-s-changelog", "has 5 partitions", "2 tasks") {
		t.Errorf("changelog partitions: %v", err)
	}
	_, err = n.m.Deploy(ctx, JobSpec{Name: "j"}, echo)
	if !errors.Is(err, ErrInvalidJob) {
		t.Errorf("bad spec: %v", err)
	}
	for _, c := range []struct {
		guest string
		want  []string
	}{
		{"noexport", []string{"sluice_process"}},
		{"badimport", []string{"sluice_v1"}},
		{"noversion", []string{"check_abi_version_1"}},
		{"initfail", []string{"init"}},
	} {
		_, err := n.m.Deploy(ctx, echoSpec("bad-"+c.guest, "a", "out-"+c.guest), testguests.Build(c.guest))
		if err == nil {
			t.Errorf("%s: deployed", c.guest)
			continue
		}
		if !containsAll(err.Error(), c.want...) {
			t.Errorf("%s: error %q does not name %q", c.guest, err, c.want)
		}
		t.Logf("%s: %v", c.guest, err)
	}
	// Nothing was created or persisted by the failed deploys.
	for _, topic := range []string{"out", "out-noexport", "out-badimport", "out-noversion", "out-initfail"} {
		if _, ok := n.b.Topic(topic); ok {
			t.Errorf("failed deploy created topic %s", topic)
		}
	}
	if jobs := n.m.List(); len(jobs) != 0 {
		t.Errorf("failed deploys left jobs: %+v", jobs)
	}
	if entries, _ := os.ReadDir(filepath.Join(n.dir, "jobs")); len(entries) != 0 {
		t.Errorf("failed deploys left %d job directories", len(entries))
	}
	if _, err := n.m.Status("nope"); !errors.Is(err, ErrNoSuchJob) {
		t.Errorf("status of unknown job: %v", err)
	}
	if err := n.m.Stop(ctx, "nope"); !errors.Is(err, ErrNoSuchJob) {
		t.Errorf("stop of unknown job: %v", err)
	}
}

// A redeploy replaces the job: the old tasks stop with a final checkpoint
// and the new module continues from it, so nothing is processed twice.
// TestRedeploySwapsInPlace: deploying a running job again changes its
// tasks to the new version in place (no task restart), keeps the old
// module for rollback, and records both versions.
func TestRedeploySwapsInPlace(t *testing.T) {
	n := newNode(t)
	n.createTopic("in", 2)
	first := records(300, func(i int) kv { return kv{key: []byte(fmt.Sprintf("a%d", i)), value: []byte("1")} })
	n.produceByKey("in", first)
	st1 := n.deploy(echoSpec("j", "in", "out"), "echo")
	waitFor(t, 30*time.Second, func() string {
		if c := n.count("out"); c != 300 {
			return fmt.Sprintf("out has %d", c)
		}
		return ""
	})
	spec := echoSpec("j", "in", "out")
	spec.Parameters = map[string]any{"on": "never"}
	st2, err := n.m.Deploy(context.Background(), spec, testguests.Build("fail-on"))
	if err != nil {
		t.Fatal(err)
	}
	if st2.ModuleSHA == st1.ModuleSHA || len(n.m.List()) != 1 || st1.Version != 1 || st2.Version != 2 {
		t.Fatalf("redeploy did not replace: %s (v%d) vs %s (v%d), %d jobs", st2.ModuleSHA, st2.Version, st1.ModuleSHA, st1.Version, len(n.m.List()))
	}
	for _, ts := range st2.Tasks {
		if ts.Restarts != 0 || ts.State != TaskRunning {
			t.Errorf("task %d after the swap: %s, %d restarts", ts.Partition, ts.State, ts.Restarts)
		}
	}
	hist, err := n.m.History("j")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Result != VersionReplaced || hist[1].Result != VersionActive ||
		hist[1].ModuleSHA != st2.ModuleSHA || hist[1].By != "api" || hist[1].SwapPause <= 0 {
		t.Errorf("history = %+v", hist)
	}
	entries, _ := os.ReadDir(filepath.Join(n.dir, "jobs", "j"))
	var modules int
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "module-") {
			modules++
		}
	}
	if modules != 2 {
		t.Errorf("%d module files kept after redeploy, want 2 (the old one for rollback)", modules)
	}
	second := records(200, func(i int) kv { return kv{key: []byte(fmt.Sprintf("b%d", i)), value: []byte("2")} })
	n.produceByKey("in", second)
	waitFor(t, 30*time.Second, func() string {
		if c := n.count("out"); c != 500 {
			return fmt.Sprintf("out has %d", c)
		}
		return ""
	})
	checkEcho(t, n, "out", append(first, second...))
}

// A new Manager on the same data directory starts the running jobs from
// their checkpoints (no output twice after a clean close) and leaves
// stopped jobs stopped.
func TestReopenResumesFromCheckpoints(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	n.createTopic("in", 3)
	n.createTopic("in2", 1)
	first := records(600, func(i int) kv { return kv{key: []byte(fmt.Sprintf("a%d", i)), value: []byte("x")} })
	n.produceByKey("in", first)
	n.deploy(echoSpec("run", "in", "out"), "echo")
	n.deploy(echoSpec("idle", "in2", "out2"), "echo")
	if err := n.m.Stop(context.Background(), "idle"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() string {
		if c := n.count("out"); c != 600 {
			return fmt.Sprintf("out has %d", c)
		}
		return ""
	})
	n.close()

	n = startNode(t, dir)
	t.Cleanup(n.close)
	if st := n.status("run"); st.State != JobRunning || len(st.Tasks) != 3 {
		t.Fatalf("run after reopen: %+v", st)
	}
	if st := n.status("idle"); st.State != JobStopped || len(st.Tasks) != 0 {
		t.Fatalf("idle after reopen: %+v", st)
	}
	for _, ts := range n.status("run").Tasks {
		if ts.Inputs[0].Committed != ts.Inputs[0].End {
			t.Errorf("task %d: committed %d, end %d: the final checkpoint is missing", ts.Partition, ts.Inputs[0].Committed, ts.Inputs[0].End)
		}
	}
	second := records(300, func(i int) kv { return kv{key: []byte(fmt.Sprintf("b%d", i)), value: []byte("y")} })
	n.produceByKey("in", second)
	waitFor(t, 30*time.Second, func() string {
		if c := n.count("out"); c != 900 {
			return fmt.Sprintf("out has %d", c)
		}
		return ""
	})
	checkEcho(t, n, "out", append(first, second...))
	if err := n.m.Start(context.Background(), "idle"); err != nil {
		t.Fatal(err)
	}
	if st := n.status("idle"); st.State != JobRunning || len(st.Tasks) != 1 {
		t.Fatalf("idle after start: %+v", st)
	}
}

// A job with two co-partitioned inputs reads both, in turn, including
// input that arrives while it waits; an explicit output partition count
// is used when deploy creates the output.
func TestTwoInputs(t *testing.T) {
	n := newNode(t)
	n.createTopic("a", 2)
	n.createTopic("b", 2)
	ra := records(700, func(i int) kv { return kv{key: []byte(fmt.Sprintf("a%d", i)), value: []byte("A")} })
	rb := records(500, func(i int) kv { return kv{key: []byte(fmt.Sprintf("b%d", i)), value: []byte("B")} })
	n.produceByKey("a", ra)
	n.produceByKey("b", rb)
	spec := JobSpec{Name: "two", Inputs: []string{"a", "b"}, Outputs: []OutputSpec{{Topic: "out", Partitions: 3}}}
	st := n.deploy(spec, "echo")
	if len(st.Tasks) != 2 || len(st.Tasks[0].Inputs) != 2 || st.Tasks[0].Inputs[1].Topic != "b" {
		t.Fatalf("status: %+v", st)
	}
	if info, _ := n.b.Topic("out"); info.Partitions != 3 {
		t.Fatalf("out has %d partitions, want the 3 the spec asks for", info.Partitions)
	}
	more := records(100, func(i int) kv { return kv{key: []byte(fmt.Sprintf("b-late%d", i)), value: []byte("B")} })
	n.produceByKey("b", more)
	waitFor(t, 30*time.Second, func() string {
		if c := n.count("out"); c != 1300 {
			return fmt.Sprintf("out has %d", c)
		}
		return ""
	})
	checkEcho(t, n, "out", append(append(ra, rb...), more...))
}
